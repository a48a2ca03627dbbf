"""History paging in a conversation tree vs a linear conversation, on SQLite and PostgreSQL.

Builds, per backend, two conversations of 10,000 messages each: a linear one, and a
tree of 200 branches (each branch 50 messages, forking from a random earlier message;
the active path ends in the last branch). Then times, through the async ``Database``
API (median of ``--repeat`` runs, in milliseconds):

* ``page_last``: ``list_messages(limit=50)`` (the last page of the active path);
* ``page_deep``: a page ``before`` a message deep in the active path;
* ``select``: ``tree.select_message`` of the first message (promote + walk down);
* ``count_uncompressed``: the memory trigger's count with nothing compressed (a walk of the
  whole active path: the worst case), and ``count_compressed_prefix`` once all but the
  newest 40 messages of the path are compressed (the steady state: the walk stops at
  the compressed prefix).

    .venv/bin/python bench/tree_bench.py                        # SQLite (+ PostgreSQL if
    .venv/bin/python bench/tree_bench.py --postgres URL         #  FASTNPC_TEST_POSTGRES_URL)

PostgreSQL runs in a throwaway schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import trio
from sqlalchemy import Connection, update

from bench.storage_bench import temp_url
from storage import Database, characters, conversations, messages, open_database, tree, users
from storage.schema import messages as messages_table
from storage.tree import NewMessage

MESSAGES = 10_000
BRANCHES = 200
PAGE = 50
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def linear_items(n: int) -> list[NewMessage]:
    return [_item(i, i - 1 if i else None) for i in range(n)]


def tree_items(n: int, branches: int, seed: int = 7) -> list[NewMessage]:
    """``branches`` chains of ``n // branches`` messages, each forking from a random earlier one."""
    rng = random.Random(seed)
    per_branch = n // branches
    items: list[NewMessage] = []
    for _ in range(branches):
        parent = rng.randrange(len(items)) if items else None
        for _ in range(per_branch):
            items.append(_item(len(items), parent))
            parent = len(items) - 1
    return items


def _item(i: int, parent: int | None) -> NewMessage:
    return NewMessage(
        role="user" if i % 2 == 0 else "assistant",
        content=f"message {i} " + "x" * 200,
        status="complete",
        parent=parent,
        character_id=None,
        created_at=T0 + timedelta(seconds=i),
    )


async def build(db: Database, name: str, items: list[NewMessage]) -> int:
    user = await db.write(users.create_user, name, "hash")
    character = await db.write(characters.create_character, user.id, "Mira", {})
    conv = await db.write(conversations.get_or_create_direct, user.id, character.id)
    await db.write(tree.import_messages, conv.id, items, len(items) - 1)
    return conv.id


async def median_ms(repeat: int, op: Callable[[], Awaitable[object]]) -> float:
    await op()  # warm caches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await op()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


async def measure(db: Database, conversation_id: int, repeat: int) -> dict[str, float | int]:
    path = await db.read(messages.active_path, conversation_id)
    deep = path[len(path) // 2].id
    first = path[0].id
    leaf = path[-1].id
    figures: dict[str, float | int] = {"active_path_length": len(path)}
    figures["page_last"] = await median_ms(
        repeat, lambda: db.read(messages.list_messages, conversation_id, limit=PAGE, before=None)
    )
    figures["page_deep"] = await median_ms(
        repeat, lambda: db.read(messages.list_messages, conversation_id, limit=PAGE, before=deep)
    )
    figures["count_uncompressed"] = await median_ms(
        repeat, lambda: db.read(messages.count_uncompressed, conversation_id)
    )

    def compress_prefix(conn: Connection) -> None:
        conn.execute(
            update(messages_table)
            .where(messages_table.c.id.in_([m.id for m in path[:-40]]))
            .values(compressed=True)
        )

    async def select_first_then_back() -> None:
        await db.write(tree.select_message, conversation_id, first)
        await db.write(tree.select_message, conversation_id, leaf)

    figures["select_first_and_back"] = await median_ms(max(3, repeat // 5), select_first_then_back)
    await db.write(compress_prefix)
    figures["count_compressed_prefix"] = await median_ms(
        repeat, lambda: db.read(messages.count_uncompressed, conversation_id)
    )
    return figures


async def run_backend(
    backend: str, postgres_url: str | None, repeat: int
) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    async with temp_url(backend, postgres_url) as url, open_database(url) as db:
        shapes = {
            "linear": linear_items(MESSAGES),
            "tree": tree_items(MESSAGES, BRANCHES),
        }
        for shape, items in shapes.items():
            conversation_id = await build(db, f"bench_{shape}", items)
            figures = await measure(db, conversation_id, repeat)
            row: dict[str, object] = {"backend": backend, "shape": shape, "messages": len(items)}
            row.update(figures)
            print(json.dumps(row), flush=True)
            results.append(row)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("FASTNPC_TEST_POSTGRES_URL"))
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if args.postgres else [])
    rows: list[dict[str, object]] = []
    for backend in backends:
        rows.extend(await run_backend(backend, args.postgres, args.repeat))
    columns = [
        "backend",
        "shape",
        "active_path_length",
        "page_last",
        "page_deep",
        "count_uncompressed",
        "count_compressed_prefix",
        "select_first_and_back",
    ]
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    trio.run(main)
