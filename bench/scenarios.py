"""The load scenarios, each run against one server (`Target`) and returning one result dict.

Setup (registering users, creating characters and groups, warming connections) happens
outside the measured window. Inside it the driver records wall time, per-request timings,
and the CPU and RSS of the server's process tree, the fake upstream's CPU and its own CPU.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import trio

from bench.procs import Managed, fake_control_url
from bench.sse_stats import StreamResult, build_request, open_connections, run_exchanges

T = TypeVar("T")

PASSWORD = "bench-password-1"
REGISTER_CONCURRENCY = 16
SSE_HEADERS = {"Accept": "text/event-stream"}
STREAM_DEADLINE = 300.0  # seconds a stream scenario may take before open streams fail
CHAT_TEXT = "Hello! Tell me about yourself in a few sentences."

PROFILE: dict[str, dict[str, Any]] = {
    "identity": {
        "name": "Bench",
        "age": "40",
        "gender": "unspecified",
        "occupation": "innkeeper",
        "background": "Runs the inn at the crossroads.",
        "appearance": "Flour on the apron.",
        "titles": "none",
    },
    "personality": {
        "traits": "warm, curious",
        "values": "hospitality",
        "emotional_style": "calm",
        "speech_style": "plain",
        "likes": "stories",
        "dislikes": "rudeness",
        "motivation": "keep the inn full",
    },
    "backstory": {
        "origin": "the valley",
        "experiences": ["a long winter", "a fire"],
        "current_situation": "busy season",
        "relationships": ["the smith"],
        "secret": "none",
    },
    "abilities": {"knowledge": "local gossip", "skills": "cooking", "limitations": "no magic"},
    "dialogue": {
        "tone": "friendly",
        "language_style": "simple",
        "constraints": "stay in character",
        "interaction_style": "asks questions",
    },
    "tasks": {"goal": "chat", "intent": "help", "off_limits": "none", "triggers": "none"},
    "world": {"era": "medieval", "setting": "valley", "social_order": "feudal", "rules": "none"},
    "system": {
        "role_rules": "in character",
        "reply_length": "short",
        "knowledge_cutoff": "none",
        "safety_notes": "none",
    },
}


@dataclass
class Account:
    """A registered bench user with one character of their own."""

    token: str
    character_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Target:
    """One server under test and the state the driver keeps for it."""

    name: str
    server: Managed
    fake: Managed
    client: httpx.AsyncClient
    run_id: str
    fake_behaviour: dict[str, float]
    chunks_per_reply: int
    accounts: list[Account] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    async def post_json(
        self, path: str, body: dict[str, Any], account: Account | None = None
    ) -> dict[str, Any]:
        """POST JSON, expect 2xx, return the JSON body."""
        headers = account.headers if account else {}
        response = await self.client.post(self.url(path), json=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"{self.name} POST {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    async def register(self, index: int | str) -> Account:
        """Register user ``index`` and give them a character."""
        user = await self.post_json(
            "/api/auth/register",
            {"username": f"b{self.run_id}_{index}", "password": PASSWORD},
        )
        account = Account(token=user["token"], character_id="")
        character = await self.post_json(
            "/api/characters", {"name": f"NPC {index}", "profile": PROFILE}, account
        )
        account.character_id = character["id"]
        return account

    async def register_many(self, labels: Sequence[int | str]) -> list[Account]:
        """Register one user per label, ``REGISTER_CONCURRENCY`` at a time; in label order."""
        made: dict[int, Account] = {}
        limiter = trio.CapacityLimiter(REGISTER_CONCURRENCY)

        async def one(position: int, label: int | str) -> None:
            async with limiter:
                made[position] = await self.register(label)

        async with trio.open_nursery() as nursery:
            for position, label in enumerate(labels):
                nursery.start_soon(one, position, label)
        return [made[position] for position in range(len(labels))]

    async def fresh_accounts(self, count: int, label: str) -> list[Account]:
        """``count`` new users no other scenario touches (outside any measurement)."""
        return await self.register_many([f"{label}{index}" for index in range(count)])

    async def ensure_accounts(self, count: int) -> None:
        """Register shared users up to ``count`` (outside any measurement)."""
        self.accounts.extend(await self.register_many(range(len(self.accounts), count)))

    async def warm_connections(self, count: int) -> None:
        """Open ~``count`` pooled keep-alive connections so connect cost is outside the window."""
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(self.client.get, self.url("/healthz"))

    async def wait_upstream_idle(self) -> int:
        """Wait until the fake has no request in flight (work left by a previous scenario).

        Returns how many were in flight at first. Bound it with ``trio.fail_after``.
        """
        url = f"{fake_control_url(self.fake.url)}/_fake/stats"
        first: int | None = None
        while True:
            active = int((await self.client.get(url)).json()["active"])
            first = active if first is None else first
            if active == 0:
                return first
            await trio.sleep(0.5)

    async def set_fake(self, **changes: float) -> None:
        """Patch the fake upstream's behaviour (``PUT /_fake/behaviour``)."""
        url = f"{fake_control_url(self.fake.url)}/_fake/behaviour"
        response = await self.client.put(url, json=changes)
        response.raise_for_status()


