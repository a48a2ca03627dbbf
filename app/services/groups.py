"""Group chat: CRUD, choosing the speakers of a turn, and their concurrent replies.

A turn is a run in the service nursery (like a one-to-one reply): the user message is stored
first, under the database's one-generation-per-conversation rule; then the speakers are chosen
(moderator: one structured LLM call; round robin; all), then every chosen character streams its
reply at the same time into the one event log, each delta tagged with its character id. A reply is
stored when it finishes; one speaker failing does not stop the others. A stop (local or from
another process through the generation's stop flag) interrupts every speaker, and each stores
its partial text as `interrupted`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from pydantic import BaseModel
from sqlalchemy import Connection

import llm
from app.error_info import describe
from app.errors import Conflict, InvalidRequest, NotFound
from app.services.lifecycle import (
    Generation,
    GenerationLifecycle,
    Saved,
    check_idle,
    pending_message,
)
from app.services.lore_activation import LoreSelection, select_lore, union_ids
from app.services.memory import MemoryService
from app.services.prompts import build_prompt, character_system_prompt
from app.services.replies import ReplyOutcome, stream_reply
from app.services.runs import Run
from app.services.spool import PendingMessage
from app.views import message_view, parse_id
from storage import (
    Database,
    StorageError,
    characters,
    groups,
    lorebooks,
    memories,
    messages,
)
from storage.records import Character, Group, GroupStrategy, Lorebook, Memory, Message, Page

log = logging.getLogger(__name__)

HISTORY_WINDOW = 200
MODERATOR_HISTORY = 12
MODERATOR_LINE_CHARS = 300


class SpeakerChoice(BaseModel):
    """The moderator's answer: who replies next (most relevant first) and why."""

    character_ids: list[str]
    reason: str


@dataclass
class _Turn:
    """What the speakers of one turn need, read in one transaction."""

    members: list[Character]
    recent: list[Message]
    memories: dict[int, list[Memory]]
    names: dict[int, str]
    lorebooks: dict[int, list[Lorebook]] = field(default_factory=dict)  # per member, in order
    lore: dict[int, LoreSelection] = field(default_factory=dict)  # per speaker of the turn


@dataclass
class _StopRelay:
    """Carries a stop of the run (its cancel scope) to the scopes of the turn's parts.

    `Run.cancel_scope` can be entered only once, but a group turn has several parts that each
    need their own scope (so each speaker learns it was interrupted and saves its text).
    """

    run: Run
    stopped: bool = False
    scopes: list[trio.CancelScope] = field(default_factory=list)

    def scope(self) -> trio.CancelScope:
        scope = trio.CancelScope()
        if self.stopped:
            scope.cancel()
        self.scopes.append(scope)
        return scope

    async def watch(self) -> None:
        with self.run.cancel_scope:
            await trio.sleep_forever()
        self.stopped = True
        for scope in self.scopes:
            scope.cancel()


