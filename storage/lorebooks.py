"""Lorebooks (world info): a user's books of entries, attached in order to characters and groups.

Every change to a book or one of its entries bumps the book's ``updated_at``. Ownership is
checked here (a book, entry or attachment of another user is None/False, like a missing one);
the caller checks that the character or group of an attachment is the user's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, delete, select, update

from .direct import Direct
from .records import Lorebook, LoreEntry, LorePosition
from .schema import character_lorebooks, group_lorebooks, lorebook_entries, lorebooks
from .timestamps import utcnow

__all__ = [
    "BOOK_FIELDS",
    "ENTRY_FIELDS",
    "NewEntry",
    "NewLorebook",
    "add_entry",
    "attached_lorebooks",
    "character_lorebook_ids",
    "create_lorebook",
    "delete_entry",
    "delete_lorebook",
    "get_lorebook",
    "group_lorebook_ids",
    "list_lorebooks",
    "owned_lorebook_ids",
    "set_character_lorebooks",
    "set_group_lorebooks",
    "update_entry",
    "update_lorebook",
]


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A new entry's fields (defaults as API.md's)."""

    keys: Sequence[str] = ()
    secondary_keys: Sequence[str] = ()
    selective: bool = False
    constant: bool = False
    enabled: bool = True
    case_sensitive: bool = False
    use_regex: bool = False
    content: str = ""
    insertion_order: int = 100
    priority: int = 10
    position: LorePosition = "before_char"
    comment: str = ""
    extra: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NewLorebook:
    """A new lorebook's fields (defaults as API.md's)."""

    name: str
    description: str = ""
    scan_depth: int = 4
    token_budget: int = 512
    recursive: bool = False
    extra: Mapping[str, Any] | None = None
    entries: Sequence[NewEntry] = field(default_factory=tuple)


BOOK_FIELDS = frozenset({"name", "description", "scan_depth", "token_budget", "recursive"})
ENTRY_FIELDS = frozenset(
    {
        "keys",
        "secondary_keys",
        "selective",
        "constant",
        "enabled",
        "case_sensitive",
        "use_regex",
        "content",
        "insertion_order",
        "priority",
        "position",
        "comment",
    }
)


def _entry_values(entry: NewEntry) -> dict[str, Any]:
    values = asdict(entry)
    values["keys"] = list(entry.keys)
    values["secondary_keys"] = list(entry.secondary_keys)
    values["extra"] = None if entry.extra is None else dict(entry.extra)
    return values


def _entry(row: Row[Any]) -> LoreEntry:
    return LoreEntry(
        id=row.id,
        lorebook_id=row.lorebook_id,
        keys=list(row.keys),
        secondary_keys=list(row.secondary_keys),
        selective=row.selective,
        constant=row.constant,
        enabled=row.enabled,
        case_sensitive=row.case_sensitive,
        use_regex=row.use_regex,
        content=row.content,
        insertion_order=row.insertion_order,
        priority=row.priority,
        position=row.position,
        comment=row.comment,
        extra=row.extra,
    )


def create_lorebook(conn: Connection, user_id: int, book: NewLorebook) -> Lorebook:
    """Create a lorebook with its entries (ids in the given order)."""
    now = utcnow()
    book_id = conn.execute(
        lorebooks.insert()
        .values(
            user_id=user_id,
            name=book.name,
            description=book.description,
            scan_depth=book.scan_depth,
            token_budget=book.token_budget,
            recursive=book.recursive,
            extra=None if book.extra is None else dict(book.extra),
            created_at=now,
            updated_at=now,
        )
        .returning(lorebooks.c.id)
    ).scalar_one()
    for entry in book.entries:  # one by one: ids follow the given order on both backends
        conn.execute(lorebook_entries.insert().values(lorebook_id=book_id, **_entry_values(entry)))
    found = get_lorebook(conn, user_id, book_id)
    assert found is not None
    return found


def get_lorebook(conn: Connection, user_id: int, lorebook_id: int) -> Lorebook | None:
    """The lorebook with its entries if it is the user's, else None."""
    found = _load(conn, lorebooks.c.user_id == user_id, lorebooks.c.id == lorebook_id)
    return found[0] if found else None


def list_lorebooks(conn: Connection, user_id: int) -> list[Lorebook]:
    """The user's lorebooks with their entries, oldest first."""
    return _load(conn, lorebooks.c.user_id == user_id)


def _touch(conn: Connection, user_id: int, lorebook_id: int, **values: Any) -> bool:
    """Bump ``updated_at`` (and set ``values``) of the user's book, locking its row."""
    result = conn.execute(
        update(lorebooks)
        .where(lorebooks.c.id == lorebook_id, lorebooks.c.user_id == user_id)
        .values(updated_at=utcnow(), **values)
    )
    return result.rowcount > 0


def update_lorebook(
    conn: Connection, user_id: int, lorebook_id: int, values: Mapping[str, Any]
) -> Lorebook | None:
    """Set the given book fields (``BOOK_FIELDS``); None if not the user's."""
    unknown = set(values) - BOOK_FIELDS
    if unknown:
        raise ValueError(f"unknown lorebook fields: {sorted(unknown)}")
    if not _touch(conn, user_id, lorebook_id, **values):
        return None
    return get_lorebook(conn, user_id, lorebook_id)


def delete_lorebook(conn: Connection, user_id: int, lorebook_id: int) -> bool:
    """Delete the book, its entries and its attachments; False if not the user's."""
    result = conn.execute(
        delete(lorebooks).where(lorebooks.c.id == lorebook_id, lorebooks.c.user_id == user_id)
    )
    return result.rowcount > 0


