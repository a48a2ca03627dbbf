"""Conversation trees: the active path, sibling positions, select, edit and subtree delete.

Every message has a ``parent_id`` (None for a root); a child's id is always
greater than its parent's. ``conversations.active_leaf_id`` ends the active
path (root → leaf). Among siblings, the one with the highest ``active_rank``
(ties: the newest) is the child that was active last, so ``select`` can walk
down from any message.

Walks use ``WITH RECURSIVE`` (SQLite and PostgreSQL), one primary-key lookup per
step, bounded by a step count or a stop condition: a history page costs the
same in a linear conversation and in one with hundreds of branches.
Functions that change the tree lock the conversation row first
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions are
already exclusive), so concurrent appends chain instead of forking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    Connection,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import NamedFromClause

from . import rows
from .direct import Direct
from .errors import ConstraintViolation, NotFound, StorageError
from .records import Message, MessageRole, MessageStatus, Turn
from .schema import conversations, messages

Halt = Callable[[NamedFromClause], ColumnElement[bool]]

# a walk longer than any conversation can be (keeps the recursion bounded)
UNBOUNDED = 2**31 - 1


class TreeError(NotFound):
    """A tree operation named a message that is not in the conversation."""


# ---- the conversation row

# statements of the chat hot path, built once (SQLAlchemy's compiled cache is keyed on them)
# (integer results: run on the driver's cursor, see ``storage.direct``)
_LOCK_CONVERSATION = Direct(
    select(conversations.c.id, conversations.c.active_leaf_id)
    .where(conversations.c.id == bindparam("conversation_id"))
    .with_for_update()
)
_ACTIVE_LEAF = Direct(
    select(conversations.c.active_leaf_id).where(conversations.c.id == bindparam("conversation_id"))
)
_SET_ACTIVE_LEAF = Direct(
    update(conversations)
    .where(conversations.c.id == bindparam("conversation_id"))
    .values(active_leaf_id=bindparam("leaf_id"))
)


def lock_conversation(conn: Connection, conversation_id: int) -> int | None:
    """Lock the conversation row for this transaction; its active leaf id.

    Raises ``ConstraintViolation`` when the conversation does not exist (as the
    foreign key of a message inserted into it would).
    """
    found = _LOCK_CONVERSATION.rows(conn, {"conversation_id": conversation_id})
    if not found:
        raise ConstraintViolation(f"no conversation {conversation_id}")
    leaf: int | None = found[0][1]
    return leaf


def active_leaf(conn: Connection, conversation_id: int) -> int | None:
    """The id of the conversation's active leaf (None when it has no messages)."""
    leaf: int | None = _ACTIVE_LEAF.scalar(conn, {"conversation_id": conversation_id})
    return leaf


def set_active_leaf(conn: Connection, conversation_id: int, leaf_id: int | None) -> None:
    """Record ``leaf_id`` as the end of the active path (no rank changes)."""
    _SET_ACTIVE_LEAF.rows(conn, {"conversation_id": conversation_id, "leaf_id": leaf_id})


# ---- walks


@dataclass(frozen=True, slots=True)
class Walk:
    """A walk up the tree: a recursive CTE ``(id, parent_id, n, halt)`` and its parameters.

    Row ``n=1`` is the start, ``n=2`` its parent, and so on. The CTE is built once per
    ``halt`` (bound parameters carry the values), so SQLAlchemy's compiled cache applies.
    """

    cte: CTE
    params: dict[str, int]


def walk_up(
    conversation_id: int,
    start_id: int,
    *,
    max_steps: int = UNBOUNDED,
    halt: Halt | None = None,
) -> Walk:
    """Walk from ``start_id`` towards the root.

    Stops after ``max_steps`` rows, at the root, or after the first row for which
    ``halt(messages alias)`` is true (that row included). ``halt`` must be a
    module-level function (it keys a cache).
    """
    return Walk(
        _walk_up_cte(halt),
        {"walk_start": start_id, "walk_conversation": conversation_id, "walk_steps": max_steps},
    )


