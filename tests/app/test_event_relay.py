"""The event relay's handling of a failing write (the machine's Redis)."""

from __future__ import annotations

from typing import Any

import trio
from coredis.exceptions import ResponseError

from app.services.event_relay import EventRelay
from app.services.events import EventLog
from app.services.redis_link import open_redis
from tests.redisutil import REDIS_URL, redis_prefix


async def test_a_batch_redis_refuses_is_dropped_not_retried_forever() -> None:
    async with redis_prefix() as prefix, open_redis(REDIS_URL, prefix=prefix) as link:
        assert link is not None
        relay = EventRelay(link, retention=60)
        script = relay._script
        calls = 0

        async def refuse_once(**kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ResponseError("ERR Error running script (a command error, not the link)")
            return await script(**kwargs)

        relay._script = refuse_once  # type: ignore[assignment]
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run)
            log = EventLog()
            relay.attach(7, log, {"conversation_id": 1, "kind": "chat"})
            log.publish("delta", {"text": "lost"})
            with trio.fail_after(5):
                await relay.wait_idle()  # the old relay retried this batch without end
            assert link.up  # a command error says nothing about the link
            assert calls == 1
            log.publish("delta", {"text": "kept"})
            log.publish("done", {})
            with trio.fail_after(5):
                await relay.wait_idle()
            assert calls == 2
            assert await relay.read_all(7) == [("delta", {"text": "kept"}), ("done", {})]
            nursery.cancel_scope.cancel()
