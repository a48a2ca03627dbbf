"""Token pacing and keep-alive timing, on trio's autojump clock (no sockets involved)."""

from __future__ import annotations

import trio

from llm.fake import FakeBehaviour, FakeUpstream
from llm.fake.chat import _send_pieces, _think
from llm.fake.events import EventEncoder
from llm.fake.upstream import RecordedRequest


class Recorder:
    """Stands in for the HTTP responder: remembers when each write happened."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []

    async def write(self, data: bytes) -> None:
        self.writes.append((trio.current_time(), data))


ENCODER = EventEncoder("gen-1", "m", 0, "\n")


def make_fake(**behaviour: object) -> tuple[FakeUpstream, RecordedRequest]:
    fake = FakeUpstream(FakeBehaviour(**behaviour), host="127.0.0.1", port=1)  # type: ignore[arg-type]
    return fake, fake.begin("POST", "/v1/chat/completions", {})


async def test_tokens_are_paced_at_tokens_per_second(autojump_clock: trio.abc.Clock) -> None:
    fake, record = make_fake()
    out = Recorder()
    start = trio.current_time()
    await _send_pieces(fake, out, record, ENCODER, ["ab", "cd", "ef", "gh"], 4.0)  # type: ignore[arg-type]
    assert [round(t - start, 6) for t, _ in out.writes] == [0, 0.25, 0.5, 0.75]
    assert [data.count(b"data: ") for _, data in out.writes] == [1, 1, 1, 1]
    assert record.chunks_sent == 4 and fake.chunks_sent == 4


async def test_no_pacing_sends_everything_in_one_write(autojump_clock: trio.abc.Clock) -> None:
    fake, record = make_fake()
    out = Recorder()
    await _send_pieces(fake, out, record, ENCODER, ["a"] * 10, 0.0)  # type: ignore[arg-type]
    assert len(out.writes) == 1
    assert out.writes[0][1].count(b"data: ") == 10


async def test_coalescing_batches_due_tokens(autojump_clock: trio.abc.Clock) -> None:
    fake, record = make_fake(coalesce_interval=0.1)
    out = Recorder()
    start = trio.current_time()
    await _send_pieces(fake, out, record, ENCODER, ["x"] * 10, 50.0)  # type: ignore[arg-type]
    times = [round(t - start, 6) for t, _ in out.writes]
    counts = [data.count(b"data: ") for _, data in out.writes]
    assert sum(counts) == 10
    assert times[0] == 0 and counts[0] == 1
    assert all(b - a >= 0.1 for a, b in zip(times, times[1:], strict=False))
    last_index = -1
    for when, count in zip(times, counts, strict=True):
        last_index += count
        assert when + 1e-9 >= last_index * 0.02  # no token is sent before it is due
    assert len(out.writes) < 10


async def test_keepalives_until_first_token(autojump_clock: trio.abc.Clock) -> None:
    fake, _ = make_fake()
    out = Recorder()
    plan = type("Plan", (), {"first_token_delay": 1.0, "keepalive_interval": 0.3})()
    start = trio.current_time()
    await _think(out, ENCODER, plan, keepalives=True)  # type: ignore[arg-type]
    assert trio.current_time() - start == 1.0
    assert [round(t - start, 6) for t, _ in out.writes] == [0, 0.3, 0.6, 0.9]
    assert all(data == b": OPENROUTER PROCESSING\n\n" for _, data in out.writes)
