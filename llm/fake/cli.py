"""``fastnpc fake-llm``: run the fake upstream in its own process (for benchmarks)."""

from __future__ import annotations

import argparse
import signal
from functools import partial

import trio

from llm.fake.behaviour import FakeBehaviour
from llm.fake.server import serve_fake_upstream


def run_fake_upstream_cli(argv: list[str] | None = None) -> None:
    """Parse ``argv``, serve until interrupted; print the base URL on one line once listening.

    SIGINT (Ctrl-C) or SIGTERM stops it quietly with exit status 0.
    """
    parser = argparse.ArgumentParser(
        prog="fastnpc fake-llm",
        description="Fake OpenRouter-compatible LLM upstream. Prints its base URL once listening;"
        " point `fastnpc serve` at it with FASTNPC_OPENROUTER_BASE_URL=<that URL> and any"
        " OPENROUTER_API_KEY.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ttft", type=float, default=2.0, help="first-token delay, seconds")
    parser.add_argument("--tokens", type=int, default=100, help="content chunks per reply")
    parser.add_argument("--tps", type=float, default=50.0, help="tokens per second (0: no pacing)")
    parser.add_argument("--chunk-chars", type=int, default=4, help="characters per chunk")
    parser.add_argument("--keepalive", type=float, default=0.5, help="keep-alive interval, s")
    parser.add_argument(
        "--coalesce", type=float, default=0.0, help="minimum seconds between writes of a stream"
    )
    args = parser.parse_args(argv)
    behaviour = FakeBehaviour(
        first_token_delay=args.ttft,
        tokens=args.tokens,
        tokens_per_second=args.tps,
        chunk_chars=args.chunk_chars,
        keepalive_interval=args.keepalive,
        coalesce_interval=args.coalesce,
    )
    try:
        trio.run(partial(_serve, args.host, args.port, behaviour))
    except* KeyboardInterrupt:  # a Ctrl-C before the signal receiver is installed
        pass


async def _serve(host: str, port: int, behaviour: FakeBehaviour) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            fake = await nursery.start(
                partial(serve_fake_upstream, host=host, port=port, behaviour=behaviour)
            )
            print(fake.base_url, flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