@dataclass
class Usage:
    """Resources used during one measured window."""

    wall: float
    server_cpu: float
    fake_cpu: float
    driver_cpu: float
    rss_idle: int
    rss_peak: int


async def _sample_rss(server: Managed, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], server.rss_bytes())
        await trio.sleep(0.1)


async def measure(target: Target, body: Callable[[], Awaitable[T]]) -> tuple[T, Usage]:
    """Run ``body`` while measuring wall time, CPU of every party and the server's RSS."""
    return await measure_processes(target.server, body, fake=target.fake)


async def measure_processes(
    server: Managed, body: Callable[[], Awaitable[T]], *, fake: Managed | None = None
) -> tuple[T, Usage]:
    """``measure`` for a server (and the fake upstream it uses, if any): ``fake_cpu`` is 0
    without one."""
    server.refresh_tree()
    if fake is not None:
        fake.refresh_tree()
    rss_idle = server.rss_bytes()
    peak = [rss_idle]

    def fake_cpu() -> float:
        return 0.0 if fake is None else fake.cpu_seconds()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_sample_rss, server, peak)
        server0, fake0, driver0 = server.cpu_seconds(), fake_cpu(), time.process_time()
        start = trio.current_time()
        result = await body()
        wall = trio.current_time() - start
        usage = Usage(
            wall=wall,
            server_cpu=server.cpu_seconds() - server0,
            fake_cpu=fake_cpu() - fake0,
            driver_cpu=time.process_time() - driver0,
            rss_idle=rss_idle,
            rss_peak=max(peak[0], server.rss_bytes()),
        )
        nursery.cancel_scope.cancel()
    return result, usage


async def measure_with_fake(
    target: Target, body: Callable[[], Awaitable[T]], **changes: float
) -> tuple[T, Usage]:
    """``measure`` with the fake upstream's behaviour changed for the window, then restored."""
    await target.set_fake(**changes)
    try:
        return await measure(target, body)
    finally:
        await target.set_fake(**target.fake_behaviour)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def usage_fields(usage: Usage) -> dict[str, Any]:
    """The common resource fields of a result line."""
    return {
        "wall_s": _r(usage.wall),
        "server_cpu_s": _r(usage.server_cpu),
        "fake_cpu_s": _r(usage.fake_cpu),
        "driver_cpu_s": _r(usage.driver_cpu),
        "server_rss_idle_mb": _r(usage.rss_idle / 2**20, 1),
        "server_rss_peak_mb": _r(usage.rss_peak / 2**20, 1),
    }


# ---- one SSE chat per account, all at once (chat10, stream100/500/1000)


def chat_stream_request(host: str, account: Account) -> bytes:
    """The stream scenarios' request: ``POST /api/characters/{id}/chat`` asking for SSE, with
    the account's bearer token and a short message."""
    return build_request(
        host,
        f"/api/characters/{account.character_id}/chat",
        {**account.headers, **SSE_HEADERS},
        json.dumps({"content": CHAT_TEXT}).encode(),
    )


@dataclass
class StreamRun:
    """One measured window of concurrent streams."""

    results: list[StreamResult]
    usage: Usage
    connect_s: float  # opening the connections, before the window


async def run_streams(
    server: Managed, requests: list[bytes], *, fake: Managed | None = None
) -> StreamRun:
    """Open one connection per request (before the window), then send them all at once and read
    every response (`bench.sse_stats.run_exchanges`) inside `measure_processes`."""
    url = httpx.URL(server.url)
    connect_start = time.monotonic()
    socks = await trio.to_thread.run_sync(open_connections, url.host, url.port or 80, len(requests))
    connect_s = time.monotonic() - connect_start

    async def run() -> list[StreamResult]:
        deadline = time.monotonic() + STREAM_DEADLINE
        return await trio.to_thread.run_sync(run_exchanges, socks, requests, deadline)

    results, usage = await measure_processes(server, run, fake=fake)
    return StreamRun(results, usage, connect_s)


