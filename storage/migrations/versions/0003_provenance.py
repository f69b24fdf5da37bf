"""Provenance on every run: the code, software and machine that trained it.

``paibench_version`` (indexed: ``bench run --rerun-older-than``), ``git_commit`` and
``git_dirty`` say which code trained the run; Python, torch and CUDA versions, the device, the
host and the torch threads say where; ``num_classes`` is the data set's class count (chance
accuracy for reports). Rows recorded before this revision keep NULLs: unknown, not guessed.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("paibench_version", sa.String(32)),
    ("git_commit", sa.String(40)),
    ("git_dirty", sa.Boolean()),
    ("python_version", sa.String(32)),
    ("torch_version", sa.String(64)),
    ("cuda_version", sa.String(32)),
    ("device", sa.String(128)),
    ("host", sa.String(128)),
    ("threads", sa.Integer()),
    ("num_classes", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind))
        batch.create_index("ix_runs_paibench_version", ["paibench_version"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_paibench_version")
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
