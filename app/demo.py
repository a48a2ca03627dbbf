"""`fastnpc demo`: a guided tour on a temporary SQLite database, in the terminal with rich.

It starts the server in-process (with the built-in fake LLM unless OPENROUTER_API_KEY is set),
then registers a user, generates a character with a live eight-category display, streams a chat
reply token by token, stops a reply mid-stream (stored as `interrupted`), talks long enough for
the conversation to be compressed into memories and shows them (correcting and pinning one,
then searching them), plays one group turn where the
moderator picks two of three characters (with its reason) who answer with interleaved streams,
lets the three continue for two rounds on their own (`continue`), imports a Chinese Character
Card V2 and chats with it in Chinese (persona set, greeting first, Chinese prompt frame), and
times ten concurrent chats against what a serial server would take. Everything it made is
removed at the end. A failure (e.g. the provider is down) ends with one line saying what failed.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import trio
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from app.factory import create_app
from app.server import serve
from app.settings import Settings
from llm import LLMSettings, SSEDecoder, SSEEvent
from llm.fake import FakeBehaviour, serve_fake_upstream
from storage.characters import CATEGORIES

SPEAKER_STYLES = ("cyan", "magenta", "green", "yellow")
MEMORY_TRIGGER = 6  # uncompressed messages that start compression (the default is 40)
MEMORY_KEEP_RECENT = 2


class DemoFailed(Exception):
    """A step of the tour could not be done; the message says which and why."""


async def sse_events(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """POST and yield (event, data) pairs from the SSE response."""
    decoder = SSEDecoder()
    request_headers = {**headers, "Accept": "text/event-stream"}
    async with client.stream("POST", path, json=body, headers=request_headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise DemoFailed(f"POST {path} answered {response.status_code}: {_message(response)}")
        async for chunk in response.aiter_bytes():
            for item in decoder.feed(chunk):
                if isinstance(item, SSEEvent):
                    data = json.loads(item.data)
                    if item.event == "error":
                        raise DemoFailed(f"POST {path}: {data.get('message', data)}")
                    yield item.event, data


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


CHINESE_CARD: dict[str, Any] = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "林黛玉",
        "description": "《红楼梦》中的人物，寄居贾府的表小姐，才情出众，多愁善感。",
        "personality": "聪慧、敏感、孤高，说话含蓄而带刺。",
        "scenario": "大观园的潇湘馆，秋雨初歇。",
        "first_mes": "{{user}}，你来了。这雨下了一整天，我正闷得慌。",
        "mes_example": "",
        "creator_notes": "FastNPC 演示卡片",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": ["又是{{user}}。今日怎么有空来看我？"],
        "tags": ["红楼梦"],
        "creator": "fastnpc-demo",
        "character_version": "1.0",
        "extensions": {},
    },
}
"""The demo's card: Character Card V2 JSON with Chinese text (what a user brings along)."""


