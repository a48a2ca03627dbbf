"""Group chat: CRUD, choosing the speakers of a turn, and their concurrent replies.

A turn is a run in the service nursery (like a one-to-one reply): the user message, when there
is one, is stored first, under the database's one-generation-per-conversation rule; then the
speakers are chosen (`speaker_ids` given by the user, else the strategy: moderator — one
structured LLM call —, round robin, all, natural, pooled, manual; see `app.services.speakers`),
then every chosen character streams its reply at the same time into the one event log, each
delta tagged with its character id. A reply is stored when it finishes; one speaker failing does
not stop the others. A stop (local or from another process through the generation's stop flag)
interrupts every speaker, and each stores its partial text as `interrupted`.

`continue` is one generation (one claim) made of rounds: turns without a user message, one
after another; each round reads the conversation again, so its speakers see the replies of the
earlier rounds. A stop ends the current round and starts no more; the rounds end early when one
chooses nobody.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from pydantic import BaseModel
from sqlalchemy import Connection

import llm
from app.error_info import describe
from app.errors import Conflict, InvalidRequest, NotFound
from app.services import memory_rank
from app.services.character_llm import reply_options
from app.services.conversation_tree import message_in
from app.services.greetings import character_language
from app.services.lifecycle import (
    Claim,
    Generation,
    GenerationLifecycle,
    Saved,
    check_idle,
    pending_message,
)
from app.services.lore_activation import LoreSelection, select_lore, union_ids
from app.services.memory import MemoryService
from app.services.opening import Interlocutor, interlocutor
from app.services.prompt_texts import PromptTexts, group_language, texts_for
from app.services.prompts import build_prompt, character_system_prompt, speaker_frame
from app.services.replies import ReplyOutcome, stream_reply
from app.services.runs import Run
from app.services.snapshots import PromptSnapshots
from app.services.speakers import (
    LastMessage,
    RandomSource,
    Situation,
    everyone,
    moderator_candidates,
    natural,
    pooled,
    rotation,
    round_robin,
)
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
    tree,
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
    user_message: Message | None  # the turn's new message from the user, if any
    spoken_since_user: list[int]  # speakers of the replies since the user's last message
    interlocutor: Interlocutor | None = None  # the user's persona
    lorebooks: dict[int, list[Lorebook]] = field(default_factory=dict)  # per member, in order
    lore: dict[int, LoreSelection] = field(default_factory=dict)  # per speaker of the turn

    @property
    def last(self) -> LastMessage | None:
        """The conversation's last message (failed replies left out)."""
        for m in reversed(self.recent):
            if m.status != "error":
                return LastMessage(m.role, m.character_id, m.content)
        return None


