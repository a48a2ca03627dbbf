"""The `fastnpc` command: serve, db upgrade, admin create, fake-llm, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

import trio
from pydantic import SecretStr

EXIT_CONFIG = 2

NO_LLM_MESSAGE = (
    "fastnpc: no LLM provider configured.\n"
    "  Set OPENROUTER_API_KEY=<your key> to use OpenRouter (or FASTNPC_OPENROUTER_BASE_URL for\n"
    "  another OpenAI-compatible endpoint), or pass --fake-llm to use the built-in fake LLM."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnpc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--fake-llm", action="store_true", help="use the built-in fake LLM")
    serve.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations")

    admin = sub.add_parser("admin", help="administration")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create", help="create (or promote) an admin user")
    create.add_argument("--username", required=True)
    create.add_argument("--password", required=True)

    fake = sub.add_parser("fake-llm", help="run the fake OpenAI-compatible upstream")
    fake.add_argument("rest", nargs=argparse.REMAINDER)

    demo = sub.add_parser("demo", help="a guided tour on a temporary database")
    demo.add_argument("--port", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["fake-llm"]:
        from llm.fake import run_fake_upstream_cli

        run_fake_upstream_cli(args_list[1:])
        return 0
    args = _parser().parse_args(args_list)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per upstream call
    if args.command == "serve":
        return _serve(args)
    if args.command == "db":
        from app.settings import Settings
        from storage import upgrade

        upgrade(Settings().database_url)
        print("database is up to date")
        return 0
    if args.command == "admin":
        return trio.run(_admin_create, args.username, args.password)
    if args.command == "demo":
        from app.demo import run_demo

        return run_demo(port=args.port)
    return EXIT_CONFIG


def _serve(args: argparse.Namespace) -> int:
    from app.server import child_argv, run_workers

    if not args.fake_llm and not os.environ.get("OPENROUTER_API_KEY"):
        print(NO_LLM_MESSAGE, file=sys.stderr)
        return EXIT_CONFIG
    if args.workers > 1 and args.fd is None:
        if args.fake_llm:
            print(
                "fastnpc: --fake-llm runs in-process; use one worker or `fastnpc fake-llm`.",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        argv = child_argv()
        if "--workers" in argv:  # `--workers N` as two tokens
            i = argv.index("--workers")
            del argv[i : i + 2]
        argv = [a for a in argv if not a.startswith("--workers=")]
        return run_workers(argv, args.host, args.port, args.workers)
    return trio.run(_serve_async, args)


async def _serve_async(args: argparse.Namespace) -> int:
    from app.factory import create_app
    from app.runtime import tune_for_serving
    from app.server import serve
    from app.settings import Settings

    bind = f"fd://{args.fd}" if args.fd is not None else f"{args.host}:{args.port}"
    settings = Settings()
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
                lambda task_status: serve(app, bind, task_status=task_status)
            )
            print(f"FastNPC serving on {', '.join(binds)}", flush=True)
        helpers.cancel_scope.cancel()  # the server has shut down: stop the fake LLM with it
    return 0


async def _admin_create(username: str, password: str) -> int:
    from app.services.auth import AuthService
    from app.settings import Settings
    from storage import open_database

    settings = Settings()
    async with open_database(settings.database_url) as db:
        auth = AuthService(db, token_ttl=timedelta(days=1), hash_concurrency=1)
        try:
            user = await auth.ensure_admin(username, password)
        except ValueError as exc:
            print(f"fastnpc: {exc}", file=sys.stderr)
            return 2
    print(f"admin {user.username} (id {user.id}) is ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
