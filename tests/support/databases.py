"""Databases for tests: a scratch PostgreSQL database migrated to head by Alembic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config

from tests.support.tools import ROOT
from verifier.testing.databases import scratch_database


@contextmanager
def migrated_database(prefix: str) -> Iterator[str]:
    """A new database migrated to head by Alembic; yields its URL and drops it on exit."""
    with scratch_database(prefix) as url:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        yield url
