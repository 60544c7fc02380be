"""Throw-away PostgreSQL databases for tests and benchmarks: created empty on the local server, dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

#: The maintenance database of the local server (trust auth on this machine kind); tests and benchmarks may point
#: elsewhere with KEYWARD_TEST_ADMIN_URL.
ADMIN_URL = os.environ.get("KEYWARD_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(prefix: str, admin_url: str = ADMIN_URL) -> Iterator[str]:
    """An empty database named ``<prefix>_<random>``; yields its URL and drops it (forcefully) on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.rsplit("/", 1)[0] + "/" + name
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
