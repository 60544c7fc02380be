"""kombu's SQLAlchemy transport, as the embedded development profile's broker, with two fixes.

* kombu passes every transport option (``polling_interval`` included) to ``create_engine``, which refuses unknown
  arguments; this channel builds its engine itself.
* SQLite gets WAL and a 30 s busy timeout, so the API (publishing) and the worker processes (consuming) share the
  file without "database is locked" errors. kombu manages its own transactions (``BEGIN IMMEDIATE`` when it takes
  a message), so the driver's transaction handling is left as it is.

:func:`verifier.broker.transport.register_transports` points the ``sqla+`` URL prefix at this module.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import Engine, create_engine, event

from verifier.db.engine import SQLITE_BUSY_TIMEOUT_MS, is_sqlite


def broker_engine(url: str) -> Engine:
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine


class Channel(kombu_sqla.Channel):
    def _engine_from_config(self) -> Engine:
        return broker_engine(self.connection.client.hostname)


class Transport(kombu_sqla.Transport):
    Channel = Channel
