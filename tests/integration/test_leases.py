"""Lease expiry (the Celery beat job) on real PostgreSQL: seats come back, every expiry is audited."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.factories import T0, make_entitlement, make_lease, make_model_version
from verifier.attestation.leases import expire_leases
from verifier.db.models import AuditEvent, Deployment, LeaseStatus, Model


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
