"""Steering a group: muted members, talkativeness, self responses.

Revision ID: 0005
Revises: 0004

``groups.talkativeness`` holds only the members whose value was set ({character id: 0–1});
the others have the default (0.5). The new strategies (natural, pooled, manual) fit the
existing ``strategy`` column.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "groups",
        sa.Column("muted_character_ids", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column(
        "groups",
        sa.Column("talkativeness", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )
    op.add_column(
        "groups",
        sa.Column("allow_self_responses", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    for name in ("allow_self_responses", "talkativeness", "muted_character_ids"):
        op.drop_column("groups", name)
