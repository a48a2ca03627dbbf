"""Request and response bodies (pydantic): validation and the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


Talkativeness = Annotated[float, Field(ge=0, le=1, strict=True)]
GroupStrategyName = Literal["moderator", "round_robin", "all", "natural", "pooled", "manual"]


class GroupMessageIn(_In):
    """A group turn: `content` (stored and sent as the user's message; without it the
    characters continue among themselves) and/or `speaker_ids` (members, muted ones too, who
    reply in that order instead of the strategy's choice, not capped by max_speakers). A
    manual group with neither: 400."""

    content: str | None = Field(default=None, min_length=1, max_length=8_000)
    speaker_ids: list[str] | None = Field(default=None, min_length=1, max_length=8)


class GroupContinueIn(_In):
    """`rounds` turns without a user message (fewer when a round chooses nobody)."""

    rounds: int = Field(default=1, ge=1, le=10, strict=True)


class HistoryQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = None


class GroupIn(_In):
    name: str = Field(min_length=1, max_length=100)
    character_ids: list[str] = Field(min_length=2, max_length=8)
    strategy: GroupStrategyName = "moderator"
    max_speakers: int = Field(default=2, ge=1, le=8)
    muted_character_ids: list[str] = Field(default_factory=list, max_length=8)
    talkativeness: dict[str, Talkativeness] = Field(default_factory=dict, max_length=8)
    allow_self_responses: bool = Field(default=False, strict=True)


class GroupPatch(_In):
    """The fields to change; `talkativeness` merges the given keys."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    character_ids: list[str] | None = Field(default=None, min_length=2, max_length=8)
    strategy: GroupStrategyName | None = None
    max_speakers: int | None = Field(default=None, ge=1, le=8)
    muted_character_ids: list[str] | None = Field(default=None, max_length=8)
    talkativeness: dict[str, Talkativeness] | None = Field(default=None, max_length=8)
    allow_self_responses: bool | None = Field(default=None, strict=True)


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
    strategy: GroupStrategyName
    max_speakers: int
    created_at: str
    muted_character_ids: list[str]
    talkativeness: dict[str, float]  # every member (default 0.5)
    allow_self_responses: bool


class GroupList(BaseModel):
    items: list[GroupOut]


class GroupTurnOut(BaseModel):
    user_message: MessageOut | None  # null for a turn without content
    speakers: list[str]
    reason: str
    replies: list[MessageOut]


class GroupRoundOut(BaseModel):
    speakers: list[str]
    reason: str
    replies: list[MessageOut]


class GroupContinueOut(BaseModel):
    rounds: list[GroupRoundOut]


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
