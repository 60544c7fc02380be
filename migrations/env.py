"""Alembic environment: the database URL comes from Settings, the schema from verifier.db.base.Base."""

from __future__ import annotations

from collections.abc import Callable
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool

import verifier.db.models  # noqa: F401 - registers every table on Base.metadata
from verifier.config import get_settings
from verifier.db.base import Base
from verifier.db.engine import is_sqlite, make_engine

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
if not config.get_main_option("sqlalchemy.url"):  # tests and tools may pass a URL; otherwise Settings decides
    config.set_main_option("sqlalchemy.url", get_settings().database_url)
target_metadata = Base.metadata


def _compared_on(dialect: str) -> Callable[..., bool]:
    """``alembic check`` skips an index whose model sets ``info["compared_on"]`` to dialects other than this one
    (an index written per dialect, e.g. with NULLS LAST, which SQLite's CREATE INDEX refuses)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        model = compare_to if reflected else obj
        dialects = getattr(model, "info", {}).get("compared_on") if type_ == "index" and model is not None else None
        return dialects is None or dialect in dialects

    return include


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    connectable = make_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        # SQLite (the embedded development profile) can only ALTER through batch mode (copy-and-move tables).
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite(url),
            include_object=_compared_on(connection.dialect.name),
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