class Tour:
    def __init__(self, console: Console, client: httpx.AsyncClient) -> None:
        self.console = console
        self.client = client
        self.headers: dict[str, str] = {}
        self.character: dict[str, Any] = {}

    async def post(self, path: str, body: Any = None) -> Any:
        r = await self.client.post(path, json=body, headers=self.headers)
        if not r.is_success:
            raise DemoFailed(f"POST {path} answered {r.status_code}: {_message(r)}")
        return r.json()

    async def patch(self, path: str, body: Any) -> Any:
        r = await self.client.patch(path, json=body, headers=self.headers)
        if not r.is_success:
            raise DemoFailed(f"PATCH {path} answered {r.status_code}: {_message(r)}")
        return r.json()

    async def get(self, path: str) -> Any:
        r = await self.client.get(path, headers=self.headers)
        if not r.is_success:
            raise DemoFailed(f"GET {path} answered {r.status_code}: {_message(r)}")
        return r.json()

    async def register(self, *, quiet: bool = False) -> None:
        name = f"demo_{secrets.token_hex(3)}"
        body = await self.post(
            "/api/auth/register", {"username": name, "password": "demo-pass-123"}
        )
        self.headers = {"Authorization": f"Bearer {body['token']}"}
        if not quiet:
            self.console.print(f"[bold]1.[/] Registered [green]{name}[/] and got a bearer token.")

    async def generate(self) -> dict[str, Any]:
        self.console.print("[bold]2.[/] Generating a character: eight categories at once…")
        status = dict.fromkeys(CATEGORIES, "…")
        started = time.perf_counter()

        def table() -> Table:
            t = Table(show_header=True, header_style="bold")
            t.add_column("category")
            t.add_column("status")
            for category, state in status.items():
                t.add_row(category, state)
            return t

        character: dict[str, Any] = {}
        with Live(table(), console=self.console, refresh_per_second=20) as live:
            body = {"name": "Captain Ilsa", "source_text": "A retired airship captain."}
            async for name, data in sse_events(
                self.client, "/api/characters/generate", body, self.headers
            ):
                if name == "category":
                    elapsed = time.perf_counter() - started
                    ok = data["status"] == "ok"
                    mark = "[green]ok[/]" if ok else "[red]failed[/]"
                    status[data["category"]] = f"{mark} at {elapsed:.2f} s"
                    live.update(table())
                elif name == "character":
                    character = data
        took = time.perf_counter() - started
        self.console.print()
        self.console.print(f"   {character['name']} is {character['status']} after {took:.2f} s.")
        return character

    async def chat(self, character: dict[str, Any]) -> None:
        self.console.print("[bold]3.[/] Streaming a reply token by token:")
        self.console.print("   [dim]you:[/] What did you see on your last voyage?")
        self.console.print(f"   [cyan]{character['name']}:[/] ", end="")
        path = f"/api/characters/{character['id']}/chat"
        body = {"content": "What did you see on your last voyage?"}
        async for name, data in sse_events(self.client, path, body, self.headers):
            if name == "delta":
                self.console.print(data["text"], end="", markup=False, highlight=False)
        self.console.print()

    async def swipes(self, character: dict[str, Any]) -> None:
        """Regenerate the last reply (a swipe), select the first one back, edit a message."""
        self.console.print("[bold]3b.[/] Alternatives (swipes) and edits:")
        path = f"/api/characters/{character['id']}/chat"
        before = (await self.get(f"{path}/messages?limit=2"))["items"]
        first = before[-1]
        again = (await self.post(f"{path}/regenerate"))["reply"]
        self.console.print(
            f"   Regenerated: ‹ {again['sibling_index'] + 1}/{again['sibling_count']} › "
            f"{_clip(again['content'])}"
        )
        page = await self.post(f"{path}/messages/{first['id']}/select")
        shown = page["items"][-1]
        self.console.print(
            f"   Selected the first reply back: ‹ {shown['sibling_index'] + 1}/"
            f"{shown['sibling_count']} › {_clip(shown['content'])}"
        )
        question = before[0]
        edited = await self.patch(
            f"{path}/messages/{question['id']}",
            {"content": question["content"] + " (and who sailed with you?)"},
        )
        self.console.print(
            f"   Edited the question in place: {_clip(edited['content'])} "
            f"[dim](edited_at {edited['edited_at']})[/]"
        )

    async def stop(self, character: dict[str, Any]) -> None:
        self.console.print("[bold]4.[/] Stopping a reply mid-stream:")
        self.console.print("   [dim]you:[/] Tell me the whole story of the red moon.")
        self.console.print(f"   [cyan]{character['name']}:[/] ", end="")
        path = f"/api/characters/{character['id']}/chat"
        deltas = 0
        async for name, data in sse_events(
            self.client, path, {"content": "Tell me the whole story of the red moon."}, self.headers
        ):
            if name == "delta":
                self.console.print(data["text"], end="", markup=False, highlight=False)
                deltas += 1
                if deltas == 5:
                    stopped = await self.post(f"{path}/stop")
                    self.console.print(" [red]■ stop[/]", end="")
                    if not stopped["stopped"]:
                        raise DemoFailed("the reply finished before it could be stopped")
        self.console.print()
        history = await self.get(f"{path}/messages?limit=1")
        last = history["items"][-1]
        self.console.print(
            f"   Stored: {len(last['content'])} characters with status [yellow]{last['status']}[/]."
        )

    async def memory(self, character: dict[str, Any]) -> None:
        self.console.print(
            f"[bold]5.[/] Memory: after {MEMORY_TRIGGER} messages (set low for the demo) the "
            "conversation is compressed in the background…"
        )
        path = f"/api/characters/{character['id']}/chat"
        for line in ("My name is Ada, I sail the northern route.", "I lost my brother at sea."):
            self.console.print(f"   [dim]you:[/] {line}")
            await self.post(path, {"content": line})
        memories: list[dict[str, Any]] = []
        with trio.move_on_after(60):
            while not memories:
                memories = (await self.get(f"{path}/memories"))["items"]
                if not memories:
                    await trio.sleep(0.5)
        if not memories:
            raise DemoFailed("no memory was produced within 60 s")
        self.console.print(f"   {character['name']} now remembers:")
        for item in memories:
            self._show_memory(item)
        # users see and shape memories: correct one and pin it (then it is in every prompt,
        # and compression never rewrites it)
        corrected = await self.patch(
            f"{path}/memories/{memories[0]['id']}",
            {
                "content": "Ada sails the northern route; her brother was lost at sea.",
                "pinned": True,
            },
        )
        self.console.print("   You correct the first memory and pin it:")
        self._show_memory(corrected)
        found = (await self.get(f"{path}/memories?q=brother%20sea&limit=1"))["items"]
        self.console.print("   Searching the memories for “brother sea” finds:")
        for item in found:
            self._show_memory(item)

    def _show_memory(self, item: dict[str, Any]) -> None:
        pin = "[yellow]pinned[/] " if item["pinned"] else ""
        edited = " [dim](edited)[/]" if item["edited_at"] else ""
        self.console.print(
            f"   • {pin}[green]{item['kind']}[/] [dim]importance {item['importance']}[/] "
            f"{escape(item['content'])}{edited}"
        )

    async def group(self, first: dict[str, Any]) -> None:
        self.console.print(
            "[bold]6.[/] A group turn: the moderator picks two of three characters, who answer "
            "at the same time; then they talk among themselves."
        )
        others = [
            await self.post("/api/characters", {"name": name})
            for name in ("Brother Oswin", "Tamsin the Quick")
        ]
        members = [first, *others]
        names = {m["id"]: m["name"] for m in members}
        styles = {m["id"]: SPEAKER_STYLES[i] for i, m in enumerate(members)}
        group = await self.post(
            "/api/groups",
            {
                "name": "The tavern",
                "character_ids": list(names),
                "strategy": "moderator",
                "max_speakers": 2,
            },
        )
        path = f"/api/groups/{group['id']}/messages"
        body = {"content": "A storm is coming. What do we do?"}
        await self._turns(path, body, names, styles, "The moderator chose")
        self.console.print(
            "   Then the three carry on among themselves for two rounds, without the user "
            "(one `continue`; each round sees the one before):"
        )
        await self._turns(
            f"/api/groups/{group['id']}/continue", {"rounds": 2}, names, styles, "Chosen"
        )

    async def _turns(
        self,
        path: str,
        body: Any,
        names: dict[str, str],
        styles: dict[str, str],
        chose: str,
    ) -> None:
        """Stream group turns (one, or the rounds of a `continue`) as a live table per turn."""
        texts: dict[str, str] = {}

        def table() -> Table:
            t = Table(show_header=False, box=None, padding=(0, 1))
            t.add_column(width=18)
            t.add_column(ratio=1)
            for speaker, text in texts.items():
                t.add_row(f"[{styles[speaker]}]{escape(names[speaker])}[/]", Text(text))
            return t

        with Live(table(), console=self.console, refresh_per_second=20) as live:
            async for name, data in sse_events(self.client, path, body, self.headers):
                if name == "round":
                    if texts:  # keep the finished round on screen above the live one
                        live.console.print(table())
                    texts = {}
                    live.update(table())
                    live.console.print(f"   [bold]Round {data['index'] + 1}[/]")
                elif name == "speakers":
                    texts = dict.fromkeys(data["character_ids"], "")
                    chosen = " and ".join(names[c] for c in data["character_ids"])
                    live.console.print(
                        f"   {chose} {chosen} of {len(names)}: "
                        f"[italic]{escape(data.get('reason') or 'no reason given')}[/]"
                    )
                elif name == "delta":
                    texts[data["character_id"]] += data["text"]
                    live.update(table())
        self.console.print()

    async def card(self) -> None:
        self.console.print(
            "[bold]7.[/] A character travels as a Character Card V2: importing a Chinese card, "
            "with a persona, the greeting opens the chat and the prompts are Chinese:"
        )
        await self.put("/api/me/persona", {"name": "宝玉", "description": "贾府的公子。"})
        character = await self.post("/api/characters/import", CHINESE_CARD)
        history = await self.get(f"/api/characters/{character['id']}/chat/messages")
        name = escape(character["name"])
        for message in history["items"]:
            self.console.print(f"   [cyan]{name}:[/] {escape(message['content'])}")
        line = "妹妹今天可好？"
        self.console.print(f"   [dim]宝玉:[/] {line}")
        self.console.print(f"   [cyan]{name}:[/] ", end="")
        path = f"/api/characters/{character['id']}/chat"
        async for event, data in sse_events(self.client, path, {"content": line}, self.headers):
            if event == "delta":
                self.console.print(data["text"], end="", markup=False, highlight=False)
            elif event == "reply":
                self.console.print(f"\n   [dim](answered by {escape(str(data['model']))})[/]")

    async def put(self, path: str, body: Any) -> Any:
        r = await self.client.put(path, json=body, headers=self.headers)
        if not r.is_success:
            raise DemoFailed(f"PUT {path} answered {r.status_code}: {_message(r)}")
        return r.json()

    async def concurrent(self) -> None:
        self.console.print("[bold]8.[/] Ten users chat at once:")
        users: list[Tour] = []

        async def sign_up() -> None:
            tour = Tour(self.console, self.client)
            await tour.register(quiet=True)
            tour.character = await tour.post("/api/characters", {"name": "Villager"})
            users.append(tour)

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(sign_up)
        timings: list[float] = []

        async def one(tour: Tour) -> None:
            started = time.perf_counter()
            await tour.post(f"/api/characters/{tour.character['id']}/chat", {"content": "Hi!"})
            timings.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for tour in users:
                nursery.start_soon(one, tour)
        wall = time.perf_counter() - started
        serial = sum(timings)
        self.console.print(
            f"   10 chats took [green]{wall:.2f} s[/] together; one after another they would take "
            f"{serial:.2f} s ({serial / wall:.1f}× faster)."
        )