def add_entry(
    conn: Connection, user_id: int, lorebook_id: int, entry: NewEntry
) -> LoreEntry | None:
    """Add an entry to the user's book; None if not the user's."""
    if not _touch(conn, user_id, lorebook_id):
        return None
    row = conn.execute(
        lorebook_entries.insert()
        .values(lorebook_id=lorebook_id, **_entry_values(entry))
        .returning(*lorebook_entries.c)
    ).one()
    return _entry(row)


def update_entry(
    conn: Connection, user_id: int, lorebook_id: int, entry_id: int, values: Mapping[str, Any]
) -> LoreEntry | None:
    """Set the given entry fields (``ENTRY_FIELDS``); None if the entry is not in the user's
    book."""
    unknown = set(values) - ENTRY_FIELDS
    if unknown:
        raise ValueError(f"unknown entry fields: {sorted(unknown)}")
    if not _touch(conn, user_id, lorebook_id):
        return None
    stored = {k: list(v) if k in ("keys", "secondary_keys") else v for k, v in values.items()}
    where = lorebook_entries.c.id == entry_id, lorebook_entries.c.lorebook_id == lorebook_id
    if stored:
        row = conn.execute(
            update(lorebook_entries).where(*where).values(**stored).returning(*lorebook_entries.c)
        ).first()
    else:
        row = conn.execute(select(lorebook_entries).where(*where)).first()
    return None if row is None else _entry(row)


def delete_entry(conn: Connection, user_id: int, lorebook_id: int, entry_id: int) -> bool:
    """Delete an entry of the user's book; False if there is no such entry."""
    if not _touch(conn, user_id, lorebook_id):
        return False
    result = conn.execute(
        delete(lorebook_entries).where(
            lorebook_entries.c.id == entry_id, lorebook_entries.c.lorebook_id == lorebook_id
        )
    )
    return result.rowcount > 0


def owned_lorebook_ids(conn: Connection, user_id: int, lorebook_ids: Sequence[int]) -> set[int]:
    """Those of ``lorebook_ids`` that are the user's."""
    if not lorebook_ids:
        return set()
    return set(
        conn.execute(
            select(lorebooks.c.id).where(
                lorebooks.c.user_id == user_id, lorebooks.c.id.in_(sorted(set(lorebook_ids)))
            )
        ).scalars()
    )


def _set(conn: Connection, table: Table, owner: str, owner_id: int, ids: Sequence[int]) -> None:
    conn.execute(delete(table).where(table.c[owner] == owner_id))
    if ids:
        conn.execute(
            table.insert(),
            [
                {owner: owner_id, "lorebook_id": book_id, "position": position}
                for position, book_id in enumerate(ids)
            ],
        )


def _ids(conn: Connection, table: Table, owner: str, owner_id: int) -> list[int]:
    return [row[0] for row in _ids_statement(table, owner).rows(conn, {"owner_id": owner_id})]


@lru_cache(maxsize=4)
def _ids_statement(table: Table, owner: str) -> Direct:
    return Direct(
        select(table.c.lorebook_id)
        .where(table.c[owner] == bindparam("owner_id"))
        .order_by(table.c.position)
    )


def set_character_lorebooks(conn: Connection, character_id: int, ids: Sequence[int]) -> None:
    """Attach exactly ``ids`` (in order) to the character (ownership checked by the caller)."""
    _set(conn, character_lorebooks, "character_id", character_id, ids)


def set_group_lorebooks(conn: Connection, group_id: int, ids: Sequence[int]) -> None:
    """Attach exactly ``ids`` (in order) to the group (ownership checked by the caller)."""
    _set(conn, group_lorebooks, "group_id", group_id, ids)


def character_lorebook_ids(conn: Connection, character_id: int) -> list[int]:
    """The ids of the lorebooks attached to the character, in order."""
    return _ids(conn, character_lorebooks, "character_id", character_id)


def group_lorebook_ids(conn: Connection, group_id: int) -> list[int]:
    """The ids of the lorebooks attached to the group, in order."""
    return _ids(conn, group_lorebooks, "group_id", group_id)


def attached_lorebooks(
    conn: Connection, character_ids: Sequence[int], group_id: int | None = None
) -> dict[int, list[Lorebook]]:
    """For each character: its lorebooks in order, then the group's (when ``group_id``), each
    book once (where it first appears)."""
    per_character = {
        character_id: character_lorebook_ids(conn, character_id) for character_id in character_ids
    }
    shared = [] if group_id is None else group_lorebook_ids(conn, group_id)
    wanted = sorted({i for ids in per_character.values() for i in ids} | set(shared))
    books = {b.id: b for b in _load(conn, lorebooks.c.id.in_(wanted))} if wanted else {}
    out: dict[int, list[Lorebook]] = {}
    for character_id, ids in per_character.items():
        ordered = list(dict.fromkeys([*ids, *shared]))
        out[character_id] = [books[i] for i in ordered if i in books]
    return out


def _load(conn: Connection, *where: Any) -> list[Lorebook]:
    book_rows = conn.execute(select(lorebooks).where(*where).order_by(lorebooks.c.id)).all()
    if not book_rows:
        return []
    entries: defaultdict[int, list[LoreEntry]] = defaultdict(list)
    for row in conn.execute(
        select(lorebook_entries)
        .where(lorebook_entries.c.lorebook_id.in_([b.id for b in book_rows]))
        .order_by(lorebook_entries.c.lorebook_id, lorebook_entries.c.id)
    ):
        entries[row.lorebook_id].append(_entry(row))
    return [
        Lorebook(
            id=row.id,
            user_id=row.user_id,
            name=row.name,
            description=row.description,
            scan_depth=row.scan_depth,
            token_budget=row.token_budget,
            recursive=row.recursive,
            entries=entries[row.id],
            created_at=row.created_at,
            updated_at=row.updated_at,
            extra=row.extra,
        )
        for row in book_rows
    ]
