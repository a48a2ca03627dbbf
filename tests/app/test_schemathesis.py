"""Schemathesis against a live server: every operation of /openapi.json (the [stream] routes in
their JSON mode), positive and negative examples, every check the installed schemathesis runs
by default (no 5xx, documented statuses, content types, headers and bodies, rejected invalid
data, accepted valid data, authentication that is never ignored, ...), and the first user's
resources requested by the second user never succeed. Any finding fails.

The server is real Hypercorn on 127.0.0.1 port 0 with the fake LLM, run by trio in a thread so
the test itself stays synchronous (schemathesis' calls block). Bounded: ``MAX_EXAMPLES`` per
operation and generation mode, no deadline.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.errors import FailureGroup

from tests.app.harness import live_server, make_settings
from tests.fakesources import start_fake_sources
from tests.fakeupstream import start_fake

MAX_EXAMPLES = 10

# API.md answers 400 to some well-formed requests: a `before` that names no message of the
# conversation, a `character_id` that is not a member, `character_ids` naming characters the
# caller cannot see (or fewer members than `max_speakers`), a generation source's `url` that is
# no page of the configured source. For these operations, and only
# these, schemathesis' positive data may also get 400 (its other expectations unchanged).
# Bodies the server reads itself are bytes or JSON of a format no schema can pin down (an
# image, a card, a conversation file): arbitrary ones are 400 too. So are `speaker_ids` that
# are well-formed ids but not members, `lorebook_ids` that are not the caller's books, and
# feedback with neither a rating nor a comment.
SEMANTIC_400 = [
    "PUT /api/characters/{character_id}/avatar",
    "POST /api/characters/import",
    "POST /api/characters/{character_id}/chat/import",
    "POST /api/groups/{group_id}/import",
    "POST /api/groups/{group_id}/messages",
    "POST /api/lorebooks/import",
    "PUT /api/characters/{character_id}/lorebooks",
    "PUT /api/groups/{group_id}/lorebooks",
    "POST /api/feedback",
    "GET /api/characters/{character_id}/chat/messages",
    "GET /api/groups/{group_id}/messages",
    "GET /api/groups/{group_id}/memories",
    "POST /api/groups/{group_id}/memories",
    "POST /api/groups",
    "PATCH /api/groups/{group_id}",
    # a `source.url` that is not a page of the configured source
    "POST /api/characters/generate",
    # API.md: branch takes a user message and regenerate an assistant message (else 400)
    "POST /api/characters/{character_id}/chat/messages/{message_id}/branch",
    "POST /api/characters/{character_id}/chat/messages/{message_id}/regenerate",
    "POST /api/groups/{group_id}/messages/{message_id}/branch",
    "POST /api/groups/{group_id}/messages/{message_id}/regenerate",
]
# Invalid data may also be larger than FASTNPC_MAX_BODY_BYTES (a lorebook's entries, say):
# 413 `payload_too_large` rejects it as well as 400 does.
CONFIG = f"""
[checks.negative_data_rejection]
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"
]

