"""Users and bearer tokens: argon2id hashes in worker threads, tokens stored only as hashes.

Routes resolve a token with `authenticate` (one database read) or, on the chat hot path, with
`access`: a token this process has resolved before comes from its `TokenCache` without a
round trip, and the request's first transaction confirms it (`Access.confirm`) before it
changes anything, so revocation stays immediate in every process sharing the database.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection

from app.errors import Conflict, Forbidden, Unauthenticated
from storage import Database, UsernameTaken, tokens, users
from storage.records import User

# one password rule for register, login and configured admins (API.md: 8–256 characters)
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256

# verifying against this keeps "unknown user" as slow as "wrong password"
_DUMMY_PASSWORD = "not-a-real-password-but-long-enough"


REVOKED = "unknown, expired or revoked token"
TOKEN_CACHE_SIZE = 10_000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token_hash(authorization: str | None) -> str:
    """The hash of the token of an `Authorization: Bearer` header value (401 when malformed)."""
    if not authorization:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise Unauthenticated("malformed Authorization header; use 'Bearer <token>'")
    return hash_token(token)


@dataclass(frozen=True, slots=True)
class Access:
    """A request's bearer token and its user. ``verified``: the database confirmed the token
    during this request; else the user came from the token cache and the request's first
    transaction must `confirm` the token before anything else."""

    user: User
    token_hash: str
    verified: bool

    def confirm(self, conn: Connection, now: datetime) -> None:
        """Inside a transaction: 401 unless the token is still valid (not revoked, not
        expired, its user neither disabled nor deleted). Nothing to do when ``verified``."""
        if not self.verified and tokens.token_user_id(conn, self.token_hash, now) is None:
            raise Unauthenticated(REVOKED)


class TokenCache:
    """The users of recently seen token hashes, with the tokens' expiry (least recently used
    dropped past ``size``). A hint, never the authority: see `Access.confirm`. Revocations
    made by this process drop their entries at once."""

    def __init__(self, size: int = TOKEN_CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[User, datetime]] = OrderedDict()

    def get(self, token_hash: str, now: datetime) -> User | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[token_hash]
            return None
        self._entries.move_to_end(token_hash)
        return entry[0]

    def put(self, token_hash: str, user: User, expires_at: datetime) -> None:
        self._entries[token_hash] = (user, expires_at)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def discard(self, token_hash: str) -> None:
        self._entries.pop(token_hash, None)

    def forget_user(self, user_id: int) -> None:
        """Drop every token of the user (password change, disabling, deletion)."""
        for token_hash in [h for h, (u, _) in self._entries.items() if u.id == user_id]:
            del self._entries[token_hash]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token_hash: object) -> bool:
        return token_hash in self._entries


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
        self.cache = TokenCache()

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
        token_hash = hash_token(token)
        await self._db.write(tokens.create_token, user.id, token_hash, expires)
        self.cache.put(token_hash, user, expires)  # the usual next step is a chat
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
        token_hash = bearer_token_hash(authorization)
        user = await self._db.read(tokens.user_for_token, token_hash, datetime.now(UTC))
        if user is None:
            raise Unauthenticated(REVOKED)
        return user, token_hash

    async def access(self, authorization: str | None) -> Access:
        """`authenticate` without a round trip for a token in the cache: the caller must
        `confirm` an unverified `Access` in its first transaction."""
        token_hash = bearer_token_hash(authorization)
        now = datetime.now(UTC)
        cached = self.cache.get(token_hash, now)
        if cached is not None:
            return Access(cached, token_hash, verified=False)
        found = await self._db.read(tokens.token_user, token_hash, now)
        if found is None:
            raise Unauthenticated(REVOKED)
        user, expires_at = found
        self.cache.put(token_hash, user, expires_at)
        return Access(user, token_hash, verified=True)

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
        self.cache.forget_user(user_id)

    async def logout(self, token_hash: str) -> None:
        await self._db.write(tokens.revoke_token, token_hash)
        self.cache.discard(token_hash)

    async def ensure_admin(self, username: str, password: str) -> User:
        """Create or restore the configured admin (ValueError for a password no login accepts)."""
        if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
            raise ValueError(
                f"the admin password must be {PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters"
            )
        password_hash = await self.hash_password(password)
        return await self._db.write(users.ensure_admin, username, password_hash)
