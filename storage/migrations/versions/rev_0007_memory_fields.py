"""Memories users can see and shape: pinned, origin, edited_at.

Revision ID: 0007
Revises: 0008

``importance`` already exists (compression stores it). Existing memories were all written by
compression: ``origin`` "compressed", not pinned, never edited.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.timestamps import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "memories",
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "memories",
        sa.Column("origin", sa.String(16), nullable=False, server_default=sa.text("'compressed'")),
    )
    op.add_column("memories", sa.Column("edited_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    for name in ("edited_at", "origin", "pinned"):
        op.drop_column("memories", name)
