"""Heartbeats, readiness and the database-derived metrics on SQLite (the embedded development profile's database);
tests/integration/api/test_health.py runs the same against PostgreSQL with a real worker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import verifier.db.models  # noqa: F401 - registers the tables
from verifier.config import Settings
from verifier.db.base import Base
from verifier.db.engine import make_engine
from verifier.db.models import CachedCollateral, WorkerHeartbeat
from verifier.observability import health
from verifier.observability.heartbeat import STALE_ROW_RETENTION, Heartbeat, heartbeat_freshness, last_seen_of_lost
from verifier.observability.metrics import ServiceCollector, WorkerMetrics, exposition

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'keyward.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def _rows(engine: Engine) -> list[WorkerHeartbeat]:
    with Session(engine) as s:
        return list(s.scalars(select(WorkerHeartbeat)))


def test_heartbeat_beat_upserts_one_row_with_metrics(engine: Engine) -> None:
    tally = WorkerMetrics()
    clock = iter([NOW, NOW + timedelta(seconds=10), NOW + timedelta(seconds=20)])
    hb = Heartbeat(engine, role="worker", interval=10, metrics=tally.snapshot, clock=lambda: next(clock))
    assert hb.beat()
    tally.record_decision(platform="intel-tdx", outcome="accepted", verification_s=0.1, latency_s=0.2)
    assert hb.beat()
    (row,) = _rows(engine)
    assert (row.hostname, row.pid, row.role) == (hb.hostname, hb.pid, "worker")
    assert row.started_at == NOW
    assert row.last_seen == NOW + timedelta(seconds=20)
    assert row.metrics is not None
    assert row.metrics["decided"] == [{"platform": "intel-tdx", "outcome": "accepted", "count": 1}]


def test_heartbeat_prunes_long_dead_rows(engine: Engine) -> None:
    with Session(engine) as s:
        old = NOW - STALE_ROW_RETENTION - timedelta(seconds=1)
        s.add(WorkerHeartbeat(hostname="gone", pid=1, role="worker", started_at=old, last_seen=old))
        s.add(WorkerHeartbeat(hostname="stale", pid=2, role="worker", started_at=NOW, last_seen=NOW))
        s.commit()
    assert Heartbeat(engine, role="beat", interval=10, clock=lambda: NOW).beat()
    assert sorted(r.hostname for r in _rows(engine)) == sorted(["stale", socket.gethostname()])


def test_heartbeat_keeps_the_row_of_an_earlier_process_with_its_pid_as_lost(engine: Engine) -> None:
    """A container restarted after its worker was killed gets the same pid: the new process's first beat keeps the
    killed one's row under a key of its own (it then goes stale, and beat requeues what it held) instead of
    overwriting it; later beats, and the row's own process, never move anything."""
    killed_start, killed_seen = NOW - timedelta(hours=2), NOW - timedelta(seconds=5)
    hb = Heartbeat(engine, role="worker", interval=10, clock=lambda: NOW)
    with Session(engine) as s:
        s.add(
            WorkerHeartbeat(
                hostname=hb.hostname, pid=hb.pid, role="worker", started_at=killed_start, last_seen=killed_seen
            )
        )
        s.commit()
    assert hb.beat()
    assert hb.beat()
    rows = {r.hostname: r for r in _rows(engine)}
    assert set(rows) == {hb.hostname, f"{hb.hostname}~{killed_start.strftime('%Y%m%dT%H%M%S.%f')}"}
    assert (rows[hb.hostname].started_at, rows[hb.hostname].last_seen) == (NOW, NOW)
    earlier = rows[f"{hb.hostname}~{killed_start.strftime('%Y%m%dT%H%M%S.%f')}"]
    assert (earlier.pid, earlier.started_at, earlier.last_seen) == (hb.pid, killed_start, killed_seen)
    with Session(engine) as s:
        lost = last_seen_of_lost(s, role="worker", max_age=1, now=NOW + timedelta(seconds=1))
    assert lost == killed_seen


