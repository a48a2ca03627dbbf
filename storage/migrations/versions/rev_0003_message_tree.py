"""Conversations become trees of messages; memories record the messages they summarise.

Existing conversations become a single path: each message's parent is the
previous message (by id) of its conversation and the active leaf is the last
one. Nothing is deleted.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.timestamps import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("parent_id", sa.Integer(), nullable=True))
    op.add_column(
        "messages",
        sa.Column("active_rank", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("messages", sa.Column("edited_at", UtcDateTime(), nullable=True))
    op.add_column("messages", sa.Column("model", sa.Text(), nullable=True))
    op.add_column("conversations", sa.Column("active_leaf_id", sa.Integer(), nullable=True))

    # linear history → one path: the parent is the previous message of the conversation
    op.execute(
        "UPDATE messages SET parent_id = ("
        " SELECT MAX(p.id) FROM messages p"
        " WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id)"
    )
    op.execute(
        "UPDATE conversations SET active_leaf_id = ("
        " SELECT MAX(m.id) FROM messages m WHERE m.conversation_id = conversations.id)"
    )

    op.create_index(
        op.f("ix_messages_parent_id_active_rank"),
        "messages",
        ["parent_id", "active_rank"],
        unique=False,
    )
    op.create_index(
        op.f("ix_messages_conversation_id_parent_id"),
        "messages",
        ["conversation_id", "parent_id"],
        unique=False,
    )

    op.create_table(
        "memory_messages",
        sa.Column("memory_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["memory_id"],
            ["memories.id"],
            name=op.f("fk_memory_messages_memory_id_memories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("memory_id", "message_id", name=op.f("pk_memory_messages")),
    )
    op.create_index(
        op.f("ix_memory_messages_message_id"), "memory_messages", ["message_id"], unique=False
    )


def downgrade() -> None:
    # Only the active path survives a downgrade (the old schema has no branches).
    op.drop_table("memory_messages")
    op.drop_index(op.f("ix_messages_conversation_id_parent_id"), table_name="messages")
    op.drop_index(op.f("ix_messages_parent_id_active_rank"), table_name="messages")
    op.execute(
        "WITH RECURSIVE path(id, parent_id) AS ("
        " SELECT m.id, m.parent_id FROM messages m"
        " JOIN conversations c ON m.id = c.active_leaf_id"
        " UNION ALL SELECT m.id, m.parent_id FROM messages m JOIN path ON m.id = path.parent_id)"
        " DELETE FROM messages WHERE id NOT IN (SELECT id FROM path)"
    )
    for table, column in (
        ("conversations", "active_leaf_id"),
        ("messages", "model"),
        ("messages", "edited_at"),
        ("messages", "active_rank"),
        ("messages", "parent_id"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