@lru_cache(maxsize=32)
def _walk_up_cte(halt: Halt | None) -> CTE:
    first = messages.alias("w0")
    first_halt = halt(first) if halt is not None else false()
    anchor = select(
        first.c.id,
        first.c.parent_id,
        literal(1, Integer).label("n"),
        first_halt.label("halt"),
    ).where(
        first.c.id == bindparam("walk_start", type_=Integer),
        first.c.conversation_id == bindparam("walk_conversation", type_=Integer),
    )
    up = anchor.cte("walk_up", recursive=True)
    step_table = messages.alias("w1")
    step_halt = halt(step_table) if halt is not None else false()
    step = select(
        step_table.c.id,
        step_table.c.parent_id,
        (up.c.n + 1).label("n"),
        step_halt.label("halt"),
    ).where(
        step_table.c.id == up.c.parent_id,
        up.c.n < bindparam("walk_steps", type_=Integer),
        up.c.halt.is_(False),
    )
    return up.union_all(step)


def path_messages(
    conn: Connection,
    conversation_id: int,
    start_id: int | None,
    *,
    max_steps: int = UNBOUNDED,
    halt: Halt | None = None,
    keep: Halt | None = None,
    limit: int | None = None,
) -> list[Message]:
    """Messages from ``start_id`` up towards the root (see ``walk_up``), oldest first.

    ``keep(messages)`` filters the rows walked (e.g. only uncompressed ones) and
    ``limit`` keeps the newest that many of those. Sibling positions are filled
    in. ``halt`` and ``keep`` must be module-level functions (they key a cache).
    """
    if start_id is None:
        return []
    walk = walk_up(conversation_id, start_id, max_steps=max_steps, halt=halt)
    params: dict[str, int] = dict(walk.params)
    if limit is not None:
        params["walk_limit"] = limit
    found = conn.execute(_path_statement(halt, keep, limit is not None), params).all()
    return hydrate(conn, list(reversed(found)))


def path_turns(
    conn: Connection,
    conversation_id: int,
    start_id: int | None,
    *,
    halt: Halt | None = None,
    keep: Halt | None = None,
    limit: int | None = None,
) -> list[Turn]:
    """`path_messages` as the `Turn`s a prompt reads: three columns, no record or sibling
    positions per message (a prompt walks up to hundreds of them on every reply)."""
    if start_id is None:
        return []
    walk = walk_up(conversation_id, start_id, halt=halt)
    params: dict[str, int] = dict(walk.params)
    if limit is not None:
        params["walk_limit"] = limit
    found = _path_turns_statement(halt, keep, limit is not None).rows(conn, params)
    return [Turn(*row) for row in reversed(found)]


@lru_cache(maxsize=16)
def _path_turns_statement(halt: Halt | None, keep: Halt | None, limited: bool) -> Direct:
    """(Every prompt reads one: on the driver's cursor, see ``storage.direct``.)"""
    return Direct(_path_statement(halt, keep, limited, turns=True))


@lru_cache(maxsize=64)
def _path_statement(
    halt: Halt | None, keep: Halt | None, limited: bool, *, turns: bool = False
) -> Select[Any]:
    up = _walk_up_cte(halt)
    columns = (messages.c.role, messages.c.content, messages.c.status) if turns else (messages,)
    query = select(*columns).join_from(up, messages, messages.c.id == up.c.id)
    if keep is not None:
        query = query.where(keep(messages))
    query = query.order_by(up.c.n)
    if limited:
        query = query.limit(bindparam("walk_limit", type_=Integer))
    return query


def active_path_ids(conn: Connection, conversation_id: int) -> list[int]:
    """The ids of the active path, root first (a full walk: use for maintenance only)."""
    leaf = active_leaf(conn, conversation_id)
    if leaf is None:
        return []
    walk = walk_up(conversation_id, leaf)
    return [row[0] for row in _path_ids_statement().rows(conn, walk.params)]


