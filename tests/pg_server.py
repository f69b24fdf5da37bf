"""Test fixture: a fresh database on a real PostgreSQL server (``PAIBENCH_TEST_PG_URL``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from storage.db import make_engine

PG_URL_VARIABLE = "PAIBENCH_TEST_PG_URL"
PG_SKIP_REASON = (
    f"no PostgreSQL server: set {PG_URL_VARIABLE} to a URL whose user may CREATE DATABASE "
    "(.ci/run installs and starts one)"
)


def postgres_url() -> str | None:
    """The test server's URL, or None when there is none."""
    return os.environ.get(PG_URL_VARIABLE) or None


@contextmanager
def temporary_postgres_database(base_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``base_url``, dropped afterwards; yields its URL."""
    admin = make_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"paibench_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
