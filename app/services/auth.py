"""Users and bearer tokens: argon2id hashes in worker threads, tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.errors import Conflict, Forbidden, Unauthenticated
from storage import Database, UsernameTaken, tokens, users
from storage.records import User

# one password rule for register, login and configured admins (API.md: 8–256 characters)
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256

# verifying against this keeps "unknown user" as slow as "wrong password"
_DUMMY_PASSWORD = "not-a-real-password-but-long-enough"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    """Register, log in, resolve and revoke bearer tokens."""

    def __init__(
        self,
        db: Database,
        *,
        token_ttl: timedelta,
        hash_concurrency: int,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._db = db
        self._ttl = token_ttl
        self._hasher = hasher or PasswordHasher()
        # argon2id takes tens of MiB per hash: bound how many run at once
        self._limiter = trio.CapacityLimiter(hash_concurrency)
        self._dummy_hash: str | None = None

    async def hash_password(self, password: str) -> str:
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def _verify(self, password_hash: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await trio.to_thread.run_sync(verify, limiter=self._limiter)

    async def _issue(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + self._ttl
        await self._db.write(tokens.create_token, user.id, hash_token(token), expires)
        return token

    async def register(self, username: str, password: str) -> tuple[User, str]:
        password_hash = await self.hash_password(password)
        try:
            user = await self._db.write(users.create_user, username, password_hash)
        except UsernameTaken:
            raise Conflict("that username is taken", code="username_taken") from None
        return user, await self._issue(user)

    async def login(self, username: str, password: str) -> tuple[User, str]:
        creds = await self._db.read(users.get_credentials, username)
        if creds is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash_password(_DUMMY_PASSWORD)
            await self._verify(self._dummy_hash, password)
            raise Unauthenticated("wrong username or password", code="invalid_credentials")
        if not await self._verify(creds.password_hash, password):
            raise Unauthenticated("wrong username or password", code="invalid_credentials")
        if creds.user.disabled:
            raise Forbidden("this account is disabled", code="account_disabled")
        return creds.user, await self._issue(creds.user)

    async def authenticate(self, authorization: str | None) -> tuple[User, str]:
        """The user behind an `Authorization: Bearer` header value, and the token's hash."""
        if not authorization:
            raise Unauthenticated("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 512:
            raise Unauthenticated("malformed Authorization header; use 'Bearer <token>'")
        token_hash = hash_token(token)
        user = await self._db.read(tokens.user_for_token, token_hash, datetime.now(UTC))
        if user is None:
            raise Unauthenticated("unknown, expired or revoked token")
        return user, token_hash

    async def check_password(self, user_id: int, password: str) -> None:
        """Raise 401 ``invalid_credentials`` unless ``password`` is the user's password."""
        password_hash = await self._db.read(users.get_password_hash, user_id)
        if password_hash is None or not await self._verify(password_hash, password):
            raise Unauthenticated("wrong password", code="invalid_credentials")

    async def change_password(
        self, user_id: int, current: str, new: str, *, keep_token_hash: str
    ) -> None:
        """Check ``current``, store ``new``; every token of the user but ``keep_token_hash``
        stops working (same transaction)."""
        await self.check_password(user_id, current)
        password_hash = await self.hash_password(new)
        await self._db.write(
            users.set_password, user_id, password_hash, keep_token_hash=keep_token_hash
        )

    async def logout(self, token_hash: str) -> None:
        await self._db.write(tokens.revoke_token, token_hash)

    async def ensure_admin(self, username: str, password: str) -> User:
        """Create or restore the configured admin (ValueError for a password no login accepts)."""
        if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
            raise ValueError(
                f"the admin password must be {PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters"
            )
        password_hash = await self.hash_password(password)
        return await self._db.write(users.ensure_admin, username, password_hash)
