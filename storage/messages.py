"""Messages of a conversation's tree; the history and prompt windows follow the active path.

Ids increase strictly (AUTOINCREMENT / identity), so id order is time order and a
child's id is greater than its parent's. See ``storage.tree`` for the tree itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Select, bindparam, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import NamedFromClause

from . import memories, tree
from .direct import Direct, bound
from .errors import InvalidReference
from .records import Message, MessageRole, MessageStatus, Page, Turn
from .schema import messages
from .timestamps import as_utc, utcnow

ACTIVE_LEAF: Literal["active_leaf"] = "active_leaf"

W = TypeVar("W", Message, Turn)  # what a walk up the tree gives per message

# ``add_message`` runs twice per chat reply: on the driver's cursor, see ``storage.direct``
_INSERT = Direct(
    messages.insert().values(bound(c for c in messages.c if c.key != "id")).returning(messages.c.id)
)


def add_message(
    conn: Connection,
    conversation_id: int,
    role: MessageRole,
    content: str,
    *,
    character_id: int | None = None,
    status: MessageStatus = "complete",
    parent_id: int | None | Literal["active_leaf"] = ACTIVE_LEAF,
    model: str | None = None,
    created_at: datetime | None = None,
    edited_at: datetime | None = None,
) -> Message:
    """Add a message to the conversation's tree and make it the active leaf.

    By default its parent is the current active leaf (appending to the active
    path, so concurrent appends chain in stored order). An explicit
    ``parent_id`` (None: a new root) adds it elsewhere, e.g. as an alternative
    of an existing message; the new message becomes the last active child of its
    parent and the whole path up to it is active, and memories made stale by the
    change are dropped (``memories.invalidate_stale``; the caller schedules the
    compression check as after any message). Raises ``tree.TreeError`` when
    ``parent_id`` is not a message of the conversation.
    """
    leaf = tree.lock_conversation(conn, conversation_id)
    explicit = parent_id != ACTIVE_LEAF
    parent: int | None = leaf if parent_id == ACTIVE_LEAF else parent_id
    if explicit and parent is not None:
        if tree.get_in_conversation(conn, conversation_id, parent) is None:
            raise tree.TreeError(f"message {parent} is not in conversation {conversation_id}")
    # the siblings give the new rank and, the new id being the largest, its position
    ranks = tree.sibling_ranks(conn, conversation_id, parent)
    # the record is made of what was stored (as read back: UTC), not read back
    created_at = utcnow() if created_at is None else as_utc(created_at)
    edited_at = None if edited_at is None else as_utc(edited_at)
    message_id: int = _INSERT.scalar(
        conn,
        {
            "conversation_id": conversation_id,
            "role": role,
            "content": content,
            "character_id": character_id,
            "status": status,
            "compressed": False,
            "created_at": created_at,
            "parent_id": parent,
            "active_rank": max(ranks) + 1 if ranks else 0,
            "edited_at": edited_at,
            "model": model,
        },
    )
    if explicit and parent is not None and parent != leaf:
        tree.promote(conn, conversation_id, parent)
    tree.set_active_leaf(conn, conversation_id, message_id)
    if explicit and parent != leaf:
        # the active path changed: memories of the path left behind stop counting
        memories.invalidate_stale(conn, conversation_id)
    return Message(
        id=message_id,
        conversation_id=conversation_id,
        role=role,
        content=content,
        character_id=character_id,
        status=status,
        compressed=False,
        created_at=created_at,
        parent_id=parent,
        sibling_index=len(ranks),
        sibling_count=len(ranks) + 1,
        edited_at=edited_at,
        model=model,
    )


def find_message(
    conn: Connection,
    conversation_id: int,
    *,
    role: MessageRole,
    character_id: int | None,
    created_at: datetime,
    content: str,
) -> Message | None:
    """The message stored with exactly these attributes, or None (for idempotent replays)."""
    params = {
        "conversation_id": conversation_id,
        "role": role,
        "created_at": created_at,
        "content": content,
    }
    if character_id is None:
        row = conn.execute(_FIND_WITHOUT_CHARACTER, params).first()
    else:
        row = conn.execute(_FIND_WITH_CHARACTER, params | {"character_id": character_id}).first()
    return tree.hydrate(conn, [row])[0] if row else None


def _find(*character: ColumnElement[bool]) -> Select[Any]:
    return (
        select(messages)
        .where(
            messages.c.conversation_id == bindparam("conversation_id"),
            messages.c.role == bindparam("role"),
            *character,
            messages.c.created_at == bindparam("created_at"),
            messages.c.content == bindparam("content"),
        )
        .limit(1)
    )


_FIND_WITHOUT_CHARACTER = _find(messages.c.character_id.is_(None))
_FIND_WITH_CHARACTER = _find(messages.c.character_id == bindparam("character_id"))


def get_message(conn: Connection, message_id: int) -> Message | None:
    """The message with that id, or None."""
    row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
    return tree.hydrate(conn, [row])[0] if row else None


def update_message(
    conn: Connection,
    message_id: int,
    *,
    content: str | None = None,
    status: MessageStatus | None = None,
    model: str | None = None,
) -> Message | None:
    """Change a message's content, status and/or model (e.g. finish a ``streaming`` one).

    This is the generation's own update: it does not set ``edited_at``
    (``tree.edit_message`` is a user's edit).
    """
    values: dict[str, str] = {}
    if content is not None:
        values["content"] = content
    if status is not None:
        values["status"] = status
    if model is not None:
        values["model"] = model
    if not values:
        return get_message(conn, message_id)
    row = conn.execute(
        messages.update().where(messages.c.id == message_id).values(**values).returning(*messages.c)
    ).first()
    return tree.hydrate(conn, [row])[0] if row else None


def list_messages(
    conn: Connection, conversation_id: int, *, limit: int, before: int | None
) -> Page:
    """A page of the active path: the ``limit`` messages above ``before`` (exclusive), oldest
    first; without ``before``, the last page (ending at the active leaf).

    ``before`` may name any message of the conversation (the page is then its
    ancestors); one that names no message of it raises ``InvalidReference``. ``next_before`` is the
    id of the oldest message in the page when older messages exist, otherwise
    None. Cost: ``limit`` steps up the tree, whatever its size.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if before is None:
        start = tree.active_leaf(conn, conversation_id)
    else:
        anchor = conn.execute(
            select(messages.c.parent_id).where(
                messages.c.id == before, messages.c.conversation_id == conversation_id
            )
        ).first()
        if anchor is None:
            raise InvalidReference(f"message {before} is not in this conversation")
        start = anchor.parent_id
    walked = tree.path_messages(conn, conversation_id, start, max_steps=limit + 1)
    items = walked[-limit:]
    next_before = items[0].id if len(walked) > limit else None
    return Page(items=items, next_before=next_before)


def message_in_conversation(conn: Connection, conversation_id: int, message_id: int) -> bool:
    """Whether ``message_id`` names a message of the conversation (e.g. a page's ``before``)."""
    return tree.get_in_conversation(conn, conversation_id, message_id) is not None


def _uncompressed_suffix(
    walk: Callable[..., list[W]],
    conn: Connection,
    conversation_id: int,
    *,
    limit: int | None = None,
    upto: int | None = None,
) -> list[W]:
    """The active path's uncompressed messages as ``walk`` (``tree.path_messages`` or
    ``tree.path_turns``) gives them, oldest first (the newest ``limit`` of them).

    Compressed messages form a prefix of the active path (compression takes the
    oldest uncompressed ones; ``memories.invalidate_stale`` keeps it so after a
    tree change), so the walk stops at the first compressed message: its cost is
    the uncompressed part, not the conversation's length. ``upto``: walk from that
    message instead of the active leaf.
    """
    return walk(
        conn,
        conversation_id,
        tree.active_leaf(conn, conversation_id) if upto is None else upto,
        halt=_compressed,
        keep=_uncompressed,
        limit=limit,
    )


def _compressed(table: NamedFromClause) -> ColumnElement[bool]:
    return table.c.compressed.is_(True)


def _uncompressed(table: NamedFromClause) -> ColumnElement[bool]:
    return table.c.compressed.is_(False)


def _assistant(table: NamedFromClause) -> ColumnElement[bool]:
    return table.c.role == "assistant"


def _character_reply(table: NamedFromClause) -> ColumnElement[bool]:
    return (table.c.role == "assistant") & table.c.character_id.is_not(None)


def recent_uncompressed(
    conn: Connection, conversation_id: int, *, limit: int, upto: int | None = None
) -> list[Message]:
    """The newest ``limit`` uncompressed messages of the active path, oldest first.

    ``upto``: the path from the root to that message instead (e.g. the prompt of
    a regenerated reply: the path up to the old reply's parent); a message of
    another conversation gives an empty list.
    """
    return _uncompressed_suffix(tree.path_messages, conn, conversation_id, limit=limit, upto=upto)


def recent_turns(
    conn: Connection, conversation_id: int, *, limit: int, upto: int | None = None
) -> list[Turn]:
    """`recent_uncompressed` as `Turn`s (role, content, status): what a prompt reads."""
    return _uncompressed_suffix(tree.path_turns, conn, conversation_id, limit=limit, upto=upto)


def active_path(conn: Connection, conversation_id: int) -> list[Message]:
    """Every message of the active path, root first (a full walk: exports, maintenance)."""
    return tree.path_messages(conn, conversation_id, tree.active_leaf(conn, conversation_id))


def count_uncompressed(
    conn: Connection,
    conversation_id: int,
    *,
    leaf: int | None | Literal["active_leaf"] = ACTIVE_LEAF,
) -> int:
    """How many messages of the active path are not yet compressed (``leaf``: the active
    leaf's id when the caller knows it, e.g. the message it just added)."""
    if leaf == ACTIVE_LEAF:
        leaf = tree.active_leaf(conn, conversation_id)
    if leaf is None:
        return 0
    walk = tree.walk_up(conversation_id, leaf, halt=_compressed)
    return int(_count_statement().scalar(conn, walk.params))


@lru_cache(maxsize=1)
def _count_statement() -> Direct:
    up = tree.walk_up(0, 0, halt=_compressed).cte
    return Direct(
        select(func.count())
        .select_from(up)
        .join(messages, messages.c.id == up.c.id)
        .where(messages.c.compressed.is_(False))
    )


def oldest_uncompressed(
    conn: Connection, conversation_id: int, *, keep_recent: int
) -> list[Message]:
    """The active path's uncompressed messages except the newest ``keep_recent``, oldest first.

    This is what a compression would consume; pass their ids as
    ``memories.apply_compression(message_ids=...)``.
    """
    if keep_recent < 0:
        raise ValueError("keep_recent must not be negative")
    pending = _uncompressed_suffix(tree.path_messages, conn, conversation_id)
    return pending[: len(pending) - keep_recent] if keep_recent else pending


def last_assistant_message(conn: Connection, conversation_id: int) -> Message | None:
    """The newest assistant message on the active path, or None."""
    found = tree.path_messages(
        conn,
        conversation_id,
        tree.active_leaf(conn, conversation_id),
        halt=_assistant,
        keep=_assistant,
    )
    return found[-1] if found else None


def delete_message(conn: Connection, message_id: int) -> None:
    """Delete a message and its descendants (no error if it is gone).

    When the active leaf was among them the active path moves as
    ``tree.delete_subtree`` describes (deleting the leaf: it ends at its parent).
    """
    conversation_id = conn.execute(
        select(messages.c.conversation_id).where(messages.c.id == message_id)
    ).scalar_one_or_none()
    if conversation_id is not None:
        tree.delete_subtree(conn, conversation_id, message_id)


def previous_turn_speakers(conn: Connection, conversation_id: int) -> list[int]:
    """The character ids of the replies on the active path since its newest user message (the
    previous turn's speakers), in the order they were stored."""
    found = tree.path_messages(
        conn,
        conversation_id,
        tree.active_leaf(conn, conversation_id),
        halt=_user,
        keep=_character_reply,
    )
    return [m.character_id for m in found if m.character_id is not None]


def _user(table: NamedFromClause) -> ColumnElement[bool]:
    return table.c.role == "user"
