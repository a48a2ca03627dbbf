"""One-to-one chat: store the user message, generate the reply in the service nursery.

The HTTP request only subscribes to the run's events; "at most one generation in flight per
conversation" is enforced by the database (`generations.begin_generation`), so it holds across
server processes, and `/chat/stop` works from any process through the stop flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection

import llm
from app.errors import Conflict, InvalidRequest, NotFound
from app.services import memory_rank
from app.services.auth import Access
from app.services.character_llm import reply_options
from app.services.conversation_tree import message_in
from app.services.lifecycle import (
    Claim,
    Generation,
    GenerationLifecycle,
    check_idle,
    pending_message,
)
from app.services.lore_activation import select_lore
from app.services.memory import MemoryService
from app.services.opening import Interlocutor, interlocutor, lookup_direct, open_direct
from app.services.prompts import build_prompt, character_system_prompt, direct_history
from app.services.replies import stream_reply
from app.services.runs import Run
from app.services.snapshots import PromptSnapshots
from app.services.usage import deferred_usage, quota_exceeded
from app.views import message_view
from storage import (
    Database,
    StorageUnavailable,
    conversations,
    lorebooks,
    memories,
    messages,
)
from storage.records import Character, Conversation, Lorebook, Memory, Message, Page, Turn

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
        snapshots: PromptSnapshots | None = None,
    ) -> None:
        self._db = db
        self._snapshots = snapshots
        self._client = client
        self._lifecycle = lifecycle
        self._memory = memory
        self._budget = prompt_budget

    async def _conversation(
        self, user_id: int, character_id: int | None
    ) -> tuple[Character, Conversation]:
        if character_id is not None:
            character, conversation, to_open = await self._db.read(
                lookup_direct, user_id, character_id
            )
            if character is not None and conversation is not None and not to_open:
                return character, conversation
        # a write only for the first message, to greet in an empty conversation, or to 404
        return await self._db.write(_direct, user_id, character_id)

    async def conversation_id(self, user_id: int, character_id: int | None) -> int | None:
        """The id of the user's conversation with the character (None before its first use);
        404 for a character that is not theirs. Reads only."""
        if character_id is not None:
            character, conversation, _ = await self._db.read(lookup_direct, user_id, character_id)
            if character is not None:
                return None if conversation is None else conversation.id
        raise NotFound("no such character")

    async def send(self, access: Access, character_id: int | None, content: str) -> Run:
        """One transaction before the LLM call: confirm the token, check the quota, find (or
        open) the conversation, claim its generation, store the user message, read the
        prompt's context."""
        user_id = access.user.id

        def locate(conn: Connection) -> tuple[int, tuple[Character, Conversation]]:
            _admit(conn, access)
            character, conversation = _direct(conn, user_id, character_id)
            return conversation.id, (character, conversation)

        def prepare(
            conn: Connection, located: tuple[Character, Conversation]
        ) -> tuple[Message, PromptContext]:
            conversation = located[1]
            user_message = messages.add_message(conn, conversation.id, "user", content)
            return user_message, _load_context(
                conn, conversation, upto=user_message.id, budget=self._budget
            )

        claim = await self._lifecycle.claim_located(locate, prepare, busy=_in_progress())
        (character, _), (user_message, context) = claim.prepared
        return await self._start(user_id, character, claim, context, user_message=user_message)

    async def regenerate(
        self, user_id: int, character_id: int | None, message_id: int | None = None
    ) -> Run:
        """A new reply next to an assistant message (`message_id`, else the last one of the
        active path), from the path up to its parent; the old one stays as an alternative."""
        character, conversation = await self._conversation(user_id, character_id)

        def prepare(conn: Connection) -> tuple[Message, PromptContext]:
            target = _assistant_target(conn, conversation.id, message_id)
            return target, _load_context(
                conn, conversation, upto=target.parent_id, budget=self._budget
            )

        claim = await self._lifecycle.claim(conversation.id, prepare, busy=_in_progress())
        target, context = claim.prepared
        return await self._start(user_id, character, claim, context, replacing=target)

    async def branch(
        self, user_id: int, character_id: int | None, message_id: int | None, content: str
    ) -> Run:
        """A new user message next to the user message `message_id`, made active, and its
        reply, exactly as sending."""
        character, conversation = await self._conversation(user_id, character_id)

        def prepare(conn: Connection) -> tuple[Message, PromptContext]:
            target = message_in(conn, conversation.id, message_id)
            if target.role != "user":
                raise InvalidRequest("only a user message can be branched from")
            user_message = messages.add_message(
                conn, conversation.id, "user", content, parent_id=target.parent_id
            )
            return user_message, _load_context(conn, conversation, budget=self._budget)

        claim = await self._lifecycle.claim(conversation.id, prepare, busy=_in_progress())
        user_message, context = claim.prepared
        return await self._start(user_id, character, claim, context, user_message=user_message)

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
        history = direct_history(context.recent)
        lore = select_lore(context.lorebooks, [text for _, text in history])
        system = character_system_prompt(
            character, context.memories, lore, context.interlocutor
        )
        prompt = build_prompt(system, history, budget=self._budget)
        lore_ids = lore.entry_ids
        character_id, conversation_id = character.id, claim.conversation_id
        user_view = None if user_message is None else message_view(user_message)
        # a regenerated reply is a sibling of the one it replaces, which stays as an alternative
        # (and stays the leaf when nothing new was produced)
        parent: int | None | Literal["active_leaf"] = (
            "active_leaf" if replacing is None else replacing.parent_id
        )
        options = reply_options(character)

        uncompressed: int | None = None

        async def body(generation: Generation) -> dict[str, Any]:
            nonlocal uncompressed
            run = generation.run
            if user_view is not None:
                run.publish("user_message", user_view)
            if lore_ids:
                run.publish("lore", {"entry_ids": lore_ids})
            with deferred_usage() as spent:  # written by the save below
                outcome = await stream_reply(
                    self._client,
                    run,
                    prompt,
                    user=str(user_id),
                    tag={},
                    cancel_scope=run.cancel_scope,
                    options=options,
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
                        model=outcome.model,
                        parent_id=parent,
                    )
                )

            def finish(conn: Connection, stored: list[Message]) -> int:
                spent.store(conn)
                if not stored:
                    return messages.count_uncompressed(conn, conversation_id)
                reply = stored[-1]  # the reply just added, now the active leaf
                if self._snapshots is not None:  # the model that answered (a fallback's too)
                    model = outcome.model or self._client.settings.model
                    self._snapshots.record_prompt(conn, reply.id, prompt, model)
                return messages.count_uncompressed(conn, conversation_id, leaf=reply.id)

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
            return {"user_message": user_view, "reply": reply_view, "lore": lore_ids}

        async def after() -> None:
            if uncompressed is not None:
                await self._memory.maybe_schedule(conversation_id, uncompressed=uncompressed)

        # where the reply goes, should this process die mid-reply (another one stores it)
        recovery: dict[str, str | int | None] = {
            "character_id": character_id,
            "parent_id": user_message.id if user_message is not None else (
                replacing.parent_id if replacing is not None else None
            ),
        }
        return await self._lifecycle.start("chat", claim, body, after=after, meta=recovery)

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
    recent: list[Turn]  # uncompressed, oldest first, ending with the message answered
    lorebooks: list[Lorebook]  # attached to the character, in order
    interlocutor: Interlocutor | None = None  # the user's persona


