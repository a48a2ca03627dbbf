"""SQLAlchemy Core tables: the shape every query module and migration agrees on.

JSON columns are plain ``json`` on PostgreSQL too (not ``jsonb``): the text is
kept as written, so a profile's field order is the same on both backends.
Names are unbounded ``Text`` so both backends accept the same values.

Ids are integer autoincrement/identity keys; on SQLite ``AUTOINCREMENT`` is used
so an id is never reused after a delete (message ids increase strictly, and a
stale generation or job id can never name a newer row).

Invariants held by the database itself:

* ``generations``: one row per conversation at most (unique ``conversation_id``);
  a row exists only while that generation is in flight.
* ``jobs``: ``dedupe_key`` unique among unfinished (queued/running) jobs
  (partial unique index).
* ``conversations``: one direct conversation per (user, character); one
  conversation per group.
* ``lorebook_entries``: each belongs to one lorebook (deleted with it);
  ``character_lorebooks``/``group_lorebooks``: ordered attachments, each lorebook at most once
  per character or group (deleted with either side).
* ``avatars``: content-addressed PNG bytes (sha256 of the bytes is the key);
  a row exists only while some character references it (``storage.avatars``
  deletes it in the transaction that drops the last reference).

Messages form a tree per conversation (``parent_id``; a child's id is always
greater than its parent's). ``conversations.active_leaf_id`` ends the active
path; ``messages.active_rank`` orders siblings by when they were last active.
These references have no foreign keys (they would make the tables cyclic);
``storage.tree`` keeps them consistent.
* ``users``: usernames unique case-insensitively (unique ``username_key``).
* ``usage_daily``: one row per (user, UTC day, model); ``prompt_snapshots``: one per message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from .timestamps import UtcDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

UNFINISHED_JOB = text("status IN ('queued', 'running')")

_AUTOINC: dict[str, Any] = {"sqlite_autoincrement": True}


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _created_at() -> Column[Any]:
    return Column("created_at", UtcDateTime(), nullable=False, default=utcnow)


users = Table(
    "users",
    metadata,
    _id(),
    Column("username", String(64), nullable=False, unique=True),
    # users.username_key(username): unique, so usernames are unique case-insensitively.
    # NULL only on rows migration 0002 found clashing with an older one (see there).
    Column("username_key", Text, nullable=True),
    Column("password_hash", Text, nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    _created_at(),
    Index("uq_users_username_key", "username_key", unique=True),
    **_AUTOINC,
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    _created_at(),
    Index(None, "user_id"),
    **_AUTOINC,
)

characters = Table(
    "characters",
    metadata,
    _id(),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("profile", JSON, nullable=False),
    Column("source_text", Text, nullable=True),
    _created_at(),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    Column("greeting", Text, nullable=True),
    Column("alternate_greetings", JSON, nullable=False, default=list),
    Column("tags", JSON, nullable=False, default=list),
    Column("avatar_sha256", String(64), nullable=True),  # avatars.sha256 (see storage.avatars)
    Column("sources", JSON, nullable=False, default=list),
    Column("settings", JSON, nullable=False, default=dict),
    Column("card_extra", JSON, nullable=True),
    Index(None, "user_id", "id"),
    Index(None, "avatar_sha256"),
    **_AUTOINC,
)

avatars = Table(
    "avatars",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("png", LargeBinary, nullable=False),
    _created_at(),
)

personas = Table(
    "personas",
    metadata,
    Column(
        "user_id",
        Integer,
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", Text, nullable=True),
    Column("description", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
)

groups = Table(
    "groups",
    metadata,
    _id(),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("max_speakers", Integer, nullable=False),
    # steering: member ids never chosen by a strategy; {character id (str): 0–1} for the
    # members whose talkativeness was set (the others have the default); may the last
    # speaker be chosen again
    Column("muted_character_ids", JSON, nullable=False, default=list),
    Column("talkativeness", JSON, nullable=False, default=dict),
    Column("allow_self_responses", Boolean, nullable=False, default=False),
    _created_at(),
    Index(None, "user_id", "id"),
    **_AUTOINC,
)

group_members = Table(
    "group_members",
    metadata,
    Column(
        "group_id",
        Integer,
        ForeignKey("groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "character_id",
        Integer,
        ForeignKey("characters.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, nullable=False),
    Index(None, "character_id"),
)

conversations = Table(
    "conversations",
    metadata,
    _id(),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column(
        "character_id",
        Integer,
        ForeignKey("characters.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), nullable=True),
    _created_at(),
    # the leaf of the active path (no foreign key: messages reference conversations)
    Column("active_leaf_id", Integer, nullable=True),
    UniqueConstraint("user_id", "character_id"),
    UniqueConstraint("group_id"),
    Index(None, "character_id"),
    **_AUTOINC,
)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column(
        "conversation_id",
        Integer,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column(
        "character_id",
        Integer,
        ForeignKey("characters.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("status", String(16), nullable=False),
    Column("compressed", Boolean, nullable=False, default=False),
    _created_at(),
    # the tree: parent (None for a root); among siblings, the highest active_rank is
    # the child that was active last
    Column("parent_id", Integer, nullable=True),
    Column("active_rank", Integer, nullable=False, default=0, server_default=text("0")),
    Column("edited_at", UtcDateTime(), nullable=True),
    Column("model", Text, nullable=True),
    Index(None, "conversation_id", "id"),
    Index(None, "parent_id", "active_rank"),
    Index(None, "conversation_id", "parent_id"),
    Index(None, "conversation_id", "compressed", "id"),
    Index(None, "character_id"),
    **_AUTOINC,
)

memories = Table(
    "memories",
    metadata,
    _id(),
    Column(
        "conversation_id",
        Integer,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "character_id",
        Integer,
        ForeignKey("characters.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("importance", Integer, nullable=False),
    # pinned: always in prompts; origin: "compressed" (written by compression) or "user";
    # edited_at: a user changed it (compression then never rewrites or merges it)
    Column("pinned", Boolean, nullable=False, default=False),
    Column("origin", String(16), nullable=False, default="compressed"),
    Column("edited_at", UtcDateTime(), nullable=True),
    _created_at(),
    Index(None, "conversation_id", "character_id", "id"),
    Index(None, "character_id"),
    **_AUTOINC,
)

memory_messages = Table(
    "memory_messages",
    metadata,
    Column(
        "memory_id",
        Integer,
        ForeignKey("memories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # no foreign key: a summarised message that was deleted makes its memory stale
    Column("message_id", Integer, primary_key=True),
    Index(None, "message_id"),
)

generations = Table(
    "generations",
    metadata,
    _id(),
    Column(
        "conversation_id",
        Integer,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("owner", String(200), nullable=False),
    Column("lease_expires_at", UtcDateTime(), nullable=False),
    Column("stop_requested", Boolean, nullable=False, default=False),
    _created_at(),
    **_AUTOINC,
)

jobs = Table(
    "jobs",
    metadata,
    _id(),
    Column("kind", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("dedupe_key", String(200), nullable=True),
    Column("status", String(16), nullable=False, default="queued"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    _created_at(),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    Index(None, "status", "run_at", "id"),
    Index(
        "uq_jobs_dedupe_key_unfinished",
        "dedupe_key",
        unique=True,
        sqlite_where=UNFINISHED_JOB,
        postgresql_where=UNFINISHED_JOB,
    ),
    **_AUTOINC,
)

lorebooks = Table(
    "lorebooks",
    metadata,
    _id(),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("scan_depth", Integer, nullable=False),
    Column("token_budget", Integer, nullable=False),
    Column("recursive", Boolean, nullable=False),
    Column("extra", JSON, nullable=True),  # imported fields FastNPC does not use (re-exported)
    _created_at(),
    Column("updated_at", UtcDateTime(), nullable=False, default=utcnow),
    Index(None, "user_id", "id"),
    **_AUTOINC,
)

lorebook_entries = Table(
    "lorebook_entries",
    metadata,
    _id(),
    Column("lorebook_id", Integer, ForeignKey("lorebooks.id", ondelete="CASCADE"), nullable=False),
    Column("keys", JSON, nullable=False),
    Column("secondary_keys", JSON, nullable=False),
    Column("selective", Boolean, nullable=False),
    Column("constant", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("case_sensitive", Boolean, nullable=False),
    Column("use_regex", Boolean, nullable=False),
    Column("content", Text, nullable=False),
    Column("insertion_order", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("position", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("extra", JSON, nullable=True),  # imported fields FastNPC does not use (re-exported)
    Index(None, "lorebook_id", "id"),
    **_AUTOINC,
)


def _attachment(name: str, owner: str, owner_table: str) -> Table:
    return Table(
        name,
        metadata,
        Column(
            owner,
            Integer,
            ForeignKey(f"{owner_table}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column(
            "lorebook_id",
            Integer,
            ForeignKey("lorebooks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("position", Integer, nullable=False),
        Index(None, "lorebook_id"),
    )


character_lorebooks = _attachment("character_lorebooks", "character_id", "characters")
group_lorebooks = _attachment("group_lorebooks", "group_id", "groups")
# ---- accounts and usage (migration 0008)

user_settings = Table(
    "user_settings",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("language", String(8), nullable=True),
    Column("default_model", Text, nullable=True),
    # tokens (prompt + completion) a user may spend per calendar month (UTC); NULL: no limit
    Column("monthly_token_quota", Integer, nullable=True),
)

# one row per (user, UTC day, model), upserted once per LLM call
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC): sorts and compares as text
    Column("model", Text, primary_key=True),
    Column("calls", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cost", Float, nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    _id(),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("message_id", Integer, ForeignKey("messages.id", ondelete="SET NULL"), nullable=True),
    Column("rating", Integer, nullable=True),
    Column("comment", Text, nullable=True),
    _created_at(),
    Index(None, "user_id"),
    Index(None, "message_id"),
    **_AUTOINC,
)

# the exact prompt of an assistant message: zlib-compressed JSON {"messages": [...]}
prompt_snapshots = Table(
    "prompt_snapshots",
    metadata,
    Column(
        "message_id",
        Integer,
        ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("model", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    _created_at(),
    Index(None, "created_at"),
)
