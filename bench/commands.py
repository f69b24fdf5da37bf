"""What each ``bench`` command does, given the parsed arguments."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.errors import BenchError
from bench.grid import GridSpec
from bench.lookups import (
    cmd_archs,
    cmd_datasets,
    cmd_db,
    cmd_methods,
    cmd_query,
    cmd_report,
    load_plugins,
)
from bench.options import values
from bench.reruns import crashed, older_than, reopen_runs
from bench.settings import (
    DEFAULT_URL,
    LaunchSettings,
    LocalPool,
    QueueSettings,
    Reruns,
    RunPlace,
    WorkerPlace,
)
from bench.stacking.policy import describe as describe_stacking
from bench.stacking.policy import parse_stack

# RunConfig settings that say where a run executes; a study accepts them, nothing else.
PLACE_SETTINGS = ("accelerator", "data_dir", "download", "spectrum")


def check_url(url: str) -> str:
    """``url`` if it names a database with a scheme, else a one-line error."""
    if "://" not in url:
        raise BenchError(
            f"bad database URL {url!r}: a URL needs a scheme (valid: sqlite:///FILE, "
            "postgresql://USER@HOST/DB)"
        )
    return url


def grid_of(args: argparse.Namespace) -> tuple[list[RunConfig], str, RunPlace]:
    """The validated configs the arguments (or the study) describe, and the database URL.

    Everything is checked here, before any file is created.
    """
    place = RunPlace(**values(args, RunPlace))
    load_plugins(place.plugin)
    settings = values(args, RunConfig)
    given = values(args, GridSpec)
    if place.study is not None:
        from bench.studies import get_study, study_configs

        study = get_study(place.study)
        extra = [*given, *(k for k in settings if k not in PLACE_SETTINGS)]
        if extra:
            flags = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise BenchError(
                f"--study {study.name} defines the whole grid and its budget; drop {flags} "
                "(or leave out --study and give your own grid)"
            )
        configs = study_configs(study.only(place.blocks), **settings)
        url = check_url(place.db or study.db)
    elif place.blocks:
        raise BenchError("--block selects blocks of a study: give --study too")
    else:
        configs = GridSpec(**given, settings=settings).configs()
        url = check_url(place.db or DEFAULT_URL)
    check_data(configs)
    check_accelerator(configs)
    return configs, url, place


def check_accelerator(configs: list[RunConfig]) -> None:
    """``--accelerator gpu`` on a machine without a visible GPU is a one-line error."""
    if any(c.accelerator == "gpu" for c in configs):
        import torch

        if not torch.cuda.is_available():
            raise BenchError(
                "--accelerator gpu but no CUDA device is visible on this machine (valid here: "
                "cpu, auto)"
            )


def check_data(configs: list[RunConfig]) -> None:
    """Load every data set of the grid once: a missing or corrupt file is a one-line error
    before the database file is created."""
    from bench.data import check_available

    seen = {(c.dataset, c.data_dir, c.download, c.train_subset) for c in configs}
    for dataset, data_dir, download, train_subset in sorted(seen, key=str):
        check_available(dataset, data_dir, download, train_subset)


def _describe_study(name: str | None, blocks: tuple[str, ...] = ()) -> None:
    """Say what a study runs, block by block, before it starts."""
    if name is None:
        return
    from bench.studies import get_study

    study = get_study(name).only(blocks)
    print(f"study {study.name}: {study.description}")
    for block in study.blocks:
        grid = block.grid
        print(
            f"  {'+'.join(grid.arch_names())} on {'+'.join(grid.datasets)}: {block.size()} runs "
            f"({len(grid.method_specs())} methods x {len(grid.densities)} densities x "
            f"{len(grid.seeds)} seeds{' + dense' if grid.baseline else ''}; {block.budget()}) "
            f"[{block.name}] - {block.why}"
        )


TABLE_WIDTH = 120  # the closing table of ``bench run`` fits a terminal this wide


def closing_table(aggregated: Any) -> dict[tuple[str, str, str], Any]:
    """Per arch x dataset x budget: densities as rows, methods as columns, ``mean ± std`` in %.

    A config whose every run failed shows ``failed``; n, failure counts and the delta to dense
    stay in ``bench query accuracy`` and the report.
    """
    import pandas as pd

    from reports.style import method_order

    tables = {}
    for key, group in aggregated.groupby(["arch", "dataset", "budget"], sort=True):
        cells: dict[tuple[float, str], str] = {}
        for row in group.itertuples(index=False):
            if row.n == 0:
                cells[(row.density, row.method)] = "failed"
            elif row.n == 1:
                cells[(row.density, row.method)] = f"{100 * row.mean:.1f}"
            else:
                cells[(row.density, row.method)] = f"{100 * row.mean:.1f}±{100 * row.std:.1f}"
        densities = sorted({d for d, _ in cells}, reverse=True)
        methods = method_order({m for _, m in cells})
        tables[key] = pd.DataFrame(
            [[cells.get((d, m), "") for m in methods] for d in densities],
            index=pd.Index([f"{d:g}" for d in densities], name="density"),
            columns=methods,
        )
    return tables


def _print_accuracy(engine: Any, configs: list[RunConfig]) -> None:
    import storage

    # Exactly the grid's runs: other budgets or options stored in the same file are not mixed in.
    where = storage.RunFilter(config_hashes=[c.config_hash() for c in configs])
    for (arch, dataset, budget), table in closing_table(storage.accuracy(engine, where)).items():
        print(f"\nTest accuracy (%) of {arch} on {dataset} ({budget}), mean ± std over seeds")
        print(table.to_string(line_width=TABLE_WIDTH))


def cmd_run(args: argparse.Namespace) -> int:
    import storage
    from bench.scheduling.pool import run_grid

    configs, url, place = grid_of(args)
    pool = LocalPool(**values(args, LocalPool))
    reruns = Reruns(**values(args, Reruns))
    if reruns.rerun_older_than is not None:
        older_than(reruns.rerun_older_than)  # a bad version is an error before the file exists
    engine = storage.open_db(url)
    _describe_study(place.study, place.blocks)
    workers = f" with {pool.workers} workers" if pool.workers > 1 else ""
    print(f"grid: {len(configs)} runs -> {storage.display_url(url)}{workers}")
    stack = parse_stack(pool.stack)
    for line in describe_stacking(configs, stack, pool.devices[0] if pool.devices else None):
        print(line)
    reopened = reopen_runs(engine, configs, reruns, Path(place.runs_dir))
    if reopened:
        print(f"training {reopened} stored runs again (--retry-failed / --rerun-older-than)")
    outcomes = run_grid(
        configs,
        engine,
        Path(place.runs_dir),
        workers=pool.workers,
        threads=pool.threads,
        settings=QueueSettings(**values(args, QueueSettings)),
        plugins=place.plugin,
        devices=pool.devices,
        stack=stack,
        show_progress=not pool.no_progress,
    )
    _print_accuracy(engine, configs)
    return _exit_status(engine, [o.config.config_hash() for o in outcomes if not o.skipped])


def _exit_status(engine: Any, trained: list[str]) -> int:
    """0 when every run trained here finished or failed as a result; 1 (and one line) if any
    crashed."""
    count = crashed(engine, trained)
    if count:
        print(
            f"bench: {count} of {len(trained)} runs crashed (an exception in training or in a "
            "plugin); see 'bench query failures'",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import storage
    from bench.pipeline import summary_line
    from bench.scheduling.queue import QueueWorker, join_grid

    configs, url, place = grid_of(args)
    ledger = storage.Ledger(storage.open_db(url))
    settings = QueueSettings(**values(args, QueueSettings))
    study, enqueued, done = join_grid(
        ledger, configs, settings, WorkerPlace(**values(args, WorkerPlace)).optuna_study
    )
    print(
        f"study {study.study_name}: enqueued {enqueued}, {done} of {len(configs)} already in "
        "the database"
    )

    def say(outcome: Any) -> None:
        if outcome.status in ("finished", "failed"):
            print(summary_line(outcome), flush=True)

    where = WorkerPlace(**values(args, WorkerPlace))
    outcomes = QueueWorker(
        ledger,
        study,
        settings,
        Path(place.runs_dir),
        on_outcome=say,
        device_index=where.device,
        stack=parse_stack(where.stack),
    ).work()
    trained = [o.config.config_hash() for o in outcomes if o.status in ("finished", "failed")]
    print(f"worker done: {len(trained)} runs trained here; the study has no work left")
    _print_accuracy(ledger.engine, configs)
    return _exit_status(ledger.engine, trained)


def cmd_launch(args: argparse.Namespace) -> int:
    from bench import launch

    settings = LaunchSettings(**values(args, LaunchSettings))
    accelerator = values(args, RunConfig).get("accelerator", "cpu")
    shape = launch.layout(settings, accelerator)
    configs, url, place = grid_of(launch.checked_here(args, settings))
    configs = [dataclasses.replace(c, accelerator=accelerator) for c in configs]
    ledger, jobs = launch.start(args, settings, shape, configs, url, place)
    if not settings.wait:
        return 0
    trained = launch.wait_for(jobs, ledger, configs)
    _print_accuracy(ledger.engine, configs)
    return _exit_status(ledger.engine, trained)


COMMANDS = {
    "run": cmd_run,
    "worker": cmd_worker,
    "launch": cmd_launch,
    "db": cmd_db,
    "methods": cmd_methods,
    "archs": cmd_archs,
    "datasets": cmd_datasets,
    "query": cmd_query,
    "report": cmd_report,
}