@lru_cache(maxsize=1)
def _path_ids_statement() -> Direct:
    """(Read by every prompt of a conversation with memories: see ``storage.direct``.)"""
    up = _walk_up_cte(None)
    return Direct(select(up.c.id).order_by(up.c.n.desc()))


def walk_down(conn: Connection, message_id: int) -> int:
    """The leaf reached from ``message_id`` by taking, at each level, the last active child."""
    start = messages.alias("d0")
    anchor = select(start.c.id, literal(0, Integer).label("n")).where(start.c.id == message_id)
    down = anchor.cte("walk_down", recursive=True)
    child = messages.alias("d1")
    next_id = (
        select(child.c.id)
        .where(child.c.parent_id == down.c.id)
        .order_by(child.c.active_rank.desc(), child.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    step = select(next_id.label("id"), (down.c.n + 1).label("n")).where(down.c.id.is_not(None))
    down = down.union_all(step)
    leaf = conn.execute(
        select(down.c.id).where(down.c.id.is_not(None)).order_by(down.c.n.desc()).limit(1)
    ).scalar_one_or_none()
    return message_id if leaf is None else int(leaf)


# ---- siblings


def sibling_filter(conversation_id: int, parent_id: int | None) -> ColumnElement[bool]:
    """Messages of the conversation whose parent is ``parent_id`` (None: the roots)."""
    if parent_id is None:
        return and_(messages.c.conversation_id == conversation_id, messages.c.parent_id.is_(None))
    return messages.c.parent_id == parent_id


def sibling_ranks(conn: Connection, conversation_id: int, parent_id: int | None) -> list[int]:
    """The ``active_rank`` of every child of ``parent_id`` (None: the roots), in any order."""
    if parent_id is None:
        found = _ROOT_RANKS.rows(conn, {"conversation_id": conversation_id})
    else:
        found = _CHILD_RANKS.rows(conn, {"parent_id": parent_id})
    return [int(row[0]) for row in found]


_ROOT_RANKS = Direct(
    select(messages.c.active_rank).where(
        messages.c.conversation_id == bindparam("conversation_id"),
        messages.c.parent_id.is_(None),
    )
)
_CHILD_RANKS = Direct(
    select(messages.c.active_rank).where(messages.c.parent_id == bindparam("parent_id"))
)


def hydrate(conn: Connection, found: Sequence[Row[Any]]) -> list[Message]:
    """Records for ``found`` rows with ``sibling_index``/``sibling_count`` filled in."""
    if not found:
        return []
    parents = sorted({r.parent_id for r in found if r.parent_id is not None})
    root_conversations = sorted({r.conversation_id for r in found if r.parent_id is None})
    params: dict[str, list[int]] = {}
    if parents:
        params["sibling_parents"] = parents
    if root_conversations:
        params["sibling_roots"] = root_conversations
    groups: dict[tuple[int, int | None], list[int]] = {}
    statement = _siblings_statement(bool(parents), bool(root_conversations))
    for sibling in conn.execute(statement, params):
        key = (sibling.conversation_id if sibling.parent_id is None else 0, sibling.parent_id)
        groups.setdefault(key, []).append(sibling.id)
    result = []
    for row in found:
        key = (row.conversation_id if row.parent_id is None else 0, row.parent_id)
        ids = sorted(groups.get(key, [row.id]))
        record = rows.message(row)
        result.append(
            replace(
                record,
                sibling_index=ids.index(row.id) if row.id in ids else 0,
                sibling_count=max(1, len(ids)),
            )
        )
    return result


@lru_cache(maxsize=4)
def _siblings_statement(with_parents: bool, with_roots: bool) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = []
    if with_parents:
        conditions.append(messages.c.parent_id.in_(bindparam("sibling_parents", expanding=True)))
    if with_roots:
        conditions.append(
            and_(
                messages.c.conversation_id.in_(bindparam("sibling_roots", expanding=True)),
                messages.c.parent_id.is_(None),
            )
        )
    return select(messages.c.id, messages.c.parent_id, messages.c.conversation_id).where(
        or_(*conditions)
    )


def children(
    conn: Connection, conversation_id: int, parent_id: int | None, *, role: str | None = None
) -> list[Message]:
    """The children of ``parent_id`` (None: the roots), in creation order, optionally one role."""
    query = select(messages).where(sibling_filter(conversation_id, parent_id))
    if role is not None:
        query = query.where(messages.c.role == role)
    return hydrate(conn, conn.execute(query.order_by(messages.c.id)).all())


def get_in_conversation(conn: Connection, conversation_id: int, message_id: int) -> Message | None:
    """The message if it belongs to the conversation, else None."""
    row = conn.execute(
        _IN_CONVERSATION, {"message_id": message_id, "conversation_id": conversation_id}
    ).first()
    return hydrate(conn, [row])[0] if row else None


_IN_CONVERSATION = select(messages).where(
    messages.c.id == bindparam("message_id"),
    messages.c.conversation_id == bindparam("conversation_id"),
)


# ---- changes


def promote(conn: Connection, conversation_id: int, message_id: int) -> None:
    """Make ``message_id`` and each of its ancestors the last active child of its parent.

    One walk up; each ancestor compares with its siblings through the
    ``(parent_id, active_rank)`` index (the root with the other roots).
    """
    walk = walk_up(conversation_id, message_id)
    up = walk.cte
    target = messages.alias("p0")
    sibling = messages.alias("p1")
    top_of_others = (
        select(func.max(sibling.c.active_rank))
        .where(sibling.c.parent_id == target.c.parent_id, sibling.c.id != target.c.id)
        .scalar_subquery()
    )
    behind = conn.execute(
        select(target.c.id, top_of_others.label("top"))
        .join_from(up, target, target.c.id == up.c.id)
        .where(target.c.parent_id.is_not(None), top_of_others >= target.c.active_rank),
        walk.params,
    ).all()
    raised = [(row.id, int(row.top) + 1) for row in behind]
    root = conn.execute(
        select(target.c.id, target.c.active_rank)
        .join_from(up, target, target.c.id == up.c.id)
        .where(target.c.parent_id.is_(None)),
        walk.params,
    ).first()
    if root is not None:
        top_root = conn.execute(
            select(func.max(messages.c.active_rank)).where(
                sibling_filter(conversation_id, None), messages.c.id != root.id
            )
        ).scalar_one_or_none()
        if top_root is not None and top_root >= root.active_rank:
            raised.append((root.id, int(top_root) + 1))
    for raised_id, rank in raised:
        conn.execute(update(messages).where(messages.c.id == raised_id).values(active_rank=rank))


def select_message(conn: Connection, conversation_id: int, message_id: int) -> int:
    """Make ``message_id`` active: the new leaf is reached by walking down from it.

    Returns the new leaf id. Raises ``TreeError`` if the message is not in the conversation.
    """
    lock_conversation(conn, conversation_id)
    if get_in_conversation(conn, conversation_id, message_id) is None:
        raise TreeError(f"message {message_id} is not in conversation {conversation_id}")
    promote(conn, conversation_id, message_id)
    leaf = walk_down(conn, message_id)
    set_active_leaf(conn, conversation_id, leaf)
    return leaf


def edit_message(
    conn: Connection, conversation_id: int, message_id: int, content: str, *, now: datetime
) -> Message:
    """Change a message's content in place and set ``edited_at``."""
    lock_conversation(conn, conversation_id)
    changed = conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.conversation_id == conversation_id)
        .values(content=content, edited_at=now)
    ).rowcount
    if changed == 0:
        raise TreeError(f"message {message_id} is not in conversation {conversation_id}")
    edited = get_in_conversation(conn, conversation_id, message_id)
    assert edited is not None
    return edited