def test_heartbeat_thread_writes_then_stop_deletes_row(engine: Engine) -> None:
    hb = Heartbeat(engine, role="worker", interval=0.05)
    hb.start()
    deadline = time.monotonic() + 5
    seen: set[datetime] = set()
    while len(seen) < 2 and time.monotonic() < deadline:  # at least two beats
        seen.update(r.last_seen for r in _rows(engine))
        time.sleep(0.02)
    assert len(seen) >= 2
    hb.stop()
    assert _rows(engine) == []


def test_heartbeat_database_gone_is_not_fatal(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'no-schema.db'}")  # no tables: every write fails
    try:
        assert Heartbeat(eng, role="worker", interval=1).beat() is False
    finally:
        eng.dispose()


def test_heartbeat_freshness_by_role_and_host(engine: Engine) -> None:
    with Session(engine) as s:
        s.add(WorkerHeartbeat(hostname="a", pid=1, role="worker", started_at=NOW, last_seen=NOW - timedelta(seconds=5)))
        s.add(
            WorkerHeartbeat(hostname="b", pid=1, role="worker", started_at=NOW, last_seen=NOW - timedelta(seconds=99))
        )
        s.add(WorkerHeartbeat(hostname="a", pid=2, role="beat", started_at=NOW, last_seen=NOW))
        s.commit()
        fresh = heartbeat_freshness(s, role="worker", max_age=30, now=NOW)
        assert (fresh.ok, fresh.fresh, fresh.known, fresh.newest_age_seconds) == (True, 1, 2, 5.0)
        assert heartbeat_freshness(s, role="worker", max_age=30, now=NOW, hostname="b").ok is False
        assert heartbeat_freshness(s, role="worker", max_age=4, now=NOW).ok is False
        assert heartbeat_freshness(s, role="beat", max_age=1, now=NOW, hostname="a").ok is True


def test_readiness_sqlite_database_and_broker(engine: Engine, tmp_path: Path) -> None:
    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    factory = sessionmaker(bind=engine)
    result = health.readiness(factory, broker, max_heartbeat_age=30, now=NOW)
    assert result.checks["database"] == {"ok": True}
    assert result.checks["broker"] == {"ok": True}
    assert result.ok is False  # no worker yet
    Heartbeat(engine, role="worker", interval=10, clock=lambda: NOW).beat()
    assert health.readiness(factory, broker, max_heartbeat_age=30, now=NOW).ok is True
    assert health.broker_queue_depth(broker) == 0


def test_service_collector_database_metrics(engine: Engine) -> None:
    with Session(engine) as s:
        for key, fetched, nxt in (("a", 3600, 7200), ("b", 60, -10)):
            s.add(
                CachedCollateral(
                    vendor="intel",
                    kind="tcb_info",
                    key=key,
                    body=b"{}",
                    issuer_chain=None,
                    fetched_at=NOW - timedelta(seconds=fetched),
                    next_update=NOW + timedelta(seconds=nxt),
                )
            )
        s.commit()
    text = exposition(ServiceCollector(sessionmaker(bind=engine), lambda: 3, NOW)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    labels = (("kind", "tcb_info"), ("vendor", "intel"))
    assert samples["keyward_collateral_age_seconds", labels] == 3600
    assert samples["keyward_collateral_next_update_seconds", labels] == -10
    assert samples["keyward_collateral_documents", labels] == 2
    assert samples["keyward_leases_live", ()] == 0
    assert samples["keyward_attestations_pending", ()] == 0
    assert samples["keyward_attestation_oldest_pending_seconds", ()] == 0
    assert samples["keyward_queue_depth", (("queue", "celery"),)] == 3
    assert samples["keyward_metrics_source_up", (("source", "database"),)] == 1


def test_health_cli_worker(engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setattr("verifier.config.get_settings", lambda: Settings(database_url=url))
    assert health.main(["worker"]) == 1
    assert capsys.readouterr().out.startswith("unhealthy: worker heartbeats on ")
    Heartbeat(engine, role="worker", interval=10).beat()
    assert health.main(["worker"]) == 0
    assert capsys.readouterr().out.startswith("healthy: ")
    assert health.main(["beat"]) == 1


def test_health_cli_database_down(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dead = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/keyward")
    monkeypatch.setattr("verifier.config.get_settings", lambda: dead)
    assert health.main(["worker"]) == 1
    assert capsys.readouterr().out == "unhealthy: database unavailable (OperationalError)\n"
