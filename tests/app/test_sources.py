"""Sources for generation through the HTTP API, against the local fake MediaWiki API and fake
Baidu Baike (tests/fakesources.py); on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from app.sources import MAX_SOURCE_CHARS
from app.sources.settings import DEFAULT_USER_AGENT
from llm.fake import FakeUpstream
from tests.app.harness import Live, Session, live_server, make_settings
from tests.fakesources import (
    GATED,
    HUGE,
    LONG,
    OFF_ORIGIN,
    SLOW,
    FakeSources,
    start_fake_sources,
)

GENERATE = "/api/characters/generate"
STREAM = {"Accept": "text/event-stream"}


@pytest.fixture
async def sources(nursery: trio.Nursery) -> FakeSources:
    return await start_fake_sources(nursery)


@pytest.fixture
async def live(db_url: str, fake: FakeUpstream, sources: FakeSources) -> AsyncIterator[Live]:
    # the slow page never answers: the timeout ends it; the huge pages pass the size cap
    source_settings = sources.settings(timeout=2, max_bytes=1024 * 1024, max_concurrency=4)
    settings = make_settings(db_url, fake.base_url, sources=source_settings)
    async with live_server(settings) as server:
        yield server


def _prompts(fake: FakeUpstream) -> str:
    return "\n".join(m.get("content") or "" for r in fake.requests for m in r.messages)


async def test_search_wikipedia(live: Live, sources: FakeSources) -> None:
    alice = await live.register()
    r = await alice.request(
        "GET", "/api/sources/search", params={"provider": "wikipedia", "q": "李白"}
    )
    assert r.status_code == 200, r.text
    # best first; the disambiguation page itself is no candidate
    assert r.json() == {
        "items": [
            {"title": "李白", "description": "唐朝诗人", "url": sources.wiki_url("李白")},
            {
                "title": "李白 (足球运动员)",
                "description": "中国足球运动员",
                "url": sources.wiki_url("李白 (足球运动员)"),
            },
        ]
    }
    (call,) = sources.calls(generator="search")
    assert call["gsrsearch"] == "李白" and "url" in call["inprop"]
    r = await alice.request(
        "GET", "/api/sources/search", params={"provider": "wikipedia", "q": "无人"}
    )
    assert r.json() == {"items": []}


async def test_search_baike_lists_same_name_entries(live: Live, sources: FakeSources) -> None:
    alice = await live.register()
    r = await alice.request("GET", "/api/sources/search", params={"provider": "baike", "q": "李白"})
    assert r.status_code == 200, r.text
    base = f"{sources.base_url}/baike/item/%E6%9D%8E%E7%99%BD"
    assert r.json()["items"] == [
        {"title": "李白", "description": "唐代诗人", "url": base},
        {"title": "李白", "description": "中国足球运动员", "url": f"{base}/2043"},
        {"title": "李白", "description": "2012年张作骥执导电影", "url": f"{base}/2044"},
    ]
    r = await alice.request("GET", "/api/sources/search", params={"provider": "baike", "q": "无人"})
    assert r.json() == {"items": []}  # Baike's error page: no entry


async def test_search_faults_and_validation(live: Live) -> None:
    alice = await live.register()
    r = await alice.request(
        "GET", "/api/sources/search", params={"provider": "wikipedia", "q": SLOW}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (502, "source_unavailable")
    for params in (
        {"provider": "google", "q": "李白"},
        {"provider": "wikipedia", "q": ""},
        {"provider": "wikipedia"},
        {"provider": "wikipedia", "q": "李白", "lang": "evil.example/x"},
    ):
        r = await alice.request("GET", "/api/sources/search", params=params)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request"), params
    r = await live.client.get("/api/sources/search", params={"provider": "baike", "q": "李白"})
    assert r.status_code == 401


async def test_generate_from_a_wikipedia_page(
    live: Live, fake: FakeUpstream, sources: FakeSources
) -> None:
    alice = await live.register()
    async with alice.stream(
        GENERATE, {"name": "东坡", "source": {"provider": "wikipedia", "title": "苏轼"}}
    ) as sse:
        events = await sse.collect()
    names = [name for name, _ in events]
    assert names[0] == "source" and names[1:9] == ["category"] * 8
    assert names[9:] == ["character", "done"]
    source = events[0][1]
    url = sources.wiki_url("苏轼")
    assert source["provider"] == "wikipedia" and source["title"] == "苏轼" and source["url"] == url
    assert 200 < source["chars"] < 2_000
    character = events[9][1]
    assert character["sources"] == [{"provider": "wikipedia", "title": "苏轼", "url": url}]
    assert character["status"] == "ready"
    # the page's facts (infobox and sections) reached every generation prompt
    assert len(fake.requests) == 8
    for request in fake.requests:
        prompt = "\n".join(m.get("content") or "" for m in request.messages)
        assert "字: 子瞻、和仲" in prompt and "乌台诗案" in prompt and "[1]" not in prompt
    # fetched through the MediaWiki API in simplified Chinese, with our User-Agent
    (parse,) = sources.calls(action="parse")
    assert parse["variant"] == "zh-cn" and parse["pageid"] == "29738"
    assert {r.headers["user-agent"] for r in sources.requests} == {DEFAULT_USER_AGENT}
    # kept with the character, and exported to a card's `source`
    stored = await alice.request("GET", f"/api/characters/{character['id']}")
    assert stored.json()["sources"] == character["sources"]
    card = await alice.request("GET", f"/api/characters/{character['id']}/card?spec=v3")
    assert card.json()["data"]["source"] == [url]


async def test_generate_from_a_baike_url(
    live: Live, fake: FakeUpstream, sources: FakeSources
) -> None:
    alice = await live.register()
    url = f"{sources.base_url}/baike/item/%E8%8B%8F%E8%BD%BC"
    r = await alice.request(
        "POST", GENERATE, json={"name": "苏轼", "source": {"provider": "baike", "url": url}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["sources"] == [{"provider": "baike", "title": "苏轼", "url": url}]
    assert "别名: 苏东坡、苏仙" in _prompts(fake) and "名动京师" in _prompts(fake)


async def test_a_long_page_is_cut(live: Live, fake: FakeUpstream) -> None:
    alice = await live.register()
    async with alice.stream(
        GENERATE, {"name": "长", "source": {"provider": "wikipedia", "title": LONG}}
    ) as sse:
        events = await sse.collect()
    assert events[0] == (
        "source",
        {
            "provider": "wikipedia",
            "title": LONG,
            "url": events[0][1]["url"],
            "chars": MAX_SOURCE_CHARS,
        },
    )
    assert events[-1][0] == "done"


async def _nothing_created(alice: Session, fake: FakeUpstream) -> None:
    listed = await alice.request("GET", "/api/characters")
    assert listed.json()["items"] == []
    assert fake.requests == []


FAULTS = [
    ({"provider": "wikipedia", "title": "无此人"}, 404, "source_not_found"),
    ({"provider": "wikipedia", "title": "李白 (消歧义)"}, 404, "source_not_found"),
    ({"provider": "wikipedia", "title": SLOW}, 502, "source_unavailable"),
    ({"provider": "wikipedia", "title": HUGE}, 502, "source_unavailable"),
    ({"provider": "wikipedia", "title": OFF_ORIGIN}, 502, "source_unavailable"),
    ({"provider": "baike", "title": "无此人"}, 404, "source_not_found"),
    ({"provider": "baike", "title": SLOW}, 502, "source_unavailable"),
    ({"provider": "baike", "title": HUGE}, 502, "source_unavailable"),
    ({"provider": "baike", "title": OFF_ORIGIN}, 502, "source_unavailable"),
]


async def test_source_faults_are_json_errors_and_create_nothing(
    live: Live, fake: FakeUpstream
) -> None:
    alice = await live.register()
    for source, status, code in FAULTS:
        # asked for a stream: the page is fetched before it starts, so a plain JSON error
        r = await alice.request(
            "POST", GENERATE, json={"name": "X", "source": source}, headers=STREAM
        )
        assert (r.status_code, r.headers["content-type"]) == (status, "application/json"), source
        assert r.json()["error"]["code"] == code, (source, r.json())
    await _nothing_created(alice, fake)


async def test_source_validation(live: Live, fake: FakeUpstream, sources: FakeSources) -> None:
    alice = await live.register()
    bad: list[dict[str, Any]] = [
        {"source_text": "text", "source": {"provider": "wikipedia", "title": "苏轼"}},
        {"source": {"provider": "wikipedia"}},
        {"source": {"provider": "wikipedia", "title": "苏轼", "url": sources.wiki_url("苏轼")}},
        {"source": {"provider": "wiki", "title": "苏轼"}},
        {"source": {"provider": "wikipedia", "title": "苏轼", "lang": "zh.evil.example#"}},
        # a url of another origin, or not a page, is refused before anything is fetched
        {
            "source": {
                "provider": "wikipedia",
                "url": "https://evil.example/wiki/%E8%8B%8F%E8%BD%BC",
            }
        },
        {"source": {"provider": "baike", "url": "https://evil.example/item/x"}},
        {"source": {"provider": "baike", "url": f"{sources.base_url}/baike/search?word=x"}},
        {"source": {"provider": "wikipedia", "url": f"{sources.base_url}/zh/w/index.php"}},
    ]
    for body in bad:
        r = await alice.request("POST", GENERATE, json={"name": "X", **body})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request"), body
    assert sources.requests == []
    await _nothing_created(alice, fake)


async def test_a_wikipedia_url_names_its_page(live: Live, sources: FakeSources) -> None:
    alice = await live.register()
    url = sources.wiki_url("苏轼")
    r = await alice.request(
        "POST", GENERATE, json={"name": "苏轼", "source": {"provider": "wikipedia", "url": url}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["sources"] == [{"provider": "wikipedia", "title": "苏轼", "url": url}]


async def test_fetches_are_limited(live: Live, sources: FakeSources) -> None:
    alice = await live.register()
    limiter = live.services.sources.fetcher.limiter
    assert limiter.total_tokens == 4
    statuses: list[int] = []

    async def search() -> None:
        params = {"provider": "wikipedia", "q": GATED}
        statuses.append(
            (await alice.request("GET", "/api/sources/search", params=params)).status_code
        )

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(search)
        # four at the source, two waiting for a slot (the limiter's queue has no event to wait on)
        with trio.fail_after(10):
            while not (sources.active == 4 and limiter.statistics().tasks_waiting == 2):  # noqa: ASYNC110
                await trio.sleep(0.01)
        sources.gate.set()
    assert statuses == [200] * 6 and sources.max_active == 4


async def test_the_openapi_document_describes_sources(live: Live) -> None:
    spec = (await live.client.get("/openapi.json")).json()
    search = spec["paths"]["/api/sources/search"]["get"]
    required = {p["name"]: p.get("required", False) for p in search["parameters"]}
    assert required == {"provider": True, "q": True, "lang": False}
    assert {"200", "400", "401", "502"} <= set(search["responses"])
    generate = spec["paths"]["/api/characters/generate"]["post"]
    assert {"404", "502"} <= set(generate["responses"])
    body = generate["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in body:
        body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert "source" in body["properties"]
