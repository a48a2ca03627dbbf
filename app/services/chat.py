"""One-to-one chat: store the user message, generate the reply in the service nursery.

The HTTP request only subscribes to the run's events; "at most one generation in flight per
conversation" is enforced by the database (`generations.begin_generation`), so it holds across
server processes, and `/chat/stop` works from any process through the stop flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

import llm
from app.errors import Conflict, NotFound
from app.services import memory_rank
from app.services.lifecycle import (
    Claim,
    Generation,
    GenerationLifecycle,
    check_idle,
    pending_message,
)
from app.services.memory import MemoryService
from app.services.prompts import build_prompt, character_system_prompt, direct_history
from app.services.replies import stream_reply
from app.services.runs import Run
from app.views import message_view
from storage import Database, StorageUnavailable, characters, conversations, memories, messages
from storage.records import Character, Conversation, Memory, Message, Page

HISTORY_WINDOW = 200


class ChatService:
    """Send, stop, regenerate, history, clear, memories for one-to-one conversations."""

    def __init__(
        self,
        db: Database,
        client: llm.OpenRouterClient,
        lifecycle: GenerationLifecycle,
        memory: MemoryService,
        *,
        prompt_budget: int,
    ) -> None:
        self._db = db
        self._client = client
        self._lifecycle = lifecycle
        self._memory = memory
        self._budget = prompt_budget

    async def _conversation(
        self, user_id: int, character_id: int | None
    ) -> tuple[Character, Conversation]:
        if character_id is not None:
            cid = character_id

            def lookup(conn: Connection) -> tuple[Character | None, Conversation | None]:
                character = characters.get_character(conn, user_id, cid)
                if character is None:
                    return None, None
                return character, conversations.get_direct(conn, user_id, cid)

            character, conversation = await self._db.read(lookup)
            if character is not None:
                # the conversation exists for every message but the first
                if conversation is None:
                    conversation = await self._db.write(
                        conversations.get_or_create_direct, user_id, character.id
                    )
                return character, conversation
        raise NotFound("no such character")

    async def send(self, user_id: int, character_id: int | None, content: str) -> Run:
        character, conversation = await self._conversation(user_id, character_id)

        def prepare(conn: Connection) -> tuple[Message, PromptContext]:
            user_message = messages.add_message(conn, conversation.id, "user", content)
            return user_message, _load_context(
                conn, conversation.id, before=None, budget=self._budget
            )

        claim = await self._lifecycle.claim(conversation.id, prepare, busy=_in_progress())
        user_message, context = claim.prepared
        return await self._start(user_id, character, claim, context, user_message=user_message)

    async def regenerate(self, user_id: int, character_id: int | None) -> Run:
        character, conversation = await self._conversation(user_id, character_id)

        def prepare(conn: Connection) -> tuple[Message, PromptContext]:
            last = messages.last_assistant_message(conn, conversation.id)
            if last is None:
                raise Conflict("there is no assistant reply to regenerate")
            return last, _load_context(conn, conversation.id, before=last.id, budget=self._budget)

        claim = await self._lifecycle.claim(conversation.id, prepare, busy=_in_progress())
        last, context = claim.prepared
        return await self._start(user_id, character, claim, context, replacing=last)

    async def _start(
        self,
        user_id: int,
        character: Character,
        claim: Claim[Any],
        context: PromptContext,
        *,
        user_message: Message | None = None,
        replacing: Message | None = None,
    ) -> Run:
        # The run keeps only what it needs while the reply streams (ids, the prompt, the user
        # message's view), not the character's profile or the history it was built from.
        system = character_system_prompt(character, context.memories)
        prompt = build_prompt(system, direct_history(context.recent), budget=self._budget)
        character_id, conversation_id = character.id, claim.conversation_id
        user_view = None if user_message is None else message_view(user_message)
        replacing_id = None if replacing is None else replacing.id

        uncompressed: int | None = None

        async def body(generation: Generation) -> dict[str, Any]:
            nonlocal uncompressed
            run = generation.run
            if user_view is not None:
                run.publish("user_message", user_view)
            outcome = await stream_reply(
                self._client, run, prompt, user=str(user_id), tag={}, cancel_scope=run.cancel_scope
            )
            pending = []
            if outcome.status == "complete" or outcome.text:
                pending.append(
                    pending_message(
                        conversation_id,
                        "assistant",
                        outcome.text,
                        character_id=character_id,
                        status=outcome.status,
                    )
                )

            def finish(conn: Connection) -> int:
                if replacing_id is not None and outcome.status == "complete":
                    messages.delete_message(conn, replacing_id)
                return messages.count_uncompressed(conn, conversation_id)

            saved = await generation.save(pending, end=True, extra=finish)
            reply_view = message_view(saved.messages[0]) if saved.messages else None
            if saved.kept:
                run.error_extra = {"kept": True, "reply": pending[0].to_json()}
                raise StorageUnavailable(
                    "the database is unavailable: the reply is kept and will be saved when it "
                    "answers again"
                )
            if outcome.error is not None:
                if reply_view is not None:
                    run.error_extra = {"reply": reply_view}
                raise outcome.error
            if reply_view is not None:
                run.publish("reply", reply_view)
            if outcome.status == "complete":
                uncompressed = saved.extra
            return {"user_message": user_view, "reply": reply_view}

        async def after() -> None:
            if uncompressed is not None:
                await self._memory.maybe_schedule(conversation_id, uncompressed=uncompressed)

        return await self._lifecycle.start("chat", claim, body, after=after)

    async def stop(self, user_id: int, character_id: int | None) -> bool:
        _, conversation = await self._conversation(user_id, character_id)
        return await self._lifecycle.stop(conversation.id)

    async def history(
        self, user_id: int, character_id: int | None, *, limit: int, before: int | None
    ) -> Page:
        _, conversation = await self._conversation(user_id, character_id)
        return await self._db.read(
            messages.list_messages, conversation.id, limit=limit, before=before
        )

    async def clear(self, user_id: int, character_id: int | None) -> None:
        _, conversation = await self._conversation(user_id, character_id)

        def clear(conn: Connection) -> None:
            check_idle(conn, conversation.id, _in_progress())
            conversations.clear_conversation(conn, conversation.id)

        await self._db.write(clear)

    async def compress(self, user_id: int, character_id: int | None) -> bool:
        _, conversation = await self._conversation(user_id, character_id)
        return await self._memory.schedule(conversation.id, force=True)


@dataclass(frozen=True)
class PromptContext:
    """What a reply's prompt is built from, read in the transaction that begins it."""

    memories: list[Memory]
    recent: list[Message]  # uncompressed, oldest first, ending with the message answered


def _load_context(
    conn: Connection, conversation_id: int, *, before: int | None, budget: int
) -> PromptContext:
    recent = messages.recent_uncompressed(conn, conversation_id, limit=HISTORY_WINDOW)
    if before is not None:
        recent = [m for m in recent if m.id < before]
    query = next((m.content for m in reversed(recent) if m.role == "user"), "")
    chosen = memory_rank.for_prompt(
        memories.list_memories(conn, conversation_id), query, prompt_budget=budget
    )
    return PromptContext(chosen, recent)


def _in_progress() -> Conflict:
    return Conflict(
        "a reply for this conversation is still being generated",
        code="generation_in_progress",
    )
