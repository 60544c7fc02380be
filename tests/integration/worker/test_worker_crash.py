"""A worker killed mid-task never loses the attestation and never releases twice (real Celery, Redis, Postgres).

The test holds a row lock on the pending attestation, so the first worker blocks inside the decision; it is then
SIGKILLed (no acknowledgement: tasks ack late). After the broker's visibility timeout a fresh worker receives the
same message and decides it exactly once; a duplicate message for the same attestation changes nothing. (kombu's
Redis transport restores unacknowledged messages when a worker starts, so the second worker starts after the
visibility timeout.)

Without waiting for that timeout: a worker killed while it holds several requests has them decided within seconds
by a new worker, because beat sees its heartbeat go stale and sends them again (verifier/attestation/pending.py).
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import redis
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session

from tests.support.service import (
    TEST_BROKER,
    TEST_KEY_PREFIX,
    seed,
    service_settings,
    start_beat,
    start_pooled_worker,
    start_worker,
    stop_worker,
    store_pending_tdx,
)
from verifier.db.models import Attestation, AttestationStatus, AuditEvent, Lease, LeaseStatus, WorkerHeartbeat

VISIBILITY = 3  # seconds before an unacknowledged task is delivered again


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _decided(engine: Engine, att_id: uuid.UUID) -> bool:
    with Session(engine) as s:
        a = s.get(Attestation, att_id)
        return a is not None and a.status != AttestationStatus.PENDING


def _assert_accepted_once(engine: Engine, att_id: uuid.UUID, entitlement_id: uuid.UUID) -> None:
    """Accepted, and exactly one lease under the entitlement: decided once, never released twice."""
    with Session(engine) as s:
        row = s.get(Attestation, att_id)
        assert row is not None
        assert row.status == AttestationStatus.ACCEPTED, row.verdict
        leases = s.scalar(select(func.count()).select_from(Lease).where(Lease.entitlement_id == entitlement_id))
        assert leases == 1


def test_worker_killed_mid_task_decides_once_after_redelivery(database_url: str, engine: Engine) -> None:
    broker = TEST_BROKER
    r = redis.Redis.from_url(broker)
    settings = service_settings(database_url, broker_visibility_timeout=VISIBILITY)
    seeded = seed(engine, settings, seats=1)
    att_id = store_pending_tdx(engine, settings, seeded.entitlement_id, deployment="crash")
    extra = {"KEYWARD_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY)}

    from verifier.broker.app import celery_app
    from verifier.broker.transport import transport_options

    celery_app.conf.broker_transport_options = transport_options(broker, VISIBILITY, TEST_KEY_PREFIX)
    blocker = engine.connect()
    tx = blocker.begin()
    blocker.execute(text("SELECT id FROM attestations WHERE id = :i FOR UPDATE"), {"i": att_id})
    first = start_worker(database_url, broker, **extra)
    try:
        from verifier.worker.tasks import decide_task

        decide_task.delay(str(att_id))
        # The worker has taken the task once it is in Redis' unacked set; then kill it while it waits on the lock.
        assert _wait_for(lambda: r.hlen(TEST_KEY_PREFIX + "unacked") > 0, 30), "the worker never took the task"
        time.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        tx.rollback()
        blocker.close()
        if first.poll() is None:
            stop_worker(first)
    with Session(engine) as s:
        row = s.get(Attestation, att_id)
        assert row is not None
        assert row.status == AttestationStatus.PENDING  # not lost, not decided
    # kombu restores unacknowledged messages older than the visibility timeout when a worker starts (later only
    # on a throttled timer), so the replacement worker comes up once that timeout has passed, as after a crash.
    time.sleep(VISIBILITY + 1.5)
    second = start_worker(database_url, broker, **extra)
    try:
        assert _wait_for(lambda: _decided(engine, att_id), 60), "the task was not redelivered after the worker died"
        decide_task.delay(str(att_id))  # a duplicate delivery must change nothing
        time.sleep(1.5)
    finally:
        stop_worker(second)
    _assert_accepted_once(engine, att_id, seeded.entitlement_id)


def test_worker_database_connection_lost_mid_task_is_retried(database_url: str, engine: Engine) -> None:
    """The worker's PostgreSQL connection is terminated while it waits inside the decision: the task is retried
    (not acknowledged as failed, which would leave the attestation pending for good) and decides exactly once."""
    settings = service_settings(database_url)
    seeded = seed(engine, settings, seats=1)
    att_id = store_pending_tdx(engine, settings, seeded.entitlement_id, deployment="crash")
    blocker = engine.connect()
    tx = blocker.begin()
    blocker.execute(text("SELECT id FROM attestations WHERE id = :i FOR UPDATE"), {"i": att_id})
    worker = start_worker(database_url, TEST_BROKER)
    try:
        from verifier.worker.tasks import decide_task

        decide_task.delay(str(att_id))
        waiting = text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND pid <> pg_backend_pid()"
        )
        # Autocommit: pg_stat_activity is read once per transaction.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
            assert _wait_for(lambda: admin.execute(waiting).first() is not None, 30), "the worker never blocked"
            pid = admin.execute(waiting).scalar_one()
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one() is True
        tx.rollback()
        assert _wait_for(lambda: _decided(engine, att_id), 30), "the task was not retried after the connection was lost"
    finally:
        if tx.is_active:
            tx.rollback()
        blocker.close()
        stop_worker(worker)
    _assert_accepted_once(engine, att_id, seeded.entitlement_id)


#: Fast heartbeats and requeue runs, so the test's bound stays a few seconds (the defaults give 40-50 s).
FAST_RECOVERY = {
    "KEYWARD_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "KEYWARD_HEARTBEAT_MAX_AGE_SECONDS": "2",
    "KEYWARD_PENDING_REQUEUE_INTERVAL_SECONDS": "1",
    "KEYWARD_PENDING_REQUEUE_BATCH": "1000",
}
#: Every request of a killed worker is decided within this many seconds of the kill (the broker would hand its
#: messages out again after an hour, beat's periodic requeue after ten minutes).
RECOVERY_BOUND = 30.0


def _pending_count(engine: Engine, ids: list[uuid.UUID]) -> int:
    with Session(engine) as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Attestation)
                .where(Attestation.id.in_(ids), Attestation.status == AttestationStatus.PENDING)
            )
            or 0
        )


def _has_heartbeat(engine: Engine, pid: int) -> bool:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(WorkerHeartbeat).where(WorkerHeartbeat.pid == pid)) == 1


def test_worker_killed_holding_requests_they_are_decided_within_seconds(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Finding 1 of issue 17 with real processes: a worker (4 threads) takes 4 of 6 requests and blocks inside the
    decisions (the test holds their row locks); it is SIGKILLed. A new worker and beat start: every request is
    decided within seconds, none is lost, none is leased twice, though the broker still holds the killed worker's
    messages unacknowledged (its visibility timeout is an hour)."""
    r = redis.Redis.from_url(TEST_BROKER)
    settings = service_settings(database_url)
    requests = 6
    seeded = seed(engine, settings, seats=requests)
    ids = [store_pending_tdx(engine, settings, seeded.entitlement_id, deployment=f"crash-{i}") for i in range(requests)]
    blocker = engine.connect()
    tx = blocker.begin()
    blocker.execute(text("SELECT id FROM attestations WHERE id = ANY(:ids) FOR UPDATE"), {"ids": ids})
    first = start_pooled_worker(database_url, TEST_BROKER, pool="threads", concurrency=4, env=FAST_RECOVERY)
    processes = [first]
    try:
        from verifier.worker.tasks import decide_task

        for att_id in ids:
            decide_task.delay(str(att_id))
        assert _wait_for(lambda: r.hlen(TEST_KEY_PREFIX + "unacked") >= 4, 30), "the worker never took the tasks"
        assert _wait_for(lambda: _has_heartbeat(engine, first.pid), 30), "the worker never beat"
        time.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        tx.rollback()
        assert _pending_count(engine, ids) == requests  # nothing decided, nothing lost
        processes.append(start_worker(database_url, TEST_BROKER, **FAST_RECOVERY))
        processes.append(start_beat(tmp_path / "celerybeat-schedule", database_url, TEST_BROKER, **FAST_RECOVERY))
        decided = _wait_for(lambda: _pending_count(engine, ids) == 0, RECOVERY_BOUND)
        elapsed = time.monotonic() - killed_at
        assert decided, f"{_pending_count(engine, ids)} requests still pending {elapsed:.1f} s after the kill"
        assert r.hlen(TEST_KEY_PREFIX + "unacked") >= 3  # the killed worker's messages: not what brought them back
        time.sleep(2)  # let duplicate deliveries (beat's requeue, the queued originals) run: they change nothing
    finally:
        if tx.is_active:
            tx.rollback()
        blocker.close()
        for process in processes:
            if process.poll() is None:
                stop_worker(process)
    with Session(engine) as s:
        rows = s.scalars(select(Attestation).where(Attestation.id.in_(ids))).all()
        assert [row.status for row in rows] == [AttestationStatus.ACCEPTED] * requests, [r.verdict for r in rows]
        leases = s.scalars(select(Lease.id).where(Lease.entitlement_id == seeded.entitlement_id)).all()
        assert sorted(map(str, leases)) == sorted(str(row.lease_id) for row in rows)  # one lease each, no more
        issued = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.tag == "worker:lease:issued", AuditEvent.subject_id.in_([str(i) for i in leases]))
        )
        assert issued == requests


