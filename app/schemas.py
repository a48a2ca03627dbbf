"""Request and response bodies (pydantic): validation and the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    model_validator,
)

from app.services.auth import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from app.services.profile import INPUT_SCHEMAS
from app.sources import MAX_SOURCE_CHARS, SourceQuery
from llm import MODEL_ID_PATTERN
from storage.records import CharacterSettings, Source


class _In(BaseModel):
    """A JSON request body: unknown fields rejected, no coercion (`true` or `"5"` is no int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Query(BaseModel):
    """A query string: every value arrives as text, so numbers are parsed from it; a parameter
    the route does not take is an error, like an unknown field in a body."""

    model_config = ConfigDict(extra="forbid")


def _integral(value: Any) -> Any:
    """JSON Schema's integers include `5.0`; anything else (`true`, `"5"`, `5.5`) is left for
    strict validation to reject."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# an integer in a request body: strict, but a float with no fraction is the same number
Integer = Annotated[int, BeforeValidator(_integral)]

# an id in a body or query: canonical decimal digits (`05` names nothing, see views.parse_id)
Id = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,17})$")]


def _profile_schema() -> dict[str, Any]:
    categories = {
        category: {"anyOf": [model.model_json_schema(), {"type": "null"}]}
        for category, model in INPUT_SCHEMAS.items()
    }
    return {"type": "object", "properties": categories, "additionalProperties": False}


# a partial profile: validated by app.services.profile (the document says what it accepts)
PartialProfile = Annotated[dict[str, Any], WithJsonSchema(_profile_schema())]

# one password rule for register and login (a longer or shorter one can never log in)
Password = Annotated[str, Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)]


class Credentials(_In):
    username: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    password: Password


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=256)
    password: Password


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
    profile: PartialProfile | None = None


class CharacterPatch(_CharacterCardFields):
    """Fields given replace the stored ones (`greeting: null` clears it; `settings` keys merge)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    profile: PartialProfile | None = None


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


# a language code (`zh`, `en`, `zh-yue`): it becomes part of the MediaWiki endpoint's host
SourceLang = Annotated[
    str, Field(min_length=2, max_length=14, pattern=r"^[a-z]{2,3}(-[a-z]{2,10})?$")
]
SourceProvider = Literal["wikipedia", "baike"]


class GenerationSourceIn(_In):
    """The page to generate from: by `title` or by `url` (exactly one)."""

    provider: SourceProvider
    title: str | None = Field(default=None, min_length=1, max_length=255)
    url: str | None = Field(default=None, min_length=1, max_length=2_000)
    lang: SourceLang = "zh"

    @model_validator(mode="after")
    def _one_page(self) -> GenerationSourceIn:
        if (self.title is None) == (self.url is None):
            raise ValueError("give exactly one of `title` and `url`")
        return self

    def query(self) -> SourceQuery:
        return SourceQuery(self.provider, title=self.title, url=self.url, lang=self.lang)


class GenerateIn(_In):
    """`source_text`, or a `source` page the server fetches (not both)."""

    name: str = Field(min_length=1, max_length=100)
    source_text: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)
    source: GenerationSourceIn | None = None
    # Checked by the route (app.services.models.chosen_model, one message for the format and
    # FASTNPC_MODELS); the pattern is here for the OpenAPI document.
    model: str | None = Field(
        default=None, json_schema_extra={"pattern": MODEL_ID_PATTERN, "maxLength": 100}
    )


    @model_validator(mode="after")
    def _one_source(self) -> GenerateIn:
        if self.source_text is not None and self.source is not None:
            raise ValueError("give `source_text` or `source`, not both")
        return self


class SourceSearchQuery(_Query):
    provider: SourceProvider
    q: str = Field(min_length=1, max_length=255)
    lang: SourceLang = "zh"


class ChatIn(_In):
    content: str = Field(min_length=1, max_length=8_000)


class MessagePatch(_In):
    content: str = Field(min_length=1, max_length=8_000)


class ExportQuery(_Query):
    format: Literal["fastnpc", "jsonl"] = "fastnpc"