class GroupService:
    """Groups of the user's characters and their conversations."""

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

    # ---- CRUD

    async def create(
        self,
        user_id: int,
        name: str,
        character_ids: Sequence[str],
        *,
        strategy: GroupStrategy,
        max_speakers: int,
    ) -> Group:
        ids = _member_ids(character_ids)
        _check_max_speakers(max_speakers, len(ids))

        def create(conn: Connection) -> Group:
            _check_owned(conn, user_id, ids)
            return groups.create_group(
                conn, user_id, name, ids, strategy=strategy, max_speakers=max_speakers
            )

        return await self._db.write(create)

    async def get(self, user_id: int, group_id: int | None) -> Group:
        group = None
        if group_id is not None:
            group = await self._db.read(groups.get_group, user_id, group_id)
        if group is None:
            raise NotFound("no such group")
        return group

    async def list_groups(self, user_id: int) -> list[Group]:
        return await self._db.read(groups.list_groups, user_id)

    async def update(
        self,
        user_id: int,
        group_id: int | None,
        *,
        name: str | None = None,
        character_ids: Sequence[str] | None = None,
        strategy: GroupStrategy | None = None,
        max_speakers: int | None = None,
    ) -> Group:
        ids = None if character_ids is None else _member_ids(character_ids)

        def update(conn: Connection) -> Group | None:
            current = None if group_id is None else groups.get_group(conn, user_id, group_id)
            if current is None:
                return None
            if ids is not None:
                _check_owned(conn, user_id, ids)
            _check_max_speakers(
                current.max_speakers if max_speakers is None else max_speakers,
                len(current.character_ids if ids is None else ids),
            )
            return groups.update_group(
                conn,
                user_id,
                current.id,
                name=name,
                character_ids=ids,
                strategy=strategy,
                max_speakers=max_speakers,
            )

        group = await self._db.write(update)
        if group is None:
            raise NotFound("no such group")
        return group

    async def delete(self, user_id: int, group_id: int | None) -> None:
        group = await self.get(user_id, group_id)

        def delete(conn: Connection) -> bool:
            check_idle(conn, group.conversation_id, _in_progress())
            return groups.delete_group(conn, user_id, group.id)

        if not await self._db.write(delete):
            raise NotFound("no such group")

    # ---- conversation

    async def history(
        self, user_id: int, group_id: int | None, *, limit: int, before: int | None
    ) -> Page:
        group = await self.get(user_id, group_id)
        return await self._db.read(
            messages.list_messages, group.conversation_id, limit=limit, before=before
        )

    async def memories(
        self, user_id: int, group_id: int | None, character_id: str | None
    ) -> list[Memory]:
        """Every member's memories of the group, or one character's (`character_id`)."""
        group = await self.get(user_id, group_id)
        if character_id is None:
            return await self._db.read(
                memories.list_memories, group.conversation_id, all_characters=True
            )
        parsed = parse_id(character_id)
        if parsed is None:
            raise InvalidRequest("`character_id` is not a character id")
        return await self._db.read(
            memories.list_memories, group.conversation_id, character_id=parsed
        )

    async def stop(self, user_id: int, group_id: int | None) -> bool:
        """Interrupt the running turn; its speakers store their partial text."""
        group = await self.get(user_id, group_id)
        return await self._lifecycle.stop(group.conversation_id)

    async def send(self, user_id: int, group_id: int | None, content: str) -> Run:
        """Store the user message and start the turn; 409 while another turn runs."""
        group = await self.get(user_id, group_id)
        conversation_id = group.conversation_id

        def prepare(conn: Connection) -> tuple[Message, list[int]]:
            if not characters.get_characters(conn, user_id, group.character_ids):
                raise Conflict("the group has no members left")
            previous = messages.previous_turn_speakers(conn, conversation_id)
            return messages.add_message(conn, conversation_id, "user", content), previous

        claim = await self._lifecycle.claim(conversation_id, prepare, busy=_in_progress())
        user_message, previous_speakers = claim.prepared
        any_complete = False

        async def body(generation: Generation) -> dict[str, Any]:
            nonlocal any_complete
            run = generation.run
            result = await self._turn(generation, user_id, group, user_message, previous_speakers)
            await generation.end()
            replies: list[tuple[ReplyOutcome, Message | None]] = result.pop("outcomes")
            failed = [o.error for o, _ in replies if o.error is not None]
            if replies and len(failed) == len(replies):
                run.error_extra = {"replies": result["replies"]}
                raise failed[0]
            any_complete = any(o.status == "complete" for o, _ in replies)
            return result

        async def after() -> None:
            if any_complete:
                await self._memory.maybe_schedule(conversation_id)

        return await self._lifecycle.start("group", claim, body, after=after)

    async def _turn(
        self,
        generation: Generation,
        user_id: int,
        group: Group,
        user_message: Message,
        previous_speakers: list[int],
    ) -> dict[str, Any]:
        run = generation.run
        run.publish("user_message", message_view(user_message))
        turn = await self._db.read(self._load_turn, user_id, group, user_message)
        relay = _StopRelay(run)
        outcomes: dict[int, tuple[ReplyOutcome, Message | None]] = {}
        async with trio.open_nursery() as outer:
            outer.start_soon(relay.watch)
            speakers: list[int] = []
            reason = ""
            with relay.scope():
                speakers, reason = await self._choose(
                    user_id, group, turn, user_message.content, previous_speakers
                )
            if not relay.stopped:
                run.publish(
                    "speakers", {"character_ids": [str(c) for c in speakers], "reason": reason}
                )
                by_id = {c.id: c for c in turn.members}
                self._choose_lore(run, turn, speakers)
                async with trio.open_nursery() as nursery:
                    for character_id in speakers:
                        nursery.start_soon(
                            self._speak,
                            generation,
                            user_id,
                            group,
                            turn,
                            by_id[character_id],
                            relay.scope(),
                            outcomes,
                        )
            outer.cancel_scope.cancel()
        ordered = [outcomes[c] for c in speakers if c in outcomes]
        return {
            "user_message": message_view(user_message),
            "speakers": [str(c) for c in speakers],
            "reason": reason,
            "replies": [message_view(m) for _, m in ordered if m is not None],
            "lore": union_ids(turn.lore.values()),
            "outcomes": ordered,
        }

    def _load_turn(
        self, conn: Connection, user_id: int, group: Group, user_message: Message
    ) -> _Turn:
        members = characters.get_characters(conn, user_id, group.character_ids)
        recent = messages.recent_uncompressed(conn, group.conversation_id, limit=HISTORY_WINDOW)
        recent = [m for m in recent if m.id <= user_message.id]
        if not recent or recent[-1].id != user_message.id:
            recent.append(user_message)  # compressed meanwhile: it is still the last word
        names = {c.id: c.name for c in members}
        former = sorted({m.character_id for m in recent if m.character_id is not None} - set(names))
        names.update({c.id: c.name for c in characters.get_characters(conn, user_id, former)})
        mems = {
            c.id: memories.list_memories(conn, group.conversation_id, character_id=c.id)
            for c in members
        }
        books = lorebooks.attached_lorebooks(conn, [c.id for c in members], group.id)
        return _Turn(members, recent, mems, names, books)

    @staticmethod
    def _choose_lore(run: Run, turn: _Turn, speakers: Sequence[int]) -> None:
        """Each speaker's lore entries (its books, then the group's), published as one `lore`
        event (the union) before any speaker streams."""
        for character_id in speakers:
            seen = point_of_view(turn.recent, character_id, turn.names)
            turn.lore[character_id] = select_lore(
                turn.lorebooks.get(character_id, []), [text for _, text in seen]
            )
        entry_ids = union_ids(turn.lore.values())
        if entry_ids:
            run.publish("lore", {"entry_ids": entry_ids})

    async def _choose(
        self,
        user_id: int,
        group: Group,
        turn: _Turn,
        content: str,
        previous_speakers: Sequence[int],
    ) -> tuple[list[int], str]:
        member_ids = [c.id for c in turn.members]
        limit = min(group.max_speakers, len(member_ids))
        if group.strategy == "all":
            return member_ids, "every member replies"
        if group.strategy == "moderator":
            try:
                choice = await self._client.structured(
                    moderator_prompt(group, turn, content, limit),
                    SpeakerChoice,
                    user=str(user_id),
                )
            except llm.LLMError as exc:
                log.info("moderator failed for group %d: %s", group.id, exc)
            else:
                chosen = validate_choice(choice, member_ids, limit)
                if chosen:
                    return chosen, choice.reason.strip() or "chosen by the moderator"
                log.info("moderator answered unusable ids for group %d", group.id)
            named = named_in(content, turn.members, limit)
            if named:
                return named, "named in the message"
        return round_robin(member_ids, previous_speakers, limit), "round robin"

    async def _speak(
        self,
        generation: Generation,
        user_id: int,
        group: Group,
        turn: _Turn,
        character: Character,
        scope: trio.CancelScope,
        outcomes: dict[int, tuple[ReplyOutcome, Message | None]],
    ) -> None:
        run = generation.run
        prompt = self._speaker_prompt(group, turn, character)
        tag = {"character_id": str(character.id)}
        outcome = await stream_reply(
            self._client, run, prompt, user=str(user_id), tag=tag, cancel_scope=scope
        )
        saved: Message | None = None
        if outcome.status == "complete" or outcome.text:
            reply = pending_message(
                group.conversation_id,
                "assistant",
                outcome.text,
                character_id=character.id,
                status=outcome.status,
            )
            try:
                stored: Saved[None] = await generation.save([reply])
            except StorageError as exc:
                log.warning("could not store %s's group reply", character.id, exc_info=True)
                if outcome.error is None:
                    outcome = ReplyOutcome(outcome.text, "error", None)
                    _publish_speaker_error(run, character.id, exc)
            else:
                if stored.kept:
                    run.publish(
                        "reply_kept",
                        {"character_id": str(character.id)} | _kept_info(reply),
                    )
                else:
                    saved = stored.messages[0]
        outcomes[character.id] = (outcome, saved)
        if saved is not None:
            run.publish("reply", message_view(saved))
        if outcome.error is not None:
            _publish_speaker_error(run, character.id, outcome.error)

    def _speaker_prompt(
        self, group: Group, turn: _Turn, character: Character
    ) -> list[llm.ChatMessage]:
        others = [c.name for c in turn.members if c.id != character.id]
        system = "\n\n".join(
            [
                character_system_prompt(
                    character, turn.memories.get(character.id, []), turn.lore.get(character.id)
                ),
                f'This is the group conversation "{group.name}" between the user, '
                f"{character.name} and {', '.join(others) or 'nobody else'}. Lines of the other "
                "characters come prefixed with their names. Reply only as "
                f"{character.name}, with your own line: never speak for the others, and do not "
                "prefix your reply with your name.",
            ]
        )
        return build_prompt(
            system, point_of_view(turn.recent, character.id, turn.names), budget=self._budget
        )


