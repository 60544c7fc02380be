"""The PostgreSQL engine's connection check (:func:`verifier.db.engine.make_engine`): a connection handed back a
moment ago is lent without a ping, one idle longer is pinged first, and one the server dropped while idle is
replaced before anyone uses it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, make_url, text

from verifier.db import engine as db_engine


@pytest.fixture
def pinged(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, list[object]]]:
    """A service engine on the test database, and the connections its dialect pinged."""
    engine = db_engine.make_engine(database_url)
    pings: list[object] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    try:
        yield engine, pings
    finally:
        engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def test_engine_connection_just_returned_not_pinged(pinged: tuple[Engine, list[object]]) -> None:
    engine, pings = pinged
    first = _backend_pid(engine)  # a new connection: just connected, no ping
    second = _backend_pid(engine)
    assert first == second
    assert pings == []


def test_engine_connection_idle_pinged(pinged: tuple[Engine, list[object]], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, pings = pinged
    _backend_pid(engine)
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.0)
    _backend_pid(engine)
    assert len(pings) == 1


def test_engine_connection_dropped_while_idle_replaced(
    pinged: tuple[Engine, list[object]], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, pings = pinged
    dropped = _backend_pid(engine)  # the pool's only connection
    with psycopg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False)) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (dropped,))
    monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.0)
    assert _backend_pid(engine) != dropped  # the failed ping replaced it; the statement never saw it
    assert len(pings) == 2  # the dropped connection's failed ping, then its replacement's
