"""How long a request's evidence is kept: the raw evidence (quotes, reports, certificates, collateral as received,
up to 1 MiB a request) of a decided attestation is emptied once it is older than the retention period
(``KEYWARD_EVIDENCE_RETENTION_DAYS``), unless its lease is still live, so stored bytes stay bounded whatever a
licence sends. What stays for good: the decision itself (status, claims, verdict and every reason, collateral
versions, the result token) and the audit chain, which records each purge. A purged attestation's evidence reads
``[]``; the dashboard's download says it was purged.

Takes the caller's session; never commits (the beat task's transaction does). The SQL is in
:mod:`verifier.attestation.repository`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from verifier.attestation import repository
from verifier.audit.log import AuditTag, record_event


def purge_old_evidence(session: Session, *, now: datetime, retention: timedelta, batch: int) -> int:
    """Empty the evidence of up to ``batch`` attestations decided more than ``retention`` before ``now`` (on the
    decision clock, the clock ``decided_at`` is written on) whose lease is not live; audited ``beat:evidence:purged``
    with how many and the cut-off when any were. Returns how many."""
    cutoff = now - retention
    count = repository.purge_evidence(session, decided_before=cutoff, now=now, limit=batch)
    if count:
        record_event(
            session,
            tag=AuditTag.EVIDENCE_PURGED,
            actor="beat",
            subject_type="attestations",
            subject_id=f"decided-before:{cutoff.isoformat()}",
            data={"count": count, "decided_before": cutoff.isoformat(), "retention_days": retention.days},
            at=now,
        )
    return count
