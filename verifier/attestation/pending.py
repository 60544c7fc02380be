"""Requests that are stored but were never decided: sent to a worker again, so none is lost, and promptly when the
worker holding them died.

A request is committed before its decide task is sent (verifier/api/enclave.py). Two things can leave it ``pending``
with no worker deciding it:

* **Its worker died** (killed, out of memory, its host gone) after taking the message. Tasks ack late, so the broker
  keeps the message, but Redis hands it out again only after ``broker_visibility_timeout`` (an hour: it must exceed
  the longest collateral back-off, whose retries wait in a worker as unacknowledged messages). The worker's
  heartbeat says sooner: a worker that stops beating for ``heartbeat_max_age_seconds`` without a clean stop (which
  deletes its row) is lost, and every request last sent before it could have taken one (its last beat plus that
  grace) is sent again at once.
* **Its message was lost** (the broker was down at that moment, a task gave up after its retries for a lost database
  connection): requests last sent longer than ``pending_requeue_seconds`` ago are sent again.

The beat task ``keyward.requeue_pending`` calls :func:`claim_stale_pending` every ``pending_requeue_interval_seconds``
with both cutoffs: pending requests last sent (created, or requeued) before the later of the two are sent again, a
bounded number per run, oldest first. Rows a worker holds locked right now (it is deciding them) are skipped
(``SKIP LOCKED``), and each claimed row gets ``requeued_at = now``, after the lost worker's cutoff, so a request is
sent again once per lost worker and at most once per period otherwise. The lost-worker rule over-approximates (it
cannot tell which requests the lost worker held, so it also sends again those still queued or held by a live
worker): deciding twice is harmless, because the decision is idempotent under the attestation's row lock, and a
duplicate of a request already decided only reads its row. A request that waited too long is then rejected
``attestation.request_stale`` rather than decided (:mod:`verifier.attestation.flows`). Times are real time, as
``created_at`` and the heartbeats. Takes the caller's session; never commits (the SQL is in
:mod:`verifier.attestation.repository`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from verifier.attestation import repository


def requeue_cutoff(
    now: datetime, *, older_than: timedelta, lost_worker_seen: datetime | None, grace: timedelta
) -> datetime:
    """Send again what was last sent before this: ``now - older_than``, or, when a worker was lost (it last beat at
    ``lost_worker_seen``), everything it could have taken before it died (``lost_worker_seen + grace``; never after
    ``now``), whichever is later."""
    cutoff = now - older_than
    if lost_worker_seen is not None:
        cutoff = max(cutoff, min(lost_worker_seen + grace, now))
    return cutoff


def claim_stale_pending(
    session: Session,
    now: datetime,
    *,
    older_than: timedelta,
    limit: int,
    lost_worker_seen: datetime | None = None,
    grace: timedelta = timedelta(0),
) -> list[uuid.UUID]:
    """The ids of pending attestations last sent before :func:`requeue_cutoff` (at most ``limit``, oldest first),
    marked ``requeued_at = now``; the caller commits, then sends their decide tasks."""
    cutoff = requeue_cutoff(now, older_than=older_than, lost_worker_seen=lost_worker_seen, grace=grace)
    return repository.claim_stale_pending(session, sent_before=cutoff, limit=limit, now=now)
