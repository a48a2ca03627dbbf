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
from app.services.generations import GenerationTracker
from app.services.memory import MemoryService
from app.services.prompts import build_prompt, character_system_prompt, direct_history
from app.services.replies import shielded_save, stream_reply
from app.services.runs import Run, RunRegistry
from app.views import message_view
from storage import Database, characters, conversations, generations, memories, messages
from storage.records import Character, Conversation, Memory, Message, Page

HISTORY_WINDOW = 200


class ChatService:
    """Send, stop, regenerate, history, clear, memories for one-to-one conversations."""

    def __init__(
        self,
        db: Database,
        client: llm.OpenRouterClient,
        runs: RunRegistry,
        tracker: GenerationTracker,
        memory: MemoryService,
        *,
        prompt_budget: int,
    ) -> None:
        self._db = db
        self._client = client
        self._runs = runs
        self._tracker = tracker
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

        def begin(conn: Connection) -> tuple[int, Message, PromptContext] | None:
            gid = self._tracker.begin(conn, conversation.id)
            if gid is None:
                return None
            user_message = messages.add_message(conn, conversation.id, "user", content)
            return gid, user_message, _load_context(conn, conversation.id, before=None)

        begun = await self._db.write(begin)
        if begun is None:
            raise _in_progress()
        generation_id, user_message, context = begun
        return self._start(
            user_id,
            character,
            conversation,
            generation_id,
            context,
            user_message=user_message,
            replacing=None,
        )

    async def regenerate(self, user_id: int, character_id: int | None) -> Run:
        character, conversation = await self._conversation(user_id, character_id)

        def begin(conn: Connection) -> tuple[int | None, Message | None, PromptContext | None]:
            last = messages.last_assistant_message(conn, conversation.id)
            if last is None:
                return None, None, None
            gid = self._tracker.begin(conn, conversation.id)
            if gid is None:
                return None, last, None
            return gid, last, _load_context(conn, conversation.id, before=last.id)

        generation_id, last, context = await self._db.write(begin)
        if last is None:
            raise Conflict("there is no assistant reply to regenerate")
        if generation_id is None or context is None:
            raise _in_progress()
        return self._start(
            user_id,
            character,
            conversation,
            generation_id,
            context,
            user_message=None,
            replacing=last,
        )

    def _start(
        self,
        user_id: int,
        character: Character,
        conversation: Conversation,
        generation_id: int,
        context: PromptContext,
        *,
        user_message: Message | None,
        replacing: Message | None,
    ) -> Run:
        # The run keeps only what it needs while the reply streams (ids, the prompt, the user
        # message's view), not the character's profile or the history it was built from.
        system = character_system_prompt(character, context.memories)
        prompt = build_prompt(system, direct_history(context.recent), budget=self._budget)
        character_id, conversation_id = character.id, conversation.id
        user_view = None if user_message is None else message_view(user_message)
        replacing_id = None if replacing is None else replacing.id

        async def body(run: Run) -> dict[str, Any]:
            ended = False
            try:
                if user_view is not None:
                    run.publish("user_message", user_view)
                outcome = await stream_reply(
                    self._client,
                    run,
                    prompt,
                    user=str(user_id),
                    tag={},
                    cancel_scope=run.cancel_scope,
                )
                status = outcome.status

                def save(conn: Connection) -> tuple[Message | None, int]:
                    generations.end_generation(conn, generation_id)
                    if status != "complete" and not outcome.text:
                        return None, 0
                    if replacing_id is not None and status == "complete":
                        messages.delete_message(conn, replacing_id)
                    reply = messages.add_message(
                        conn,
                        conversation_id,
                        "assistant",
                        outcome.text,
                        character_id=character_id,
                        status=status,  # type: ignore[arg-type]
                    )
                    return reply, messages.count_uncompressed(conn, conversation_id)

                with shielded_save():
                    reply, uncompressed = await self._db.write(save)
                    ended = True
                reply_view = None if reply is None else message_view(reply)
                if outcome.error is not None:
                    if reply_view is not None:
                        run.error_extra = {"reply": reply_view}
                    raise outcome.error
                if reply_view is not None:
                    run.publish("reply", reply_view)
                if status == "complete":
                    await self._memory.maybe_schedule(conversation_id, uncompressed=uncompressed)
                return {"user_message": user_view, "reply": reply_view}
            finally:
                self._tracker.forget(generation_id)
                if not ended:
                    with shielded_save():
                        await self._db.write(generations.end_generation, generation_id)

        run = self._runs.start(("chat", conversation_id), body)
        self._tracker.track(generation_id, run)
        return run

    async def stop(self, user_id: int, character_id: int | None) -> bool:
        _, conversation = await self._conversation(user_id, character_id)
        run = self._runs.get(("chat", conversation.id))
        if run is not None and not run.finished.is_set():
            run.stop("stopped")
            return True
        return await self._db.write(generations.request_stop, conversation.id)

    async def history(
        self, user_id: int, character_id: int | None, *, limit: int, before: int | None
    ) -> Page:
        _, conversation = await self._conversation(user_id, character_id)
        return await self._db.read(
            messages.list_messages, conversation.id, limit=limit, before=before
        )

    async def clear(self, user_id: int, character_id: int | None) -> None:
        _, conversation = await self._conversation(user_id, character_id)
        if self._runs.get(("chat", conversation.id)) is not None:
            raise _in_progress()
        await self._db.write(conversations.clear_conversation, conversation.id)

    async def memories(self, user_id: int, character_id: int | None) -> list[Memory]:
        _, conversation = await self._conversation(user_id, character_id)
        return await self._db.read(memories.list_memories, conversation.id)

    async def compress(self, user_id: int, character_id: int | None) -> bool:
        _, conversation = await self._conversation(user_id, character_id)
        return await self._memory.schedule(conversation.id, force=True)


@dataclass(frozen=True)
class PromptContext:
    """What a reply's prompt is built from, read in the transaction that begins it."""

    memories: list[Memory]
    recent: list[Message]  # uncompressed, oldest first, ending with the message answered


def _load_context(conn: Connection, conversation_id: int, *, before: int | None) -> PromptContext:
    recent = messages.recent_uncompressed(conn, conversation_id, limit=HISTORY_WINDOW)
    if before is not None:
        recent = [m for m in recent if m.id < before]
    return PromptContext(memories.list_memories(conn, conversation_id), recent)


def _in_progress() -> Conflict:
    return Conflict(
        "a reply for this conversation is still being generated",
        code="generation_in_progress",
    )