async def _tour(console: Console, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fastnpc-demo-") as tmp:
        async with trio.open_nursery() as nursery:
            llm_settings = LLMSettings()
            if llm_settings.api_key is None:
                fake = await nursery.start(
                    lambda task_status: serve_fake_upstream(
                        behaviour=FakeBehaviour(
                            first_token_delay=0.6, tokens=60, tokens_per_second=40
                        ),
                        task_status=task_status,
                    )
                )
                llm_settings = LLMSettings(api_key=SecretStr("fake"), base_url=fake.base_url)
                console.print(f"[dim]Using the built-in fake LLM at {fake.base_url}[/]")
            else:
                console.print(f"[dim]Using the real provider at {llm_settings.base_url}[/]")
            settings = Settings(
                database_url=f"sqlite:///{Path(tmp) / 'demo.db'}",
                llm=llm_settings,
                memory_trigger_messages=MEMORY_TRIGGER,
                memory_keep_recent=MEMORY_KEEP_RECENT,
            )
            app = create_app(settings)
            stop = trio.Event()
            async with trio.open_nursery() as server:
                binds = await server.start(
                    lambda task_status: serve(
                        app,
                        f"127.0.0.1:{port}",
                        shutdown_trigger=stop.wait,
                        task_status=task_status,
                    )
                )
                console.print(f"[dim]FastNPC is serving on {binds[0]} (temporary database)[/]\n")
                try:
                    async with httpx.AsyncClient(base_url=binds[0], timeout=120) as client:
                        tour = Tour(console, client)
                        await tour.register()
                        character = await tour.generate()
                        await tour.chat(character)
                        await tour.swipes(character)
                        await tour.stop(character)
                        await tour.memory(character)
                        await tour.group(character)
                        await tour.card()
                        await tour.concurrent()
                finally:
                    stop.set()
            nursery.cancel_scope.cancel()  # the server is down: stop the fake LLM too
    console.print("\n[bold green]Done.[/] The server stopped and the temporary database is gone.")


def run_demo(*, port: int = 0) -> int:
    """Run the tour; returns the process exit code."""
    console = Console()
    os.environ.setdefault("FASTNPC_LLM_MAX_CONCURRENCY", "64")
    logging.getLogger("app").setLevel(logging.WARNING)  # the tour says what happens
    try:
        trio.run(_tour, console, port)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        console.print()
        reason = " ".join(_reason(exc).split())  # one line, however the cause was worded
        print(f"fastnpc demo: failed: {reason}", file=sys.stderr, flush=True)
        return 1
    return 0


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    """One line for what stopped the tour (the first error inside any exception groups)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, DemoFailed):
        return str(exc)
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__} talking to the demo server: {exc}"
    return f"{type(exc).__name__}: {exc}"
