"""A fake OpenAI-compatible (OpenRouter-shaped) upstream over real HTTP, for tests and benchmarks.

Start it in a nursery and point the client at ``fake.base_url``::

    fake = await nursery.start(partial(serve_fake_upstream, behaviour=FakeBehaviour(tokens=20)))
    fake.faults.append(Fault.http(503))          # the next chat request gets a 503

Or from another process: ``fastnpc fake-llm --port 0`` (prints the base URL) and steer it through
``/_fake/...`` (see `llm.fake.control`). In-prompt ``[[fake:...]]`` directives shape single
requests (grammar in `llm.fake.directives`).
"""

from llm.fake.behaviour import FakeBehaviour, InvalidFakeConfig, UsageChunkStyle
from llm.fake.cli import run_fake_upstream_cli
from llm.fake.faults import Fault, FaultKind, FaultQueue
from llm.fake.server import serve_fake_upstream
from llm.fake.upstream import FakeUpstream, RecordedRequest

__all__ = [
    "FakeBehaviour",
    "FakeUpstream",
    "Fault",
    "FaultKind",
    "FaultQueue",
    "InvalidFakeConfig",
    "RecordedRequest",
    "UsageChunkStyle",
    "run_fake_upstream_cli",
    "serve_fake_upstream",
]
