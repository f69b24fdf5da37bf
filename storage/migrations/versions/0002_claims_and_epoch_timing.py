"""Claims that survive dead workers, and per-epoch timing.

``runs.attempts`` counts how often a run was claimed and fences writes (a worker writes only while
the row still carries its attempt number); ``runs.heartbeat_at`` is refreshed while a worker
holds the run, so a stale ``running`` row can be taken over. ``epoch_metrics.seconds`` and
``recorded_at`` say how long each epoch took and when it was written (epochs are now written as
they end, so a killed run keeps them). Existing rows that were ever started count one attempt.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.add_column(sa.Column("seconds", sa.Float()))
        batch.add_column(sa.Column("recorded_at", sa.DateTime(timezone=True)))
    runs = sa.table("runs", sa.column("attempts", sa.Integer), sa.column("started_at"))
    op.execute(runs.update().where(runs.c.started_at.is_not(None)).values(attempts=1))


def downgrade() -> None:
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.drop_column("recorded_at")
        batch.drop_column("seconds")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("attempts")