def stream_fields(run: StreamRun) -> dict[str, Any]:
    """Counts, latency and time-to-first-delta percentiles of a `StreamRun`, and its usage."""
    results = run.results
    ok = [r for r in results if r.ok]
    latencies = [r.latency for r in ok if r.latency is not None]
    ttfd = [t for r in ok if (t := r.time_to_first_delta) is not None]
    ttfe = [t for r in ok if (t := r.time_to_first_event) is not None]
    gaps = [r.max_gap for r in ok]
    errors = [r.error for r in results if r.error]
    return {
        "streams": len(results),
        "connect_s": _r(run.connect_s),
        "ok": len(ok),
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "latency_p50_s": _r(percentile(latencies, 50)),
        "latency_p99_s": _r(percentile(latencies, 99)),
        "ttfd_p50_s": _r(percentile(ttfd, 50)),
        "ttfd_p99_s": _r(percentile(ttfd, 99)),
        # first event of any kind: for FastNPC the stored user message, i.e. the request's
        # setup (auth, claim, store) is done and the upstream call is being made
        "ttfe_p50_s": _r(percentile(ttfe, 50)),
        "ttfe_p99_s": _r(percentile(ttfe, 99)),
        "max_gap_p99_s": _r(percentile(gaps, 99)),
        "max_gap_max_s": _r(max(gaps, default=None)),
        "deltas": sum(r.deltas for r in results),
        "chars": sum(r.chars for r in results),
        **usage_fields(run.usage),
    }


async def concurrent_streams(target: Target, count: int, scenario: str) -> dict[str, Any]:
    """``count`` distinct users each stream one chat reply, all started at once."""
    await target.ensure_accounts(count)
    host = httpx.URL(target.server.url).netloc.decode()
    requests = [chat_stream_request(host, account) for account in target.accounts[:count]]
    run = await run_streams(target.server, requests, fake=target.fake)
    usage, fields = run.usage, stream_fields(run)
    deltas, chunks = fields["deltas"], count * target.chunks_per_reply
    return {
        "scenario": scenario,
        "server": target.name,
        **fields,
        "server_cpu_us_per_delta": _r(usage.server_cpu / deltas * 1e6, 1) if deltas else None,
        # A server may merge upstream chunks into fewer deltas; this one is comparable across both.
        "server_cpu_us_per_upstream_chunk": _r(usage.server_cpu / chunks * 1e6, 1),
        "driver_cpu_us_per_delta": _r(usage.driver_cpu / deltas * 1e6, 1) if deltas else None,
        "rss_per_stream_kb": _r((usage.rss_peak - usage.rss_idle) / count / 1024, 1),
    }


# ---- character generation (JSON), gen1 / gen10


async def generations(target: Target, count: int, scenario: str) -> dict[str, Any]:
    """``count`` distinct users each generate one character (8 categories), all at once.

    Each structured call takes the fake's first-token delay (2 s) and then gets its JSON at
    once, as issue 6 states ("each call 2 s"); paced at 50 chunks/s like chat replies, a
    profile category's JSON would add another ~2 s per call.
    """
    await target.ensure_accounts(count)
    latencies: list[float] = []
    errors: list[str] = []
    statuses: list[str] = []

    async def one(index: int, account: Account) -> None:
        start = trio.current_time()
        try:
            response = await target.client.post(
                target.url("/api/characters/generate"),
                json={"name": f"Generated {index}"},
                headers=account.headers,
            )
        except httpx.HTTPError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code != 201:
            errors.append(f"http {response.status_code}: {response.text[:200]}")
            return
        latencies.append(trio.current_time() - start)
        statuses.append(response.json().get("status", "?"))

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for index, account in enumerate(target.accounts[:count]):
                nursery.start_soon(one, index, account)

    _, usage = await measure_with_fake(
        target,
        run,
        first_token_delay=target.fake_behaviour["first_token_delay"],
        tokens_per_second=0.0,
    )
    return {
        "scenario": scenario,
        "server": target.name,
        "generations": count,
        "ok": len(latencies),
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "partial": statuses.count("partial"),
        "latency_p50_s": _r(percentile(latencies, 50)),
        "latency_max_s": _r(max(latencies, default=None)),
        **usage_fields(usage),
    }


# ---- a group turn with three speakers vs one reply


