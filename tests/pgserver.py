"""A PostgreSQL server of a test's own, for outage tests (never the shared server).

    with pg_server() as pg:          # initdb on a temporary data directory, started
        url = pg.url                 # postgresql://postgres@127.0.0.1:<free port>/postgres
        pg.stop()                    # an outage ...
        pg.start()                   # ... and the return, on the same port and data
    # stopped and removed

The server runs as the ``postgres`` user (via ``runuser`` when the tests run as root), listens
on 127.0.0.1 only, on a port that was free when it was picked, with ``trust`` authentication.
The blocking calls are for ``trio.to_thread.run_sync`` in async tests.
"""

from __future__ import annotations

import getpass
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"


def find_bindir() -> Path:
    """The newest installed PostgreSQL's binary directory (with ``pg_ctl`` and ``initdb``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise FileNotFoundError("no pg_ctl: PostgreSQL server binaries are not installed")
    return Path(pg_ctl).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_server_user(args: list[str]) -> list[str]:
    if getpass.getuser() == SERVER_USER:
        return args
    return ["runuser", "-u", SERVER_USER, "--", *args]


@dataclass
class PgServer:
    """One PostgreSQL cluster in ``datadir``, served on ``port`` while started."""

    bindir: Path
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        """The URL of its ``postgres`` database (SQLAlchemy/psycopg form)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            _as_server_user([str(self.bindir / args[0]), *args[1:]]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def init(self) -> None:
        """Create the cluster (``initdb``, trust authentication for local connections)."""
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -c fsync=off"
        )
        log = self.datadir / "server.log"
        self._run("pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(log), "-w", "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are closed) and wait for it."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        """Whether the server is running."""
        result = subprocess.run(
            _as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status"]),
            capture_output=True,
            timeout=60,
        )
        return result.returncode == 0


@contextmanager
def pg_server() -> Iterator[PgServer]:
    """A started server on a fresh cluster; stopped and its data removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="fastnpc-pg-"))
    try:
        if getpass.getuser() != SERVER_USER:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(root, user.pw_uid, user.pw_gid)
        server = PgServer(find_bindir(), root / "data", free_port())
        server.init()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
