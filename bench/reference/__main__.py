"""Run the reference server: ``python -m bench.reference --port N``.

Reads the same environment as FastNPC: ``FASTNPC_OPENROUTER_BASE_URL``, ``OPENROUTER_API_KEY``,
``FASTNPC_MODEL``, ``FASTNPC_LLM_MAX_CONCURRENCY``; ``--db`` names the SQLite file.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from bench.fdlimit import raise_fd_limit
from bench.reference.app import ReferenceConfig, create_app


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve with uvicorn (one process, asyncio loop)."""
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--db", default="reference.db", help="SQLite file")
    parser.add_argument(
        "--per-call-client",
        action="store_true",
        help="build a new AsyncOpenAI per call, as the plan's _async_client() literally does",
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    config = ReferenceConfig(
        base_url=os.environ.get("FASTNPC_OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1"),
        api_key=os.environ.get("OPENROUTER_API_KEY", "unset"),
        database_path=args.db,
        model=os.environ.get("FASTNPC_MODEL", "z-ai/glm-4-32b"),
        max_concurrency=int(os.environ.get("FASTNPC_LLM_MAX_CONCURRENCY", "2000")),
        per_call_client=args.per_call_client,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