# ---- pure helpers (unit-testable)


def point_of_view(
    history: Sequence[Message], character_id: int, names: dict[int, str]
) -> list[tuple[str, str]]:
    """The group history as `character_id` sees it: its own lines as the assistant's, the other
    characters' as user turns prefixed with their names, the user's as user turns."""
    out: list[tuple[str, str]] = []
    for m in history:
        if m.status == "error":
            continue
        if m.role == "user":
            out.append(("user", m.content))
        elif m.character_id == character_id:
            out.append(("assistant", m.content))
        else:
            speaker = names.get(m.character_id or 0, "Someone")
            out.append(("user", f"{speaker}: {m.content}"))
    return out


def round_robin(
    member_ids: Sequence[int], previous_speakers: Sequence[int], count: int
) -> list[int]:
    """`count` members in listed order, starting after the last member, in listed order, of
    the previous turn's speakers (deterministic, whichever reply finished last)."""
    if not member_ids:
        return []
    start = 0
    spoke = [i for i, member in enumerate(member_ids) if member in set(previous_speakers)]
    if spoke:
        start = (spoke[-1] + 1) % len(member_ids)
    ordered = list(member_ids[start:]) + list(member_ids[:start])
    return ordered[: max(0, min(count, len(ordered)))]


def named_in(content: str, members: Sequence[Character], count: int) -> list[int]:
    """Members whose name appears in `content` (whole words, any case), in listed order."""
    found = [
        c.id
        for c in members
        if re.search(rf"(?<!\w){re.escape(c.name)}(?!\w)", content, re.IGNORECASE)
    ]
    return found[:count]


