"""Requests that are stored but were never decided: sent to a worker again, so none is lost.

A request is committed before its decide task is sent (verifier/api/enclave.py). If the broker is down at that
moment, a message is lost, or a task gives up (its retries for a lost database connection exhausted), the request
would stay ``pending`` for good. The beat task ``keyward.requeue_pending`` calls :func:`claim_stale_pending` every
minute: pending requests last sent (created, or requeued) longer than ``pending_requeue_seconds`` ago are sent
again, a bounded number per run, oldest first. Rows a worker holds locked right now (it is deciding them) are
skipped (``SKIP LOCKED``), and each claimed row gets ``requeued_at = now``, so a request is sent again at most
once per period. Deciding twice is harmless: the decision is idempotent. Times are real time, as ``created_at``.
Takes the caller's session; never commits (the SQL is in :mod:`verifier.attestation.repository`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from verifier.attestation import repository


def claim_stale_pending(session: Session, now: datetime, *, older_than: timedelta, limit: int) -> list[uuid.UUID]:
    """The ids of pending attestations last sent before ``now - older_than`` (at most ``limit``, oldest first),
    marked ``requeued_at = now``; the caller commits, then sends their decide tasks."""
    stale = repository.lock_stale_pending(session, sent_before=now - older_than, limit=limit)
    for att in stale:
        att.requeued_at = now
    session.flush()
    return [att.id for att in stale]
