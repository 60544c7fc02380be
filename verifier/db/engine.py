"""Engines for the two profiles, and schema upgrades through Alembic.

Production runs on PostgreSQL. The embedded development profile runs on one SQLite file shared by the API and the
worker processes, so every SQLite connection gets WAL (readers never block the writer), a busy timeout, foreign keys,
and ``BEGIN IMMEDIATE`` transactions: a transaction takes the write lock when it starts, so two processes can never
both read and then fail to upgrade to a write (SQLite's answer to ``SELECT ... FOR UPDATE``, which it ignores).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from verifier.shipped import shipped_dir

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A pooled PostgreSQL connection idle this long (seconds) is checked before it is lent (:func:`_ping_when_idle`).
PING_AFTER_IDLE_S = 1.0
_RETURNED_AT = "keyward_returned_at"
#: PostgreSQL pool per process: at most 20 connections. Requests hold one only while they run SQL (waiting for a
#: decision holds none), so half the API threadpool's 40 threads is plenty, and several API and worker processes
#: stay well inside PostgreSQL's default max_connections (100).
POOL_SIZE, POOL_MAX_OVERFLOW = 5, 15


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get the multi-process settings described above."""
    if not is_sqlite(url):
        options = {"pool_size": POOL_SIZE, "max_overflow": POOL_MAX_OVERFLOW} if "poolclass" not in kwargs else {}
        engine = create_engine(url, hide_parameters=True, **options, **kwargs)
        _ping_when_idle(engine)
        return engine
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_async_autocommit_engine(url: str) -> AsyncEngine:
    """An asyncio engine on PostgreSQL ``url`` (psycopg's async connection) whose every statement is its own
    transaction, with the pool and connection check of :func:`make_engine`: for a request whose whole write is one
    statement, sent from the event loop without a threadpool hop (:class:`verifier.db.session.LoopEngines`)."""
    engine = create_async_engine(
        url, hide_parameters=True, isolation_level="AUTOCOMMIT", pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW
    )
    _ping_when_idle(engine.sync_engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection before lending it only when it has been idle at least
    :data:`PING_AFTER_IDLE_S` (what PgBouncer's ``server_check_delay`` does): a connection a request or task handed
    back a moment ago is used at once, where ``pool_pre_ping`` spent a round trip on every checkout. A failed check
    makes the pool replace the connection. A connection that broke while busy fails its next statement, which the
    request answers with 503 and the task retries, as it would when the server drops it after a successful ping."""

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as e:  # any failure: the pool discards it and connects afresh
            raise DisconnectionError(str(e)) from e


def upgrade_database(url: str) -> None:
    """``alembic upgrade head`` against ``url``, with the migrations shipped with the package.
    Quiet: unlike the ``alembic`` command this does not load alembic.ini's logging configuration."""
    from alembic import command  # noqa: PLC0415 - only the migrate step needs Alembic
    from alembic.config import Config  # noqa: PLC0415

    cfg = Config()
    cfg.set_main_option("script_location", str(shipped_dir("migrations")))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")
