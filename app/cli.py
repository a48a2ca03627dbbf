"""The `fastnpc` command: serve, db upgrade, admin create, fake-llm, demo.

Every failure to start is one line, ``fastnpc: cannot start: <what> (<the cause>)``, plus a
hint where there is one, and a non-zero exit status (app/startup.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import trio
from pydantic import SecretStr

EXIT_FAILURE = 1
EXIT_CONFIG = 2

NO_LLM_WHAT = "no LLM provider configured"
NO_LLM_HINT = (
    "set OPENROUTER_API_KEY=<key> (OpenRouter), or FASTNPC_OPENROUTER_BASE_URL=<url> together\n"
    "  with OPENROUTER_API_KEY (any value, e.g. none, for a local server that needs no key),\n"
    "  or pass --fake-llm for the built-in fake LLM"
)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (on/off for flags); none for required options."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is argparse.SUPPRESS or action.required or not action.option_strings:
            return text
        if action.nargs == 0:  # a flag
            return f"{text} (default: {'on' if action.default else 'off'})"
        if action.default is None:
            return f"{text} (default: not set)"
        return f"{text} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnpc",
        description="FastNPC: a multi-user NPC role-play chat backend.",
        epilog=(
            "Configuration comes from the environment (FASTNPC_DATABASE_URL, OPENROUTER_API_KEY,\n"
            "...; see the Configuration table in README.md). `fastnpc COMMAND --help` explains\n"
            "each command."
        ),
        formatter_class=_HelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do"
    )

    def command(
        parent: Any, name: str, text: str, *, description: str | None = None
    ) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = parent.add_parser(
            name, help=text, description=description or text, formatter_class=_HelpFormatter
        )
        return made

    serve = command(
        sub,
        "serve",
        "run the HTTP server",
        description=(
            "Run the HTTP server: migrate the database (FASTNPC_DATABASE_URL) and serve the API.\n"
            "Needs OPENROUTER_API_KEY (see README.md), or --fake-llm."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes sharing the port"
    )
    serve.add_argument(
        "--fake-llm",
        action="store_true",
        help="answer with the built-in fake LLM instead of a provider (one fake process is "
        "shared by every worker)",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="print one line per HTTP request to stdout"
    )
    serve.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)

    db = command(sub, "db", "database maintenance (FASTNPC_DATABASE_URL)")
    db_sub = db.add_subparsers(
        dest="db_command", required=True, metavar="COMMAND", help="what to do"
    )
    command(
        db_sub,
        "upgrade",
        "apply the database migrations (serve also does this at start)",
    )

    admin = command(sub, "admin", "administration")
    admin_sub = admin.add_subparsers(
        dest="admin_command", required=True, metavar="COMMAND", help="what to do"
    )
    create = command(
        admin_sub,
        "create",
        "create an admin user, or make an existing user an admin",
    )
    create.add_argument("--username", required=True, help="the user's name")
    create.add_argument("--password", required=True, help="the password for a new user")

    command(
        sub,
        "fake-llm",
        "run the fake OpenAI-compatible LLM upstream on its own (see fastnpc fake-llm --help)",
    )

    demo = command(
        sub,
        "demo",
        "a guided tour on a temporary database (fake LLM unless OPENROUTER_API_KEY is set)",
    )
    demo.add_argument("--port", type=int, default=0, help="port for the demo's server (0: any)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: sys.argv); returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["fake-llm"]:
        from llm.fake import run_fake_upstream_cli

        run_fake_upstream_cli(args_list[1:])
        return 0
    args = _parser().parse_args(args_list)
    configure_logging()
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "db": _db_upgrade,
        "admin": _admin_create,
        "demo": _demo,
    }
    return _run_reporting_failures(handlers[args.command], args)


def configure_logging() -> None:
    """One format for every logger; libraries' chatter (Alembic, httpx, Hypercorn, coredis) at
    WARNING."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in ("alembic", "httpx", "hypercorn.error", "coredis"):  # coredis: each retry
        logging.getLogger(name).setLevel(logging.WARNING)


