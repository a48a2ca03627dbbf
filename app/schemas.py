"""Request and response bodies (pydantic): validation and the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from app.services.auth import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from app.services.profile import INPUT_SCHEMAS


class _In(BaseModel):
    """A JSON request body: unknown fields rejected, no coercion (`true` or `"5"` is no int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Query(BaseModel):
    """A query string: every value arrives as text, so numbers are parsed from it."""

    model_config = ConfigDict(extra="ignore")


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


class CharacterIn(_In):
    name: str = Field(min_length=1, max_length=100)
    profile: PartialProfile | None = None


class CharacterPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    profile: PartialProfile | None = None


class GenerateIn(_In):
    name: str = Field(min_length=1, max_length=100)
    source_text: str | None = Field(default=None, max_length=20_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)


class ChatIn(_In):
    content: str = Field(min_length=1, max_length=8_000)


class HistoryQuery(_Query):
    limit: int = Field(default=50, ge=1, le=200)
    before: Id | None = None


class GroupIn(_In):
    name: str = Field(min_length=1, max_length=100)
    character_ids: list[Id] = Field(min_length=2, max_length=8)
    strategy: Literal["moderator", "round_robin", "all"] = "moderator"
    max_speakers: Integer = Field(default=2, ge=1, le=8)


class GroupPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    character_ids: list[Id] | None = Field(default=None, min_length=2, max_length=8)
    strategy: Literal["moderator", "round_robin", "all"] | None = None
    max_speakers: Integer | None = Field(default=None, ge=1, le=8)


class GroupMemoriesQuery(_Query):
    character_id: Id | None = None


class AdminUserPatch(_In):
    disabled: bool | None = None
    is_admin: bool | None = None


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
    """`ready` with 200, `unavailable` with 503; `checks` says what was checked."""

    status: Literal["ready", "unavailable"]
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


class CharacterOut(BaseModel):
    id: str
    name: str
    status: Literal["ready", "partial"]
    profile: dict[str, dict[str, Any] | None]
    has_source_text: bool
    created_at: str
    updated_at: str


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


class ChatOut(BaseModel):
    """`reply` is null when the generation was stopped before any text."""

    user_message: MessageOut
    reply: MessageOut | None


class ReplyOut(BaseModel):
    """The new reply of a regeneration (null when stopped before any text)."""

    reply: MessageOut | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_before: str | None


class MemoryOut(BaseModel):
    id: str
    kind: Literal["short_term", "long_term"]
    content: str
    importance: int
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
