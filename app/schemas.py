"""Request and response bodies (pydantic): validation and the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from storage.records import CharacterSettings, Source


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(_In):
    username: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8, max_length=256)


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


MODEL_ID_PATTERN = r"^[A-Za-z0-9._:/-]{1,100}$"
"""A model id (API.md); `FASTNPC_MODELS`, when set, narrows it further (not checked here yet)."""

ModelId = Annotated[str, Field(min_length=1, max_length=100, pattern=MODEL_ID_PATTERN)]
GreetingText = Annotated[str, Field(max_length=20_000)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]


class SourceIn(_In):
    provider: str = Field(min_length=1, max_length=64)
    title: str = Field(max_length=500)
    url: str = Field(max_length=2_000)

    def record(self) -> Source:
        return Source(self.provider, self.title, self.url)


class CharacterSettingsIn(_In):
    """Per-character LLM settings; a key left out keeps its value on PATCH."""

    model: ModelId | None = None
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    fallback_models: list[ModelId] = Field(default_factory=list, max_length=3)
    language: Literal["zh", "en"] | None = None

    def record(self) -> CharacterSettings:
        return CharacterSettings(
            model=self.model,
            temperature=self.temperature,
            fallback_models=tuple(self.fallback_models),
            language=self.language,
        )


class _CharacterCardFields(_In):
    greeting: GreetingText | None = None
    alternate_greetings: list[GreetingText] | None = Field(default=None, max_length=32)
    tags: list[Tag] | None = Field(default=None, max_length=64)
    sources: list[SourceIn] | None = Field(default=None, max_length=32)
    settings: CharacterSettingsIn | None = None


class CharacterIn(_CharacterCardFields):
    name: str = Field(min_length=1, max_length=100)
    profile: dict[str, Any] | None = None


class CharacterPatch(_CharacterCardFields):
    """Fields given replace the stored ones (`greeting: null` clears it; `settings` keys merge)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    profile: dict[str, Any] | None = None


class CardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: Literal["v2", "v3"] = "v3"
    format: Literal["json", "png"] = "json"


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    complete: bool = False


class PersonaIn(_In):
    name: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=2_000)


class GenerateIn(_In):
    name: str = Field(min_length=1, max_length=100)
    source_text: str | None = Field(default=None, max_length=20_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)


class ChatIn(_In):
    content: str = Field(min_length=1, max_length=8_000)


class HistoryQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = None


class GroupIn(_In):
    name: str = Field(min_length=1, max_length=100)
    character_ids: list[str] = Field(min_length=2, max_length=8)
    strategy: Literal["moderator", "round_robin", "all"] = "moderator"
    max_speakers: int = Field(default=2, ge=1, le=8)


class GroupPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    character_ids: list[str] | None = Field(default=None, min_length=2, max_length=8)
    strategy: Literal["moderator", "round_robin", "all"] | None = None
    max_speakers: int | None = Field(default=None, ge=1, le=8)


class GroupMemoriesQuery(BaseModel):
    character_id: str | None = None


class AdminUserPatch(_In):
    disabled: bool | None = None
    is_admin: bool | None = None


class LimitsIn(_In):
    max_concurrency: int = Field(ge=1, le=1000)


# ---- responses (documentation)


class UserOut(BaseModel):
    id: str
    username: str
    is_admin: bool
    disabled: bool
    created_at: str


class AuthOut(BaseModel):
    user: UserOut
    token: str


class SourceOut(BaseModel):
    provider: str
    title: str
    url: str


class CharacterSettingsOut(BaseModel):
    model: str | None
    temperature: float | None
    fallback_models: list[str]
    language: Literal["zh", "en"] | None


class CharacterOut(BaseModel):
    id: str
    name: str
    status: Literal["ready", "partial"]
    profile: dict[str, dict[str, Any] | None]
    greeting: str | None
    alternate_greetings: list[str]
    tags: list[str]
    avatar_url: str | None
    sources: list[SourceOut]
    settings: CharacterSettingsOut
    created_at: str
    updated_at: str


class PersonaOut(BaseModel):
    name: str | None
    description: str


class CharacterList(BaseModel):
    items: list[CharacterOut]


class MessageOut(BaseModel):
    id: str
    role: Literal["user", "assistant"]
    content: str
    character_id: str | None
    status: Literal["complete", "interrupted", "error"]
    created_at: str


class ChatOut(BaseModel):
    user_message: MessageOut | None
    reply: MessageOut | None
    lore: list[str] = Field(default_factory=list, description="ids of the lore entries used")


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_before: str | None