def _load_context(
    conn: Connection,
    conversation: Conversation,
    *,
    upto: int | None | Literal["leaf"] = "leaf",
    budget: int,
) -> PromptContext:
    """What a reply's prompt is built from: the active path (or the path up to `upto`)."""
    conversation_id = conversation.id
    if upto is None:  # regenerating a reply that opens the conversation (a greeting)
        recent: list[Turn] = []
    else:
        recent = messages.recent_turns(
            conn, conversation_id, limit=HISTORY_WINDOW, upto=None if upto == "leaf" else upto
        )
    character_id = conversation.character_id or 0
    books = lorebooks.attached_lorebooks(conn, [character_id])[character_id]
    # pinned memories, then the others ranked against the message being answered
    query = next((m.content for m in reversed(recent) if m.role == "user"), "")
    chosen = memory_rank.for_prompt(
        memories.list_valid_memories(conn, conversation_id), query, prompt_budget=budget
    )
    return PromptContext(chosen, recent, books, interlocutor(conn, conversation.user_id))


def _admit(conn: Connection, access: Access) -> None:
    """Inside the first transaction of a request: 401 for a token revoked meanwhile, 429 for
    a used-up quota (what `authenticated` and `quota_checked` check before other routes)."""
    now = datetime.now(UTC)
    access.confirm(conn, now)
    exceeded = quota_exceeded(conn, access.user.id, now)
    if exceeded is not None:
        raise exceeded


def _direct(
    conn: Connection, user_id: int, character_id: int | None
) -> tuple[Character, Conversation]:
    """Inside a write transaction: the user's character and their conversation, opened (and
    greeted) when needed; 404 for a character that is not theirs."""
    if character_id is not None:
        character, conversation, to_open = lookup_direct(conn, user_id, character_id)
        if character is not None:
            if conversation is None or to_open:
                conversation = open_direct(conn, user_id, character)
            return character, conversation
    raise NotFound("no such character")


def _assistant_target(conn: Connection, conversation_id: int, message_id: int | None) -> Message:
    """The assistant message to regenerate: `message_id`, or the last of the active path."""
    if message_id is None:
        last = messages.last_assistant_message(conn, conversation_id)
        if last is None:
            raise Conflict("there is no assistant reply to regenerate")
        return last
    target = message_in(conn, conversation_id, message_id)
    if target.role != "assistant":
        raise InvalidRequest("only an assistant message can be regenerated")
    return target


def _in_progress() -> Conflict:
    return Conflict(
        "a reply for this conversation is still being generated",
        code="generation_in_progress",
    )
