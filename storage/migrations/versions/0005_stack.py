"""The stack a run trained in, and the optimizer steps of each epoch.

Stacked training (``bench run --stack``) trains the runs of a
grid that share a network, data set and budget together as one batched model.

``runs.stack`` names the stack (``stack-<digest>/<size>``, the same on every run trained in
it) and is NULL for a run trained alone; every other column means what it always meant.
``epoch_metrics.steps`` counts the optimizer steps taken by the end of the epoch, so curves can
be drawn against steps (rows recorded before this revision keep NULL; ``bench db
backfill-steps`` fills them from each run's budget).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("stack", sa.String(64)))
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.add_column(sa.Column("steps", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.drop_column("steps")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("stack")
