"""Lease expiry (the Celery beat job) and bulk revocation (admin status changes) on real PostgreSQL: seats come
back, every expiry and revocation is audited."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.factories import T0, make_entitlement, make_lease, make_model_version
from verifier.attestation.leases import expire_leases, revoke_live_leases
from verifier.audit.log import AuditTag
from verifier.db.models import AuditEvent, Deployment, Lease, LeaseStatus, Model


def test_expire_leases_marks_due_leases_and_audits(session: Session) -> None:
    ent = make_entitlement(session, seats=2)
    model = session.get(Model, ent.model_id)
    assert model is not None
    version = make_model_version(session, model)
    leases = []
    for name, ttl in (("due", timedelta(seconds=-1)), ("live", timedelta(minutes=5))):
        dep = Deployment(entitlement_id=ent.id, name=name, first_attested_at=T0, last_attested_at=T0)
        session.add(dep)
        session.flush()
        leases.append(make_lease(session, dep, version, now=T0, ttl=ttl))
    assert expire_leases(session, T0) == 1
    assert [lease.status for lease in leases] == [LeaseStatus.EXPIRED, LeaseStatus.LIVE]
    assert leases[0].ended_at == T0
    tags = session.scalars(select(AuditEvent.tag).where(AuditEvent.subject_id == str(leases[0].id))).all()
    assert tags == ["beat:lease:expired"]
    assert expire_leases(session, T0) == 0  # idempotent


def test_revoke_live_leases_revokes_only_live_leases_in_scope(session: Session) -> None:
    ent = make_entitlement(session, seats=4)
    other = make_entitlement(session)
    model = session.get_one(Model, ent.model_id)
    version = make_model_version(session, model)
    leases = {}
    for owner, name, ttl, status in (
        (ent, "live", timedelta(minutes=5), LeaseStatus.LIVE),
        (ent, "overdue", timedelta(seconds=-1), LeaseStatus.LIVE),
        (ent, "released", timedelta(minutes=5), LeaseStatus.RELEASED),
        (other, "elsewhere", timedelta(minutes=5), LeaseStatus.LIVE),
    ):
        dep = Deployment(entitlement_id=owner.id, name=name, first_attested_at=T0, last_attested_at=T0)
        session.add(dep)
        session.flush()
        leases[name] = make_lease(session, dep, version, now=T0, ttl=ttl, status=status)

    entries = revoke_live_leases(session, Lease.entitlement_id == ent.id, now=T0, actor="admin:x", reason="why")
    assert sorted(e.subject_id for e in entries) == sorted(str(leases[n].id) for n in ("live", "overdue"))
    [entry] = [e for e in entries if e.subject_id == str(leases["live"].id)]
    assert (entry.tag, entry.actor, entry.subject_type) == (AuditTag.LEASE_REVOKED, "admin:x", "lease")
    assert entry.data == {"entitlement_id": ent.id, "deployment_id": leases["live"].deployment_id, "reason": "why"}
    for lease in leases.values():
        session.refresh(lease)
    assert (leases["live"].status, leases["live"].ended_at) == (LeaseStatus.REVOKED, T0)
    assert (leases["overdue"].status, leases["overdue"].ended_at) == (LeaseStatus.REVOKED, T0)  # live, if overdue
    assert (leases["released"].status, leases["elsewhere"].status) == (LeaseStatus.RELEASED, LeaseStatus.LIVE)
    assert revoke_live_leases(session, Lease.entitlement_id == ent.id, now=T0, actor="admin:x", reason="why") == []