Talkativeness = Annotated[float, Field(ge=0, le=1, strict=True)]
GroupStrategyName = Literal["moderator", "round_robin", "all", "natural", "pooled", "manual"]


class GroupMessageIn(_In):
    """A group turn: `content` (stored and sent as the user's message; without it the
    characters continue among themselves) and/or `speaker_ids` (members, muted ones too, who
    reply in that order instead of the strategy's choice, not capped by max_speakers). A
    manual group with neither: 400."""

    content: str | None = Field(default=None, min_length=1, max_length=8_000)
    speaker_ids: list[Id] | None = Field(default=None, min_length=1, max_length=8)


class GroupContinueIn(_In):
    """`rounds` turns without a user message (fewer when a round chooses nobody)."""

    rounds: Integer = Field(default=1, ge=1, le=10)


class HistoryQuery(_Query):
    limit: int = Field(default=50, ge=1, le=200)
    before: Id | None = None


class GroupIn(_In):
    name: str = Field(min_length=1, max_length=100)
    character_ids: list[Id] = Field(min_length=2, max_length=8)
    strategy: GroupStrategyName = "moderator"
    max_speakers: Integer = Field(default=2, ge=1, le=8)
    muted_character_ids: list[Id] = Field(default_factory=list, max_length=8)
    talkativeness: dict[str, Talkativeness] = Field(default_factory=dict, max_length=8)
    allow_self_responses: bool = Field(default=False, strict=True)


class GroupPatch(_In):
    """The fields to change; `talkativeness` merges the given keys."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    character_ids: list[Id] | None = Field(default=None, min_length=2, max_length=8)
    strategy: GroupStrategyName | None = None
    max_speakers: Integer | None = Field(default=None, ge=1, le=8)
    muted_character_ids: list[Id] | None = Field(default=None, max_length=8)
    talkativeness: dict[str, Talkativeness] | None = Field(default=None, max_length=8)
    allow_self_responses: bool | None = Field(default=None, strict=True)


class MemoriesQuery(_Query):
    q: str | None = Field(default=None, max_length=2_000)
    limit: int | None = Field(default=None, ge=1, le=1_000)


class GroupMemoriesQuery(MemoriesQuery):
    character_id: Id | None = None


MemoryContent = Annotated[str, Field(min_length=1, max_length=2_000)]


class MemoryIn(_In):
    content: MemoryContent
    importance: Integer | None = Field(default=None, ge=1, le=5)
    pinned: bool = False


class GroupMemoryIn(MemoryIn):
    character_id: Id


class MemoryPatch(_In):
    content: str | None = Field(default=None, min_length=1, max_length=2_000)
    importance: Integer | None = Field(default=None, ge=1, le=5)
    pinned: bool | None = None


class AdminUserPatch(_In):
    disabled: bool | None = None
    is_admin: bool | None = None
    # tokens per calendar month (UTC); null: no limit
    monthly_token_quota: Integer | None = Field(default=None, ge=0, le=2**62)


class LimitsIn(_In):
    max_concurrency: Integer = Field(ge=1, le=1000)


# ---- responses (documentation)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """An error: `{"error": {"code", "message", "details"?}}`."""

    error: ErrorDetail


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    """`ready` with 200, `unavailable` with 503; `degraded` with 200 when the configured Redis
    is lost (the process serves with per-process limits); `checks` says what was checked."""

    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, Any]


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


class SourceItemOut(BaseModel):
    title: str
    description: str
    url: str


class SourceSearchOut(BaseModel):
    items: list[SourceItemOut]


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
    has_source_text: bool
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
    compressed: bool
    created_at: str
    parent_id: str | None = Field(default=None, description="None for a root of the tree")
    sibling_index: int = Field(
        default=0, ge=0, description="0-based position among the messages sharing its parent"
    )
    sibling_count: int = Field(default=1, ge=1)
    edited_at: str | None = None
    model: str | None = Field(default=None, description="assistant messages: the model")


class ChatOut(BaseModel):
    """`reply` is null when the generation was stopped before any text."""

    user_message: MessageOut
    reply: MessageOut | None
    lore: list[str] = Field(default_factory=list, description="ids of the lore entries used")


class ReplyOut(BaseModel):
    """The new reply of a regeneration (null when stopped before any text)."""

    reply: MessageOut | None
    lore: list[str] = Field(default_factory=list, description="ids of the lore entries used")


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_before: str | None


class ConversationExport(BaseModel):
    format: Literal["fastnpc-conversation"]
    version: Literal[1]
    messages: list[MessageOut]
    active_leaf_id: str | None


class MemoryOut(BaseModel):
    id: str
    kind: Literal["short_term", "long_term"]
    content: str
    importance: int
    pinned: bool
    origin: Literal["compressed", "user"]
    edited_at: str | None
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
    lore: list[str] = Field(
        default_factory=list, description="ids of the lore entries used (all speakers)"
    )


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
    insertion_order: Integer | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    priority: Integer | None = Field(default=None, ge=-1_000_000, le=1_000_000)
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
    insertion_order: Integer = Field(default=100, ge=-1_000_000, le=1_000_000)
    priority: Integer = Field(default=10, ge=-1_000_000, le=1_000_000)
    position: Literal["before_char", "after_char"] = "before_char"
    comment: str = Field(default="", max_length=2_000)


class LorebookPatch(_In):
    """A lorebook's fields; a field left out keeps its value."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    scan_depth: Integer | None = Field(default=None, ge=1, le=100)
    token_budget: Integer | None = Field(default=None, ge=1, le=1_000_000)
    recursive: StrictBool | None = None


