"""The process-wide engine and session factory per database URL."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from verifier.config import Settings
from verifier.db import session as db_session


def test_session_factory_stays_bound_to_the_cached_engine_after_eviction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engines and factories are cached together: once a URL's engine is evicted and made again, its factory is
    bound to the new one (two caches evicted apart left sessions on an engine nobody else used: the worker's
    transactions went unseen by engine event listeners). A small cache of this test's own, on SQLite files."""
    monkeypatch.setattr(db_session, "_database", lru_cache(maxsize=2)(db_session._database.__wrapped__))
    url = f"sqlite+pysqlite:///{tmp_path / 'service.db'}"
    first = db_session.session_factory(Settings(database_url=url))
    for i in range(3):  # more URLs than this cache holds: the service's engine and factory are evicted
        db_session.engine_for(f"sqlite+pysqlite:///{tmp_path / f'other-{i}.db'}")
    engine = db_session.engine_for(url)
    factory = db_session.session_factory(Settings(database_url=url))
    assert factory.kw["bind"] is engine
    assert first.kw["bind"] is not engine  # it was evicted, and so was its factory with it
