"""Usernames unique case-insensitively: ``users.username_key`` with a unique index.

Existing accounts whose usernames differ only by case are not merged or renamed: the oldest
of each such set gets the key (it is the one a case-insensitive login finds), the others keep
working under their exact username with a NULL key. The clashes are logged as a warning.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("storage.migrations")

_users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("username", sa.String()),
    sa.column("username_key", sa.Text()),
)


def upgrade() -> None:
    op.add_column("users", sa.Column("username_key", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_users.c.id, _users.c.username).order_by(_users.c.id)).all()
    by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for user_id, username in rows:
        # the same normalisation as storage.users.username_key (kept here: migrations are frozen)
        by_key[username.lower()].append((user_id, username))
    if by_key:
        conn.execute(
            sa.update(_users)
            .where(_users.c.id == sa.bindparam("owner"))
            .values(username_key=sa.bindparam("key")),
            [{"owner": owners[0][0], "key": key} for key, owners in by_key.items()],
        )
    clashes = {key: owners for key, owners in by_key.items() if len(owners) > 1}
    if clashes:
        log.warning(
            "usernames that differ only by case (left as they are; a case-insensitive login "
            "finds the oldest, the others log in with their exact username): %s",
            "; ".join(
                ", ".join(f"{name!r} (id {user_id})" for user_id, name in owners)
                for owners in clashes.values()
            ),
        )
    op.create_index("uq_users_username_key", "users", ["username_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_username_key", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("username_key")
