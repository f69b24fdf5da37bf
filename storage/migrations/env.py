"""Alembic environment of the results database.

Run programmatically by :func:`storage.db.upgrade` (which hands over an open connection through
``config.attributes["connection"]``), or by the ``alembic`` command with ``sqlalchemy.url`` set.
Our version table is ``paibench_schema_version``, not Alembic's default ``alembic_version``,
because Optuna's RDB storage keeps its own ``alembic_version`` in the same database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from storage.schema import Base

VERSION_TABLE = "paibench_schema_version"
config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _configure_and_run(connection)
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
