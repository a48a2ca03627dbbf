"""The `fastnpc` command as a user meets it, run as a subprocess: every failure to start is one
readable line and a non-zero exit; --help explains every option; one fake LLM for many workers;
quiet, single logs."""

from __future__ import annotations

import argparse
import secrets
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import trio
from sqlalchemy.engine import make_url

from app.cli import _parser
from tests.app.cliproc import cli_env, run_cli, serving
from tests.dbutil import POSTGRES_URL_ENV

MAX_LINES = 5
PREFIX = "fastnpc: cannot start: "

# (command line, extra arguments): every command that opens the database
COMMANDS = [
    ("serve", ["serve", "--fake-llm", "--port", "0"]),
    ("db upgrade", ["db", "upgrade"]),
    ("admin create", ["admin", "create", "--username", "root", "--password", "a long password"]),
]


def _fails_readably(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= MAX_LINES, result.stderr
    assert lines[0].startswith(PREFIX), result.stderr
    assert "Traceback" not in result.stderr and "ExceptionGroup" not in result.stderr
    for needle in needles:
        assert needle in result.stderr
    return result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("name", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_unsupported_database_scheme(name: str, args: list[str]) -> None:
    env = cli_env(FASTNPC_DATABASE_URL="mysql://u:hunter2@db/app")
    err = _fails_readably(run_cli(args, env), "unsupported database URL scheme 'mysql'")
    assert "hunter2" not in err and "mysql://u:***@db/app" in err


@pytest.mark.parametrize(("name", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_unparsable_database_url(name: str, args: list[str]) -> None:
    env = cli_env(FASTNPC_DATABASE_URL="postgresql://u:hunter2@db:notaport/app")
    err = _fails_readably(run_cli(args, env), "cannot be parsed")
    assert "hunter2" not in err


@pytest.mark.parametrize(("name", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_postgres_unreachable(name: str, args: list[str]) -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{_closed_port()}/fastnpc"
    err = _fails_readably(
        run_cli(args, cli_env(FASTNPC_DATABASE_URL=url)),
        "cannot connect to PostgreSQL",
        "is PostgreSQL running?",
    )
    assert "hunter2" not in err and "postgres:***@127.0.0.1" in err


@pytest.mark.postgres
@pytest.mark.parametrize(("name", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_postgres_database_missing(name: str, args: list[str]) -> None:
    import os

    server = os.environ.get(POSTGRES_URL_ENV)
    if server is None:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    missing = f"fastnpc_missing_{secrets.token_hex(4)}"  # never created
    url = make_url(server).set(database=missing).render_as_string(hide_password=False)
    _fails_readably(
        run_cli(args, cli_env(FASTNPC_DATABASE_URL=url)), f"database '{missing}' does not exist"
    )


@pytest.mark.parametrize(("name", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_sqlite_path_not_writable(name: str, args: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = cli_env(blocker / "fastnpc.db")  # the "directory" is a file, even for root
    _fails_readably(run_cli(args, env), "cannot open the SQLite database", "writable")


def test_port_in_use_is_checked_before_migrating(tmp_path: Path) -> None:
    db = tmp_path / "fastnpc.db"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = run_cli(["serve", "--fake-llm", "--port", port], cli_env(db))
    _fails_readably(result, f"port {port} on 127.0.0.1 is already in use", "--port")
    assert not db.exists()  # nothing was migrated for a server that could not bind


def test_invalid_setting(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "db.sqlite", FASTNPC_LLM_MAX_CONCURRENCY="lots")
    _fails_readably(run_cli(["serve", "--fake-llm"], env), "FASTNPC_LLM_MAX_CONCURRENCY")


def test_no_provider_says_what_is_needed(tmp_path: Path) -> None:
    result = run_cli(["serve"], cli_env(tmp_path / "db.sqlite"))
    err = _fails_readably(result, "no LLM provider configured", "OPENROUTER_API_KEY", "--fake-llm")
    assert result.returncode == 2
    assert not (tmp_path / "db.sqlite").exists()
    # a base URL alone: named, and said to be not enough
    env = cli_env(tmp_path / "db.sqlite", FASTNPC_OPENROUTER_BASE_URL="http://127.0.0.1:1/v1")
    err = _fails_readably(run_cli(["serve"], env))
    assert "FASTNPC_OPENROUTER_BASE_URL=http://127.0.0.1:1/v1 alone is not enough" in err


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action.choices.values():
                found.extend(_all_parsers(choice))
    return found


def test_every_command_and_option_is_described() -> None:
    for parser in _all_parsers(_parser()):
        assert parser.description, parser.prog
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{parser.prog} {action.option_strings or action.dest}"
            if isinstance(action, argparse._SubParsersAction):
                for sub in action._choices_actions:
                    assert sub.help, f"{parser.prog} {sub.dest}"


def test_help_shows_defaults() -> None:
    env = cli_env()
    top = run_cli(["--help"], env)
    assert top.returncode == 0
    for command in ("serve", "db", "admin", "fake-llm", "demo"):
        assert command in top.stdout
    serve = " ".join(run_cli(["serve", "--help"], env).stdout.split())
    for expected in (
        "--host HOST address to listen on (default: 127.0.0.1)",
        "--port PORT TCP port to listen on (default: 8000)",
        "(default: 1)",
        "--fake-llm",
        "--access-log",
        "(default: off)",
    ):
        assert expected in serve
    fake = " ".join(run_cli(["fake-llm", "--help"], env).stdout.split())
    assert "(default: 2.0)" in fake and "(default: 127.0.0.1)" in fake


async def _chat_once(base_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        r = await client.post(
            "/api/auth/register", json={"username": "cli_user", "password": "correct horse"}
        )
        assert r.status_code == 201, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await client.post("/api/characters", json={"name": "Old Tom"}, headers=headers)
        assert r.status_code == 201, r.text
        chat = f"/api/characters/{r.json()['id']}/chat"
        r = await client.post(chat, json={"content": "Hello!"}, headers=headers)
        assert r.status_code == 200, r.text
        reply: dict[str, str] = r.json()["reply"]
        return reply


async def test_fake_llm_with_workers_shares_one_fake_process(tmp_path: Path) -> None:
    async with serving(["--workers", "2", "--fake-llm"], cli_env(tmp_path / "db.sqlite")) as srv:
        fake_line = next(line for line in srv.output if line.startswith("fake LLM at "))
        fake_url = fake_line.split()[3]
        reply = await _chat_once(srv.base_url)
        assert reply["status"] == "complete" and reply["content"]
        assert sum("serving on" in line for line in srv.output) == 1
        assert await srv.stop() == 0
    with pytest.raises(httpx.ConnectError):  # the fake process ended with the workers
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(f"{fake_url}/models")


async def test_logs_are_quiet_and_single(tmp_path: Path) -> None:
    async with serving(["--fake-llm"], cli_env(tmp_path / "db.sqlite")) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert await srv.stop() == 0
    text = "\n".join(srv.output).lower()
    assert "alembic" not in text
    assert text.count("running on") + text.count("serving on") == 1
    assert "get /healthz" not in text


async def test_access_log_is_optional(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "db.sqlite")
    async with serving(["--fake-llm", "--access-log"], env) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
        with trio.fail_after(30):
            await srv.read_until("GET /healthz")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_redis_configured_but_down(workers: str, tmp_path: Path) -> None:
    """A configured Redis must answer before anything serves: one line, its password masked."""
    url = f"redis://:hunter2@127.0.0.1:{_closed_port()}/0"
    env = cli_env(tmp_path / "f.db", FASTNPC_REDIS_URL=url)
    args = ["serve", "--fake-llm", "--port", "0", "--workers", workers]
    err = _fails_readably(run_cli(args, env), "Redis at", "does not answer", "FASTNPC_REDIS_URL")
    assert "hunter2" not in err
