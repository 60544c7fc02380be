"""The process's engines and sessions: one engine per database URL, the session factory every request and task
opens its session from, :func:`session_scope` (one transaction, committed when its block ends), and the autocommit
reader.

Here: caching, binding, and the one place outside the API's request dependency that commits or rolls back
(:func:`session_scope`, which the Celery task base, the heartbeat and the CLI open). Not here: engine options
(:mod:`verifier.db.engine`), and where a transaction begins and ends (its owner: the request dependency
:func:`verifier.api.deps.get_transaction` for the API, the task base :class:`verifier.worker.base.KeywardTask` for
Celery). Services and repositories take a session and never
commit or roll back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Final

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker

from verifier.config import Settings
from verifier.db.engine import is_sqlite, make_async_autocommit_engine, make_engine

#: ``Session`` is re-exported for the API's request dependency: the layers above the services name the type
#: without importing SQLAlchemy.
__all__ = [
    "DATABASE_UNAVAILABLE",
    "LoopEngines",
    "Session",
    "autocommit",
    "engine_for",
    "read_session",
    "session_factory",
]

#: A database that cannot be reached or answer right now (down, restarting, the pool exhausted): the API answers
#: these 503 ``service.unavailable``; the layers above the services name them without importing SQLAlchemy.
DATABASE_UNAVAILABLE: Final = (OperationalError, InterfaceError, PoolTimeout)


@lru_cache(maxsize=8)
def _database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """The engine for ``url`` and the session factory bound to it, cached together: two caches could evict one and
    not the other, leaving sessions on an engine nobody else uses any more."""
    engine = make_engine(url)
    return engine, sessionmaker(bind=engine, expire_on_commit=False)


def engine_for(url: str) -> Engine:
    """The process-wide engine (and so connection pool) for ``url``."""
    return _database(url)[0]


def _factory(url: str) -> sessionmaker[Session]:
    return _database(url)[1]


def session_factory(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the service database; objects stay readable after the commit (``expire_on_commit=False``)."""
    return _factory(settings.database_url)


#: Opens one transaction (:func:`session_scope` with its arguments bound): a helper that stores in transactions of
#: its own, such as the collateral prefetch, is given one of these by the transaction's owner and never commits.
Transaction = Callable[[], AbstractContextManager[Session]]


@contextmanager
def session_scope(source: Settings | Engine) -> Iterator[Session]:
    """One unit of work on the service database (``Settings``) or on ``engine``: the session's transaction commits
    when the block ends and rolls back if it raises; the session is closed either way. Objects stay readable after
    the commit (``expire_on_commit=False``)."""
    factory = session_factory(source) if isinstance(source, Settings) else _bound(source)
    with factory() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


def _bound(engine: Engine) -> Callable[[], Session]:
    return lambda: Session(bind=engine, expire_on_commit=False)


@lru_cache(maxsize=4)
def _autocommit_engine(url: str) -> Engine:
    return engine_for(url).execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def autocommit(settings: Settings) -> Iterator[Connection]:
    """A connection on which each statement is its own transaction (PostgreSQL's autocommit: no BEGIN or COMMIT
    round trips), for a request whose whole write is one statement; the connection goes back to the pool after the
    block. SQLite (the embedded profile) runs the block in one transaction, committed when it ends."""
    url = settings.database_url
    if is_sqlite(url):
        with engine_for(url).begin() as connection:
            yield connection
    else:
        with _autocommit_engine(url).connect() as connection:
            yield connection


class LoopEngines:
    """An application's asyncio engines, one per PostgreSQL URL, made on first use in the event loop of its lifespan
    (where this is made) and disposed when that lifespan ends: a pooled async connection belongs to one loop
    (:meth:`for_this_loop`). Only autocommit engines, for one-statement writes (:func:`autocommit`'s work, on the
    loop); none for SQLite."""

    def __init__(self) -> None:
        self._engines: dict[str, AsyncEngine] = {}
        self._loop = asyncio.get_running_loop()

    def for_this_loop(self) -> bool:
        return asyncio.get_running_loop() is self._loop

    def autocommit(self, url: str) -> AsyncEngine | None:
        """The loop's autocommit engine for ``url``, or None for SQLite."""
        if is_sqlite(url):
            return None
        engine = self._engines.get(url)
        if engine is None:
            engine = self._engines[url] = make_async_autocommit_engine(url)
        return engine

    async def dispose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.dispose()


def read_session(settings: Settings) -> Session:
    """A session for reads that need no transaction of their own (authentication, a decision's answer). On
    PostgreSQL its statements run in autocommit mode: no BEGIN and ROLLBACK round trips, each statement sees what
    is committed when it runs, and the connection goes back to the pool when the session closes. SQLite (the
    embedded profile, whose transactions take the write lock) keeps its usual transactions."""
    url = settings.database_url
    return Session(bind=engine_for(url) if is_sqlite(url) else _autocommit_engine(url), expire_on_commit=False)
