"""Character cards: greetings, tags, avatar, sources, settings, kept card data; avatars; personas.

Revision ID: 0004
Revises: 0003

``characters.avatar_sha256`` names an ``avatars`` row without a database foreign key: SQLite
cannot add one to an existing table without rebuilding it, and ``storage.avatars`` keeps the
reference valid (the avatar row is written and deleted in the same transactions as the
references to it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.timestamps import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EMPTY_LIST = sa.text("'[]'")
_EMPTY_OBJECT = sa.text("'{}'")


def upgrade() -> None:
    op.create_table(
        "avatars",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_avatars")),
    )
    op.create_table(
        "personas",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_personas_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_personas")),
    )
    op.add_column("characters", sa.Column("greeting", sa.Text(), nullable=True))
    for name, default in (
        ("alternate_greetings", _EMPTY_LIST),
        ("tags", _EMPTY_LIST),
        ("sources", _EMPTY_LIST),
        ("settings", _EMPTY_OBJECT),
    ):
        op.add_column(
            "characters", sa.Column(name, sa.JSON(), nullable=False, server_default=default)
        )
    op.add_column("characters", sa.Column("avatar_sha256", sa.String(length=64), nullable=True))
    op.add_column("characters", sa.Column("card_extra", sa.JSON(), nullable=True))
    op.create_index(
        op.f("ix_characters_avatar_sha256"), "characters", ["avatar_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_characters_avatar_sha256"), table_name="characters")
    for name in (
        "card_extra",
        "avatar_sha256",
        "settings",
        "sources",
        "tags",
        "alternate_greetings",
        "greeting",
    ):
        op.drop_column("characters", name)
    op.drop_table("personas")
    op.drop_table("avatars")
