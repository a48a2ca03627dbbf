"""Lorebooks (world info): lorebooks, their entries, and ordered attachments to characters and
groups.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.timestamps import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _attachment(name: str, owner: str, owner_table: str) -> None:
    op.create_table(
        name,
        sa.Column(owner, sa.Integer(), nullable=False),
        sa.Column("lorebook_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            [owner],
            [f"{owner_table}.id"],
            name=op.f(f"fk_{name}_{owner}_{owner_table}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lorebook_id"],
            ["lorebooks.id"],
            name=op.f(f"fk_{name}_lorebook_id_lorebooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(owner, "lorebook_id", name=op.f(f"pk_{name}")),
    )
    op.create_index(op.f(f"ix_{name}_lorebook_id"), name, ["lorebook_id"], unique=False)


def upgrade() -> None:
    op.create_table(
        "lorebooks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("scan_depth", sa.Integer(), nullable=False),
        sa.Column("token_budget", sa.Integer(), nullable=False),
        sa.Column("recursive", sa.Boolean(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_lorebooks_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lorebooks")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_lorebooks_user_id_id"), "lorebooks", ["user_id", "id"], unique=False)
    op.create_table(
        "lorebook_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lorebook_id", sa.Integer(), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("secondary_keys", sa.JSON(), nullable=False),
        sa.Column("selective", sa.Boolean(), nullable=False),
        sa.Column("constant", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("case_sensitive", sa.Boolean(), nullable=False),
        sa.Column("use_regex", sa.Boolean(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("insertion_order", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("position", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lorebook_id"],
            ["lorebooks.id"],
            name=op.f("fk_lorebook_entries_lorebook_id_lorebooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lorebook_entries")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_lorebook_entries_lorebook_id_id"),
        "lorebook_entries",
        ["lorebook_id", "id"],
        unique=False,
    )
    _attachment("character_lorebooks", "character_id", "characters")
    _attachment("group_lorebooks", "group_id", "groups")


def downgrade() -> None:
    for name in ("group_lorebooks", "character_lorebooks"):
        op.drop_index(op.f(f"ix_{name}_lorebook_id"), table_name=name)
        op.drop_table(name)
    op.drop_index(op.f("ix_lorebook_entries_lorebook_id_id"), table_name="lorebook_entries")
    op.drop_table("lorebook_entries")
    op.drop_index(op.f("ix_lorebooks_user_id_id"), table_name="lorebooks")
    op.drop_table("lorebooks")
