"""Lease housekeeping: leases past ``expires_at`` become ``expired`` (the Celery beat job, freeing their seats), and
the live leases of a suspended or revoked licence are revoked (admin status changes), each with an audit event.
Takes the caller's session; never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from verifier.audit.log import AuditTag, Entry, record_event
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


def revoke_live_leases(
    session: Session, scope: ColumnElement[bool], *, now: datetime, actor: str, reason: str
) -> list[Entry]:
    """Revoke every ``live`` lease matching ``scope`` (``status = revoked``, ``ended_at = now``) in one UPDATE, as
    the admin's single-lease revocation does; their renewals then fail ``lease.not_renewable``. A live lease already
    past ``expires_at`` (not yet marked by :func:`expire_leases`) is revoked too: billing caps its time at
    ``expires_at`` either way, and the admin's clock need not be the worker's. Returns one ``admin:lease:revoked``
    audit entry per lease (data: entitlement, deployment, ``reason``) for the caller to record with its own event.

    Call it after locking what the leases hang off (the entitlement or customer row whose status just changed):
    a decision in flight holds that lock until it commits, so its new lease is already visible here, and a later
    decision sees the new status."""
    revoked = session.execute(
        update(Lease)
        .where(scope, Lease.status == LeaseStatus.LIVE)
        .values(status=LeaseStatus.REVOKED, ended_at=now)
        .returning(Lease.id, Lease.entitlement_id, Lease.deployment_id)
        .execution_options(synchronize_session="fetch")
    ).all()
    return [
        Entry(
            AuditTag.LEASE_REVOKED,
            actor,
            "lease",
            str(lease_id),
            {"entitlement_id": entitlement_id, "deployment_id": deployment_id, "reason": reason},
        )
        for lease_id, entitlement_id, deployment_id in sorted(revoked, key=lambda r: str(r[0]))
    ]
