"""API tokens: only a hash of each token is stored, with an expiry and a revoked flag."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from . import rows
from .records import User
from .schema import api_tokens, users


def create_token(conn: Connection, user_id: int, token_hash: str, expires_at: datetime) -> None:
    """Store a token hash for ``user_id`` valid until ``expires_at``."""
    conn.execute(
        api_tokens.insert().values(user_id=user_id, token_hash=token_hash, expires_at=expires_at)
    )


def user_for_token(conn: Connection, token_hash: str, now: datetime) -> User | None:
    """The token's user, or None if unknown, revoked, expired (at ``now``) or user disabled."""
    row = conn.execute(
        select(users)
        .join(api_tokens, api_tokens.c.user_id == users.c.id)
        .where(
            api_tokens.c.token_hash == token_hash,
            api_tokens.c.revoked.is_(False),
            api_tokens.c.expires_at > now,
            users.c.disabled.is_(False),
        )
    ).first()
    return rows.user(row) if row else None


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