[[operations]]
include-name = {SEMANTIC_400!r}
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"
]
"""


@dataclass
class Target:
    base_url: str
    headers: dict[str, str]  # the first user's (an admin, so admin routes answer too)
    other_headers: dict[str, str]  # the second user's
    parameters: dict[str, str]  # ids of real resources of the first user


@contextmanager
def _serving(database_url: str) -> Iterator[str]:
    """A live server (and its fake LLM) in a thread running trio; its base URL."""
    started: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.Event] | BaseException] = (
        queue.Queue()
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            fake = await start_fake(nursery, first_token_delay=0.01, tokens=12, tokens_per_second=0)
            sources = await start_fake_sources(nursery)
            settings = make_settings(
                database_url,
                fake.base_url,
                admin_username="root",
                admin_password="rootpassword",
                sources=sources.settings(),
            )
            async with live_server(settings) as live:
                started.put((live.base_url, trio.lowlevel.current_trio_token(), live.stop))
                await live.stop.wait()
            nursery.cancel_scope.cancel()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported to the waiting test thread
            started.put(exc)

    thread = threading.Thread(target=run, name="schemathesis-server")
    thread.start()
    outcome = started.get(timeout=60)
    if isinstance(outcome, BaseException):
        thread.join()
        raise outcome
    base_url, token, stop = outcome
    try:
        yield base_url
    finally:
        trio.from_thread.run_sync(stop.set, trio_token=token)
        thread.join(timeout=60)
        assert not thread.is_alive()


def _seed(base_url: str) -> Target:
    """The admin and a second user, with a character, a chat, a group and a third user."""
    with httpx.Client(base_url=base_url, timeout=30) as client:

        def token(path: str, username: str, password: str) -> str:
            r = client.post(path, json={"username": username, "password": password})
            assert r.status_code in (200, 201), r.text
            return str(r.json()["token"])

        admin = {"Authorization": f"Bearer {token('/api/auth/login', 'root', 'rootpassword')}"}
        other = {"Authorization": f"Bearer {token('/api/auth/register', 'second', 'password123')}"}
        r = client.post("/api/auth/register", json={"username": "third", "password": "pw123456"})
        third = r.json()["user"]["id"]
        ids = []
        for name in ("Mira", "Bram"):
            r = client.post("/api/characters", json={"name": name}, headers=admin)
            ids.append(r.json()["id"])
        r = client.post(f"/api/characters/{ids[0]}/chat", json={"content": "hi"}, headers=admin)
        assert r.status_code == 200, r.text
        message = r.json()["reply"]["id"]
        memory = {"content": "The user said hi."}
        r = client.post(f"/api/characters/{ids[0]}/chat/memories", json=memory, headers=admin)
        assert r.status_code == 201, r.text
        memory_id = r.json()["id"]
        r = client.post("/api/groups", json={"name": "G", "character_ids": ids}, headers=admin)
        group = r.json()["id"]
        r = client.post("/api/lorebooks", json={"name": "World"}, headers=admin)
        book = r.json()["id"]
        entry = {"keys": ["dragon"], "content": "Dragons sleep in winter."}
        r = client.post(f"/api/lorebooks/{book}/entries", json=entry, headers=admin)
        assert r.status_code == 201, r.text
        entry_id = r.json()["id"]
    return Target(
        base_url,
        admin,
        other,
        {
            "character_id": ids[0],
            "group_id": group,
            "user_id": third,
            "category": "identity",
            "message_id": message,
            "lorebook_id": book,
            "entry_id": entry_id,
            "memory_id": memory_id,
            "name": "0" * 64 + ".png",
        },
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    database = tmp_path_factory.mktemp("schemathesis") / "api.db"
    with _serving(f"sqlite:///{database}") as base_url:
        yield _seed(base_url)


def _check(
    operation: Any,
    strategy: Any,
    headers: Callable[[], dict[str, str]],
    *,
    foreign: bool = False,
) -> list[str]:
    """Run the checks on up to ``MAX_EXAMPLES`` cases of ``strategy``; the findings.

    ``foreign``: the cases name another user's resources, so no answer may be a success.
    """

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers())
        if foreign:
            assert response.status_code >= 400, (
                f"another user's resource answered {response.status_code}: {response.text[:200]}"
            )

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
        return []
    except (FailureGroup, Exception) as exc:  # every finding of every operation, together
        return [f"{operation.label}: {exc}"]
    return []


def _fresh_admin_token(base_url: str) -> dict[str, str]:
    r = httpx.post(
        f"{base_url}/api/auth/login", json={"username": "root", "password": "rootpassword"}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_api_conforms_to_its_openapi_document(target: Target) -> None:
    config = SchemathesisConfig.from_str(CONFIG)
    schema = schemathesis.openapi.from_url(f"{target.base_url}/openapi.json", config=config)
    schema.config.update(base_url=target.base_url)
    findings: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 36
    # deletions last, so the other operations meet the seeded resources
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:

        def admin() -> dict[str, str]:
            return target.headers

        if operation.path == "/api/auth/logout":  # revokes the token it is sent with

            def admin() -> dict[str, str]:
                return _fresh_admin_token(target.base_url)

        names = [p.name for p in operation.path_parameters]
        real_ids = {name: target.parameters[name] for name in names}
        runs = [
            (operation.as_strategy(GenerationMode.POSITIVE), admin),
            (operation.as_strategy(GenerationMode.NEGATIVE), admin),
        ]
        for strategy, headers in runs:
            findings += _check(operation, strategy, headers)
        if real_ids:  # the first user's real resources, as the first and as the second user
            real = operation.as_strategy(path_parameters=real_ids)
            findings += _check(operation, real, admin)
            findings += _check(operation, real, lambda: target.other_headers, foreign=True)
    # the run kept its credentials (a revoked token would have made every answer a 401)
    r = httpx.get(f"{target.base_url}/api/me", headers=target.headers)
    assert r.status_code == 200, r.text
    assert not findings, "\n\n".join(findings)
