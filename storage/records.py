"""Plain records returned by the storage layer (no SQLAlchemy objects escape it).

Every id is an ``int`` inside the process; the HTTP layer renders it as a string.
Timestamps are timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

MessageRole = Literal["user", "assistant"]
MessageStatus = Literal["complete", "interrupted", "error", "streaming"]
MemoryKind = Literal["short_term", "long_term"]
MemoryOrigin = Literal["compressed", "user"]
CharacterStatus = Literal["ready", "partial"]
GroupStrategy = Literal["moderator", "round_robin", "all", "natural", "pooled", "manual"]
JobStatus = Literal["queued", "running", "done", "failed"]
ConversationKind = Literal["direct", "group"]
Language = Literal["zh", "en"]
LorePosition = Literal["before_char", "after_char"]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    is_admin: bool
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserCredentials:
    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class UserWithCounts:
    user: User
    characters: int
    messages: int


@dataclass(frozen=True, slots=True)
class Source:
    """Where a character's generation text came from."""

    provider: str
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class CharacterSettings:
    """Per-character LLM settings; ``None``/empty means the server default."""

    model: str | None = None
    temperature: float | None = None
    fallback_models: tuple[str, ...] = ()
    language: Language | None = None


@dataclass(frozen=True, slots=True)
class Character:
    id: int
    user_id: int
    name: str
    status: CharacterStatus
    # category name -> object, or None when that category is missing/failed
    profile: dict[str, dict[str, Any] | None]
    source_text: str | None
    created_at: datetime
    updated_at: datetime
    greeting: str | None = None
    alternate_greetings: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    avatar_sha256: str | None = None
    sources: list[Source] = field(default_factory=list)
    settings: CharacterSettings = field(default_factory=CharacterSettings)
    # Card data FastNPC does not use, kept to be exported again unchanged (see app.services.cards)
    card_extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Persona:
    """Who a user is in role-play: fills ``{{user}}`` and is part of that user's prompts."""

    name: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    user_id: int
    kind: ConversationKind
    character_id: int | None  # direct conversations
    group_id: int | None  # group conversations
    created_at: datetime


class Turn(NamedTuple):
    """What a prompt reads of a message: role, text and status (no record per message)."""

    role: MessageRole
    content: str
    status: MessageStatus


@dataclass(frozen=True, slots=True)
class Message:
    id: int  # strictly increasing across the whole table
    conversation_id: int
    role: MessageRole
    content: str
    character_id: int | None
    status: MessageStatus
    compressed: bool
    created_at: datetime
    parent_id: int | None = None  # None for a root of the tree
    sibling_index: int = 0  # 0-based position among the messages sharing its parent
    sibling_count: int = 1
    edited_at: datetime | None = None
    model: str | None = None  # assistant messages: the model that answered


@dataclass(frozen=True, slots=True)
class Memory:
    id: int
    conversation_id: int
    character_id: int | None  # set for a character's memories of a group conversation
    kind: MemoryKind
    content: str
    importance: int
    created_at: datetime
    pinned: bool = False
    origin: MemoryOrigin = "compressed"
    edited_at: datetime | None = None

    @property
    def protected(self) -> bool:
        """Written, edited or pinned by the user: compression never rewrites or merges it."""
        return self.origin == "user" or self.edited_at is not None or self.pinned


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    user_id: int
    name: str
    character_ids: list[int]  # in listed order
    strategy: GroupStrategy
    max_speakers: int
    conversation_id: int
    created_at: datetime
    muted_character_ids: list[int] = field(default_factory=list)
    talkativeness: dict[int, float] = field(default_factory=dict)  # only the members set
    allow_self_responses: bool = False


@dataclass(frozen=True, slots=True)
class LoreEntry:
    """One lorebook entry (world info): content that enters a prompt when its keys match."""

    id: int
    lorebook_id: int
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
    position: LorePosition
    comment: str
    # Imported entry fields FastNPC does not use, exported again (see app.services.lore_formats)
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Lorebook:
    id: int
    user_id: int
    name: str
    description: str
    scan_depth: int
    token_budget: int
    recursive: bool
    entries: list[LoreEntry]  # by id
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    dedupe_key: str | None
    status: JobStatus
    attempts: int
    run_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Message]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class Counts:
    users: int
    characters: int
    messages: int
    groups: int
    memories: int
    extra: dict[str, int] = field(default_factory=dict)
