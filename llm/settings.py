"""Configuration of the LLM client, read from the environment (see API.md)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llm.models import check_model_id


class LLMSettings(BaseSettings):
    """Settings of the OpenRouter client.

    Read from the environment variables in API.md's configuration table, and
    constructible directly by field name: ``LLMSettings(api_key="k", base_url=...)``.
    The key is a ``SecretStr`` so it never appears in a repr or a log line.
    """

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    api_key: SecretStr | None = Field(default=None, validation_alias="OPENROUTER_API_KEY")
    base_url: str = Field(
        default="https://openrouter.ai/api/v1", validation_alias="FASTNPC_OPENROUTER_BASE_URL"
    )
    model: str = Field(default="z-ai/glm-4-32b", validation_alias="FASTNPC_MODEL")
    # The model ids users may choose (FASTNPC_MODELS, comma-separated); empty: any well-formed id.
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="FASTNPC_MODELS"
    )
    max_concurrency: int = Field(default=64, ge=1, validation_alias="FASTNPC_LLM_MAX_CONCURRENCY")
    max_per_user: int = Field(default=8, ge=1, validation_alias="FASTNPC_LLM_MAX_PER_USER")
    queue_timeout: float = Field(default=10, ge=0, validation_alias="FASTNPC_LLM_QUEUE_TIMEOUT")
    timeout: float = Field(default=30, gt=0, validation_alias="FASTNPC_LLM_TIMEOUT")
    idle_timeout: float = Field(default=30, gt=0, validation_alias="FASTNPC_LLM_IDLE_TIMEOUT")
    total_timeout: float = Field(default=300, gt=0, validation_alias="FASTNPC_LLM_TOTAL_TIMEOUT")
    max_retries: int = Field(default=2, ge=0, validation_alias="FASTNPC_LLM_MAX_RETRIES")
    retry_after_cap: float = Field(default=30, ge=0, validation_alias="FASTNPC_LLM_RETRY_AFTER_CAP")
    # Seconds between network reads of a streamed reply once tokens flow while at most 64
    # streams are open (0: read as data comes; API.md allows at most 0.05); past 64 open
    # streams the interval grows up to stream_batch_max (see llm/pacing.py).
    stream_batch: float = Field(
        default=0.0, ge=0, le=2, validation_alias="FASTNPC_LLM_STREAM_BATCH"
    )
    stream_batch_max: float = Field(
        default=0.3, ge=0, le=2, validation_alias="FASTNPC_LLM_STREAM_BATCH_MAX"
    )
    referer: str | None = Field(default=None, validation_alias="FASTNPC_LLM_REFERER")
    title: str | None = Field(default="FastNPC", validation_alias="FASTNPC_LLM_TITLE")

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        """``"a, b,c"`` (the environment's form) or a sequence; each id must be well-formed."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list | tuple):
            return tuple(check_model_id(m) for m in value if isinstance(m, str) and m)
        return value
