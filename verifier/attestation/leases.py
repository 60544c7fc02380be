"""Lease housekeeping run by Celery beat: leases past ``expires_at`` become ``expired`` (freeing their seats), each
with an audit event. Takes the caller's session; never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.audit.log import AuditTag, record_event
from verifier.db.models import Lease, LeaseStatus


def expire_leases(session: Session, now: datetime, *, batch: int = 500) -> int:
    """Mark live leases whose time is up as expired; returns how many (at most ``batch`` per call)."""
    due = session.scalars(
        select(Lease)
        .where(Lease.status == LeaseStatus.LIVE, Lease.expires_at <= now)
        .order_by(Lease.expires_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for lease in due:
        lease.status, lease.ended_at = LeaseStatus.EXPIRED, now
        record_event(
            session,
            tag=AuditTag.LEASE_EXPIRED,
            actor="beat",
            subject_type="lease",
            subject_id=str(lease.id),
            at=now,
            data={"expires_at": lease.expires_at.isoformat()},
        )
    session.flush()
    return len(due)
