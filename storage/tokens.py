"""API tokens: only a hash of each token is stored, with an expiry and a revoked flag."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, select, update

from . import rows
from .direct import Direct
from .records import User
from .schema import api_tokens, users


def create_token(conn: Connection, user_id: int, token_hash: str, expires_at: datetime) -> None:
    """Store a token hash for ``user_id`` valid until ``expires_at``."""
    conn.execute(
        api_tokens.insert().values(user_id=user_id, token_hash=token_hash, expires_at=expires_at)
    )


# A token that lets its user in: issued, not revoked, not expired, of an enabled user.
_LIVE_TOKEN = and_(
    api_tokens.c.token_hash == bindparam("token_hash"),
    api_tokens.c.revoked.is_(False),
    api_tokens.c.expires_at > bindparam("now"),
    users.c.disabled.is_(False),
)

_USER_FOR_TOKEN = (
    select(users, api_tokens.c.expires_at)
    .join(api_tokens, api_tokens.c.user_id == users.c.id)
    .where(_LIVE_TOKEN)
)


_TOKEN_VALID = Direct(
    select(api_tokens.c.user_id)
    .join(users, api_tokens.c.user_id == users.c.id)
    .where(_LIVE_TOKEN)
)


def user_for_token(conn: Connection, token_hash: str, now: datetime) -> User | None:
    """The token's user, or None if unknown, revoked, expired (at ``now``) or user disabled."""
    found = token_user(conn, token_hash, now)
    return None if found is None else found[0]


def token_user(conn: Connection, token_hash: str, now: datetime) -> tuple[User, datetime] | None:
    """``user_for_token`` and the token's expiry."""
    row = conn.execute(_USER_FOR_TOKEN, {"token_hash": token_hash, "now": now}).first()
    return None if row is None else (rows.user(row), row.expires_at)


def token_user_id(conn: Connection, token_hash: str, now: datetime) -> int | None:
    """The id of ``user_for_token``'s user (one indexed lookup, no user columns)."""
    user_id: int | None = _TOKEN_VALID.scalar(conn, {"token_hash": token_hash, "now": now})
    return user_id


def revoke_token(conn: Connection, token_hash: str) -> None:
    """Revoke one token (no error if it is unknown)."""
    conn.execute(
        update(api_tokens).where(api_tokens.c.token_hash == token_hash).values(revoked=True)
    )


def revoke_user_tokens(conn: Connection, user_id: int, *, except_hash: str | None = None) -> int:
    """Revoke every live token of ``user_id`` (but ``except_hash``); how many were revoked."""
    condition = (api_tokens.c.user_id == user_id) & api_tokens.c.revoked.is_(False)
    if except_hash is not None:
        condition &= api_tokens.c.token_hash != except_hash
    result = conn.execute(update(api_tokens).where(condition).values(revoked=True))
    return result.rowcount
