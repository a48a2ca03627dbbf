"""Configuration of the source fetcher, read from the environment (API.md's table)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_USER_AGENT = (
    "FastNPC/0.1 (NPC character generator; fetches one encyclopedia page per user request)"
)


class SourceSettings(BaseSettings):
    """Where and how generation sources are fetched; constructible by field name in tests."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    wikipedia_url: str = Field(
        default="https://{lang}.wikipedia.org/w/api.php",
        validation_alias="FASTNPC_SOURCE_WIKIPEDIA_URL",
    )
    baike_url: str = Field(
        default="https://baike.baidu.com", validation_alias="FASTNPC_SOURCE_BAIKE_URL"
    )
    timeout: float = Field(default=15, gt=0, validation_alias="FASTNPC_SOURCE_TIMEOUT")
    max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, validation_alias="FASTNPC_SOURCE_MAX_BYTES"
    )
    max_concurrency: int = Field(
        default=8, ge=1, validation_alias="FASTNPC_SOURCE_MAX_CONCURRENCY"
    )
    user_agent: str = Field(
        default=DEFAULT_USER_AGENT, min_length=1, validation_alias="FASTNPC_SOURCE_USER_AGENT"
    )
