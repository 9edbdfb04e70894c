"""Row ids are never handed out twice on SQLite either (AUTOINCREMENT).

Without AUTOINCREMENT, SQLite gives a new row the largest id in use plus one, so deleting the
newest image (or user, or result) frees its id for the next one, possibly another user's: a
token, a link or a late write meant for the old row would reach the new one. The tables are
rebuilt with their rows; MySQL and MariaDB's AUTO_INCREMENT never reuses an id already.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What SQLite's reflection loses and the rebuilt tables must keep: case-insensitive names.
KEEP_COLUMNS: dict[str, tuple[sa.Column[str], ...]] = {
    "users": (
        sa.Column("username", sa.String(50, collation="NOCASE"), nullable=False),
        sa.Column("email", sa.String(255, collation="NOCASE"), nullable=False),
    ),
    "images": (),
    "inference_results": (),
}


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in KEEP_COLUMNS.items():
        with op.batch_alter_table(
            table,
            recreate="always",
            reflect_args=columns,
            table_kwargs={"sqlite_autoincrement": autoincrement},
        ):
            pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
