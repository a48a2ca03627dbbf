"""Users: accounts, credentials, admin flags.

Usernames are unique case-insensitively and keep the case they were registered with: each row
holds ``username_key(username)`` under a unique index. A lookup by name takes the exact
username first, then the key (rows from before migration 0002 that clash by case have no key
and are found by their exact name only).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, delete, func, or_, select, update

from . import avatars, rows
from .errors import LastAdmin, UsernameTaken
from .inserts import insert_or_ignore
from .records import User, UserCredentials, UserWithCounts
from .schema import characters, conversations, jobs, messages, users
from .tokens import revoke_user_tokens


def username_key(username: str) -> str:
    """The case-insensitive form of a username (what uniqueness is checked on)."""
    return username.lower()


def create_user(
    conn: Connection, username: str, password_hash: str, *, is_admin: bool = False
) -> User:
    """Create a user; raises ``UsernameTaken`` if the username exists in any case."""
    row = insert_or_ignore(
        conn,
        users,
        {
            "username": username,
            "username_key": username_key(username),
            "password_hash": password_hash,
            "is_admin": is_admin,
        },
        index_elements=None,  # the exact name or its key: whichever unique index is hit
    )
    if row is None:
        raise UsernameTaken(username)
    return rows.user(row)


_USER = select(users).where(users.c.id == bindparam("id"))


def get_user(conn: Connection, user_id: int) -> User | None:
    """The user with that id, or None."""
    row = conn.execute(_USER, {"id": user_id}).first()
    return rows.user(row) if row else None


def _by_name(conn: Connection, username: str) -> Row[Any] | None:
    exact = users.c.username == username
    return conn.execute(
        select(users)
        .where(or_(exact, users.c.username_key == username_key(username)))
        .order_by(case((exact, 0), else_=1))
        .limit(1)
    ).first()


def get_credentials(conn: Connection, username: str) -> UserCredentials | None:
    """The user and password hash for ``username`` (in any case), or None."""
    row = _by_name(conn, username)
    if row is None:
        return None
    return UserCredentials(user=rows.user(row), password_hash=row.password_hash)


def get_password_hash(conn: Connection, user_id: int) -> str | None:
    """The stored password hash of ``user_id``, or None if there is no such user."""
    return conn.execute(
        select(users.c.password_hash).where(users.c.id == user_id)
    ).scalar_one_or_none()


def set_password(
    conn: Connection, user_id: int, password_hash: str, *, keep_token_hash: str | None
) -> None:
    """Store a new password hash and revoke every token of the user but ``keep_token_hash``."""
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
    revoke_user_tokens(conn, user_id, except_hash=keep_token_hash)


def delete_user(conn: Connection, user_id: int) -> bool:
    """Delete the user and everything they own; False if there is no such user.

    Foreign keys cascade to tokens, characters, groups, conversations, messages, memories,
    personas, settings, usage, feedback and prompt snapshots; this also deletes the jobs about
    the user's conversations (``payload.conversation_id``; jobs have no foreign key) and the
    avatars no other character shows. Raises ``LastAdmin`` for the last enabled admin.
    """
    _keep_an_enabled_admin(conn, user_id)
    conversation_ids = (
        conn.execute(select(conversations.c.id).where(conversations.c.user_id == user_id))
        .scalars()
        .all()
    )
    shown = (
        conn.execute(
            select(characters.c.avatar_sha256)
            .where(characters.c.user_id == user_id, characters.c.avatar_sha256.is_not(None))
            .distinct()
        )
        .scalars()
        .all()
    )
    deleted = conn.execute(delete(users).where(users.c.id == user_id)).rowcount
    if not deleted:
        return False
    if conversation_ids:
        conn.execute(
            delete(jobs).where(
                jobs.c.payload["conversation_id"].as_integer().in_(conversation_ids)
            )
        )
    for sha in shown:
        avatars.release(conn, sha)
    return True


def ensure_admin(conn: Connection, username: str, password_hash: str) -> User:
    """Create an admin, or make the existing user (``username`` in any case) an enabled admin
    with this password."""
    row = insert_or_ignore(
        conn,
        users,
        {
            "username": username,
            "username_key": username_key(username),
            "password_hash": password_hash,
            "is_admin": True,
        },
        index_elements=None,
    )
    if row is None:
        existing = _by_name(conn, username)
        assert existing is not None, "a conflicting insert names an existing user"
        row = conn.execute(
            update(users)
            .where(users.c.id == existing.id)
            .values(is_admin=True, disabled=False, password_hash=password_hash)
            .returning(*users.c)
        ).one()
    return rows.user(row)


def update_user(
    conn: Connection, user_id: int, *, disabled: bool | None = None, is_admin: bool | None = None
) -> User | None:
    """Change flags (None leaves a flag alone); disabling revokes all the user's tokens.

    Returns the updated user, or None if there is no such user. Raises ``LastAdmin`` when
    the change would disable or demote the last enabled admin.
    """
    values: dict[str, bool] = {}
    if disabled is not None:
        values["disabled"] = disabled
    if is_admin is not None:
        values["is_admin"] = is_admin
    if not values:
        return get_user(conn, user_id)
    if disabled or is_admin is False:
        _keep_an_enabled_admin(conn, user_id)
    row = conn.execute(
        update(users).where(users.c.id == user_id).values(**values).returning(*users.c)
    ).first()
    if row is None:
        return None
    if disabled:
        revoke_user_tokens(conn, user_id)
    return rows.user(row)


def _keep_an_enabled_admin(conn: Connection, losing: int) -> None:
    """Raise ``LastAdmin`` if user ``losing`` is the only enabled admin.

    The enabled admins' rows are locked (PostgreSQL ``FOR UPDATE``; SQLite writers are
    serialised anyway), so two admins demoting each other at once cannot both succeed.
    """
    enabled_admins = (
        conn.execute(
            select(users.c.id)
            .where(users.c.is_admin.is_(True), users.c.disabled.is_(False))
            .with_for_update()
        )
        .scalars()
        .all()
    )
    if enabled_admins == [losing]:
        raise LastAdmin("the last enabled admin cannot be disabled or demoted")


def list_users_with_counts(conn: Connection) -> list[UserWithCounts]:
    """Every user (oldest first) with their character count and message count.

    ``messages`` counts all messages (the user's and the characters') in the
    user's conversations, direct and group.
    """
    character_count = (
        select(func.count())
        .select_from(characters)
        .where(characters.c.user_id == users.c.id)
        .scalar_subquery()
    )
    message_count = (
        select(func.count())
        .select_from(messages.join(conversations, messages.c.conversation_id == conversations.c.id))
        .where(conversations.c.user_id == users.c.id)
        .scalar_subquery()
    )
    result = conn.execute(
        select(
            users, character_count.label("n_characters"), message_count.label("n_messages")
        ).order_by(users.c.id)
    )
    return [
        UserWithCounts(user=rows.user(row), characters=row.n_characters, messages=row.n_messages)
        for row in result
    ]