def validate_choice(choice: SpeakerChoice, member_ids: Sequence[int], limit: int) -> list[int]:
    """The moderator's ids as members, or [] when the answer is unusable (unknown ids, too
    many, none)."""
    chosen: list[int] = []
    for raw in choice.character_ids:
        parsed = parse_id(raw.strip())
        if parsed is None or parsed not in member_ids:
            return []
        if parsed not in chosen:
            chosen.append(parsed)
    if len(chosen) > limit:
        return []
    return chosen


def moderator_prompt(group: Group, turn: _Turn, content: str, limit: int) -> list[llm.ChatMessage]:
    """One structured call: the members' profiles, the recent history, the new message."""
    lines = []
    for c in turn.members:
        lines.append(f"- id {c.id}: {c.name} — {_brief(c)}")
    history = [
        f"{_speaker(m, turn.names)}: {_clip(m.content)}"
        for m in turn.recent[:-1][-MODERATOR_HISTORY:]
        if m.status != "error"
    ]
    user = "\n".join(
        [
            f'Group "{group.name}". Characters:',
            *lines,
            "",
            "Recent conversation:",
            *(history or ["(none)"]),
            "",
            "The user's new message:",
            _clip(content),
            "",
            f"CANDIDATES: {','.join(str(c.id) for c in turn.members)}",
        ]
    )
    system = (
        "You moderate a group role-play chat. Choose which characters reply to the user's new "
        f"message, most relevant first: between 1 and {limit} of them, only ids from the "
        "CANDIDATES line, each at most once. Answer with JSON: "
        '{"character_ids": [...], "reason": "..."}.'
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _brief(character: Character) -> str:
    parts = []
    identity = character.profile.get("identity") or {}
    personality = character.profile.get("personality") or {}
    for value in (identity.get("occupation"), personality.get("traits")):
        if value:
            parts.append("; ".join(map(str, value)) if isinstance(value, list) else str(value))
    return _clip(" | ".join(parts) or "no profile details")


def _speaker(message: Message, names: dict[int, str]) -> str:
    if message.role == "user":
        return "User"
    return names.get(message.character_id or 0, "Someone")


def _clip(text: str) -> str:
    return text if len(text) <= MODERATOR_LINE_CHARS else text[:MODERATOR_LINE_CHARS] + " …"


def _member_ids(raw: Sequence[str]) -> list[int]:
    ids = [parse_id(r) for r in raw]
    if any(i is None for i in ids):
        raise InvalidRequest("`character_ids` must name your characters")
    parsed = [i for i in ids if i is not None]
    if len(set(parsed)) != len(parsed):
        raise InvalidRequest("`character_ids` must not repeat a character")
    return parsed


def _check_owned(conn: Connection, user_id: int, ids: Sequence[int]) -> None:
    if len(characters.get_characters(conn, user_id, ids)) != len(ids):
        raise InvalidRequest("`character_ids` must name your characters")


def _check_max_speakers(max_speakers: int, members: int) -> None:
    if not 1 <= max_speakers <= members:
        raise InvalidRequest(
            f"`max_speakers` must be between 1 and the number of members ({members})"
        )


def _publish_speaker_error(run: Run, character_id: int, error: Exception) -> None:
    info = describe(error)
    run.publish(
        "speaker_error",
        {"character_id": str(character_id), "code": info.code, "message": info.message},
    )


def _kept_info(reply: PendingMessage) -> dict[str, Any]:
    return {
        "code": "storage_unavailable",
        "message": "the database is unavailable: the reply is kept and will be saved when it "
        "answers again",
        "reply": reply.to_json(),
    }


def _in_progress() -> Conflict:
    return Conflict("a turn in this group is still being generated", code="generation_in_progress")
