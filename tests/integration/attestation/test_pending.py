"""Requests stored but never decided are sent to a worker again (verifier/attestation/pending.py), and the API
answers clearly when the broker or the database is down. Real PostgreSQL, Redis and a Celery worker process."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc import jwk
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from tests.support.factories import make_entitlement, make_model, make_model_version
from tests.support.service import (
    TEST_BROKER,
    pending_tdx_attestation,
    seed,
    service_settings,
    start_logged_worker,
    stop_worker,
    tdx_submission,
)
from verifier.app import create_app
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.pending import claim_stale_pending, requeue_cutoff
from verifier.clock import Clock
from verifier.db.models import Attestation, AttestationStatus, WorkerHeartbeat
from verifier.observability.heartbeat import last_seen_of_lost

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=10)
SECRET = b"challenge-secret-for-tests-only!"


def _pending(
    session: Session, *, created_at: datetime, status: AttestationStatus = AttestationStatus.PENDING
) -> uuid.UUID:
    model = make_model(session)
    entitlement = make_entitlement(session, model=model)
    version = make_model_version(session, model)
    att = pending_tdx_attestation(
        entitlement.id,
        version.id,
        nonce=issue_challenge(SECRET, NOW).nonce,
        enclave_jwk=dict(jwk.ECKey.generate_key("P-256").as_dict(private=False)),
        deployment="pending",
    )
    att.created_at, att.status = created_at, status
    session.add(att)
    session.flush()
    return att.id


def test_claim_stale_pending_only_old_pending_oldest_first(session: Session) -> None:
    older = _pending(session, created_at=NOW - 2 * PERIOD)
    old = _pending(session, created_at=NOW - PERIOD)
    _pending(session, created_at=NOW - PERIOD + timedelta(seconds=1))  # not stale yet
    _pending(session, created_at=NOW - 3 * PERIOD, status=AttestationStatus.ACCEPTED)
    _pending(session, created_at=NOW - 3 * PERIOD, status=AttestationStatus.REJECTED)

    claimed = claim_stale_pending(session, NOW, older_than=PERIOD, limit=100)

    assert older in claimed
    assert old in claimed
    assert claimed.index(older) < claimed.index(old)
    for attestation_id in (older, old):
        att = session.get(Attestation, attestation_id)
        assert att is not None
        assert att.requeued_at == NOW


def test_claim_stale_pending_once_per_period_and_bounded(session: Session) -> None:
    ids = [_pending(session, created_at=NOW - 2 * PERIOD - timedelta(seconds=i)) for i in range(3)]

    first = claim_stale_pending(session, NOW, older_than=PERIOD, limit=2)
    assert len([i for i in first if i in ids]) <= 2
    rest = claim_stale_pending(session, NOW, older_than=PERIOD, limit=100)
    assert set(ids) <= set(first) | set(rest)
    # Claimed rows are not sent again within the period, and are once it has passed.
    assert not set(ids) & set(claim_stale_pending(session, NOW + PERIOD / 2, older_than=PERIOD, limit=100))
    assert set(ids) <= set(claim_stale_pending(session, NOW + PERIOD, older_than=PERIOD, limit=100))


def test_claim_stale_pending_sends_again_what_a_lost_worker_could_hold(session: Session) -> None:
    """A worker last beat a minute ago and is lost: requests sent before that beat plus the grace are sent again at
    once (not after the period), those sent later are not, and none is sent again for the same lost worker."""
    lost, grace = NOW - timedelta(seconds=60), timedelta(seconds=30)
    before = _pending(session, created_at=lost - timedelta(seconds=40))
    within_grace = _pending(session, created_at=lost + timedelta(seconds=25))
    after = _pending(session, created_at=lost + timedelta(seconds=31))

    claimed = claim_stale_pending(session, NOW, older_than=PERIOD, limit=100, lost_worker_seen=lost, grace=grace)

    assert {before, within_grace} <= set(claimed)
    assert after not in claimed
    again = claim_stale_pending(
        session, NOW + timedelta(seconds=1), older_than=PERIOD, limit=100, lost_worker_seen=lost, grace=grace
    )
    assert not {before, within_grace, after} & set(again)


@pytest.mark.parametrize(
    ("lost", "expected"),
    [
        (None, NOW - PERIOD),
        (NOW - PERIOD - timedelta(minutes=5), NOW - PERIOD),  # lost long ago: the period's cutoff is later
        (NOW - timedelta(seconds=60), NOW - timedelta(seconds=30)),
    ],
    ids=["no-lost-worker", "lost-long-ago", "lost-recently"],
)
def test_requeue_cutoff_is_the_later_of_period_and_lost_worker(lost: datetime | None, expected: datetime) -> None:
    assert requeue_cutoff(NOW, older_than=PERIOD, lost_worker_seen=lost, grace=timedelta(seconds=30)) == expected


def test_last_seen_of_lost_is_the_newest_stale_worker_row(session: Session) -> None:
    """Rows of other runs in this database are older than the far-future NOW used here, so they never win."""
    future = datetime(2099, 1, 1, tzinfo=UTC)
    for pid, role, age in ((1, "worker", 90), (2, "worker", 60), (3, "worker", 5), (4, "beat", 40)):
        seen = future - timedelta(seconds=age)
        session.add(WorkerHeartbeat(hostname="lost-test", pid=pid, role=role, started_at=seen, last_seen=seen))
    session.flush()
    assert last_seen_of_lost(session, role="worker", max_age=30, now=future) == future - timedelta(seconds=60)
    none_of_these = last_seen_of_lost(session, role="worker", max_age=100, now=future)  # all beat within 100 s
    assert none_of_these is None or none_of_these < future - timedelta(seconds=100)


def test_claim_stale_pending_skips_a_row_a_worker_holds(engine: Engine) -> None:
    """A worker deciding the request right now holds its row lock: it is not requeued under it."""
    with Session(engine) as s:
        held = _pending(s, created_at=NOW - 2 * PERIOD)
        s.commit()
    try:
        with Session(engine) as worker, Session(engine) as beat:
            worker.get(Attestation, held, with_for_update=True)
            claimed: list[uuid.UUID] = []
            thread = threading.Thread(
                target=lambda: claimed.extend(claim_stale_pending(beat, NOW, older_than=PERIOD, limit=1000))
            )
            thread.start()
            thread.join(timeout=10)
            assert not thread.is_alive()  # SKIP LOCKED: it did not wait for the worker
            assert held not in claimed
            beat.rollback()
            worker.rollback()
    finally:
        with Session(engine) as s:
            s.execute(update(Attestation).where(Attestation.id == held).values(status=AttestationStatus.REJECTED))
            s.commit()


def _use_broker(url: str) -> None:
    """Point the API process's Celery app at ``url``, dropping its pooled connections (Celery has no public call
    for this: ``close()`` also deregisters the app)."""
    from verifier.broker.app import celery_app

    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def _broker_down() -> Iterator[None]:
    """The API publishes to a port nothing listens on, as when Redis is down."""
    from verifier.broker.app import celery_app

    good = celery_app.conf.broker_url
    _use_broker("redis://127.0.0.1:1/0")
    try:
        yield
    finally:
        _use_broker(good)


def test_broker_down_at_submission_then_requeued_and_decided(database_url: str, engine: Engine, tmp_path: Path) -> None:
    from verifier.worker.base import task_transaction
    from verifier.worker.tasks import requeue

    settings = service_settings(database_url, pending_requeue_seconds=0)
    seeded = seed(engine, settings)
    client = TestClient(create_app(settings))
    headers = {"Authorization": f"Bearer {seeded.licence}"}
    body = tdx_submission(client, seeded.licence, model=seeded.model, deployment="broker-outage")
    with _broker_down():
        r = client.post("/v1/attestations", json=body, headers={**headers, "Prefer": "wait=5"})
    # Stored, not lost, and said so: pending, with the URL to ask again.
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    attestation_id = uuid.UUID(r.json()["id"])
    worker = start_logged_worker(tmp_path / "worker.log", database_url, TEST_BROKER)
    try:
        with task_transaction(settings) as session:  # beat's run: the broker is back
            requeued = requeue(session, settings)
        assert requeued >= 1  # sent once the claim committed
        deadline = time.monotonic() + 30
        status = "pending"
        while status == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
            status = client.get(f"/v1/attestations/{attestation_id}", headers=headers).json()["status"]
    finally:
        stop_worker(worker)
    assert status == "accepted"
    with Session(engine) as s:
        att = s.get(Attestation, attestation_id)
        assert att is not None
        assert att.requeued_at is not None


def test_database_down_is_a_clear_503(database_url: str) -> None:
    settings = service_settings(database_url).model_copy(update={"database_url": "postgresql+psycopg://127.0.0.1:1/x"})
    client = TestClient(create_app(settings))
    r = client.post("/v1/challenges", headers={"Authorization": "Bearer kw_0123456789abcdef_secret"})
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "service.unavailable"


@pytest.fixture(autouse=True)
def _no_leftover_pending(engine: Engine) -> Iterator[None]:
    """Committed pending rows of these tests must not be requeued by later tests' beat runs."""
    yield
    with Session(engine) as s:
        s.execute(
            update(Attestation)
            .where(Attestation.status == AttestationStatus.PENDING, Attestation.deployment_name.in_(["pending"]))
            .values(status=AttestationStatus.REJECTED)
        )
        s.commit()


