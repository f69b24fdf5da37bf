"""The ``bench`` commands that read: registries (methods, archs, data sets), the database
(query, report) and its schema (db); none of them trains."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import BenchError
from bench.presenting import present
from bench.settings import QUERIES


def load_plugins(files: tuple[str, ...] | list[str]) -> None:
    """Import each plugin file so that its registrations run."""
    if not files:
        return
    from bench.plugins import load_files

    load_files(list(files))


def cmd_db(args: argparse.Namespace) -> int:
    import storage

    if args.db_command == "upgrade":
        before, after = storage.migrate(storage.make_engine(args.db))
        where = storage.display_url(args.db)
        if before == after:
            print(f"{where}: schema already at revision {after}")
        else:
            print(f"{where}: schema upgraded from revision {before or '(new)'} to {after}")
    elif args.db_command == "backfill-steps":
        from bench.backfill import backfill_steps

        filled = backfill_steps(storage.open_db(args.db))
        print(f"{storage.display_url(args.db)}: optimizer steps filled in {filled} epoch rows")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    plugins = getattr(args, "plugin", ())

    def listing() -> str:
        from bench.listing import methods_frame

        return methods_frame().to_string(index=False) + "\n"

    if plugins:
        load_plugins(plugins)
        print(listing(), end="")
    else:  # built-ins and installed plugins only: the listing is cached per source state
        from bench.listing_cache import cached_text

        print(cached_text("methods", listing), end="")
    return 0


def cmd_archs(args: argparse.Namespace) -> int:
    from bench.listing import archs_frame

    load_plugins(getattr(args, "plugin", ()))
    print(archs_frame().to_string(index=False))
    print("\nCounts with 10 classes (only the classifier depends on the class count).")
    return 0


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
        seeds=args.seed,
        epochs=args.epochs,
        budgets=args.budget,
    )
    frame = present(getattr(storage, QUERIES[args.what])(engine, where), args.what)
    if args.format in ("table", "markdown", "latex"):
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


def cmd_datasets(args: argparse.Namespace) -> int:
    from bench.listing import datasets_frame

    load_plugins(getattr(args, "plugin", ()))
    print(datasets_frame().to_string(index=False))
    return 0
