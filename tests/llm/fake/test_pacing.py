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
        self.disconnected = False

    async def write(self, data: bytes) -> None:
        self.writes.append((trio.current_time(), data))

    def write_nowait(self, data: bytes) -> bool:
        self.writes.append((trio.current_time(), data))
        return True

    async def flush(self) -> None:
        pass


class SlowSocket(Recorder):
    """A responder whose socket is full after each of the first writes: flushing takes 0.5 s.

    A write counts when its flush is over (``writes`` has the time the last byte went out).
    """

    def __init__(self, stalls: int) -> None:
        super().__init__()
        self.stalls = stalls
        self.pending: bytes | None = None
        self.flushes = 0

    def write_nowait(self, data: bytes) -> bool:
        assert self.pending is None, "a write before the previous one was flushed"
        if self.stalls == 0:
            return super().write_nowait(data)
        self.stalls -= 1
        self.pending = data
        return False

    async def flush(self) -> None:
        assert self.pending is not None
        await trio.sleep(0.5)
        self.writes.append((trio.current_time(), self.pending))
        self.pending = None
        self.flushes += 1


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


async def test_a_full_socket_delays_writes_and_late_tokens_batch(
    autojump_clock: trio.abc.Clock,
) -> None:
    fake, record = make_fake()
    out = SlowSocket(stalls=2)
    start = trio.current_time()
    await _send_pieces(fake, out, record, ENCODER, ["x"] * 8, 4.0)  # type: ignore[arg-type]
    times = [round(t - start, 6) for t, _ in out.writes]
    counts = [data.count(b"data: ") for _, data in out.writes]
    # Piece i is due at 0.25 * i. The first write drains until 0.5, the next (pieces 1-2, due
    # by then) until 1.0; then pieces 3-4 are due and go at once, the rest one by one, on time.
    assert out.flushes == 2
    assert times == [0.5, 1.0, 1.0, 1.25, 1.5, 1.75]
    assert counts == [1, 2, 2, 1, 1, 1]
    assert record.chunks_sent == 8 and fake.chunks_sent == 8
    assert fake.max_pacing_lag == 0.25


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
