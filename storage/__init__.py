"""Database access: SQLite (embedded default) and PostgreSQL.

Usage::

    async with open_database(url) as db:          # migrates to head first
        user = await db.write(users.create_user, "bob", password_hash)
        page = await db.read(messages.list_messages, conversation_id, limit=50, before=None)

Query modules hold plain synchronous functions taking a SQLAlchemy
``Connection`` (already in a transaction) first; ``Database.read``/``write``
run them in worker threads. Records are frozen dataclasses (``records``).
"""

from . import (
    avatars,
    characters,
    conversations,
    errors,
    generations,
    groups,
    jobs,
    memories,
    messages,
    personas,
    records,
    stats,
    tokens,
    users,
)
from .database import Database, open_database
from .errors import (
    ConstraintViolation,
    InvalidReference,
    LastAdmin,
    NotFound,
    StorageError,
    StorageUnavailable,
    UsernameTaken,
)
from .migrate import upgrade
from .records import (
    Character,
    CharacterSettings,
    CharacterStatus,
    Conversation,
    ConversationKind,
    Counts,
    Group,
    GroupStrategy,
    Job,
    JobStatus,
    Memory,
    MemoryKind,
    MemoryOrigin,
    Message,
    MessageRole,
    MessageStatus,
    Page,
    Persona,
    Source,
    User,
    UserCredentials,
    UserWithCounts,
)

__all__ = [
    "Character",
    "CharacterSettings",
    "CharacterStatus",
    "ConstraintViolation",
    "Conversation",
    "ConversationKind",
    "Counts",
    "Database",
    "Group",
    "GroupStrategy",
    "Job",
    "JobStatus",
    "Memory",
    "MemoryKind",
    "MemoryOrigin",
    "Message",
    "MessageRole",
    "MessageStatus",
    "InvalidReference",
    "LastAdmin",
    "NotFound",
    "Page",
    "Persona",
    "Source",
    "StorageError",
    "StorageUnavailable",
    "User",
    "UserCredentials",
    "UserWithCounts",
    "UsernameTaken",
    "avatars",
    "characters",
    "conversations",
    "errors",
    "generations",
    "groups",
    "jobs",
    "memories",
    "messages",
    "open_database",
    "personas",
    "records",
    "stats",
    "tokens",
    "upgrade",
    "users",
]