@dataclass
class _Round:
    """One round's speakers and what came of each."""

    speakers: list[int]
    reason: str
    outcomes: list[tuple[ReplyOutcome, Message | None]]
    lore: list[str] = field(default_factory=list)  # the entries its speakers' prompts held

    def view(self) -> dict[str, Any]:
        return {
            "speakers": [str(c) for c in self.speakers],
            "reason": self.reason,
            "replies": [message_view(m) for _, m in self.outcomes if m is not None],
            "lore": self.lore,
        }

    @property
    def failed(self) -> llm.LLMError | None:
        """The first error when every speaker failed, else None."""
        errors = [o.error for o, _ in self.outcomes if o.error is not None]
        if self.outcomes and len(errors) == len(self.outcomes):
            return errors[0]
        return None


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
    """Groups of the user's characters and their conversations.

    `rng` is where the strategies' chance comes from (talkativeness rolls, shuffles, the pooled
    choice); tests pass a seeded `random.Random` or a scripted source.
    """

    def __init__(
        self,
        db: Database,
        client: llm.OpenRouterClient,
        lifecycle: GenerationLifecycle,
        memory: MemoryService,
        *,
        prompt_budget: int,
        rng: RandomSource | None = None,
        snapshots: PromptSnapshots | None = None,
    ) -> None:
        self._db = db
        self._snapshots = snapshots
        self._client = client
        self._lifecycle = lifecycle
        self._memory = memory
        self._budget = prompt_budget
        self.random: RandomSource = rng if rng is not None else random.Random()

    # ---- CRUD

    async def create(
        self,
        user_id: int,
        name: str,
        character_ids: Sequence[str],
        *,
        strategy: GroupStrategy,
        max_speakers: int,
        muted_character_ids: Sequence[str] = (),
        talkativeness: Mapping[str, float] | None = None,
        allow_self_responses: bool = False,
    ) -> Group:
        ids = _member_ids(character_ids)
        _check_max_speakers(max_speakers, len(ids))
        muted = _members_named(muted_character_ids, ids, "muted_character_ids")
        talk = _talkativeness(talkativeness or {}, ids)

        def create(conn: Connection) -> Group:
            _check_owned(conn, user_id, ids)
            return groups.create_group(
                conn,
                user_id,
                name,
                ids,
                strategy=strategy,
                max_speakers=max_speakers,
                muted_character_ids=muted,
                talkativeness=talk,
                allow_self_responses=allow_self_responses,
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
        muted_character_ids: Sequence[str] | None = None,
        talkativeness: Mapping[str, float] | None = None,
        allow_self_responses: bool | None = None,
    ) -> Group:
        """Change the given fields. `talkativeness` merges the given keys; muted ids and
        talkativeness keys must be members (of the new member list when it changes too);
        members who leave lose their mute and talkativeness."""
        ids = None if character_ids is None else _member_ids(character_ids)

        def update(conn: Connection) -> Group | None:
            current = None if group_id is None else groups.get_group(conn, user_id, group_id)
            if current is None:
                return None
            if ids is not None:
                _check_owned(conn, user_id, ids)
            members = current.character_ids if ids is None else ids
            _check_max_speakers(
                current.max_speakers if max_speakers is None else max_speakers, len(members)
            )
            muted = (
                [m for m in current.muted_character_ids if m in members]
                if muted_character_ids is None
                else _members_named(muted_character_ids, members, "muted_character_ids")
            )
            talk = {k: v for k, v in current.talkativeness.items() if k in members}
            talk.update(_talkativeness(talkativeness or {}, members))
            return groups.update_group(
                conn,
                user_id,
                current.id,
                name=name,
                character_ids=ids,
                strategy=strategy,
                max_speakers=max_speakers,
                muted_character_ids=muted,
                talkativeness=talk,
                allow_self_responses=allow_self_responses,
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

    async def stop(self, user_id: int, group_id: int | None) -> bool:
        """Interrupt the running turn (or continue); its speakers store their partial text."""
        group = await self.get(user_id, group_id)
        return await self._lifecycle.stop(group.conversation_id)

    async def send(
        self,
        user_id: int,
        group_id: int | None,
        content: str | None,
        *,
        speaker_ids: Sequence[str] | None = None,
        branch_of: int | None = None,
    ) -> Run:
        """One turn: store the user message (when there is `content`) and start the replies;
        `speaker_ids` (members, muted ones too, in that order) replaces the strategy. 409 while
        another generation runs in the group; 400 for a turn of a manual group that names
        nobody and says nothing. `branch_of`: the user message is a new sibling of that user
        message (a branch), made active, and the turn runs from there."""
        group = await self.get(user_id, group_id)
        forced = None
        if speaker_ids is not None:
            forced = _members_named(speaker_ids, group.character_ids, "speaker_ids")
        if content is None and forced is None and group.strategy == "manual":
            raise InvalidRequest(
                "in a manual group nobody replies unless `speaker_ids` is given: send "
                "`content`, `speaker_ids` or both"
            )

        def prepare(conn: Connection) -> tuple[Message | None, list[int]]:
            previous = self._check_members(conn, user_id, group)
            if content is None:
                return None, previous
            if branch_of is None:
                return messages.add_message(conn, group.conversation_id, "user", content), previous
            target = message_in(conn, group.conversation_id, branch_of)
            if target.role != "user":
                raise InvalidRequest("only a user message can be branched from")
            branched = messages.add_message(
                conn, group.conversation_id, "user", content, parent_id=target.parent_id
            )
            return branched, previous

        return await self._turn_after(user_id, group, prepare, forced)

    async def regenerate(self, user_id: int, group_id: int | None, message_id: int | None) -> Run:
        """A new reply by the same character next to the assistant message `message_id`, from
        the path up to its parent; the old reply and the replies after it stay on their branch
        and the new reply is the leaf."""
        group = await self.get(user_id, group_id)

        def prepare(conn: Connection) -> tuple[Message | None, list[int]]:
            previous = self._check_members(conn, user_id, group)
            target = message_in(conn, group.conversation_id, message_id)
            if target.role != "assistant" or target.character_id is None:
                raise InvalidRequest("only a character's reply can be regenerated")
            if target.character_id not in group.character_ids:
                raise InvalidRequest("that character is no longer a member of the group")
            if target.parent_id is not None:
                tree.promote(conn, group.conversation_id, target.parent_id)
            tree.set_active_leaf(conn, group.conversation_id, target.parent_id)
            memories.invalidate_stale(conn, group.conversation_id)
            forced.append(target.character_id)
            return None, previous

        forced: list[int] = []
        return await self._turn_after(user_id, group, prepare, forced)

    async def _turn_after(
        self,
        user_id: int,
        group: Group,
        prepare: Callable[[Connection], tuple[Message | None, list[int]]],
        forced: list[int] | None,
    ) -> Run:

        claim = await self._lifecycle.claim(group.conversation_id, prepare, busy=_in_progress())
        user_message, previous = claim.prepared
        user_view = None if user_message is None else message_view(user_message)

        def shape(rounds: list[_Round]) -> dict[str, Any]:
            turn = rounds[0] if rounds else _Round([], "", [])
            return {"user_message": user_view} | turn.view()

        return await self._start(
            user_id,
            group,
            claim,
            user_message=user_message,
            forced=forced,
            previous=previous,
            rounds=1,
            numbered=False,
            shape=shape,
        )

    async def continue_(self, user_id: int, group_id: int | None, rounds: int) -> Run:
        """Up to `rounds` turns without a user message, one after another, as ONE generation:
        a stop ends it, a new message meanwhile is 409. A round that chooses nobody ends it."""
        group = await self.get(user_id, group_id)

        def prepare(conn: Connection) -> list[int]:
            return self._check_members(conn, user_id, group)

        claim = await self._lifecycle.claim(group.conversation_id, prepare, busy=_in_progress())

        def shape(done: list[_Round]) -> dict[str, Any]:
            return {"rounds": [r.view() for r in done]}

        return await self._start(
            user_id,
            group,
            claim,
            user_message=None,
            forced=None,
            previous=claim.prepared,
            rounds=rounds,
            numbered=True,
            shape=shape,
        )

    @staticmethod
    def _check_members(conn: Connection, user_id: int, group: Group) -> list[int]:
        """Inside the claim: the group still has members; the previous turn's speakers."""
        if not characters.get_characters(conn, user_id, group.character_ids):
            raise Conflict("the group has no members left")
        return messages.previous_turn_speakers(conn, group.conversation_id)

    async def _start(
        self,
        user_id: int,
        group: Group,
        claim: Claim[Any],
        *,
        user_message: Message | None,
        forced: list[int] | None,
        previous: list[int],
        rounds: int,
        numbered: bool,
        shape: Callable[[list[_Round]], dict[str, Any]],
    ) -> Run:
        """Run the rounds of a claimed generation (`numbered`: a continue, with `round` events);
        `shape` makes its result."""
        conversation_id = group.conversation_id
        any_complete = False

        async def body(generation: Generation) -> dict[str, Any]:
            nonlocal any_complete
            done = await self._rounds(
                generation,
                user_id,
                group,
                user_message=user_message,
                forced=forced,
                previous=previous,
                rounds=rounds,
                numbered=numbered,
            )
            await generation.end()
            any_complete = any(o.status == "complete" for r in done for o, _ in r.outcomes)
            result = shape(done)
            failed = done[-1].failed if done else None
            if failed is not None:
                generation.run.error_extra = (
                    {"rounds": result["rounds"]} if numbered else {"replies": result["replies"]}
                )
                raise failed
            return result

        async def after() -> None:
            if any_complete:
                await self._memory.maybe_schedule(conversation_id)

        return await self._lifecycle.start("group", claim, body, after=after)

    async def _rounds(
        self,
        generation: Generation,
        user_id: int,
        group: Group,
        *,
        user_message: Message | None,
        forced: list[int] | None,
        previous: list[int],
        rounds: int,
        numbered: bool,
    ) -> list[_Round]:
        """The generation's rounds, one after another, under one stop relay. Each round reads
        the conversation again (so it sees the earlier rounds' replies), chooses its speakers
        and lets them reply concurrently. Ends after `rounds`, on a stop, when every speaker of
        a round failed, or (`numbered`) when a round chooses nobody."""
        run = generation.run
        if user_message is not None:
            run.publish("user_message", message_view(user_message))
        relay = _StopRelay(run)
        done: list[_Round] = []
        async with trio.open_nursery() as outer:
            outer.start_soon(relay.watch)
            for index in range(rounds):
                turn = await self._db.read(
                    self._load_turn, user_id, group, user_message if index == 0 else None
                )
                speakers: list[int] = []
                reason = ""
                with relay.scope():
                    speakers, reason = await self._choose(
                        user_id, group, turn, forced if index == 0 else None, previous
                    )
                if relay.stopped or (numbered and not speakers):
                    break
                if numbered:
                    run.publish("round", {"index": index})
                run.publish(
                    "speakers", {"character_ids": [str(c) for c in speakers], "reason": reason}
                )
                outcomes: dict[int, tuple[ReplyOutcome, Message | None]] = {}
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
                done.append(
                    _Round(
                        speakers,
                        reason,
                        [outcomes[c] for c in speakers if c in outcomes],
                        union_ids(turn.lore.values()),
                    )
                )
                previous = speakers
                if relay.stopped or done[-1].failed is not None:
                    break
            outer.cancel_scope.cancel()
        return done

    def _load_turn(
        self, conn: Connection, user_id: int, group: Group, user_message: Message | None
    ) -> _Turn:
        members = characters.get_characters(conn, user_id, group.character_ids)
        recent = messages.recent_uncompressed(conn, group.conversation_id, limit=HISTORY_WINDOW)
        if user_message is not None:
            recent = [m for m in recent if m.id <= user_message.id]
            if not recent or recent[-1].id != user_message.id:
                recent.append(user_message)  # compressed meanwhile: it is still the last word
        names = {c.id: c.name for c in members}
        former = sorted({m.character_id for m in recent if m.character_id is not None} - set(names))
        names.update({c.id: c.name for c in characters.get_characters(conn, user_id, former)})
        query = user_message.content if user_message is not None else ""
        if not query and recent:
            query = recent[-1].content
        mems = {
            c.id: memory_rank.for_prompt(
                memories.list_memories(conn, group.conversation_id, character_id=c.id),
                query,
                prompt_budget=self._budget,
            )
            for c in members
        }
        books = lorebooks.attached_lorebooks(conn, [c.id for c in members], group.id)
        spoken = messages.previous_turn_speakers(conn, group.conversation_id)
        return _Turn(
            members,
            recent,
            mems,
            names,
            user_message,
            spoken,
            interlocutor(conn, user_id),
            books,
        )

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
        forced: list[int] | None,
        previous_speakers: Sequence[int],
    ) -> tuple[list[int], str]:
        present = {c.id for c in turn.members}
        if forced is not None:
            return [c for c in forced if c in present], "chosen by the user"
        situation = Situation(
            members=[(c.id, c.name) for c in turn.members],
            limit=group.max_speakers,
            muted=frozenset(group.muted_character_ids),
            talkativeness=group.talkativeness,
            allow_self_responses=group.allow_self_responses,
            last=turn.last,
            spoken_since_user=turn.spoken_since_user,
            previous_speakers=previous_speakers,
        )
        strategy = group.strategy
        if strategy == "all":
            return everyone(situation), "every member replies"
        if strategy == "manual":
            return [], "manual: nobody replies unless speaker_ids is given"
        if strategy == "natural":
            return natural(situation, self.random), "natural order"
        if strategy == "pooled":
            return pooled(situation, self.random), "pooled"
        if strategy == "moderator":
            return await self._moderate(user_id, group, turn, situation)
        return rotation(situation), "round robin"

    async def _moderate(
        self, user_id: int, group: Group, turn: _Turn, situation: Situation
    ) -> tuple[list[int], str]:
        """One structured call over the candidates (unmuted, not the banned last speaker);
        on failure the members named in the last message, then round robin."""
        candidates = moderator_candidates(situation)
        if not candidates:
            return [], "no member may speak"
        limit = min(group.max_speakers, len(candidates))
        try:
            choice = await self._client.structured(
                moderator_prompt(group, turn, candidates, limit),
                SpeakerChoice,
                user=str(user_id),
            )
        except llm.LLMError as exc:
            log.info("moderator failed for group %d: %s", group.id, exc)
        else:
            chosen = validate_choice(choice, candidates, limit)
            if chosen:
                return chosen, choice.reason.strip() or "chosen by the moderator"
            log.info("moderator answered unusable ids for group %d", group.id)
        last = turn.last
        allowed = [c for c in turn.members if c.id in candidates]
        named = [] if last is None else named_in(last.content, allowed, limit)
        if named:
            return named, "named in the message"
        ids = situation.member_ids
        rotated = [c for c in round_robin(ids, situation.previous_speakers, len(ids))]
        return [c for c in rotated if c in candidates][:limit], "round robin"

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
            self._client,
            run,
            prompt,
            user=str(user_id),
            tag=tag,
            cancel_scope=scope,
            options=reply_options(character),
        )
        saved: Message | None = None
        if outcome.status == "complete" or outcome.text:
            reply = pending_message(
                group.conversation_id,
                "assistant",
                outcome.text,
                character_id=character.id,
                status=outcome.status,
                model=outcome.model,
            )
            model = outcome.model or self._client.settings.model

            def record(conn: Connection, messages_stored: list[Message]) -> None:
                if messages_stored and self._snapshots is not None:  # the exact prompt sent
                    self._snapshots.record_prompt(conn, messages_stored[-1].id, prompt, model)

            try:
                stored: Saved[None] = await generation.save([reply], extra=record)
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
        system = character_system_prompt(
            character,
            turn.memories.get(character.id, []),
            turn.lore.get(character.id),
            turn.interlocutor,
        )
        frame = speaker_frame(group.name, character, others, listening=turn.user_message is None)
        system = f"{system}\n\n{frame}"
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


