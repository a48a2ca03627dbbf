"""The blocking facade runs the same client code in its own trio.run."""

from __future__ import annotations

from functools import partial

import pydantic
import trio

from llm import BlockingClient, LLMSettings
from tests.fakeupstream import start_fake


class Mood(pydantic.BaseModel):
    mood: str


async def test_blocking_client(nursery: trio.Nursery) -> None:
    upstream = await start_fake(nursery, first_token_delay=0, tokens=6, keepalive_interval=0)
    client = BlockingClient(LLMSettings(api_key="k", base_url=upstream.base_url, model="m/x"))
    messages = [{"role": "user", "content": "hi"}]

    completion = await trio.to_thread.run_sync(partial(client.complete, messages))  # type: ignore[arg-type]
    assert completion.text == upstream.requests[-1].reply

    seen: list[str] = []
    text = await trio.to_thread.run_sync(
        partial(client.stream, messages, on_delta=seen.append)  # type: ignore[arg-type]
    )
    assert text == "".join(seen) == upstream.requests[-1].reply and len(seen) == 6

    mood = await trio.to_thread.run_sync(partial(client.structured, messages, Mood))  # type: ignore[arg-type]
    assert isinstance(mood, Mood)
    assert client.metrics.snapshot()["m/x"]["calls"] == 3
    assert "k" not in repr(client).replace("Blocking", "")