def test_worker_killed_then_enclave_attests_again_the_late_request_leaves_the_new_lease(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The whole of finding 1 with real processes: the worker deciding request A is killed; the enclave attests again
    under the same deployment name (B), and a new worker leases B the licence's only seat. A comes back within
    seconds (beat sees the lost worker) and is rejected ``attestation.superseded_by_newer``: B's lease stays live,
    no orphan lease takes the seat."""
    r = redis.Redis.from_url(TEST_BROKER)
    settings = service_settings(database_url)
    seeded = seed(engine, settings, seats=1)
    stale = store_pending_tdx(engine, settings, seeded.entitlement_id, deployment="retried")
    blocker = engine.connect()
    tx = blocker.begin()
    blocker.execute(text("SELECT id FROM attestations WHERE id = :i FOR UPDATE"), {"i": stale})
    first = start_worker(database_url, TEST_BROKER, **FAST_RECOVERY)
    processes = [first]
    try:
        from verifier.worker.tasks import decide_task

        decide_task.delay(str(stale))
        assert _wait_for(lambda: r.hlen(TEST_KEY_PREFIX + "unacked") > 0, 30), "the worker never took the task"
        assert _wait_for(lambda: _has_heartbeat(engine, first.pid), 30), "the worker never beat"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        processes.append(start_worker(database_url, TEST_BROKER, **FAST_RECOVERY))
        processes.append(start_beat(tmp_path / "celerybeat-schedule", database_url, TEST_BROKER, **FAST_RECOVERY))
        retry = store_pending_tdx(engine, settings, seeded.entitlement_id, deployment="retried")
        decide_task.delay(str(retry))
        assert _wait_for(lambda: _decided(engine, retry), 30), "the enclave's new request was not decided"
        released_at = time.monotonic()
        tx.rollback()  # A's decision may go ahead now, after B's
        assert _wait_for(lambda: _decided(engine, stale), RECOVERY_BOUND), "the killed worker's request stayed pending"
        assert time.monotonic() - released_at < RECOVERY_BOUND
    finally:
        if tx.is_active:
            tx.rollback()
        blocker.close()
        for process in processes:
            if process.poll() is None:
                stop_worker(process)
    with Session(engine) as s:
        a, b = s.get_one(Attestation, stale), s.get_one(Attestation, retry)
        assert b.status == AttestationStatus.ACCEPTED, b.verdict
        assert a.status == AttestationStatus.REJECTED
        assert a.verdict is not None
        assert [reason["code"] for reason in a.verdict["reasons"]] == ["attestation.superseded_by_newer"]
        assert a.lease_id is None
        live = s.scalars(
            select(Lease.id).where(Lease.entitlement_id == seeded.entitlement_id, Lease.status == LeaseStatus.LIVE)
        ).all()
        assert live == [b.lease_id]
        assert (
            s.scalar(select(func.count()).select_from(Lease).where(Lease.entitlement_id == seeded.entitlement_id)) == 1
        )
        tags = s.scalars(select(AuditEvent.tag).where(AuditEvent.subject_id == str(stale))).all()
        assert tags == ["worker:attestation:rejected"]


def test_restarted_worker_with_the_killed_ones_pid_leaves_its_row_to_be_seen_lost(engine: Engine) -> None:
    """On PostgreSQL: a worker killed in a container that restarts gets the same hostname and pid; the new process's
    first heartbeat keeps the killed one's row apart, so beat still sees a lost worker and requeues its requests."""
    from datetime import UTC, datetime, timedelta

    from verifier.observability.heartbeat import Heartbeat, last_seen_of_lost

    host = f"restarted-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    killed_start, killed_seen = now - timedelta(minutes=10), now - timedelta(seconds=3)
    with Session(engine) as s:
        s.add(WorkerHeartbeat(hostname=host, pid=7, role="worker", started_at=killed_start, last_seen=killed_seen))
        s.commit()
    hb = Heartbeat(engine, role="worker", interval=10, clock=lambda: now)
    hb.hostname, hb.pid = host, 7
    try:
        assert hb.beat()
        with Session(engine) as s:
            rows = s.execute(
                select(WorkerHeartbeat.hostname, WorkerHeartbeat.started_at, WorkerHeartbeat.last_seen).where(
                    WorkerHeartbeat.hostname.startswith(host)
                )
            ).all()
            assert sorted(rows) == sorted(
                [(host, now, now), (f"{host}~{killed_start.strftime('%Y%m%dT%H%M%S.%f')}", killed_start, killed_seen)]
            )
            lost = last_seen_of_lost(s, role="worker", max_age=2, now=now)
            assert lost is not None
            assert lost >= killed_seen
    finally:
        with Session(engine) as s:
            s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.hostname.startswith(host)))
            s.commit()
