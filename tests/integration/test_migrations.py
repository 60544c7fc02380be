"""Alembic against a real PostgreSQL: upgrade from empty, the models match (``alembic check``), downgrade cleanly."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

ROOT = Path(__file__).resolve().parents[2]
# Tests may read the environment (the Settings rule is for application code); CI uses the local server.
ADMIN_URL = os.environ.get("KEYWARD_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"keyward_mig_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_upgrade_check_downgrade(empty_database: str) -> None:
    import verifier.db.models  # noqa: F401 - registers the tables
    from verifier.db.base import Base

    cfg = _config(empty_database)
    command.upgrade(cfg, "head")
    assert _tables(empty_database) == set(Base.metadata.tables)
    command.check(cfg)  # raises if the models and the migrations disagree
    command.downgrade(cfg, "base")
    assert _tables(empty_database) == set()
    command.upgrade(cfg, "head")  # and back up again
    assert _tables(empty_database) == set(Base.metadata.tables)


def test_migration_file_names_are_dated() -> None:
    names = [p.name for p in (ROOT / "migrations" / "versions").glob("*.py")]
    assert names
    assert all(len(n) > 16 and n[:4].isdigit() and n[4] == "-" and n[15] == "_" for n in names), names


def test_migrations_upgrade_check_downgrade_on_sqlite(tmp_path: Path) -> None:
    """The embedded development profile runs the same migrations (batch mode) on a SQLite file."""
    import verifier.db.models  # noqa: F401 - registers the tables
    from verifier.db.base import Base

    url = f"sqlite:///{tmp_path / 'keyward.db'}"
    cfg = _config(url)
    command.upgrade(cfg, "head")
    assert _tables(url) == set(Base.metadata.tables)
    command.check(cfg)
    command.downgrade(cfg, "base")
    assert _tables(url) == set()
