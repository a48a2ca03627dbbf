"""Lorebooks (world info): CRUD, attaching to characters and groups, import/export, matching.

Activation itself is `lore_activation` (pure); the formats are `lore_formats` (pure). Chat and
group prompts read the attached books with `storage.lorebooks.attached_lorebooks` in the
transaction that prepares a reply and choose entries with `lore_activation.select_lore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import trio
from pydantic import ValidationError
from sqlalchemy import Connection

from app.errors import InvalidRequest, NotFound
from app.schemas import LorebookIn, LoreEntryIn
from app.services.lore_activation import activate
from app.services.lore_formats import LoreFormatError, export_lorebook, read_lorebook
from app.views import parse_id
from storage import Database, characters, groups, lorebooks
from storage.lorebooks import NewEntry, NewLorebook
from storage.records import Lorebook, LoreEntry


def new_entry(data: LoreEntryIn, extra: dict[str, Any] | None = None) -> NewEntry:
    """A validated entry as storage takes it."""
    return NewEntry(**data.model_dump(), extra=extra)


def new_lorebook(data: LorebookIn, extra: dict[str, Any] | None = None) -> NewLorebook:
    """A validated lorebook (without kept fields) as storage takes it."""
    fields = data.model_dump(exclude={"entries"})
    return NewLorebook(**fields, extra=extra, entries=[new_entry(e) for e in data.entries])


def parse_lorebook(raw: Any, *, default_name: str = "Imported lorebook") -> NewLorebook:
    """A lorebook in any importable format (see `lore_formats`), validated like a created one.
    Raises `LoreFormatError` (with ``details`` for field errors). Pure."""
    book, book_extra, entry_extras = read_lorebook(raw, default_name=default_name)
    try:
        data = LorebookIn.model_validate(book)
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_context=False, include_input=False)
        raise LoreFormatError("the lorebook failed validation", details) from None
    entries = [new_entry(e, x) for e, x in zip(data.entries, entry_extras, strict=True)]
    fields = data.model_dump(exclude={"entries"})
    return NewLorebook(**fields, extra=book_extra, entries=entries)


class LorebookService:
    """A user's lorebooks and where they are attached."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, user_id: int, data: LorebookIn) -> Lorebook:
        return await self._db.write(lorebooks.create_lorebook, user_id, new_lorebook(data))

    async def list_lorebooks(self, user_id: int) -> list[Lorebook]:
        return await self._db.read(lorebooks.list_lorebooks, user_id)

    async def get(self, user_id: int, lorebook_id: int | None) -> Lorebook:
        book = None
        if lorebook_id is not None:
            book = await self._db.read(lorebooks.get_lorebook, user_id, lorebook_id)
        if book is None:
            raise NotFound("no such lorebook")
        return book

    async def update(
        self, user_id: int, lorebook_id: int | None, values: dict[str, Any]
    ) -> Lorebook:
        book = None
        if lorebook_id is not None:
            book = await self._db.write(lorebooks.update_lorebook, user_id, lorebook_id, values)
        if book is None:
            raise NotFound("no such lorebook")
        return book

    async def delete(self, user_id: int, lorebook_id: int | None) -> None:
        if lorebook_id is None or not await self._db.write(
            lorebooks.delete_lorebook, user_id, lorebook_id
        ):
            raise NotFound("no such lorebook")

    async def add_entry(
        self, user_id: int, lorebook_id: int | None, data: LoreEntryIn
    ) -> LoreEntry:
        entry = None
        if lorebook_id is not None:
            entry = await self._db.write(lorebooks.add_entry, user_id, lorebook_id, new_entry(data))
        if entry is None:
            raise NotFound("no such lorebook")
        return entry

    async def update_entry(
        self, user_id: int, lorebook_id: int | None, entry_id: int | None, values: dict[str, Any]
    ) -> LoreEntry:
        entry = None
        if lorebook_id is not None and entry_id is not None:
            entry = await self._db.write(
                lorebooks.update_entry, user_id, lorebook_id, entry_id, values
            )
        if entry is None:
            raise NotFound("no such lorebook entry")
        return entry

    async def delete_entry(
        self, user_id: int, lorebook_id: int | None, entry_id: int | None
    ) -> None:
        if (
            lorebook_id is None
            or entry_id is None
            or not await self._db.write(lorebooks.delete_entry, user_id, lorebook_id, entry_id)
        ):
            raise NotFound("no such lorebook entry")

    async def attach_to_character(
        self, user_id: int, character_id: int | None, raw_ids: Sequence[str]
    ) -> list[int]:
        """Attach exactly these lorebooks, in order, to the character."""
        ids = _lorebook_ids(raw_ids)

        def attach(conn: Connection) -> bool:
            if character_id is None or not _owns_character(conn, user_id, character_id):
                return False
            _check_owned(conn, user_id, ids)
            lorebooks.set_character_lorebooks(conn, character_id, ids)
            return True

        if not await self._db.write(attach):
            raise NotFound("no such character")
        return ids

    async def attach_to_group(
        self, user_id: int, group_id: int | None, raw_ids: Sequence[str]
    ) -> list[int]:
        """Attach exactly these lorebooks, in order, to the group."""
        ids = _lorebook_ids(raw_ids)

        def attach(conn: Connection) -> bool:
            if group_id is None or groups.get_group(conn, user_id, group_id) is None:
                return False
            _check_owned(conn, user_id, ids)
            lorebooks.set_group_lorebooks(conn, group_id, ids)
            return True

        if not await self._db.write(attach):
            raise NotFound("no such group")
        return ids

    async def character_lorebooks(self, user_id: int, character_id: int | None) -> list[int]:
        """The ids of the lorebooks attached to the character, in order."""

        def read(conn: Connection) -> list[int] | None:
            if character_id is None or not _owns_character(conn, user_id, character_id):
                return None
            return lorebooks.character_lorebook_ids(conn, character_id)

        ids = await self._db.read(read)
        if ids is None:
            raise NotFound("no such character")
        return ids

    async def group_lorebooks(self, user_id: int, group_id: int | None) -> list[int]:
        """The ids of the lorebooks attached to the group, in order."""

        def read(conn: Connection) -> list[int] | None:
            if group_id is None or groups.get_group(conn, user_id, group_id) is None:
                return None
            return lorebooks.group_lorebook_ids(conn, group_id)

        ids = await self._db.read(read)
        if ids is None:
            raise NotFound("no such group")
        return ids

    async def import_lorebook(self, user_id: int, upload: bytes) -> Lorebook:
        """Store a lorebook given as JSON in any importable format; 400 when it is none."""
        try:
            book = await trio.to_thread.run_sync(_parse_upload, upload)
        except LoreFormatError as exc:
            raise InvalidRequest(
                f"not a lorebook (V3, V2 character_book or SillyTavern world info): {exc}",
                details=exc.details,
            ) from None
        return await self._db.write(lorebooks.create_lorebook, user_id, book)

    async def export(self, user_id: int, lorebook_id: int | None) -> dict[str, Any]:
        """The lorebook as V3 lorebook JSON."""
        return export_lorebook(await self.get(user_id, lorebook_id))

    async def match(self, user_id: int, lorebook_id: int | None, text: str) -> list[str]:
        """The ids of the entries ``text`` activates, before any budget (matched in a worker
        thread: regex keys are bounded in time but need not hold up the event loop)."""
        book = await self.get(user_id, lorebook_id)
        active = await trio.to_thread.run_sync(
            lambda: activate(book.entries, text, recursive=book.recursive)
        )
        return [str(e.id) for e in active]


def _parse_upload(upload: bytes) -> NewLorebook:
    try:
        raw = orjson.loads(upload)
    except orjson.JSONDecodeError:
        raise LoreFormatError("the body is not JSON") from None
    return parse_lorebook(raw)


def _owns_character(conn: Connection, user_id: int, character_id: int) -> bool:
    return characters.get_character(conn, user_id, character_id) is not None


def _lorebook_ids(raw: Sequence[str]) -> list[int]:
    ids = [parse_id(r) for r in raw]
    parsed = [i for i in ids if i is not None]
    if len(parsed) != len(ids):
        raise InvalidRequest("`lorebook_ids` must name your lorebooks")
    if len(set(parsed)) != len(parsed):
        raise InvalidRequest("`lorebook_ids` must not repeat a lorebook")
    return parsed


def _check_owned(conn: Connection, user_id: int, ids: Sequence[int]) -> None:
    if lorebooks.owned_lorebook_ids(conn, user_id, ids) != set(ids):
        raise InvalidRequest("`lorebook_ids` must name your lorebooks")
