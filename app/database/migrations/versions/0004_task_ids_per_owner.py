"""A task id is unique per owner, not across users.

A client may choose its task's id; with ids unique across users, choosing one that another
user already has answered 409, which told that the id exists. The primary key becomes
(id, owner_id); existing rows keep their ids, which are unique already.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 07:00:00
"""

import warnings
from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import SAWarning

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _primary_key(*columns: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # The rebuilt table gets the new key; SQLAlchemy warns that it differs from the
        # reflected one, which is the point.
        with (
            warnings.catch_warnings(action="ignore", category=SAWarning),
            op.batch_alter_table("inference_tasks", recreate="always") as batch,
        ):
            batch.create_primary_key("pk_inference_tasks", list(columns))
    else:
        op.execute(
            f"ALTER TABLE inference_tasks DROP PRIMARY KEY, ADD PRIMARY KEY ({', '.join(columns)})"
        )


def upgrade() -> None:
    _primary_key("id", "owner_id")


def downgrade() -> None:
    _primary_key("id")