async def group_turn(target: Target, scenario: str = "group") -> dict[str, Any]:
    """One group turn (strategy ``all``, three members) against one plain JSON chat reply."""
    (owner,) = await target.fresh_accounts(1, "group")  # nothing else ever runs on it
    members = [owner.character_id]
    for index in range(2):
        character = await target.post_json(
            "/api/characters", {"name": f"Member {index}", "profile": PROFILE}, owner
        )
        members.append(character["id"])
    group = await target.post_json(
        "/api/groups",
        {"name": "bench group", "character_ids": members, "strategy": "all", "max_speakers": 3},
        owner,
    )

    async def single() -> dict[str, Any]:
        return await target.post_json(
            f"/api/characters/{owner.character_id}/chat", {"content": CHAT_TEXT}, owner
        )

    async def turn() -> dict[str, Any]:
        return await target.post_json(
            f"/api/groups/{group['id']}/messages", {"content": CHAT_TEXT}, owner
        )

    _, single_usage = await measure(target, single)
    answer, usage = await measure(target, turn)
    return {
        "scenario": scenario,
        "server": target.name,
        "speakers": len(answer.get("speakers", [])),
        "replies": len(answer.get("replies", [])),
        "single_reply_s": _r(single_usage.wall),
        "group_over_single": _r(usage.wall / single_usage.wall, 2),
        **usage_fields(usage),
    }


# ---- continue: rounds of concurrent speakers, one after another


async def continue_rounds(
    target: Target, scenario: str = "continue", rounds: int = 3
) -> dict[str, Any]:
    """``POST /api/groups/{id}/continue`` with ``rounds`` rounds of two speakers (strategy
    ``all``, two members) against one plain JSON chat reply: about ``rounds`` × one reply when
    the two speakers of a round reply concurrently (2 × ``rounds`` if they did not). The
    reference server has no ``continue``: it reports the scenario as skipped."""
    if target.name == "reference":
        return {"scenario": scenario, "server": target.name, "skipped": "no continue route"}
    (owner,) = await target.fresh_accounts(1, "continue")  # nothing else ever runs on it
    other = await target.post_json(
        "/api/characters", {"name": "Member 1", "profile": PROFILE}, owner
    )
    group = await target.post_json(
        "/api/groups",
        {
            "name": "bench continue",
            "character_ids": [owner.character_id, other["id"]],
            "strategy": "all",
            "max_speakers": 2,
        },
        owner,
    )

    async def single() -> dict[str, Any]:
        return await target.post_json(
            f"/api/characters/{owner.character_id}/chat", {"content": CHAT_TEXT}, owner
        )

    async def run() -> dict[str, Any]:
        return await target.post_json(
            f"/api/groups/{group['id']}/continue", {"rounds": rounds}, owner
        )

    _, single_usage = await measure(target, single)
    answer, usage = await measure(target, run)
    done = answer.get("rounds", [])
    return {
        "scenario": scenario,
        "server": target.name,
        "rounds": len(done),
        "replies": sum(len(r.get("replies", [])) for r in done),
        "single_reply_s": _r(single_usage.wall),
        "continue_over_single": _r(usage.wall / single_usage.wall, 2),
        **usage_fields(usage),
    }


# ---- zero upstream latency: request throughput with auth and storage in the path


async def zero_latency(
    target: Target, scenario: str = "zero", clients: int = 32, seconds: float = 5.0
) -> dict[str, Any]:
    """``clients`` users each send non-streamed chats back to back for ``seconds``.

    The users are fresh, so nothing left over by earlier scenarios (a reply still running on a
    conversation gives 409) is in the way.
    """
    accounts = await target.fresh_accounts(clients, "zero")
    await target.warm_connections(clients)
    done: list[float] = []
    errors: list[str] = []

    async def client_loop(account: Account) -> None:
        url = target.url(f"/api/characters/{account.character_id}/chat")
        with trio.move_on_after(seconds):
            while True:
                start = trio.current_time()
                try:
                    response = await target.client.post(
                        url, json={"content": CHAT_TEXT}, headers=account.headers
                    )
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code == 200:
                    done.append(trio.current_time() - start)
                else:
                    errors.append(f"http {response.status_code}: {response.text[:200]}")

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for account in accounts:
                nursery.start_soon(client_loop, account)

    _, usage = await measure_with_fake(target, run, first_token_delay=0.0, tokens_per_second=0.0)
    return {
        "scenario": scenario,
        "server": target.name,
        "clients": clients,
        "requests": len(done),
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "rps": _r(len(done) / usage.wall, 1),
        "latency_p50_ms": _r((percentile(done, 50) or 0) * 1000, 2),
        "latency_p99_ms": _r((percentile(done, 99) or 0) * 1000, 2),
        "server_cpu_ms_per_request": _r(usage.server_cpu / len(done) * 1000, 3) if done else None,
        "fake_cpu_ms_per_request": _r(usage.fake_cpu / len(done) * 1000, 3) if done else None,
        **usage_fields(usage),
    }
