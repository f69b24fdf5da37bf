"""The ``bench`` command line: the parser, made from the dataclasses the commands fill.

The grid flags of ``run`` and ``worker`` come from :class:`bench.grid.GridSpec` and
:class:`bench.config.RunConfig`, the scheduling flags from :class:`RunPlace`, :class:`LocalPool`
and :class:`bench.scheduling.queue.QueueSettings`: one declaration per option, help included.
Only commands that train import torch and Lightning.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import NoReturn

from bench.errors import BenchError
from bench.options import add_arguments
from bench.settings import (
    DEFAULT_URL,
    QUERIES,
    QUERY_FORMATS,
    RUN_STATUSES,
    LaunchSettings,
    LocalPool,
    QueueSettings,
    Reruns,
    RunPlace,
    WorkerPlace,
)
from bench.threads import prepare_environment


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _grid_parser(sub, name: str, **kwargs: str) -> argparse.ArgumentParser:
    from bench.config import RunConfig
    from bench.grid import GridSpec

    parser = sub.add_parser(name, **kwargs)
    for cls in (GridSpec, RunConfig, RunPlace, QueueSettings):
        add_arguments(parser, cls)
    return parser


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=DEFAULT_URL, help=f"results database URL (default {DEFAULT_URL})"
    )


def _plugin_option(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, RunPlace, skip=[f.name for f in fields(RunPlace) if f.name != "plugin"])


def build_parser() -> Parser:
    parser = Parser(prog="bench", description="Benchmark prune-at-initialization methods.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = _grid_parser(sub, "run", help="train a grid of configs and store the results")
    add_arguments(run, LocalPool)
    add_arguments(run, Reruns)
    worker = _grid_parser(
        sub,
        "worker",
        help="work on a grid with other machines through Optuna's storage in a shared database",
        description="Enqueue the grid (once, whoever comes first) as trials of an Optuna study "
        "in the database and train trials until none is waiting or running. Run the same "
        "command on every machine, with --db pointing at one PostgreSQL database.",
    )
    add_arguments(worker, WorkerPlace)
    launch = _grid_parser(
        sub,
        "launch",
        help="submit bench worker jobs, one per GPU, through Submitit (SLURM, or this machine)",
        description="Submit jobs that each run 'bench worker' on the grid, one worker per GPU "
        "(--device cuda:<local rank>), all joined through Optuna's storage in the database "
        "given by --db (PostgreSQL on a cluster). Prints the job ids and where their logs are; "
        "with --wait, waits for them and prints the accuracy table.",
    )
    add_arguments(launch, WorkerPlace, skip=["device"])
    add_arguments(launch, LaunchSettings)

    for name, text in (
        ("methods", "list registered methods"),
        ("archs", "list architectures with their parameter counts"),
        ("datasets", "list data sets"),
    ):
        _plugin_option(sub.add_parser(name, help=text))

    query = sub.add_parser("query", help="print runs or aggregated accuracy from the database")
    _db_option(query)
    query.add_argument(
        "what", nargs="?", default="runs", choices=list(QUERIES), help="what to print"
    )
    query.add_argument("--format", default="table", choices=QUERY_FORMATS, help="output format")
    query.add_argument("--method", nargs="+", help="only these methods")
    query.add_argument("--arch", nargs="+", help="only these architectures")
    query.add_argument("--dataset", nargs="+", help="only these data sets")
    query.add_argument("--density", nargs="+", type=float, help="only these densities")
    query.add_argument(
        "--status", nargs="+", choices=list(RUN_STATUSES), help="only runs with these statuses"
    )
    query.add_argument("--seed", nargs="+", type=int, help="only runs with these seeds")
    query.add_argument(
        "--epochs", nargs="+", type=int, help="only runs whose budget has these epochs"
    )
    query.add_argument(
        "--budget",
        nargs="+",
        metavar="LABEL",
        help="only runs of these budgets, as 'bench query budgets' names them "
        "(e.g. 'adam, 10 epochs, 5,000 images')",
    )

    db = sub.add_parser("db", help="manage the results database")
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=Parser)
    _db_option(
        db_sub.add_parser(
            "upgrade", help="migrate the database to this version's schema (bench does it on open)"
        )
    )
    _db_option(
        db_sub.add_parser(
            "backfill-steps",
            help="fill the optimizer steps of epoch rows recorded before paibench stored them "
            "(computed from each run's budget, as training counts them)",
        )
    )
    report = sub.add_parser(
        "report",
        help="write every table and figure of the results, with an index.html holding them",
    )
    _db_option(report)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bench`` console script."""
    prepare_environment()  # before anything imports torch
    args = build_parser().parse_args(argv)
    from bench import commands

    try:
        return commands.COMMANDS[args.command](args)
    except (BenchError, argparse.ArgumentTypeError) as error:
        return _fail(error)
    except ValueError as error:  # the registries' and storage's one-line errors
        if type(error).__name__ in ("UnknownMethod", "UnknownArchitecture", "StorageError"):
            return _fail(error)
        raise
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into ``head`` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _fail(error: BaseException) -> int:
    print(f"bench: error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
