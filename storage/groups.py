"""Groups of characters (ordered members) and their group conversation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update

from . import rows
from .records import Group, GroupStrategy
from .schema import conversations, group_members, groups


def create_group(
    conn: Connection,
    user_id: int,
    name: str,
    character_ids: Sequence[int],
    *,
    strategy: GroupStrategy,
    max_speakers: int,
    muted_character_ids: Sequence[int] = (),
    talkativeness: Mapping[int, float] | None = None,
    allow_self_responses: bool = False,
) -> Group:
    """Create a group with members in the given order, and its conversation.

    The caller checks the characters are the user's (and that muted ids and talkativeness
    keys are members); a missing character id raises ``ConstraintViolation`` (foreign key).
    """
    row = conn.execute(
        groups.insert()
        .values(
            user_id=user_id,
            name=name,
            strategy=strategy,
            max_speakers=max_speakers,
            muted_character_ids=list(muted_character_ids),
            talkativeness=_talkativeness_json(talkativeness or {}),
            allow_self_responses=allow_self_responses,
        )
        .returning(*groups.c)
    ).one()
    _set_members(conn, row.id, character_ids)
    conversation_id = conn.execute(
        conversations.insert()
        .values(user_id=user_id, kind="group", group_id=row.id)
        .returning(conversations.c.id)
    ).scalar_one()
    return rows.group(row, list(character_ids), conversation_id)


def get_group(conn: Connection, user_id: int, group_id: int) -> Group | None:
    """The group if it exists and belongs to ``user_id``, else None."""
    found = _load(conn, groups.c.user_id == user_id, groups.c.id == group_id)
    return found[0] if found else None


def list_groups(conn: Connection, user_id: int) -> list[Group]:
    """All of the user's groups, oldest first."""
    return _load(conn, groups.c.user_id == user_id)


def update_group(
    conn: Connection,
    user_id: int,
    group_id: int,
    *,
    name: str | None = None,
    character_ids: Sequence[int] | None = None,
    strategy: GroupStrategy | None = None,
    max_speakers: int | None = None,
    muted_character_ids: Sequence[int] | None = None,
    talkativeness: Mapping[int, float] | None = None,
    allow_self_responses: bool | None = None,
) -> Group | None:
    """Change the given fields (members replaced in the new order; `talkativeness` replaces
    the whole map — the caller merges); None if not the user's."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if strategy is not None:
        values["strategy"] = strategy
    if max_speakers is not None:
        values["max_speakers"] = max_speakers
    if muted_character_ids is not None:
        values["muted_character_ids"] = list(muted_character_ids)
    if talkativeness is not None:
        values["talkativeness"] = _talkativeness_json(talkativeness)
    if allow_self_responses is not None:
        values["allow_self_responses"] = allow_self_responses
    owned = groups.c.id == group_id, groups.c.user_id == user_id
    if values:
        if conn.execute(update(groups).where(*owned).values(**values)).rowcount == 0:
            return None
    elif conn.execute(select(groups.c.id).where(*owned).with_for_update()).first() is None:
        return None
    if character_ids is not None:
        conn.execute(delete(group_members).where(group_members.c.group_id == group_id))
        _set_members(conn, group_id, character_ids)
    return get_group(conn, user_id, group_id)


def delete_group(conn: Connection, user_id: int, group_id: int) -> bool:
    """Delete the group with its conversation, messages and memories; False if not the user's."""
    result = conn.execute(
        delete(groups).where(groups.c.id == group_id, groups.c.user_id == user_id)
    )
    return result.rowcount > 0


def _talkativeness_json(talkativeness: Mapping[int, float]) -> dict[str, float]:
    return {str(k): float(v) for k, v in talkativeness.items()}


def _set_members(conn: Connection, group_id: int, character_ids: Sequence[int]) -> None:
    if character_ids:
        conn.execute(
            group_members.insert(),
            [
                {"group_id": group_id, "character_id": character_id, "position": position}
                for position, character_id in enumerate(character_ids)
            ],
        )


def _load(conn: Connection, *where: Any) -> list[Group]:
    group_rows: Sequence[Row[Any]] = conn.execute(
        select(groups, conversations.c.id.label("conversation_id"))
        .join(conversations, conversations.c.group_id == groups.c.id)
        .where(*where)
        .order_by(groups.c.id)
    ).all()
    if not group_rows:
        return []
    members: defaultdict[int, list[int]] = defaultdict(list)
    for member in conn.execute(
        select(group_members.c.group_id, group_members.c.character_id)
        .where(group_members.c.group_id.in_([row.id for row in group_rows]))
        .order_by(group_members.c.group_id, group_members.c.position)
    ):
        members[member.group_id].append(member.character_id)
    return [rows.group(row, members[row.id], row.conversation_id) for row in group_rows]
