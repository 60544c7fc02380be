"""Throw-away state for tests and benchmarks: PostgreSQL databases created empty on the local server and dropped
after, and Redis keys under a run's own prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
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


def purge_keys(broker_url: str, key_prefix: str) -> None:
    """Delete every Redis key under ``key_prefix``: one test run's or benchmark's own, never the whole database (a
    run beside it may share that database under another prefix)."""
    if not key_prefix:
        raise ValueError("refusing to purge without a key prefix: that would take every deployment's keys")
    client = redis.Redis.from_url(broker_url)
    try:
        keys = list(client.scan_iter(match=key_prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
