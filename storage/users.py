"""Users: accounts, credentials, admin flags."""

from __future__ import annotations

from sqlalchemy import Connection, func, select, update

from . import rows
from .errors import UsernameTaken
from .inserts import insert_or_ignore
from .records import User, UserCredentials, UserWithCounts
from .schema import characters, conversations, messages, users
from .tokens import revoke_user_tokens


def create_user(
    conn: Connection, username: str, password_hash: str, *, is_admin: bool = False
) -> User:
    """Create a user; raises ``UsernameTaken`` if the username exists."""
    row = insert_or_ignore(
        conn,
        users,
        {"username": username, "password_hash": password_hash, "is_admin": is_admin},
        index_elements=["username"],
    )
    if row is None:
        raise UsernameTaken(username)
    return rows.user(row)


def get_user(conn: Connection, user_id: int) -> User | None:
    """The user with that id, or None."""
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return rows.user(row) if row else None


def get_credentials(conn: Connection, username: str) -> UserCredentials | None:
    """The user and password hash for ``username`` (exact match), or None."""
    row = conn.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        return None
    return UserCredentials(user=rows.user(row), password_hash=row.password_hash)


def ensure_admin(conn: Connection, username: str, password_hash: str) -> User:
    """Create an admin, or make the existing user an enabled admin with this password."""
    row = insert_or_ignore(
        conn,
        users,
        {"username": username, "password_hash": password_hash, "is_admin": True},
        index_elements=["username"],
    )
    if row is None:
        row = conn.execute(
            update(users)
            .where(users.c.username == username)
            .values(is_admin=True, disabled=False, password_hash=password_hash)
            .returning(*users.c)
        ).one()
    return rows.user(row)


def update_user(
    conn: Connection, user_id: int, *, disabled: bool | None = None, is_admin: bool | None = None
) -> User | None:
    """Change flags (None leaves a flag alone); disabling revokes all the user's tokens.

    Returns the updated user, or None if there is no such user.
    """
    values: dict[str, bool] = {}
    if disabled is not None:
        values["disabled"] = disabled
    if is_admin is not None:
        values["is_admin"] = is_admin
    if not values:
        return get_user(conn, user_id)
    row = conn.execute(
        update(users).where(users.c.id == user_id).values(**values).returning(*users.c)
    ).first()
    if row is None:
        return None
    if disabled:
        revoke_user_tokens(conn, user_id)
    return rows.user(row)


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
