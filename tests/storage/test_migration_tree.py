"""Migration 0003: conversations stored by the linear schema become single paths, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime

import trio
from alembic import command
from sqlalchemy import text

from storage import messages, open_database, tree
from storage.engine import create_database_engine
from storage.migrate import alembic_config

T0 = datetime(2026, 11, 1, tzinfo=UTC).isoformat()


def _build_linear_database(url: str) -> dict[int, list[int]]:
    """A database at revision 0001 holding two interleaved conversations; their message ids."""
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn, conn.begin():
            command.upgrade(alembic_config(conn), "0001")
        with engine.connect() as conn, conn.begin():
            conn.execute(
                text(
                    "INSERT INTO users (username, password_hash, is_admin, disabled, created_at)"
                    " VALUES ('old', 'h', false, false, :t)"
                ),
                {"t": T0},
            )
            user_id = conn.execute(text("SELECT id FROM users")).scalar_one()
            conversation_ids = []
            for name in ("A", "B", "Empty"):
                conn.execute(
                    text(
                        "INSERT INTO characters (user_id, name, status, profile, created_at,"
                        " updated_at) VALUES (:u, :n, 'ready', '{}', :t, :t)"
                    ),
                    {"u": user_id, "n": name, "t": T0},
                )
                character_id = conn.execute(
                    text("SELECT id FROM characters WHERE name = :n"), {"n": name}
                ).scalar_one()
                conn.execute(
                    text(
                        "INSERT INTO conversations (user_id, kind, character_id, created_at)"
                        " VALUES (:u, 'direct', :c, :t)"
                    ),
                    {"u": user_id, "c": character_id, "t": T0},
                )
                conversation_ids.append(
                    conn.execute(
                        text("SELECT id FROM conversations WHERE character_id = :c"),
                        {"c": character_id},
                    ).scalar_one()
                )
            sent: dict[int, list[int]] = {c: [] for c in conversation_ids}
            for i in range(7):
                conversation_id = conversation_ids[i % 2]
                conn.execute(
                    text(
                        "INSERT INTO messages (conversation_id, role, content, status,"
                        " compressed, created_at) VALUES (:c, :r, :m, 'complete', :z, :t)"
                    ),
                    {
                        "c": conversation_id,
                        "r": "user" if i % 4 < 2 else "assistant",
                        "m": f"m{i}",
                        "z": i < 2,
                        "t": T0,
                    },
                )
                sent[conversation_id].append(
                    conn.execute(text("SELECT MAX(id) FROM messages")).scalar_one()
                )
            return sent
    finally:
        engine.dispose()


async def test_linear_conversations_become_single_paths(storage_url: str) -> None:
    sent = await trio.to_thread.run_sync(_build_linear_database, storage_url)
    async with open_database(storage_url) as db:  # migrates 0001 → head
        for conversation_id, ids in sent.items():
            path = await db.read(messages.active_path, conversation_id)
            assert [m.id for m in path] == ids
            assert [m.parent_id for m in path] == [None, *ids[:-1]] if ids else path == []
            assert all(m.sibling_count == 1 and m.edited_at is None for m in path)
            assert await db.read(tree.active_leaf, conversation_id) == (ids[-1] if ids else None)
            page = await db.read(messages.list_messages, conversation_id, limit=2, before=None)
            assert [m.id for m in page.items] == ids[-2:]
        first, second, empty = sent
        assert [m.content for m in await db.read(messages.active_path, first)] == [
            "m0",
            "m2",
            "m4",
            "m6",
        ]
        assert (await db.read(messages.active_path, first))[0].compressed
        # the migrated tree keeps growing from its leaf
        added = await db.write(messages.add_message, second, "user", "after")
        assert added.parent_id == sent[second][-1]
        assert await db.read(messages.active_path, empty) == []
