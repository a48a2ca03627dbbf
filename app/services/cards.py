"""Character Card import and export (`GET /api/characters/{id}/card`,
`POST /api/characters/import`): the mapping is `card_mapping`, the PNG side `card_png`.

Decoding and encoding (JSON of up to `FASTNPC_MAX_UPLOAD_BYTES`, PNG pictures) run in worker
threads. A card is parsed and validated completely before anything is stored or a run starts,
so a bad card is a plain 400 `invalid_card` and leaves nothing behind.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import trio
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection

from app.errors import InvalidCard
from app.schemas import CharacterSettingsIn, SourceIn
from app.services.card_mapping import (
    CardError,
    ImportedCard,
    Spec,
    read_card,
    v2_backfill,
    write_card,
)
from app.services.card_png import (
    PNG_SIGNATURE,
    V2_CHUNK,
    V3_CHUNK,
    plain_picture,
    read_png_card,
    write_png_card,
)
from app.services.characters import CharacterService
from app.services.lore_formats import LoreFormatError, lorebook_data
from app.services.lorebooks import parse_lorebook
from app.services.profile import ProfileError, validate_partial_profile
from app.services.runs import Run, RunRegistry
from app.services.shielding import shielded_save
from app.views import character_view
from storage import Database, avatars, characters, lorebooks
from storage.characters import CATEGORIES, CharacterExtras
from storage.lorebooks import NewLorebook
from storage.records import Character

CardFormat = Literal["json", "png"]

_SOURCES = TypeAdapter(list[SourceIn])


@dataclass(frozen=True)
class ValidCard:
    """An imported card checked against our schemas, ready to store."""

    name: str
    profile: dict[str, dict[str, Any] | None]
    extras: CharacterExtras
    source_text: str
    lorebook: NewLorebook | None = None


class CardService:
    def __init__(self, db: Database, characters: CharacterService, runs: RunRegistry) -> None:
        self._db = db
        self._characters = characters
        self._runs = runs

    async def export(
        self, user_id: int, character_id: int | None, spec: Spec, fmt: CardFormat
    ) -> dict[str, Any] | bytes:
        """The character as a card: a JSON object, or PNG bytes (avatar or plain picture)
        carrying ``chara`` (V2 JSON) and, for V3, ``ccv3``."""
        character = await self._characters.get(user_id, character_id)
        books = await self._db.read(lorebooks.attached_lorebooks, [character.id])
        book = lorebook_data(books[character.id][0]) if books[character.id] else None
        card = write_card(character, spec, book)
        if fmt == "json":
            return card
        picture = None
        if character.avatar_sha256 is not None:
            picture = await self._db.read(avatars.get_avatar, character.avatar_sha256)
        chunks = {V2_CHUNK: card} if spec == "v2" else {V2_CHUNK: v2_backfill(character, book)}
        if spec == "v3":
            chunks[V3_CHUNK] = card
        return await trio.to_thread.run_sync(
            write_png_card, picture or plain_picture(character.name), chunks
        )

    async def start_import(
        self, user_id: int, upload: bytes, *, complete: bool, model: str | None = None
    ) -> Run:
        """Validate the card (PNG or JSON), then start the run that stores it: with
        ``complete``, the categories still empty are generated first from the card's text
        (``category`` events), then ``character``."""
        card = await trio.to_thread.run_sync(parse_upload, upload)

        async def body(run: Run) -> Character:
            profile = card.profile
            missing = [c for c in CATEGORIES if profile.get(c) is None]
            if complete and missing:
                known = {c: v for c, v in profile.items() if v is not None}
                generated = await self._characters.generate_categories(
                    run,
                    user_id,
                    card.name,
                    missing,
                    source_text=card.source_text or None,
                    known=known or None,
                    model=model or card.extras.settings.model,
                    language=card.extras.settings.language,
                )
                profile = {**profile, **{c: v for c, v in generated.items() if v is not None}}
            with shielded_save():
                character = await self._db.write(store_card, user_id, card, profile)
            run.publish("character", character_view(character))
            return character

        return self._runs.start(("card", user_id, secrets.token_hex(8)), body)


def store_card(
    conn: Connection, user_id: int, card: ValidCard, profile: dict[str, dict[str, Any] | None]
) -> Character:
    """Create the card's character and, when the card has a ``character_book``, its lorebook
    attached to it (one transaction)."""
    character = characters.create_character(
        conn, user_id, card.name, profile, source_text=card.source_text or None, extras=card.extras
    )
    if card.lorebook is not None:
        book = lorebooks.create_lorebook(conn, user_id, card.lorebook)
        lorebooks.set_character_lorebooks(conn, character.id, [book.id])
    return character


def parse_upload(upload: bytes) -> ValidCard:
    """A card upload (PNG with ``ccv3``/``chara``, or JSON) validated completely; raises
    ``InvalidCard``. Blocking: run in a worker thread."""
    try:
        if upload.startswith(PNG_SIGNATURE):
            png = read_png_card(upload)
            imported = read_card(png.card)
            avatar = png.avatar if imported.keeps_picture else None
        else:
            try:
                raw = orjson.loads(upload)
            except orjson.JSONDecodeError:
                raise CardError("neither a PNG nor JSON") from None
            imported = read_card(raw)
            avatar = None
        return _validated(imported, avatar)
    except CardError as exc:
        raise InvalidCard(f"not a Character Card V2/V3: {exc}") from None


def _validated(imported: ImportedCard, avatar: bytes | None) -> ValidCard:
    try:
        profile = validate_partial_profile(dict(imported.profile))
    except ProfileError as exc:
        raise InvalidCard("the card's profile failed validation", details=exc.errors) from None
    try:
        settings = CharacterSettingsIn.model_validate(imported.settings)
        sources = _SOURCES.validate_python(imported.sources)
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_context=False, include_input=False)
        raise InvalidCard(
            "the card's FastNPC settings failed validation", details=details
        ) from None
    book = None
    if imported.character_book is not None:
        try:
            book = parse_lorebook(imported.character_book, default_name=imported.name[:200])
        except LoreFormatError as exc:
            raise InvalidCard(
                f"the card's character_book is not a lorebook: {exc}", details=exc.details
            ) from None
    extras = CharacterExtras(
        greeting=imported.greeting,
        alternate_greetings=imported.alternate_greetings,
        tags=imported.tags,
        sources=[s.record() for s in sources],
        settings=settings.record(),
        card_extra=imported.card_extra,
        avatar_png=avatar,
    )
    return ValidCard(
        name=imported.name[:100],
        profile={c: profile.get(c) for c in CATEGORIES},
        extras=extras,
        source_text=imported.source_text[:20_000],
        lorebook=book,
    )