def moderator_prompt(
    group: Group, turn: _Turn, candidates: Sequence[int], limit: int
) -> list[llm.ChatMessage]:
    """One structured call: the members' profiles, the recent history, the new message (or,
    in a turn without one, the request to let the conversation go on), and who may be chosen:
    the CANDIDATES line leaves out muted members and a last speaker who may not speak again,
    and the prompt says so."""
    texts = texts_for(group_language([character_language(c) for c in turn.members]))
    muted = [c for c in turn.members if c.id in group.muted_character_ids]
    spoke = [c for c in turn.members if c.id not in candidates and c not in muted]
    lines = []
    for c in turn.members:
        note = (
            texts.moderator_note_muted
            if c in muted
            else texts.moderator_note_spoke
            if c in spoke
            else ""
        )
        lines.append(f"- id {c.id}: {c.name}{note} — {_brief(c, texts)}")
    shown = turn.recent[:-1] if turn.user_message is not None else turn.recent
    history = [
        f"{_speaker(m, turn.names, texts)}: {_clip(m.content)}"
        for m in shown[-MODERATOR_HISTORY:]
        if m.status != "error"
    ]
    if turn.user_message is not None:
        now = [texts.moderator_new_message, _clip(turn.user_message.content)]
        task = texts.moderator_task_reply
    else:
        now = [texts.moderator_silent]
        task = texts.moderator_task_continue
    rules = [
        f"{label}: " + texts.list_separator.join(f"{c.name} (id {c.id})" for c in who)
        for label, who in (
            (texts.moderator_muted, muted),
            (texts.moderator_just_spoke, spoke),
        )
        if who
    ]
    user = "\n".join(
        [
            texts.moderator_characters.format(group=group.name),
            *lines,
            "",
            texts.moderator_recent,
            *(history or [texts.moderator_none]),
            "",
            *now,
            "",
            *rules,
            f"CANDIDATES: {','.join(str(c) for c in candidates)}",
        ]
    )
    system = texts.moderator_system.format(task=task, limit=limit)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _brief(character: Character, texts: PromptTexts) -> str:
    parts = []
    identity = character.profile.get("identity") or {}
    personality = character.profile.get("personality") or {}
    for value in (identity.get("occupation"), personality.get("traits")):
        if value:
            parts.append("; ".join(map(str, value)) if isinstance(value, list) else str(value))
    return _clip(" | ".join(parts) or texts.moderator_no_details)


def _speaker(message: Message, names: dict[int, str], texts: PromptTexts) -> str:
    if message.role == "user":
        return texts.user_label
    return names.get(message.character_id or 0, texts.someone)


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


def _members_named(raw: Sequence[str], members: Sequence[int], field: str) -> list[int]:
    """Ids that must name members, each once (400 otherwise), in the given order."""
    ids = [parse_id(r) for r in raw]
    parsed = [i for i in ids if i is not None and i in members]
    if len(parsed) != len(ids):
        raise InvalidRequest(f"`{field}` must name members of the group")
    if len(set(parsed)) != len(parsed):
        raise InvalidRequest(f"`{field}` must not repeat a character")
    return parsed


def _talkativeness(raw: Mapping[str, float], members: Sequence[int]) -> dict[int, float]:
    """{member id: 0–1} from the request's keys (400 for a key that names no member)."""
    ids = _members_named(list(raw), members, "talkativeness")
    return {i: float(v) for i, v in zip(ids, raw.values(), strict=True)}


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
