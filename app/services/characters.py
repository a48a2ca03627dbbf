"""Characters: CRUD and generation of the eight profile categories concurrently."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import trio
from pydantic import BaseModel, Field, create_model

import llm
from app.errors import InvalidRequest, NotFound
from app.services.greetings import character_language
from app.services.images import normalise_avatar
from app.services.profile import (
    GENERATION_SCHEMAS,
    ProfileError,
    validate_partial_profile,
)
from app.services.prompt_texts import text_language, texts_for
from app.services.prompts import generation_prompt
from app.services.runs import Run, RunRegistry
from app.services.shielding import shielded_save
from app.sources import SourceClient, SourcePage, SourceQuery
from app.views import character_view
from storage import Database, avatars, characters
from storage.characters import CATEGORIES, CharacterExtras
from storage.records import Character, Language, Source

log = logging.getLogger(__name__)


GREETING_CARRIER = "dialogue"
"""The category whose generation call also writes the greeting (no ninth call: the eight
calls already fill a user's LLM slots, so generation stays as long as the slowest category)."""

_WITH_GREETING: type[BaseModel] = create_model(
    "DialogueWithGreeting",
    __base__=GENERATION_SCHEMAS[GREETING_CARRIER],
    greeting=(str, Field(max_length=4_000)),
)


class AllCategoriesFailed(llm.LLMError):
    """Every category failed to generate: no character is created."""


class CharacterService:
    """Character CRUD plus generation runs in the service nursery."""

    def __init__(
        self,
        db: Database,
        client: llm.OpenRouterClient,
        runs: RunRegistry,
        sources: SourceClient,
    ) -> None:
        self._db = db
        self._client = client
        self._runs = runs
        self._sources = sources

    async def get(self, user_id: int, character_id: int | None) -> Character:
        character = None
        if character_id is not None:
            character = await self._db.read(characters.get_character, user_id, character_id)
        if character is None:
            raise NotFound("no such character")
        return character

    async def list(self, user_id: int) -> list[Character]:
        return await self._db.read(characters.list_characters, user_id)

    async def create(
        self,
        user_id: int,
        name: str,
        profile: Mapping[str, Any] | None,
        extras: CharacterExtras | None = None,
    ) -> Character:
        """A new character; ``extras`` holds greetings, tags, sources, settings, avatar."""
        full: dict[str, dict[str, Any] | None] = dict.fromkeys(CATEGORIES)
        full.update(_validated(profile or {}))
        return await self._db.write(characters.create_character, user_id, name, full, extras=extras)

    async def update(
        self,
        user_id: int,
        character_id: int | None,
        *,
        name: str | None,
        profile: Mapping[str, Any] | None,
        changes: Mapping[str, Any] | None = None,
    ) -> Character:
        """Rename, replace the given categories, and apply ``changes`` (keywords of
        ``storage.characters.update_character``: greeting, alternate_greetings, tags, sources,
        settings)."""
        validated = _validated(profile) if profile is not None else None
        character = None
        if character_id is not None:
            character = await self._db.write(
                characters.update_character,
                user_id,
                character_id,
                name=name,
                profile=validated,
                **(changes or {}),
            )
        if character is None:
            raise NotFound("no such character")
        return character

    async def set_avatar(self, user_id: int, character_id: int | None, upload: bytes) -> Character:
        """Normalise ``upload`` (PNG, JPEG or WebP; in a worker thread) and show it as the
        character's avatar. Raises ``InvalidImage`` for anything else."""
        await self.get(user_id, character_id)  # 404 before decoding anything
        png = await trio.to_thread.run_sync(normalise_avatar, upload)
        return await self._set_avatar(user_id, character_id, png)

    async def delete_avatar(self, user_id: int, character_id: int | None) -> Character:
        return await self._set_avatar(user_id, character_id, None)

    async def _set_avatar(
        self, user_id: int, character_id: int | None, png: bytes | None
    ) -> Character:
        character = None
        if character_id is not None:
            character = await self._db.write(characters.set_avatar, user_id, character_id, png)
        if character is None:
            raise NotFound("no such character")
        return character

    async def avatar(self, sha256: str) -> bytes:
        """The avatar PNG stored under ``sha256`` (404 when none)."""
        png = await self._db.read(avatars.get_avatar, sha256)
        if png is None:
            raise NotFound("no such avatar")
        return png

    async def copy(self, user_id: int, character_id: int | None) -> Character:
        """A new character with the profile, settings, greetings, tags and avatar of the
        user's character (no conversations or memories); 404 if they have no such one."""
        copied = None
        if character_id is not None:
            copied = await self._db.write(characters.copy_character, user_id, character_id)
        if copied is None:
            raise NotFound("no such character")
        return copied

    async def delete(self, user_id: int, character_id: int | None) -> None:
        deleted = character_id is not None and await self._db.write(
            characters.delete_character, user_id, character_id
        )
        if not deleted:
            raise NotFound("no such character")

    async def _category(
        self,
        run: Run,
        user_id: int,
        name: str,
        category: str,
        *,
        source_text: str | None,
        known: dict[str, Any] | None,
        model: str | None,
        results: dict[str, dict[str, Any] | None],
        language: Language | None = None,
        greeting: dict[str, str] | None = None,
    ) -> None:
        """Generate one category into ``results``; with ``greeting``, the carrier category's
        call also writes the greeting into ``greeting["greeting"]``."""
        language = language or text_language([name, source_text])
        texts = texts_for(language)
        description = texts.category_descriptions[category]
        schema = GENERATION_SCHEMAS[category]
        carries = greeting is not None and category == GREETING_CARRIER
        if carries:
            description, schema = f"{description}. {texts.greeting_field}", _WITH_GREETING
        messages = generation_prompt(
            name, category, description, source_text=source_text, known=known, language=language
        )
        try:
            value = await self._client.structured(messages, schema, model=model, user=str(user_id))
        except llm.LLMError as exc:
            results[category] = None
            run.publish("category", {"category": category, "status": "failed", "error": str(exc)})
            if isinstance(exc, llm.Overloaded):
                raise
            return
        data = value.model_dump()
        said = str(data.pop("greeting", "")).strip()
        if carries and said and greeting is not None:
            greeting["greeting"] = said
        results[category] = data
        run.publish("category", {"category": category, "status": "ok", "data": results[category]})

    async def generate_categories(
        self,
        run: Run,
        user_id: int,
        name: str,
        categories: Sequence[str],
        *,
        source_text: str | None,
        known: dict[str, Any] | None,
        model: str | None,
        greeting: dict[str, str] | None = None,
        language: Language | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """Generate ``categories`` concurrently (as long as the slowest one, not the sum),
        publishing a ``category`` event for each; a failed one is None. With ``greeting``,
        the greeting is generated too (into ``greeting["greeting"]``, when it worked). The
        prompts are in ``language``, else in the language of ``name`` and ``source_text``.
        Raises ``llm.LLMError`` when the run is cancelled, ``llm.Overloaded`` when the LLM is."""
        results: dict[str, dict[str, Any] | None] = {}
        with run.cancel_scope:
            async with trio.open_nursery() as nursery:
                for category in categories:
                    nursery.start_soon(
                        partial(
                            self._category,
                            run,
                            user_id,
                            name,
                            category,
                            source_text=source_text,
                            known=known,
                            model=model,
                            results=results,
                            greeting=greeting,
                            language=language,
                        )
                    )
        if run.cancel_scope.cancelled_caught:
            raise llm.LLMError("character generation was cancelled")
        return {c: results.get(c) for c in categories}

    async def start_generation(
        self,
        user_id: int,
        name: str,
        *,
        source_text: str | None,
        model: str | None,
        source: SourceQuery | None = None,
    ) -> Run:
        """Generate all eight categories concurrently: as long as the slowest one, not the sum.

        With ``source``, its page is fetched first (before any run starts, so a failure is
        `SourceNotFound` / `SourceUnavailable` and nothing is created); its text is the
        ``source_text``, it is recorded in the character's ``sources``, and the run's first
        event is ``source``."""
        page: SourcePage | None = None
        if source is not None:
            page = await self._sources.fetch(source)
            source_text = page.text
        extras = CharacterExtras(
            sources=[] if page is None else [Source(page.provider, page.title, page.url)]
        )

        async def body(run: Run) -> Character:
            if page is not None:
                run.publish(
                    "source",
                    {
                        "provider": page.provider,
                        "title": page.title,
                        "url": page.url,
                        "chars": len(page.text),
                    },
                )
            greeting: dict[str, str] = {}
            profile = await self.generate_categories(
                run,
                user_id,
                name,
                CATEGORIES,
                source_text=source_text,
                known=None,
                model=model,
                greeting=greeting,
            )
            if all(profile[c] is None for c in CATEGORIES):
                raise AllCategoriesFailed("every profile category failed to generate")
            with shielded_save():
                character = await self._db.write(
                    characters.create_character,
                    user_id,
                    name,
                    profile,
                    source_text=source_text,
                    extras=replace(extras, greeting=greeting.get("greeting")),
                )
            run.publish("character", character_view(character))
            return character

        return self._runs.start(("character", user_id, secrets.token_hex(8)), body)

    async def start_regeneration(
        self, user_id: int, character_id: int | None, category: str, *, model: str | None
    ) -> Run:
        character = await self.get(user_id, character_id)
        if category not in CATEGORIES:
            raise NotFound("no such category")

        async def body(run: Run) -> Character:
            results: dict[str, dict[str, Any] | None] = {}
            known = {c: v for c, v in character.profile.items() if v and c != category}
            with run.cancel_scope:
                await self._category(
                    run,
                    user_id,
                    character.name,
                    category,
                    source_text=character.source_text,
                    known=known,
                    model=model,
                    results=results,
                    language=character_language(character),
                )
            if run.cancel_scope.cancelled_caught:
                raise llm.LLMError("regeneration was cancelled")
            if results.get(category) is None:
                raise AllCategoriesFailed(f"the {category} category failed to generate")
            with shielded_save():
                updated = await self._db.write(
                    characters.update_character,
                    user_id,
                    character.id,
                    profile={category: results[category]},
                )
            if updated is None:
                raise NotFound("the character was deleted meanwhile")
            run.publish("character", character_view(updated))
            return updated

        return self._runs.start(("character", user_id, secrets.token_hex(8)), body)


def _validated(profile: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    try:
        return validate_partial_profile(dict(profile))
    except ProfileError as exc:
        raise InvalidRequest("the profile failed validation", details=exc.errors) from None