class LorebookIn(_In):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    scan_depth: Integer = Field(default=4, ge=1, le=100)
    token_budget: Integer = Field(default=512, ge=1, le=1_000_000)
    recursive: StrictBool = False
    entries: list[LoreEntryIn] = Field(default_factory=list, max_length=5_000)


class LorebookIdsIn(_In):
    lorebook_ids: list[str] = Field(max_length=32)


class LoreMatchIn(_In):
    text: str = Field(max_length=20_000)


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
# ---- account and usage


class PasswordChangeIn(_In):
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    new_password: Password


class AccountDeleteIn(_In):
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)


class SettingsIn(_In):
    """Fields given replace the stored ones; `null` returns a field to the server default."""

    language: Literal["zh", "en"] | None = None
    default_model: ModelId | None = None


class SettingsOut(BaseModel):
    language: Literal["zh", "en"] | None
    default_model: str | None


class UsageQuery(_Query):
    days: int = Field(default=30, ge=1, le=366)


class AdminUsageQuery(UsageQuery):
    user_id: Id | None = None


class UsageDayOut(BaseModel):
    date: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class QuotaOut(BaseModel):
    monthly_tokens: int | None
    used: int


class UsageOut(BaseModel):
    days: list[UsageDayOut]
    quota: QuotaOut


class AdminUsageDayOut(UsageDayOut):
    user_id: str


class AdminUsageOut(BaseModel):
    days: list[AdminUsageDayOut]
    quota: QuotaOut | None  # with `user_id`


class AdminUserPatchOut(UserOut):
    monthly_token_quota: int | None


class FeedbackIn(_In):
    """At least one of `rating` and `comment`."""

    message_id: Id | None = None
    rating: Literal[-1, 1] | None = None
    comment: str | None = Field(default=None, min_length=1, max_length=2_000)


class FeedbackOut(BaseModel):
    id: str
    message_id: str | None
    rating: int | None
    comment: str | None
    created_at: str


class AdminFeedbackOut(FeedbackOut):
    user: UserOut
    message: MessageOut | None


class AdminFeedbackList(BaseModel):
    items: list[AdminFeedbackOut]
    next_before: str | None


class FeedbackQuery(_Query):
    limit: int = Field(default=50, ge=1, le=200)
    before: Id | None = None


class PromptSnapshotOut(BaseModel):
    messages: list[dict[str, Any]]
    model: str
    created_at: str