class MemoryOut(BaseModel):
    id: str
    kind: Literal["short_term", "long_term"]
    content: str
    created_at: str
    character_id: str | None = None


class MemoryList(BaseModel):
    items: list[MemoryOut]


class StoppedOut(BaseModel):
    stopped: bool


class QueuedOut(BaseModel):
    queued: bool


# ---- groups and admin (responses, documentation)


class GroupOut(BaseModel):
    id: str
    name: str
    character_ids: list[str]
    strategy: Literal["moderator", "round_robin", "all"]
    max_speakers: int
    created_at: str


class GroupList(BaseModel):
    items: list[GroupOut]


class GroupTurnOut(BaseModel):
    user_message: MessageOut
    speakers: list[str]
    reason: str
    replies: list[MessageOut]
    lore: list[str] = Field(
        default_factory=list, description="ids of the lore entries used (all speakers)"
    )


class AdminUserOut(UserOut):
    characters: int
    messages: int


class AdminUserList(BaseModel):
    items: list[AdminUserOut]


class StatsOut(BaseModel):
    users: int
    characters: int
    messages: int
    groups: int
    memories: int


class LimiterOut(BaseModel):
    total: int
    borrowed: int
    waiting: int


class LLMOut(BaseModel):
    limiter: LimiterOut
    models: dict[str, dict[str, Any]]


class MemoryTasksOut(BaseModel):
    queued: int
    running: int
    done: int
    failed: int
    restarts: int


class GenerationTasksOut(BaseModel):
    running: int


class TasksOut(BaseModel):
    memory: MemoryTasksOut
    generations: GenerationTasksOut


# ---- lorebooks

LoreKey = Annotated[str, Field(max_length=500)]
LoreKeys = Annotated[list[LoreKey], Field(max_length=100)]


class LoreEntryPatch(_In):
    """An entry's fields; on PATCH, a field left out keeps its value."""

    keys: LoreKeys | None = None
    secondary_keys: LoreKeys | None = None
    selective: StrictBool | None = None
    constant: StrictBool | None = None
    enabled: StrictBool | None = None
    case_sensitive: StrictBool | None = None
    use_regex: StrictBool | None = None
    content: str | None = Field(default=None, max_length=20_000)
    insertion_order: StrictInt | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    priority: StrictInt | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    position: Literal["before_char", "after_char"] | None = None
    comment: str | None = Field(default=None, max_length=2_000)


class LoreEntryIn(_In):
    """A new entry (defaults as API.md's)."""

    keys: LoreKeys = Field(default_factory=list)
    secondary_keys: LoreKeys = Field(default_factory=list)
    selective: StrictBool = False
    constant: StrictBool = False
    enabled: StrictBool = True
    case_sensitive: StrictBool = False
    use_regex: StrictBool = False
    content: str = Field(default="", max_length=20_000)
    insertion_order: StrictInt = Field(default=100, ge=-1_000_000, le=1_000_000)
    priority: StrictInt = Field(default=10, ge=-1_000_000, le=1_000_000)
    position: Literal["before_char", "after_char"] = "before_char"
    comment: str = Field(default="", max_length=2_000)


class LorebookPatch(_In):
    """A lorebook's fields; a field left out keeps its value."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    scan_depth: StrictInt | None = Field(default=None, ge=1, le=100)
    token_budget: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    recursive: StrictBool | None = None


class LorebookIn(_In):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    scan_depth: StrictInt = Field(default=4, ge=1, le=100)
    token_budget: StrictInt = Field(default=512, ge=1, le=1_000_000)
    recursive: StrictBool = False
    entries: list[LoreEntryIn] = Field(default_factory=list, max_length=5_000)


class LorebookIdsIn(_In):
    lorebook_ids: list[str] = Field(max_length=32)


class LoreMatchIn(_In):
    text: str = Field(max_length=100_000)


class LoreEntryOut(BaseModel):
    id: str
    keys: list[str]
    secondary_keys: list[str]
    selective: bool
    constant: bool
    enabled: bool
    case_sensitive: bool
    use_regex: bool
    content: str
    insertion_order: int
    priority: int
    position: Literal["before_char", "after_char"]
    comment: str


class LorebookOut(BaseModel):
    id: str
    name: str
    description: str
    scan_depth: int
    token_budget: int
    recursive: bool
    entries: list[LoreEntryOut]
    created_at: str
    updated_at: str


class LorebookList(BaseModel):
    items: list[LorebookOut]


class LorebookIdsOut(BaseModel):
    lorebook_ids: list[str]


class LoreMatchOut(BaseModel):
    entry_ids: list[str]