def test_beat_schedule_names_registered_tasks() -> None:
    """Every periodic task beat sends exists in the worker (requeue_pending included)."""
    import verifier.worker.refresh
    import verifier.worker.tasks  # noqa: F401 - registers the tasks
    from verifier.worker.celery_app import celery_app

    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert {"keyward.requeue_pending", "keyward.purge_used_nonces"} <= scheduled
    assert scheduled <= set(celery_app.tasks)


def test_purge_nonces_task_deletes_only_unreplayable_rows(database_url: str, engine: Engine) -> None:
    from verifier.attestation.challenges import MAX_DECISION_DELAY
    from verifier.db.models import UsedNonce
    from verifier.worker.base import task_transaction
    from verifier.worker.tasks import purge_nonces

    settings = service_settings(database_url)
    now = Clock.from_settings(settings).decision_time()  # the clock the rows' expiries are written on
    gone, kept = uuid.uuid4().bytes * 2, uuid.uuid4().bytes * 2
    with Session(engine) as s, s.begin():
        s.add(UsedNonce(nonce=gone, used_at=now, expires_at=now - MAX_DECISION_DELAY - timedelta(seconds=5)))
        s.add(UsedNonce(nonce=kept, used_at=now, expires_at=now - MAX_DECISION_DELAY + timedelta(minutes=5)))
    with task_transaction(settings) as session:
        assert purge_nonces(session, settings) >= 1
    with Session(engine) as s:
        assert s.get(UsedNonce, gone) is None
        assert s.get(UsedNonce, kept) is not None


def test_purge_nonces_simulation_clock_keeps_replay_protection(database_url: str, engine: Engine) -> None:
    """Development with a simulation clock in the past (``make demo``): a nonce redeemed on that clock survives the
    hourly purge, so its replay is still refused (the purge once compared its expiry with the real time)."""
    from verifier.attestation.challenges import redeem_challenge
    from verifier.errors import Code, VerificationFailed
    from verifier.worker.base import task_transaction
    from verifier.worker.tasks import purge_nonces

    settings = service_settings(database_url)
    assert settings.simulation_time is not None
    assert settings.simulation_time < datetime.now(UTC) - timedelta(days=1)
    secret = settings.challenge_secret.get_secret_value().encode()
    now = Clock.from_settings(settings).decision_time()
    challenge = issue_challenge(secret, now)
    with Session(engine) as s, s.begin():
        redeem_challenge(s, secret, challenge.nonce, now)
    with task_transaction(settings) as session:
        purge_nonces(session, settings)
    with Session(engine) as s, s.begin(), pytest.raises(VerificationFailed) as replayed:
        redeem_challenge(s, secret, challenge.nonce, now)
    assert replayed.value.code == Code.CHALLENGE_REPLAYED