def subtree_ids(conn: Connection, message_id: int) -> list[int]:
    """``message_id`` and all its descendants."""
    start = messages.alias("s0")
    anchor = select(start.c.id).where(start.c.id == message_id)
    below = anchor.cte("subtree", recursive=True)
    child = messages.alias("s1")
    below = below.union_all(select(child.c.id).where(child.c.parent_id == below.c.id))
    return list(conn.execute(select(below.c.id)).scalars().all())


def delete_subtree(conn: Connection, conversation_id: int, message_id: int) -> list[int]:
    """Delete the message and its descendants; returns the deleted ids.

    If the active leaf was among them, the active path becomes what ``select``
    of the parent's most recently active remaining child gives, or ends at the
    parent when no child remains. Raises ``TreeError`` for a message of another
    conversation.
    """
    leaf = lock_conversation(conn, conversation_id)
    target = get_in_conversation(conn, conversation_id, message_id)
    if target is None:
        raise TreeError(f"message {message_id} is not in conversation {conversation_id}")
    doomed = subtree_ids(conn, message_id)
    for chunk_start in range(0, len(doomed), 500):
        conn.execute(
            delete(messages).where(messages.c.id.in_(doomed[chunk_start : chunk_start + 500]))
        )
    if leaf is not None and leaf in set(doomed):
        successor = conn.execute(
            select(messages.c.id)
            .where(sibling_filter(conversation_id, target.parent_id))
            .order_by(messages.c.active_rank.desc(), messages.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if successor is not None:
            set_active_leaf(conn, conversation_id, walk_down(conn, int(successor)))
        else:
            set_active_leaf(conn, conversation_id, target.parent_id)
    return doomed


# ---- export and import


def all_messages(conn: Connection, conversation_id: int) -> list[Message]:
    """Every message of the conversation's tree in id (creation) order, sibling positions set."""
    found = conn.execute(
        select(messages)
        .where(messages.c.conversation_id == conversation_id)
        .order_by(messages.c.id)
    ).all()
    return hydrate(conn, found)


def is_empty(conn: Connection, conversation_id: int) -> bool:
    """Whether the conversation has no messages."""
    return not _ANY_MESSAGE.rows(conn, {"conversation_id": conversation_id})


_ANY_MESSAGE = Direct(
    select(messages.c.id).where(messages.c.conversation_id == bindparam("conversation_id")).limit(1)
)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message of an imported tree; ``parent`` is the index of an EARLIER item (or None)."""

    role: MessageRole
    content: str
    status: MessageStatus
    parent: int | None
    character_id: int | None
    created_at: datetime
    edited_at: datetime | None = None
    model: str | None = None


class NotEmpty(StorageError):
    """An import into a conversation that already has messages."""


def import_messages(
    conn: Connection, conversation_id: int, items: Sequence[NewMessage], active: int | None
) -> list[int]:
    """Store a whole tree into an EMPTY conversation; ``active`` indexes the active leaf.

    Items are stored in order (so sibling order is kept) and get new ids.
    Returns the new ids. Raises ``NotEmpty`` when the conversation has messages.
    """
    lock_conversation(conn, conversation_id)
    if not is_empty(conn, conversation_id):
        raise NotEmpty(f"conversation {conversation_id} already has messages")
    ids: list[int] = []
    next_ranks: dict[int | None, int] = {}
    for item in items:
        if item.parent is not None and not 0 <= item.parent < len(ids):
            raise ValueError("a parent must come before its children")
        parent_id = None if item.parent is None else ids[item.parent]
        rank = next_ranks.get(parent_id, 0)
        next_ranks[parent_id] = rank + 1
        ids.append(
            conn.execute(
                messages.insert()
                .values(
                    conversation_id=conversation_id,
                    role=item.role,
                    content=item.content,
                    character_id=item.character_id,
                    status=item.status,
                    parent_id=parent_id,
                    active_rank=rank,
                    created_at=item.created_at,
                    edited_at=item.edited_at,
                    model=item.model,
                )
                .returning(messages.c.id)
            ).scalar_one()
        )
    if active is not None:
        promote(conn, conversation_id, ids[active])
        set_active_leaf(conn, conversation_id, ids[active])
    return ids
