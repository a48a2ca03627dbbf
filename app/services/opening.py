"""Who the character talks to, and how an empty one-to-one conversation opens.

`open_direct` runs inside the write transaction that creates or loads a user's conversation
with a character: when the conversation is empty and the character has a greeting, the greeting
becomes its first message and each alternate greeting a sibling of it, the first one active
(API.md "Characters: greetings, avatars, cards, settings"). The conversation row is locked
first, so two requests racing to open it store the greetings once.

`interlocutor` is the user as the prompts present them: the persona's name (or the username),
which fills ``{{user}}``, and the persona's description.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from app.services.greetings import opening_messages
from app.services.personas import display_name
from storage import conversations, messages, personas, tree
from storage.records import Character, Conversation


@dataclass(frozen=True)
class Interlocutor:
    """The user a character talks to: ``name`` fills ``{{user}}``; ``description`` is the
    persona's (empty when none)."""

    name: str
    description: str = ""


def interlocutor(conn: Connection, user_id: int) -> Interlocutor:
    """Inside a transaction: the user's persona name (else username) and description."""
    username, persona = personas.username_and_persona(conn, user_id)
    return Interlocutor(display_name(persona, username), persona.description)


def lookup_direct(
    conn: Connection, user_id: int, character_id: int
) -> tuple[Character | None, Conversation | None, bool]:
    """A read: the character, its conversation with the user (None before the first) and
    whether `open_direct` still has to run (no conversation yet, or an empty one to greet in)."""
    character, conversation = conversations.character_and_direct(conn, user_id, character_id)
    if character is None:
        return None, None, False
    if conversation is None:
        return character, None, True
    greet = bool(character.greeting) and tree.is_empty(conn, conversation.id)
    return character, conversation, greet


def open_direct(conn: Connection, user_id: int, character: Character) -> Conversation:
    """Inside a write transaction: the user's conversation with ``character`` (created if
    needed), greeted when it is empty and the character has a greeting."""
    conversation = conversations.get_or_create_direct(conn, user_id, character.id)
    tree.lock_conversation(conn, conversation.id)  # racing openers greet once
    if not character.greeting or not tree.is_empty(conn, conversation.id):
        return conversation
    texts = opening_messages(character, user=interlocutor(conn, user_id).name)
    stored = [
        messages.add_message(
            conn, conversation.id, "assistant", text, character_id=character.id, parent_id=None
        )
        for text in texts
    ]
    if len(stored) > 1:
        tree.select_message(conn, conversation.id, stored[0].id)
    return conversation
