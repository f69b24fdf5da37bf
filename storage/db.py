"""Engine and session setup: SQLite by default (WAL, busy timeout), any SQLAlchemy URL otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from storage.schema import Base

DEFAULT_URL = "sqlite:///bench.db"
SQLITE_BUSY_TIMEOUT_MS = 60_000


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str = DEFAULT_URL) -> Engine:
    """An engine for ``url``; SQLite files get WAL and a busy timeout so workers can share them."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_db(url: str = DEFAULT_URL) -> Engine:
    """Open (creating or upgrading as needed) the results database at ``url``."""
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    return engine


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