def _run_reporting_failures(
    handler: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    from app.startup import StartupError, explain

    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        error = explain(exc, database_url=_database_url_or_none())
        if error is None:
            if os.environ.get("FASTNPC_DEBUG"):
                raise
            leaf = _first_leaf(exc)
            error = StartupError(
                f"{args.command} failed",
                f"{type(leaf).__name__}: {leaf}",
                "set FASTNPC_DEBUG=1 for the traceback",
            )
        print(error.render(), file=sys.stderr)
        return EXIT_FAILURE


def _first_leaf(exc: BaseException) -> BaseException:
    from app.startup import leaves

    return next(leaves(exc))


def _database_url_or_none() -> str | None:
    from app.settings import Settings

    try:
        return Settings().database_url
    except Exception:
        return None


def _settings() -> Any:
    from app.settings import Settings

    return Settings()


def _db_upgrade(_args: argparse.Namespace) -> int:
    from app.startup import prepare_database

    prepare_database(_settings().database_url)
    print("database is up to date")
    return 0


def _admin_create(args: argparse.Namespace) -> int:
    from app.startup import prepare_database

    settings = _settings()
    prepare_database(settings.database_url)
    return trio.run(_admin_create_async, settings, args.username, args.password)


async def _admin_create_async(settings: Any, username: str, password: str) -> int:
    from app.services.auth import AuthService
    from storage import open_database

    async with open_database(settings.database_url, migrate=False) as db:
        auth = AuthService(db, token_ttl=timedelta(days=1), hash_concurrency=1)
        try:
            user = await auth.ensure_admin(username, password)
        except ValueError as exc:
            print(f"fastnpc: {exc}", file=sys.stderr)
            return 2
    print(f"admin {user.username} (id {user.id}) is ready")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    return run_demo(port=args.port)


def _serve(args: argparse.Namespace) -> int:
    if args.fd is not None:  # a worker started by run_workers: the parent checked everything
        return trio.run(_serve_async, args, _settings(), None)
    from app.startup import StartupError, bind_listener, check_redis, prepare_database

    settings = _settings()
    if not args.fake_llm and settings.llm.api_key is None:
        print(no_provider_message(settings.llm.base_url), file=sys.stderr)
        return EXIT_CONFIG
    if args.workers < 1:
        raise StartupError("--workers must be at least 1", f"got {args.workers}")
    sock = bind_listener(args.host, args.port)  # first: nothing is migrated for a busy port
    try:
        prepare_database(settings.database_url)
        check_redis(settings.redis_url)
    except BaseException:
        sock.close()
        raise
    if args.workers == 1:
        return trio.run(_serve_async, args, settings, sock)
    return _serve_workers(args, sock)


def no_provider_message(base_url: str) -> str:
    """What `serve` prints without a key: exactly what is missing and what would do."""
    from app.startup import PREFIX

    default = "https://openrouter.ai/api/v1"
    cause = "OPENROUTER_API_KEY is not set"
    if base_url.rstrip("/") != default:
        cause += f"; FASTNPC_OPENROUTER_BASE_URL={base_url} alone is not enough"
    return f"{PREFIX}: {NO_LLM_WHAT} ({cause})\n  {NO_LLM_HINT}"


def _serve_workers(args: argparse.Namespace, sock: socket.socket) -> int:
    from app.server import child_argv, run_workers, start_fake_upstream_process, stop_process

    argv = child_argv()
    if "--workers" in argv:  # `--workers N` as two tokens
        i = argv.index("--workers")
        del argv[i : i + 2]
    argv = [a for a in argv if not a.startswith("--workers=") and a != "--fake-llm"]
    env = dict(os.environ)
    fake = None
    if args.fake_llm:
        from llm.fake import FakeBehaviour

        fake, fake_url = start_fake_upstream_process(FakeBehaviour())
        env["FASTNPC_OPENROUTER_BASE_URL"] = fake_url
        env.setdefault("OPENROUTER_API_KEY", "fake-llm")
        print(f"fake LLM at {fake_url} (one process for {args.workers} workers)", flush=True)
    host, port = sock.getsockname()[:2]
    url = _url(host, port)

    def ready() -> None:
        print(f"FastNPC serving on {url} with {args.workers} workers", flush=True)

    def after() -> None:
        if fake is not None:
            stop_process(fake)

    try:
        return run_workers(argv, sock, args.workers, env=env, on_ready=ready, after=after)
    finally:
        after()


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve_async(
    args: argparse.Namespace, settings: Any, sock: socket.socket | None
) -> int:
    from app.factory import create_app
    from app.runtime import tune_for_serving
    from app.server import report_ready, serve

    fd = args.fd if sock is None else sock.detach()  # hypercorn owns the socket from here
    bind = f"fd://{fd}"
    async with trio.open_nursery() as helpers:
        if args.fake_llm:
            from llm.fake import serve_fake_upstream

            fake = await helpers.start(serve_fake_upstream)
            settings.llm.base_url = fake.base_url
            if settings.llm.api_key is None:
                settings.llm.api_key = SecretStr("fake-llm")
            print(f"fake LLM at {fake.base_url}", flush=True)
        app = create_app(settings)
        tune_for_serving()
        async with trio.open_nursery() as server:
            binds = await server.start(
                lambda task_status: serve(
                    app, bind, access_log=args.access_log, task_status=task_status
                )
            )
            if args.ready_fd is not None:
                report_ready(args.ready_fd)
            else:
                print(f"FastNPC serving on {', '.join(binds)}", flush=True)
        helpers.cancel_scope.cancel()  # the server has shut down: stop the fake LLM with it
    return 0


if __name__ == "__main__":
    sys.exit(main())
