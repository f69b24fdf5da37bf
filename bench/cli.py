"""The ``bench`` command line: run grids, list methods and architectures, query results."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bench.errors import BenchError

QUERY_FORMATS = ("table", "csv", "markdown", "latex", "json")
# ``bench query WHAT`` -> the typed query function of ``storage`` that answers it.
QUERIES = {
    "runs": "runs",
    "accuracy": "accuracy",
    "layers": "layer_allocation",
    "cost": "allocation_cost",
    "spectra": "spectra",
    "epochs": "epoch_metrics",
    "failures": "failures",
    "budgets": "budgets",
}
ACCELERATORS = ("cpu", "gpu", "auto")
# Grid arguments and their defaults; a study preset defines all of them itself.
GRID_DEFAULTS: dict[str, Any] = {
    "methods": ["all"],
    "densities": ["grid"],
    "seeds": [0],
    "archs": None,
    "datasets": ["digits"],
    "epochs": None,
    "batch_size": None,
    "train_subset": None,
}


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad integer list {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad integer {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _split_names(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def build_parser() -> Parser:
    from bench.data import DATASETS
    from bench.presets import PRESETS
    from bench.studies import STUDIES
    from storage import DEFAULT_URL
    from storage.schema import RUN_STATUSES

    parser = Parser(prog="bench", description="Benchmark prune-at-initialization methods.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="train a grid of configs and store the results")
    _add_grid_arguments(run, DATASETS, [*PRESETS, *STUDIES], DEFAULT_URL)
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes sharing the database (default 1; one torch thread each "
        "when the CPUs run out)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch intra-op threads per run (default: torch's, all cores; with --workers, the "
        "cores divided among them); 1 is fastest for the small digits models and whenever "
        "other processes share the CPU",
    )

    worker = sub.add_parser(
        "worker",
        help="work on a grid with other machines through Optuna's storage in a shared database",
        description="Enqueue the grid (once, whoever comes first) as trials of an Optuna study "
        "in the database and train trials until none is waiting or running. Run the same "
        "command on every machine, with --db pointing at one PostgreSQL database.",
    )
    _add_grid_arguments(worker, DATASETS, [*PRESETS, *STUDIES], DEFAULT_URL)
    worker.add_argument("--study", help="Optuna study name (default: one named by the grid)")
    worker.add_argument(
        "--heartbeat-interval",
        type=_positive_int,
        default=10,
        help="seconds between heartbeats of a running trial (default 10)",
    )
    worker.add_argument(
        "--grace-period",
        type=_positive_int,
        default=60,
        help="seconds without a heartbeat after which a trial's worker counts as dead and its "
        "run is handed to another worker (default 60)",
    )
    worker.add_argument(
        "--max-retry",
        type=_positive_int,
        default=3,
        help="times a run is handed on after its worker died before it is recorded failed",
    )

    methods_cmd = sub.add_parser("methods", help="list registered methods")
    methods_cmd.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="load a plugin file first (repeatable)",
    )
    sub.add_parser("archs", help="list architectures with their parameter counts")

    query = sub.add_parser("query", help="print runs or aggregated accuracy from the database")
    query.add_argument(
        "--db", default=DEFAULT_URL, help=f"results database URL (default {DEFAULT_URL})"
    )
    query.add_argument(
        "what",
        nargs="?",
        default="runs",
        choices=list(QUERIES),
        help="what to print (default runs)",
    )
    query.add_argument("--format", default="table", choices=QUERY_FORMATS, help="output format")
    query.add_argument("--method", nargs="+", help="only these methods")
    query.add_argument("--arch", nargs="+", help="only these architectures")
    query.add_argument("--dataset", nargs="+", help="only these data sets")
    query.add_argument("--density", nargs="+", type=float, help="only these densities")
    query.add_argument(
        "--status",
        nargs="+",
        choices=list(RUN_STATUSES),
        help="only runs with these statuses",
    )

    db = sub.add_parser("db", help="manage the results database")
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=Parser)
    db_upgrade = db_sub.add_parser(
        "upgrade", help="migrate the database to this version's schema (bench does it on open)"
    )
    db_upgrade.add_argument(
        "--db", default=DEFAULT_URL, help=f"results database URL (default {DEFAULT_URL})"
    )
    report = sub.add_parser(
        "report",
        help="write every table and figure of the results, with an index.html holding them",
    )
    report.add_argument(
        "--db", default=DEFAULT_URL, help=f"results database URL (default {DEFAULT_URL})"
    )
    report.add_argument(
        "--out", default="report", help="folder to write the report into (default report/)"
    )
    report.add_argument(
        "--claims",
        action="store_true",
        help="also check the paper's five claims against the results (claims.md and a section "
        "of index.html; see docs/paper-mini.md)",
    )
    return parser


def _add_grid_arguments(
    parser: argparse.ArgumentParser, datasets: Sequence[str], presets: Sequence[str], db: str
) -> None:
    """The arguments that define a grid, shared by ``run`` and ``worker``."""
    parser.add_argument(
        "--methods",
        nargs="+",
        default=GRID_DEFAULTS["methods"],
        metavar="METHOD",
        help="methods as name or name:key=value,... ('all' = every registered method); "
        "the dense baseline is always added",
    )
    parser.add_argument(
        "--densities",
        nargs="+",
        default=GRID_DEFAULTS["densities"],
        metavar="D",
        help="densities in (0, 1], or 'grid' for the paper's 1-2-5 grid 0.1 ... 0.0001",
    )
    parser.add_argument(
        "--seeds",
        type=_int_list,
        default=GRID_DEFAULTS["seeds"],
        help="comma-separated seeds (default 0)",
    )
    parser.add_argument(
        "--archs",
        "--arch",
        nargs="+",
        default=None,
        metavar="ARCH",
        help="architectures (default: the data set's default model; see 'bench archs')",
    )
    parser.add_argument(
        "--datasets",
        "--dataset",
        nargs="+",
        default=GRID_DEFAULTS["datasets"],
        metavar="DATASET",
        help=f"data sets (default digits; valid: {', '.join(datasets)})",
    )
    parser.add_argument(
        "--preset",
        default="adam",
        choices=list(presets),
        help="training preset of Table 4 (adam, sgd), or a study preset that defines the whole "
        "grid and its budget (paper-mini: the paper's comparison at CPU scale, into "
        "paper-mini.db unless --db is given; see docs/paper-mini.md)",
    )
    parser.add_argument("--epochs", type=_positive_int, help="override the preset's epochs")
    parser.add_argument("--batch-size", type=_positive_int, help="override the preset's batch size")
    parser.add_argument(
        "--train-subset", type=_positive_int, help="train on the first N examples of the split"
    )
    parser.add_argument(
        "--db", default=None, help=f"results database URL (default {db}; a study: its own file)"
    )
    parser.add_argument(
        "--runs-dir", default="runs", help="where checkpoints are kept (default runs/)"
    )
    parser.add_argument(
        "--accelerator", default="cpu", choices=ACCELERATORS, help="Lightning accelerator"
    )
    parser.add_argument("--data-dir", help="where to look for data set files")
    parser.add_argument("--download", action="store_true", help="allow downloading data sets")
    parser.add_argument(
        "--spectrum",
        action="store_true",
        help="store the top singular values of the input-output Jacobian at initialisation "
        "(after pruning, before training) of every run trained",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE",
        help="load a Python file that registers methods (repeatable)",
    )


def _method_specs(values: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    import methods

    specs: list[tuple[str, dict[str, Any]]] = []
    for value in values:
        items = [value] if ":" in value else _split_names([value])
        for item in items:
            name, options = methods.parse_spec(item)
            if name == "all":
                specs.extend((n, {}) for n in methods.available())
            else:
                methods.method_class(name)
                specs.append((name, options))
    return specs


def _grid(args: argparse.Namespace) -> list[Any]:
    """The validated configs of the grid the arguments (or the study preset) describe.

    Also settles ``args.db``: the one given, else the study's own file, else the default.
    """
    import methods
    from bench.data import dataset_spec
    from bench.grid import parse_densities
    from bench.runner import expand_grid
    from bench.studies import STUDIES, study_configs
    from storage import DEFAULT_URL

    for plugin in args.plugin:
        methods.load_plugin(plugin)
    if args.preset in STUDIES:
        study = STUDIES[args.preset]
        given = [k for k, default in GRID_DEFAULTS.items() if getattr(args, k) != default]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise BenchError(
                f"--preset {study.name} defines the whole grid; drop {flags} "
                f"(or use --preset adam|sgd with your own grid)"
            )
        args.db = args.db or study.db
        return study_configs(
            study,
            accelerator=args.accelerator,
            data_dir=args.data_dir,
            download=args.download,
            spectrum=args.spectrum,
        )
    args.db = args.db or DEFAULT_URL
    densities = parse_densities(args.densities)
    datasets = _split_names(args.datasets)
    specs = [dataset_spec(d) for d in datasets]
    archs = (
        _split_names(args.archs)
        if args.archs
        else list(dict.fromkeys(s.default_arch for s in specs))
    )
    configs = expand_grid(
        archs=archs,
        datasets=datasets,
        method_specs=_method_specs(args.methods),
        densities=densities,
        seeds=args.seeds,
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_subset=args.train_subset,
        accelerator=args.accelerator,
        data_dir=args.data_dir,
        download=args.download,
        spectrum=args.spectrum,
    )
    return configs


def _print_accuracy(engine: Any, configs: list[Any]) -> None:
    import storage
    from reports import accuracy_table, failure_summary, render

    # Exactly the grid's runs: other budgets or options stored in the same file are not mixed in.
    where = storage.RunFilter(config_hashes=[c.config_hash() for c in configs])
    failures = failure_summary(storage.runs(engine, where))
    for (arch, dataset), table in accuracy_table(storage.accuracy(engine, where), failures).items():
        print(f"\nTest accuracy (%) versus density: {arch} on {dataset}, mean ± std (n)")
        print(render(table, "table"))


def _describe_study(preset: str) -> None:
    """Say what a study preset runs, block by block, before it starts."""
    from bench.studies import STUDIES

    study = STUDIES.get(preset)
    if study is None:
        return
    print(f"study {study.name}: {study.description}")
    for block in study.blocks:
        budget = ", ".join(
            f"{name.replace('_', ' ')} {value}"
            for name, value in (
                ("epochs", block.epochs),
                ("train_subset", block.train_subset),
                ("batch_size", block.batch_size),
            )
            if value is not None
        )
        print(
            f"  {'+'.join(block.archs)} on {'+'.join(block.datasets)}: {block.size()} runs "
            f"({len(block.methods)} methods x {len(block.densities)} densities x "
            f"{len(block.seeds)} seeds{' + dense' if block.baseline else ''}; {block.preset}, "
            f"{budget}) - {block.why}"
        )


def cmd_run(args: argparse.Namespace) -> int:
    import storage
    from bench.runner import run_grid

    configs = _grid(args)
    engine = storage.open_db(args.db)
    _describe_study(args.preset)
    workers = f" with {args.workers} workers" if args.workers > 1 else ""
    print(f"grid: {len(configs)} runs -> {storage.display_url(args.db)}{workers}")
    if args.threads is not None and args.workers == 1:
        import torch

        torch.set_num_threads(args.threads)
    run_grid(
        configs,
        engine,
        Path(args.runs_dir),
        show_progress=not args.no_progress,
        workers=args.workers,
        threads=args.threads,
    )
    _print_accuracy(engine, configs)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import storage
    from bench.workers import OptunaSettings, optuna_worker

    configs = _grid(args)
    engine = storage.open_db(args.db)
    settings = OptunaSettings(
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        max_retry=args.max_retry,
    )
    outcomes = optuna_worker(
        configs, engine, Path(args.runs_dir), study_name=args.study, settings=settings
    )
    trained = sum(o.status in ("finished", "failed") for o in outcomes)
    print(f"worker done: {trained} runs trained here; the study has no work left")
    _print_accuracy(engine, configs)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    import storage

    if args.db_command == "upgrade":
        before, after = storage.migrate(storage.make_engine(args.db))
        where = storage.display_url(args.db)
        if before == after:
            print(f"{where}: schema already at revision {after}")
        else:
            print(f"{where}: schema upgraded from revision {before or '(new)'} to {after}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    import pandas as pd

    import methods

    for plugin in args.plugin:
        methods.load_plugin(plugin)
    rows = []
    for name in methods.available():
        cls = methods.method_class(name)
        options = ", ".join(o.describe() for o in methods.options_of(cls)) or "-"
        rows.append(
            {
                "method": name,
                "needs_data": cls.needs_data,
                "options": options,
                "origin": cls.origin,
                "description": cls.description,
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_archs(args: argparse.Namespace) -> int:
    import pandas as pd

    import architectures

    rows = []
    for name in architectures.available():
        arch = architectures.spec(name)
        shape = _first_accepted(arch)
        # Counted on the meta device: shapes only, so even ResNet50 costs no memory or init time.
        count = architectures.summarize(name, 10, input_shape=shape)
        rows.append(
            {
                "arch": name,
                "weights": count.weights,
                "bias+BN": count.other,
                "total": count.total,
                "prunable layers": count.prunable_layers,
                "counted at": "x".join(map(str, shape)),
                "description": arch.description,
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))
    print("\nCounts with 10 classes (only the classifier depends on the class count).")
    print("Accepted inputs:")
    for name in architectures.available():
        print(f"  {name}: {architectures.spec(name).accepts_text}")
    return 0


def _first_accepted(arch: Any) -> tuple[int, int, int]:
    for shape in ((3, 32, 32), (1, 28, 28), (1, 8, 8), (3, 64, 64)):
        if arch.accepts(shape):
            return shape
    raise BenchError(f"architecture {arch.name!r} accepts none of the known input shapes")


def cmd_query(args: argparse.Namespace) -> int:
    import storage
    from reports import render

    if not _db_exists(args.db):
        raise BenchError(f"database {args.db!r} does not exist (run 'bench run' first)")
    engine = storage.open_db(args.db)
    where = storage.RunFilter(
        methods=args.method,
        archs=args.arch,
        datasets=args.dataset,
        densities=args.density,
        statuses=args.status,
    )
    frame = getattr(storage, QUERIES[args.what])(engine, where)
    if args.format in ("table", "markdown", "csv", "latex"):
        frame = frame.set_index(frame.columns[0]) if args.what == "runs" else frame
    print(render(frame, args.format))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import storage
    from reports import build_report

    if not _db_exists(args.db):
        raise BenchError(f"database {args.db!r} does not exist (run 'bench run' first)")
    index = build_report(storage.open_db(args.db), Path(args.out), claims=args.claims)
    print(f"report written: {index}")
    return 0


def _db_exists(url: str) -> bool:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return path in ("", ":memory:") or Path(path).exists()
    return True


COMMANDS = {
    "run": cmd_run,
    "worker": cmd_worker,
    "db": cmd_db,
    "methods": cmd_methods,
    "archs": cmd_archs,
    "query": cmd_query,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from architectures.registry import UnknownArchitecture
    from methods.errors import UnknownMethod
    from storage import StorageError

    try:
        return COMMANDS[args.command](args)
    except (BenchError, UnknownMethod, UnknownArchitecture, StorageError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into ``head`` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
