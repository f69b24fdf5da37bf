"""The first schema: runs, epoch metrics, layer allocations, costs, spectra, failures.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _run_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("arch", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("density", sa.Float(), nullable=False),
        sa.Column("achieved_density", sa.Float()),
        sa.Column("kept", sa.BigInteger()),
        sa.Column("total", sa.BigInteger()),
        sa.Column("trainable_params", sa.BigInteger()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("best_val_acc", sa.Float()),
        sa.Column("best_epoch", sa.Integer()),
        sa.Column("test_acc", sa.Float()),
        sa.Column("epochs", sa.Integer()),
        sa.Column("train_seconds", sa.Float()),
        sa.Column("resumed", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(128)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_config_hash", "runs", ["config_hash"], unique=True)
    for column in ("method", "arch", "dataset", "density", "status"):
        op.create_index(f"ix_runs_{column}", "runs", [column])

    op.create_table(
        "epoch_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float()),
        sa.Column("val_acc", sa.Float()),
        sa.Column("lr", sa.Float()),
        sa.PrimaryKeyConstraint("id", name="pk_epoch_metrics"),
        sa.UniqueConstraint("run_id", "epoch", name="uq_epoch_metrics_run_id_epoch"),
        _run_fk(),
    )
    op.create_table(
        "layer_allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kept", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("alpha_init", sa.Float()),
        sa.Column("alpha_final", sa.Float()),
        sa.PrimaryKeyConstraint("id", name="pk_layer_allocations"),
        sa.UniqueConstraint(
            "run_id", "layer_index", name="uq_layer_allocations_run_id_layer_index"
        ),
        _run_fk(),
    )
    op.create_table(
        "allocation_costs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("peak_bytes", sa.BigInteger(), nullable=False),
        sa.Column("forward_passes", sa.Integer(), nullable=False),
        sa.Column("backward_passes", sa.Integer(), nullable=False),
        sa.Column("memory_source", sa.String(64), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_allocation_costs"),
        _run_fk(),
    )
    op.create_table(
        "spectra",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_spectra"),
        sa.UniqueConstraint("run_id", "rank", name="uq_spectra_run_id_rank"),
        _run_fk(),
    )
    op.create_table(
        "failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("exception_type", sa.String(128), nullable=False),
        sa.Column("traceback_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_failures"),
        _run_fk(),
    )
    for table in ("epoch_metrics", "layer_allocations", "spectra", "failures"):
        op.create_index(f"ix_{table}_run_id", table, ["run_id"])
    op.create_index("ix_allocation_costs_run_id", "allocation_costs", ["run_id"], unique=True)


def downgrade() -> None:
    for table in (
        "failures",
        "spectra",
        "allocation_costs",
        "layer_allocations",
        "epoch_metrics",
        "runs",
    ):
        op.drop_table(table)
