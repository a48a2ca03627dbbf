"""Checks run before anything starts, and one readable line for whatever stops a start.

Every CLI command that opens the database (`serve`, `db upgrade`, `admin create`) runs these
checks in order: the listening port first (so nothing is migrated for a server that cannot
bind), then the database URL, then the database itself (connect and migrate). A failure is a
`StartupError`, printed as ``fastnpc: cannot start: <what> (<the cause>)`` plus a hint where
there is one. `explain` turns any exception (including nested exception groups from nurseries)
into such an error, so no command ends in a traceback of a configuration mistake.
"""

from __future__ import annotations

import errno
import re
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import pydantic
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from storage import StorageError, upgrade
from storage.engine import dialect_of, is_memory_sqlite

PREFIX = "fastnpc: cannot start"
_USERINFO = re.compile(r"(://[^:/@]*:)[^@]*@")


@dataclass
class StartupError(Exception):
    """Something that keeps a command from starting, said in one line (and a hint)."""

    what: str
    cause: str
    hint: str | None = None

    def __str__(self) -> str:
        return self.render(PREFIX)

    def render(self, prefix: str = PREFIX) -> str:
        """``<prefix>: <what> (<cause>)`` and, on a second line, the hint."""
        line = f"{prefix}: {self.what} ({self.cause})"
        return line if self.hint is None else f"{line}\n  {self.hint}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (unchanged if it cannot be parsed)."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        return _USERINFO.sub(r"\1***@", url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def _url_hint(url: str) -> str:
    return f"FASTNPC_DATABASE_URL={mask_url(url)}"


def bind_listener(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening socket on host:port, inheritable so worker processes can share it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on {host}:{port}", f"unknown host: {exc.strerror}", "check --host"
        ) from exc
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise _bind_error(host, port, exc) from exc
    sock.set_inheritable(True)
    return sock


def _bind_error(host: str, port: int, exc: OSError) -> StartupError:
    cause = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} on {host} is already in use",
            cause,
            "stop the other server or choose another port with --port",
        )
    if exc.errno == errno.EACCES:
        return StartupError(
            f"not allowed to listen on {host}:{port}", cause, "ports below 1024 need root"
        )
    return StartupError(f"cannot listen on {host}:{port}", cause, "check --host and --port")


def check_database_url(url: str) -> URL:
    """The parsed URL; a StartupError for a URL that is not sqlite:/// or postgresql://."""
    wanted = "want sqlite:///path or postgresql://user:password@host:port/database"
    try:
        parsed = make_url(url)
        _ = parsed.port  # a non-numeric port raises here
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise StartupError(
            f"the database URL {mask_url(url)!r} cannot be parsed", wanted, _url_hint(url)
        ) from exc
    try:
        dialect_of(url)
    except ValueError as exc:
        raise StartupError(
            f"unsupported database URL scheme {parsed.drivername!r}", wanted, _url_hint(url)
        ) from exc
    return parsed


def prepare_database(url: str) -> None:
    """Check the URL, connect and migrate to the newest schema (blocking)."""
    parsed = check_database_url(url)
    if parsed.get_backend_name() == "sqlite" and is_memory_sqlite(parsed):
        return  # nothing outlives the process: the app migrates its own connection
    try:
        upgrade(url)
    except Exception as exc:  # translated below; anything unknown goes on
        raise database_error(url, exc) from exc


def database_error(url: str, exc: BaseException) -> StartupError:
    """A StartupError for a failure to open or migrate the database at ``url``."""
    masked = mask_url(url)
    cause = _driver_message(exc)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return StartupError(
            f"cannot open the SQLite database {parsed.database}",
            cause,
            "check that its directory exists and is writable; " + _url_hint(url),
        )
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
    if "does not exist" in cause and "database" in cause:
        hint = f"create it first (createdb {parsed.database}); FASTNPC_DATABASE_URL={masked}"
        return StartupError(f"PostgreSQL database {parsed.database!r} does not exist", cause, hint)
    if "password authentication failed" in cause or "no password supplied" in cause:
        hint = f"check the user and password in FASTNPC_DATABASE_URL={masked}"
        return StartupError(f"PostgreSQL at {where} refused the login", cause, hint)
    return StartupError(
        f"cannot connect to PostgreSQL at {where}",
        cause,
        f"is PostgreSQL running? FASTNPC_DATABASE_URL={masked}",
    )


def _driver_message(exc: BaseException) -> str:
    """The driver's own message, on one line, without SQLAlchemy's decorations."""
    inner: BaseException = exc
    while True:
        if isinstance(inner, sa_exc.DBAPIError) and inner.orig is not None:
            inner = inner.orig
        elif isinstance(inner, StorageError | sa_exc.SQLAlchemyError) and inner.__cause__:
            inner = inner.__cause__
        else:
            break
    text = " ".join(str(inner).split())
    text = text.removeprefix("connection failed: ")
    # psycopg: 'connection to server at "h", port p failed: Connection refused Is the ...'
    if " failed: " in text:
        text = text.split(" failed: ", 1)[1]
    text = text.removeprefix("FATAL: ")
    for tail in (" Is the server running", " Is the server"):
        text = text.split(tail, 1)[0]
    return text.strip() or type(inner).__name__


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def explain(exc: BaseException, *, database_url: str | None = None) -> StartupError | None:
    """A StartupError for ``exc`` (or the first known one inside its groups); None if unknown."""
    for leaf in leaves(exc):
        if isinstance(leaf, StartupError):
            return leaf
        if isinstance(leaf, pydantic.ValidationError):
            first = leaf.errors()[0]
            name = ".".join(str(p) for p in first["loc"]) or leaf.title
            return StartupError(
                f"invalid setting {name}", first["msg"], "see the Configuration table in README.md"
            )
        is_db_error = isinstance(leaf, StorageError | sa_exc.SQLAlchemyError | sqlite3.Error)
        if database_url is not None and is_db_error:
            return database_error(database_url, leaf)
    return None


def check_redis(url: str | None) -> None:
    """With a Redis URL configured, Redis must answer before anything serves (one line if not)."""
    if not url:
        return
    import trio

    from app.services.redis_link import open_redis

    async def probe() -> None:
        async with open_redis(url):
            pass

    trio.run(probe)
