"""Alembic against a real PostgreSQL: upgrade from empty, the models match (``alembic check``), downgrade cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect

from verifier.testing.databases import scratch_database

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def empty_database() -> Iterator[str]:
    with scratch_database("keyward_mig") as url:
        yield url


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


def test_credential_roles_migration_makes_every_admin_credential_admin(empty_database: str) -> None:
    """Admin credentials issued before roles had the whole admin API: the migration keeps that (role ``admin``);
    the other kinds get no role."""
    from sqlalchemy import text

    cfg = _config(empty_database)
    command.upgrade(cfg, "e17cred00001")
    engine = create_engine(empty_database)
    try:
        with engine.begin() as conn:
            for kind in ("admin", "billing-read"):
                conn.execute(
                    text(
                        "INSERT INTO api_credentials (id, kind, key_id, secret_hash, label, created_at)"
                        " VALUES (gen_random_uuid(), :kind, :key, '\\x00', 'old', now())"
                    ),
                    {"kind": kind, "key": kind[:16]},
                )
        command.upgrade(cfg, "e17role00001")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT kind, role FROM api_credentials")).all()
        roles: dict[str, str | None] = {str(kind): role for kind, role in rows}
    finally:
        engine.dispose()
    assert roles == {"admin": "admin", "billing-read": None}
