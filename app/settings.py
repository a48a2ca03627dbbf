"""Service settings, read from the environment (names in API.md's configuration table)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.sources.settings import SourceSettings
from llm import LLMSettings


class Settings(BaseSettings):
    """Everything the composition root needs; the LLM part is `llm.LLMSettings`."""

    model_config = SettingsConfigDict(env_prefix="FASTNPC_", extra="ignore")

    database_url: str = "sqlite:///./fastnpc.db"
    max_body_bytes: int = Field(default=262_144, ge=1024)
    max_upload_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    memory_trigger_messages: int = Field(default=40, ge=2)
    memory_keep_recent: int = Field(default=10, ge=0)
    memory_short_term_budget: int = Field(default=20, ge=1)
    memory_workers: int = Field(default=2, ge=1)
    admin_username: str | None = None
    admin_password: SecretStr | None = None
    token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    password_hash_concurrency: int = Field(default=4, ge=1)
    prompt_token_budget: int = Field(default=6000, ge=256)
    sse_ping_interval: float = Field(default=15.0, gt=0)
    shutdown_grace: float = Field(default=5.0, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    header_timeout: float = Field(default=10.0, gt=0)
    rate_limit_per_minute: int = Field(default=0, ge=0)
    login_free_attempts: int = Field(default=5, ge=1)
    login_max_delay: float = Field(default=300.0, ge=1)
    login_account_max_delay: float = Field(default=30.0, ge=1)
    # days the exact prompt of each reply is kept for admins (0 keeps none)
    prompt_snapshot_days: int = Field(default=7, ge=0)
    # Replies that could not be saved while the database was down wait here for it (durable
    # across a restart); empty: kept in memory only.
    spool_dir: Path | None = Path("fastnpc-spool")
    # redis://host:port/db: share the LLM limits and live generations across processes
    redis_url: str | None = None
    # the first part of every Redis key (processes of one service share it)
    redis_prefix: str = Field(default="fastnpc", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # seconds a generation's lease lasts without renewal (renewed every second): how soon
    # another process takes over the generations of a process that died
    generation_lease_seconds: float = Field(default=30.0, ge=2)
    # seconds an LLM slot of the shared (Redis) limiter lasts without renewal (renewed every
    # third of it): how soon the slots of a process that died come back
    llm_slot_lease_seconds: float = Field(default=10.0, ge=0.1)

    @field_validator("spool_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value

    llm: LLMSettings = Field(default_factory=LLMSettings)
    sources: SourceSettings = Field(default_factory=SourceSettings)
