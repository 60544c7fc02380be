"""Thin tasks: ids in, a service call, one commit. Sent only after the commit that made their input visible.

Each decision is counted in this process's metrics (platform, outcome, verification time, time since the request
was stored) and logged as one ``attestation decided`` line, which carries the API's request id
(:mod:`verifier.observability.worker` binds it from the message headers before the task runs).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.exc import InterfaceError, OperationalError

from verifier.attestation.challenges import purge_used_nonces
from verifier.attestation.flows import decide_locked, lock_attestation
from verifier.attestation.leases import expire_leases
from verifier.attestation.pending import claim_stale_pending
from verifier.broker.app import DECIDE_TASK
from verifier.broker.notify import publish_decided
from verifier.clock import Clock
from verifier.config import Settings, current_time, get_settings
from verifier.db.models import Attestation, AttestationStatus
from verifier.db.session import session_factory
from verifier.observability.metrics import WORKER_METRICS
from verifier.observability.worker import connect_worker_signals
from verifier.platforms.registry import parse_evidence
from verifier.wiring import decision_context
from verifier.worker.celery_app import celery_app
from verifier.worker.refresh import prefetch_locked_or_retry

log = logging.getLogger(__name__)
connect_worker_signals()


def decide(attestation_id: str, task: Any = None) -> str:
    """Decide one pending attestation in its own transaction; returns the resulting status. With the bound Celery
    ``task``, missing vendor collateral is fetched first (:func:`prefetch_locked_or_retry`)."""
    settings = get_settings()
    factory = session_factory(settings)
    started = time.perf_counter()
    key = uuid.UUID(attestation_id)
    with factory() as session:
        # Locked until the commit, so "was pending" is exact: a redelivered, already decided task is not counted.
        # The row is read once: the prefetch check and the decision both use it.
        att = lock_attestation(session, key)
        # Parsed once: the prefetch and the decision read the same parsed items (nothing to parse once decided).
        evidence = parse_evidence(att.evidence) if att.status == AttestationStatus.PENDING else ()
        if task is not None and prefetch_locked_or_retry(task, session, att, settings, evidence):
            att = lock_attestation(session, key)  # the prefetch ended the transaction: lock and read the row again
        was_pending = att.status == AttestationStatus.PENDING
        # The decision clock (the simulation clock in development) also places created_at (real time) on it.
        att = decide_locked(session, att, decision_context(settings), Clock.from_settings(settings), evidence=evidence)
        session.commit()
    # Wakes an API request waiting with Prefer: wait.
    publish_decided(settings.broker_url, attestation_id, key_prefix=settings.broker_key_prefix)
    if was_pending:
        _record_decision(att, time.perf_counter() - started)
    return att.status.value


def _record_decision(att: Attestation, elapsed: float) -> None:
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


def decide_after_prefetch(task: Any, attestation_id: str) -> str:
    """Task body: fetch missing vendor collateral first (the task is retried later while a vendor is unavailable),
    then decide."""
    return decide(attestation_id, task)


#: Failures of the database connection mid-decision (a restart, a dropped connection, a deadlock):
#: the transaction is rolled back, nothing was decided, and the task is tried again with exponential back-off
#: (the decision is idempotent). Without this Celery would acknowledge the failed task and the attestation would
#: stay pending for good.
TRANSIENT_ERRORS: Final = (OperationalError, InterfaceError)

decide_task = celery_app.task(
    name=DECIDE_TASK,
    acks_late=True,
    bind=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=20,
)(decide_after_prefetch)


def expire() -> int:
    """Beat task body: expire due leases in one transaction."""
    settings = get_settings()
    factory = session_factory(settings)
    with factory() as session:
        count = expire_leases(session, current_time(settings))
        session.commit()
        return count


expire_task = celery_app.task(name="keyward.expire_leases")(expire)


def requeue(settings: Settings | None = None) -> int:
    """Beat task body: send the decide task again for requests pending too long (verifier/attestation/pending.py);
    returns how many. Claimed and committed first, then sent: a crash between the two only delays them a period."""
    settings = settings or get_settings()
    factory = session_factory(settings)
    with factory() as session:
        ids = claim_stale_pending(
            session,
            datetime.now(UTC),  # real time, as created_at
            older_than=timedelta(seconds=settings.pending_requeue_seconds),
            limit=settings.pending_requeue_batch,
        )
        session.commit()
    for attestation_id in ids:
        log.warning("requeueing an attestation still pending", extra={"attestation_id": str(attestation_id)})
        decide_task.apply_async(args=[str(attestation_id)])
    return len(ids)


def requeue_pending() -> int:
    """Beat task body (settings from the environment)."""
    return requeue()


requeue_task = celery_app.task(name="keyward.requeue_pending")(requeue_pending)


def purge_nonces(settings: Settings | None = None) -> int:
    """Beat task body: delete consumed nonces no request can still replay (``purge_used_nonces``); returns how many."""
    settings = settings or get_settings()
    factory = session_factory(settings)
    with factory() as session:
        count = purge_used_nonces(session, datetime.now(UTC))  # real time, as the created_at it is measured from
        session.commit()
        return count


def purge_used_nonces_task() -> int:
    """Beat task body (settings from the environment)."""
    return purge_nonces()


purge_task = celery_app.task(name="keyward.purge_used_nonces")(purge_used_nonces_task)
