"""Thin tasks: ids in, a service call, in transactions the task base owns (:class:`~verifier.worker.base.KeywardTask`:
it commits, and sends follow-up tasks and notifications after the commit). Sent only after the commit that made their
input visible.

Each decision is counted in this process's metrics (platform, outcome, verification time, time since the request
was stored) and logged as one ``attestation decided`` line, which carries the API's request id
(:mod:`verifier.observability.worker` binds it from the message headers before the task runs).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from verifier.attestation.answers import answer_of, answer_row_of
from verifier.attestation.challenges import purge_used_nonces
from verifier.attestation.flows import decide_recorded, lock_attestation
from verifier.attestation.leases import expire_leases
from verifier.attestation.pending import claim_stale_pending
from verifier.attestation.retention import purge_old_evidence
from verifier.broker.app import DECIDE_TASK
from verifier.broker.notify import publish_decided
from verifier.clock import Clock
from verifier.collateral.documents import Documents
from verifier.config import Settings, current_time, get_settings
from verifier.db.models import Attestation, AttestationStatus
from verifier.observability.heartbeat import last_seen_of_lost
from verifier.observability.metrics import WORKER_METRICS
from verifier.observability.worker import connect_worker_signals
from verifier.platforms.registry import Parsed, parse_evidence
from verifier.wiring import decision_context
from verifier.worker.base import KeywardTask, after_commit
from verifier.worker.celery_app import celery_app
from verifier.worker.refresh import collateral_check, prefetch

log = logging.getLogger(__name__)
connect_worker_signals()


def decide_attestation(task: KeywardTask, attestation_id: str) -> str:
    """Task body: decide one pending attestation; returns the resulting status. Its transactions are the task base's:

    1. The decision's transaction: lock the row (read once, for the prefetch check and the decision; locked until
       the commit, so "was pending" is exact and a redelivered, already decided task is not counted), parse the
       evidence once (through the process's collateral cache), and ask the cache in one statement for the vendor
       collateral the evidence needs (:func:`collateral_check`), or in none when this process keeps those rows under
       the current collateral generation token (:mod:`verifier.worker.collateral_rows`). Nothing missing or due:
       decide in this transaction (step 3) with the documents read.
    2. Otherwise that transaction ends (it changed nothing) and :func:`prefetch` fetches the documents, with no
       transaction open, and stores them in one of its own; while a vendor is unavailable the task is retried later
       instead.
    3. Decide in a new transaction, with the row locked again. After the commit, a request waiting with
       ``Prefer: wait`` is woken and the decision is counted and logged."""
    settings = get_settings()
    started = time.perf_counter()
    key = uuid.UUID(attestation_id)
    cache = decision_context(settings).collateral_cache
    with task.transaction() as session:
        att = lock_attestation(session, key)
        evidence = parse_evidence(att.evidence, cache) if att.status == AttestationStatus.PENDING else ()
        now = current_time(settings)
        needs, documents = collateral_check(session, att, settings, now, evidence)
        if not needs:  # the documents just read are what the decision verifies with
            return _decide(session, att, evidence, settings, started, documents)
    prefetch(task, needs, now, settings, attestation_id)
    with task.transaction() as session:
        return _decide(session, lock_attestation(session, key), evidence, settings, started)


def _decide(
    session: Session,
    att: Attestation,
    evidence: Sequence[Parsed],
    settings: Settings,
    started: float,
    documents: Documents | None = None,
) -> str:
    """Step 3 of :func:`decide_attestation`, in the transaction that locked ``att`` (``documents``: the cached
    documents its evidence needs, read in that transaction; None: the decision reads them)."""
    was_pending = att.status == AttestationStatus.PENDING
    # The decision clock (the simulation clock in development) also places created_at (real time) on it.
    decided = decide_recorded(
        session,
        att,
        decision_context(settings),
        Clock.from_settings(settings),
        evidence=evidence,
        documents=documents,
    )
    att = decided.attestation
    # Wakes an API request waiting with Prefer: wait, with the answer it gives (so it need not read it back); for
    # a redelivered task, whose decision was made before, the id alone (the API reads the database).
    answer = answer_of(answer_row_of(att, decided.lease)) if was_pending else None
    after_commit(
        publish_decided, settings.broker_url, str(att.id), key_prefix=settings.broker_key_prefix, answer=answer
    )
    if was_pending:
        after_commit(_record_decision, att, started)
    return att.status.value


def _record_decision(att: Attestation, started: float) -> None:
    elapsed = time.perf_counter() - started
    platform = "+".join(att.platforms) or "none"
    # The decision's own timing as stored on the attestation (flows.py), else this task's wall time.
    decide_ms = (att.timings or {}).get("decide_ms")
    seconds = decide_ms / 1000 if isinstance(decide_ms, int | float) else elapsed
    # Real time since the API stored the request (never the simulation clock).
    latency = (datetime.now(UTC) - att.created_at).total_seconds()
    WORKER_METRICS.record_decision(
        platform=platform, outcome=att.status.value, verification_s=seconds, latency_s=latency
    )
    reasons = [r.get("code") for r in (att.verdict or {}).get("reasons", [])]
    log.info(
        "attestation decided",
        extra={
            "attestation_id": str(att.id),
            "kind": att.kind,
            "platform": platform,
            "outcome": att.status.value,
            "reasons": reasons,
            "verification_ms": round(seconds * 1000, 3),
            "simulated": att.simulated,
        },
    )


#: Failures of the database connection mid-decision (a restart, a dropped connection, a deadlock):
#: the transaction is rolled back, nothing was decided, and the task is tried again with exponential back-off
#: (the decision is idempotent). Without this Celery would acknowledge the failed task and the attestation would
#: stay pending for good.
TRANSIENT_ERRORS: Final = (OperationalError, InterfaceError)

decide_task = celery_app.task(
    base=KeywardTask,
    name=DECIDE_TASK,
    acks_late=True,
    bind=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=20,
)(decide_attestation)


def expire(task: KeywardTask) -> int:
    """Beat task body: expire due leases in one transaction."""
    settings = get_settings()
    with task.transaction() as session:
        return expire_leases(session, current_time(settings))


expire_task = celery_app.task(base=KeywardTask, bind=True, name="keyward.expire_leases")(expire)


def requeue(session: Session, settings: Settings) -> int:
    """Send the decide task again for requests pending too long, or that a worker lost since (its heartbeat stale)
    may have been holding (verifier/attestation/pending.py); returns how many. Claimed in ``session``'s task
    transaction, whose commit the sends wait for (:class:`KeywardTask`): a crash between the two only delays them a
    period."""
    now = datetime.now(UTC)  # real time, as created_at and the heartbeats
    max_age = settings.heartbeat_max_age_seconds
    lost = last_seen_of_lost(session, role="worker", max_age=max_age, now=now)
    ids = claim_stale_pending(
        session,
        now,
        older_than=timedelta(seconds=settings.pending_requeue_seconds),
        limit=settings.pending_requeue_batch,
        lost_worker_seen=lost,
        grace=timedelta(seconds=max_age),
    )
    for attestation_id in ids:
        log.warning(
            "requeueing an attestation still pending",
            extra={
                "attestation_id": str(attestation_id),
                "lost_worker_seen": lost.isoformat() if lost is not None else None,
            },
        )
        decide_task.apply_async(args=[str(attestation_id)])
    return len(ids)


def requeue_pending(task: KeywardTask) -> int:
    """Beat task body: :func:`requeue` in one transaction (settings from the environment)."""
    with task.transaction() as session:
        return requeue(session, get_settings())


requeue_task = celery_app.task(base=KeywardTask, bind=True, name="keyward.requeue_pending")(requeue_pending)


def purge_nonces(session: Session, settings: Settings) -> int:
    """Delete consumed nonces no request can still replay (``purge_used_nonces``); returns how many. On the decision
    clock, the clock the rows' expiries were written on (in development, the simulation clock: compared with the
    real time, every row of a simulation set in the past looked expired and replays went through)."""
    return purge_used_nonces(session, Clock.from_settings(settings).decision_time())


def purge_used_nonces_task(task: KeywardTask) -> int:
    """Beat task body: :func:`purge_nonces` in one transaction (settings from the environment)."""
    with task.transaction() as session:
        return purge_nonces(session, get_settings())


purge_task = celery_app.task(base=KeywardTask, bind=True, name="keyward.purge_used_nonces")(purge_used_nonces_task)


def purge_evidence(session: Session, settings: Settings) -> int:
    """Empty old requests' raw evidence by the retention policy (:mod:`verifier.attestation.retention`), on the
    decision clock; returns how many."""
    return purge_old_evidence(
        session,
        now=Clock.from_settings(settings).decision_time(),
        retention=timedelta(days=settings.evidence_retention_days),
        batch=settings.evidence_purge_batch,
    )


def purge_evidence_task_body(task: KeywardTask) -> int:
    """Beat task body: :func:`purge_evidence` in one transaction (settings from the environment)."""
    with task.transaction() as session:
        return purge_evidence(session, get_settings())


purge_evidence_task = celery_app.task(base=KeywardTask, bind=True, name="keyward.purge_evidence")(
    purge_evidence_task_body
)
