"""The results database: migrations keep every row, the models match them, queries are typed
and bound, claims are atomic. On SQLite always, and on PostgreSQL when a server is given."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pg_server import PG_SKIP_REASON, postgres_url, temporary_postgres_database
from sqlalchemy import Engine, inspect, select, text, update

import storage
from bench.cli import main
from storage.db import VERSION_TABLE, current_revision
from storage.ledger import Claim, Ledger
from storage.rows import EpochRow, RunIdentity
from storage.schema import Base, Run


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    """A fresh database on SQLite, then on PostgreSQL (skipped, saying why, without a server)."""
    if request.param == "sqlite":
        yield db_url
        return
    base = postgres_url()
    if base is None:
        pytest.skip(PG_SKIP_REASON)
    with temporary_postgres_database(base) as url:
        yield url


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# Rows written with plain SQL at the first revision, one per table.
FIRST_REVISION_ROWS = [
    "INSERT INTO runs (id, config_hash, config, method, options, arch, dataset, seed, density,"
    " achieved_density, kept, total, trainable_params, status, reason, best_val_acc, best_epoch,"
    " test_acc, epochs, train_seconds, resumed, worker, created_at, started_at, finished_at)"
    " VALUES (1, 'aaaaaaaaaaaaaaaa', '{\"arch\": \"mlp\"}', 'epl', '{}', 'mlp', 'digits', 0, 0.1,"
    " 0.1, 8448, 84480, 9000, 'finished', NULL, 0.9, 1, 0.88, 2, 3.5, FALSE, 'h:1',"
    " '2024-01-01 00:00:00', '2024-01-01 00:00:01', '2024-01-01 00:00:05')",
    "INSERT INTO runs (id, config_hash, config, method, options, arch, dataset, seed, density,"
    " status, resumed, created_at) VALUES (2, 'bbbbbbbbbbbbbbbb', '{}', 'snip', '{}', 'mlp',"
    " 'digits', 1, 0.01, 'pending', FALSE, '2024-01-01 00:00:00')",
    "INSERT INTO epoch_metrics (id, run_id, epoch, train_loss, val_acc, lr)"
    " VALUES (1, 1, 0, 1.5, 0.8, 0.001), (2, 1, 1, 0.5, 0.9, 0.001)",
    "INSERT INTO layer_allocations (id, run_id, layer_index, name, kept, total, alpha_init,"
    " alpha_final) VALUES (1, 1, 0, '1.weight', 1638, 16384, NULL, NULL)",
    "INSERT INTO allocation_costs (id, run_id, seconds, peak_bytes, forward_passes,"
    " backward_passes, memory_source, info) VALUES (1, 1, 0.25, 1024, 1, 0, 'tracemalloc', '{}')",
    "INSERT INTO spectra (id, run_id, rank, value) VALUES (1, 1, 0, 2.5), (2, 1, 1, 1.25)",
    "INSERT INTO failures (id, run_id, stage, reason, exception_type, traceback_digest,"
    " created_at) VALUES (1, 2, 'allocation', 'zero weights', 'AllocationFailed', 'abcd',"
    " '2024-01-01 00:00:00')",
]


def _snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every table's rows (the columns of the first revision), ordered by id."""
    columns = {
        "runs": "id, config_hash, method, arch, dataset, seed, density, kept, total, status,"
        " test_acc, best_epoch, resumed, worker",
        "epoch_metrics": "id, run_id, epoch, train_loss, val_acc, lr",
        "layer_allocations": "id, run_id, layer_index, name, kept, total",
        "allocation_costs": "id, run_id, seconds, peak_bytes, forward_passes, memory_source",
        "spectra": "id, run_id, rank, value",
        "failures": "id, run_id, stage, reason, exception_type, traceback_digest",
    }
    with engine.connect() as conn:
        return {
            table: [tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM {table} ORDER BY id"))]
            for table, cols in columns.items()
        }


def test_upgrade_from_first_revision_keeps_every_row(any_url: str) -> None:
    engine = storage.make_engine(any_url)
    assert storage.migrate(engine, "0001") == (None, "0001")
    with engine.begin() as conn:
        for statement in FIRST_REVISION_ROWS:
            conn.execute(text(statement))
    before = _snapshot(engine)
    assert sum(map(len, before.values())) == 9

    upgraded = storage.open_db(any_url)  # opening an older database upgrades it
    with upgraded.connect() as conn:
        assert current_revision(conn) == storage.head_revision()
    assert _snapshot(upgraded) == before
    frame = storage.runs(upgraded)
    # 0002's data migration: a run that was ever started counts one attempt.
    assert dict(zip(frame["config_hash"], frame["attempts"])) == {
        "aaaaaaaaaaaaaaaa": 1,
        "bbbbbbbbbbbbbbbb": 0,
    }
    epochs = storage.epoch_metrics(upgraded)
    assert epochs["seconds"].isna().all() and list(epochs["epoch"]) == [0, 1]
    upgraded.dispose()
    engine.dispose()


def test_migrations_build_exactly_the_models(any_url: str) -> None:
    engine = storage.open_db(any_url)
    ours = {table.name for table in Base.metadata.sorted_tables}
    assert _tables(engine) == ours | {VERSION_TABLE}
    with engine.connect() as conn:
        opts = {"compare_type": True, "version_table": VERSION_TABLE}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_downgrade_and_upgrade_again(db_url: str) -> None:
    engine = storage.open_db(db_url)
    assert storage.migrate(engine, "0004") == ("0005", "0004")
    assert "stack" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    assert storage.migrate(engine, "0003") == ("0004", "0003")
    assert "deterministic" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    assert storage.migrate(engine, "0002") == ("0003", "0002")
    assert "git_commit" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    assert storage.migrate(engine, "0001") == ("0002", "0001")
    assert "attempts" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    assert storage.migrate(engine) == ("0001", "0005")


def test_pre_migration_database_is_stamped_then_upgraded(db_url: str) -> None:
    """A file that create_all built before migrations existed has no version table."""
    engine = storage.make_engine(db_url)
    storage.migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        conn.execute(text(FIRST_REVISION_ROWS[0]))
    storage.open_db(db_url)
    assert storage.runs(engine)["attempts"].tolist() == [1]
    with engine.connect() as conn:
        assert current_revision(conn) == storage.head_revision()


def _open_in_process(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    storage.open_db(url)


def test_concurrent_opens_of_a_new_database_migrate_it_once(db_url: str) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    processes = [context.Process(target=_open_in_process, args=(db_url, barrier)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    with storage.make_engine(db_url).connect() as conn:
        assert conn.execute(text(f"SELECT COUNT(*) FROM {VERSION_TABLE}")).scalar() == 1


def test_bench_db_upgrade(db_url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "upgraded from revision (new) to 0005" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "already at revision 0005" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("nope://x", "bad database URL 'nope://x'"),
        ("sqlite:////nonexistent-dir/x.db", "cannot open database"),
        ("postgresql://u:secret@127.0.0.1:1/x", "u:***@127.0.0.1:1/x': connection failed"),
    ],
)
def test_bad_database_url_is_one_line(url: str, needle: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["db", "upgrade", "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "secret" not in err


# Queries --------------------------------------------------------------------------------------


def test_typed_queries_and_bound_filters(any_url: str) -> None:
    engine = storage.open_db(any_url)
    sneaky = "epl' OR '1'='1"
    with engine.begin() as conn:
        for statement in FIRST_REVISION_ROWS:
            conn.execute(text(statement))
        conn.execute(update(Run).where(Run.id == 1).values(method=sneaky))
    every = storage.runs(engine)
    assert len(every) == 2
    # A value that would change string-built SQL is only ever a value.
    assert storage.runs(engine, storage.RunFilter(methods=["epl"])).empty
    assert storage.runs(engine, storage.RunFilter(methods=[sneaky]))["id"].tolist() == [1]
    assert storage.runs(engine, storage.RunFilter(statuses=["pending"]))["id"].tolist() == [2]
    assert storage.runs(engine, storage.RunFilter(densities=[0.01]))["id"].tolist() == [2]
    frames = {
        "accuracy": storage.accuracy(engine),
        "layers": storage.layer_allocation(engine),
        "cost": storage.allocation_cost(engine),
        "spectra": storage.spectra(engine),
        "epochs": storage.epoch_metrics(engine),
        "failures": storage.failures(engine),
    }
    for frame in frames.values():
        assert isinstance(frame, pd.DataFrame)
    assert frames["accuracy"][["mean", "std", "n", "min", "max"]].iloc[0].tolist() == [
        0.88,
        0.0,
        1,
        0.88,
        0.88,
    ]
    assert frames["spectra"][["rank", "value"]].values.tolist() == [[0, 2.5], [1, 1.25]]
    assert frames["failures"][["run_id", "stage", "exception_type"]].values.tolist() == [
        [2, "allocation", "AllocationFailed"]
    ]
    assert frames["layers"]["kept"].tolist() == [1638]
    assert frames["cost"]["peak_bytes"].tolist() == [1024]
    assert storage.spectra(engine, storage.RunFilter(methods=["snip"])).empty
    engine.dispose()


# Claims ---------------------------------------------------------------------------------------

IDENTITY = RunIdentity(
    config_hash="0123456789abcdef",
    config={"arch": "mlp", "dataset": "digits", "method": "epl", "density": 0.1, "seed": 0},
    method="epl",
    options={},
    arch="mlp",
    dataset="digits",
    seed=0,
    density=0.1,
)


def _claim_in_process(url: str, barrier, results) -> None:
    ledger = Ledger(storage.open_db(url))
    barrier.wait()
    outcome = ledger.claim(IDENTITY, f"worker:{os.getpid()}")
    results.put(outcome if isinstance(outcome, str) else "claimed")
    barrier.wait()  # stay alive until every contender has looked


def test_concurrent_claims_have_one_winner(any_url: str) -> None:
    storage.open_db(any_url).dispose()
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    processes = [
        context.Process(target=_claim_in_process, args=(any_url, barrier, results))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    answers = sorted(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(60)
    assert answers == ["busy", "busy", "busy", "claimed"]
    frame = storage.runs(storage.make_engine(any_url))
    assert len(frame) == 1 and frame["attempts"].tolist() == [1]


def test_running_rows_are_taken_over_only_when_the_scheduler_says_dead(db_url: str) -> None:
    """The ledger never probes processes: a held row is taken only from a holder the scheduler
    declares dead (``alive`` false, or the dead attempt named), or when it was handed back."""
    ledger = Ledger(storage.open_db(db_url))
    assert ledger.claim(IDENTITY, "trial-1@h:1") == Claim(1, 1)
    assert ledger.claim(IDENTITY, "trial-2@h:2") == "busy"  # no scheduler's word: alive
    assert ledger.claim(IDENTITY, "trial-2@h:2", alive=lambda worker: True) == "busy"
    seen: list[str | None] = []

    def dead(worker: str | None) -> bool:
        seen.append(worker)
        return False

    assert ledger.claim(IDENTITY, "trial-2@h:2", alive=dead) == Claim(1, 2)
    assert seen == ["trial-1@h:1"], "asked about the holder of the row"
    # A scheduler that saw attempt 2 die takes the run over even if it looks alive from here.
    assert ledger.claim(IDENTITY, "trial-3@h:3", takeover_attempt=1) == "busy"
    assert ledger.claim(IDENTITY, "trial-3@h:3", takeover_attempt=2) == Claim(1, 3)
    ledger.release(Claim(1, 3))
    assert ledger.claim(IDENTITY, "trial-4@h:4") == Claim(1, 4), "a pending row is free"
    with pytest.raises(storage.LostClaim):  # attempt 3 was taken over: fenced out
        ledger.record_epoch(Claim(1, 3), EpochRow(0, 1.0, 0.5, 1e-3, 1.0))
    with ledger.engine.begin() as conn:
        conn.execute(update(Run).values(status="finished"))
    assert ledger.claim(IDENTITY, "trial-5@h:5") == "done"
    with storage.session_scope(ledger.engine) as session:
        assert session.scalar(select(Run.attempts)) == 4
        assert session.scalar(select(Run.worker)) == "trial-4@h:4"


@pytest.mark.parametrize(
    "what", ["runs", "accuracy", "layers", "cost", "spectra", "epochs", "failures", "budgets"]
)
@pytest.mark.parametrize("fmt", ["table", "csv", "markdown", "latex", "json"])
def test_bench_query_prints_every_query_in_every_format(
    what: str, fmt: str, db_url: str, capsys: pytest.CaptureFixture
) -> None:
    engine = storage.open_db(db_url)
    with engine.begin() as conn:
        for statement in FIRST_REVISION_ROWS:
            conn.execute(text(statement))
    assert main(["query", what, "--db", db_url, "--format", fmt, "--method", "epl", "snip"]) == 0
    out = capsys.readouterr().out
    # budgets are per network and data set (no method column); the rest name the methods
    needles = ("mlp",) if what == "budgets" else ("epl", "snip")
    assert out.strip() and any(needle in out for needle in needles)


def test_a_method_with_options_is_its_own_series(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """epf and epf:within=filter are two methods in every query: never averaged together."""
    args = ["run", "--methods", "epf", "epf:within=filter", "--densities", "0.1"]
    args += ["--epochs", "1", "--train-subset", "200", "--db", db_url, "--no-progress"]
    assert main([*args, "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("dense"))
    assert header.split() == ["dense", "epf", "epf:within=filter"]  # two columns, never one
    engine = storage.open_db(db_url)
    assert storage.method_spec("epf", {"within": "filter"}) == "epf:within=filter"
    accuracy = storage.accuracy(engine)
    assert sorted(accuracy["method"]) == ["dense", "epf", "epf:within=filter"]
    assert (accuracy["n"] == 1).all()
    layers = storage.layer_allocation(engine)
    assert set(layers["method"]) == {"dense", "epf", "epf:within=filter"}
    # Filters name the registered method and match all of its variants.
    only_epf = storage.runs(engine, storage.RunFilter(methods=["epf"]))
    assert sorted(only_epf["method"]) == ["epf", "epf:within=filter"]


def test_the_fast_path_knows_the_newest_migration() -> None:
    """open_db skips Alembic for a database at HEAD_REVISION: it must be Alembic's head."""
    from storage.db import HEAD_REVISION

    assert storage.head_revision() == HEAD_REVISION
