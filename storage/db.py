"""Engine and session setup, schema migrations, and a cross-process lock.

SQLite by default (WAL, busy timeout, so that worker processes can share one file), any
SQLAlchemy URL otherwise (PostgreSQL for many machines). The schema is owned by the Alembic
migrations in ``storage/migrations``: :func:`open_db` brings any database to the newest revision
before handing out its engine.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///bench.db"
SQLITE_BUSY_TIMEOUT_MS = 60_000
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "paibench_schema_version"  # Optuna keeps its own ``alembic_version`` beside ours
FIRST_REVISION = "0001"  # the schema that ``create_all`` built before migrations existed
# The newest migration (tests check it against Alembic's head): a database already there opens
# without importing Alembic, so queries start fast.
HEAD_REVISION = "0005"


class StorageError(ValueError):
    """The database cannot be opened or migrated; the message says which and why, in one line."""


def _sqlite_pragmas(database: str | None, dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # The busy timeout first: switching a new file to WAL needs a lock another process may hold.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Two connections switching one new file to WAL at once can get "database is locked" at once,
    # without the busy handler being asked: the switch is serialised across processes by a flock.
    with _file_lock(database, "journal"):
        cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the file; a commit survives a crashed process (only a
    # power cut may lose the last ones), and commits skip an fsync each.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def display_url(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str = DEFAULT_URL) -> Engine:
    """An engine for ``url`` (a bare path means a SQLite file); raises StorageError if unusable."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    try:
        parsed = _with_driver(make_url(url))
        kwargs = {} if parsed.get_backend_name() == "sqlite" else {"pool_pre_ping": True}
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError) as error:
        raise StorageError(f"bad database URL {display_url(url)!r}: {_first_line(error)}") from None
    except ImportError as error:
        raise StorageError(
            f"no driver for database URL {display_url(url)!r}: {_first_line(error)}"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, _sqlite_file(engine)))
    return engine


def _with_driver(url: URL) -> URL:
    """``postgresql://`` means psycopg 3 when that is the PostgreSQL driver installed."""
    if (
        url.drivername == "postgresql"
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return url.set(drivername="postgresql+psycopg")
    return url


def engine_url(engine: Engine) -> str:
    """The full URL of ``engine`` (password included), to hand to another library (Optuna)."""
    return engine.url.render_as_string(hide_password=False)


def _first_line(error: BaseException) -> str:
    text_ = str(getattr(error, "orig", None) or error).strip()
    return text_.splitlines()[0] if text_ else type(error).__name__


@functools.cache
def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration shipped with this package."""
    head = _script().get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: no version table, i.e. new or pre-migration)."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the database up (or down) to ``revision``; returns (revision before, after).

    A database without our version table but with a ``runs`` table was built by ``create_all``
    before migrations existed: it is stamped at the first revision, then upgraded. Concurrent
    callers are serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so many
    workers opening one new database migrate it once.
    """
    from alembic import command
    from alembic.util import CommandError

    try:
        with engine.connect() as connection:
            _lock_for_migration(connection)
            before = current_revision(connection)
            config = _alembic_config(connection)
            if before is None and "runs" in inspect(connection).get_table_names():
                command.stamp(config, FIRST_REVISION)
                before = FIRST_REVISION
            if _is_older(revision, before):
                command.downgrade(config, revision)
            else:
                command.upgrade(config, revision)
            after = current_revision(connection)
            connection.commit()
    except OperationalError as error:
        raise StorageError(
            f"cannot open database {display_url(str(engine.url))!r}: {_first_line(error)}"
        ) from None
    except CommandError as error:
        raise StorageError(
            f"cannot migrate database {display_url(str(engine.url))!r}: {_first_line(error)} "
            f"(this paibench knows revisions up to {head_revision()})"
        ) from None
    assert after is not None
    return before, after


def _is_older(revision: str, current: str | None) -> bool:
    if current is None or revision in ("head", current):
        return False
    return any(r.revision == revision for r in _script().iterate_revisions(current, "base"))


def _lock_for_migration(connection: Connection) -> None:
    """Hold a database-wide lock until the connection's transaction ends."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key("migrate")}
        )


def open_db(url: str = DEFAULT_URL) -> Engine:
    """Open the results database at ``url``, creating it or upgrading an older schema as needed."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            up_to_date = _stored_revision(connection) == HEAD_REVISION
    except OperationalError as error:
        raise StorageError(
            f"cannot open database {display_url(url)!r}: {_first_line(error)}"
        ) from None
    if not up_to_date:
        migrate(engine)
    return engine


def _stored_revision(connection: Connection) -> str | None:
    """The revision in our version table, read with plain SQL (None: no such table)."""
    if VERSION_TABLE not in inspect(connection).get_table_names():
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _lock_key(name: str) -> int:
    return zlib.crc32(f"paibench:{name}".encode()) & 0x7FFF_FFFF


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """A lock named ``name`` across processes (and machines, on PostgreSQL) for a short section.

    PostgreSQL: a session advisory lock. A SQLite file: ``flock`` on ``<file>.<name>.lock``
    beside it (SQLite is one machine only). Other backends and in-memory SQLite: no lock.
    Unlike a write transaction, it leaves the database free for other engines (Optuna's) to
    write while it is held.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            key = _lock_key(name)
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
        return
    with _file_lock(_sqlite_file(engine), name):
        yield


def _sqlite_file(engine: Engine) -> str | None:
    """The path of ``engine``'s SQLite file (None: not SQLite, or in memory)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    return None if not database or database == ":memory:" else database


@contextmanager
def _file_lock(database: str | None, name: str) -> Iterator[None]:
    """``flock`` on ``<database>.<name>.lock``; no lock when there is no file."""
    if database is None:
        yield
        return
    with open(f"{database}.{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
