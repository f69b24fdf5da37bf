"""Determinism on every run: whether an op without a deterministic kernel ran, and which.

Training asks for deterministic algorithms in warn mode: on a GPU an op with no deterministic
kernel is recorded (``deterministic`` false, the ops in ``nondeterministic_ops``) instead of
failing the run. Rows recorded before this revision keep NULLs.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("deterministic", sa.Boolean()))
        batch.add_column(sa.Column("nondeterministic_ops", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("nondeterministic_ops")
        batch.drop_column("deterministic")
