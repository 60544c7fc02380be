"""Evidence retention on PostgreSQL, in a database of its own (a purge reads every attestation): old decided
requests lose their raw evidence unless their lease is still live; the decision and its reasons stay; each purge
that empties anything is audited; a pending request and a recent one are never touched."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from tests.support.databases import migrated_database
from tests.support.factories import make_entitlement, make_lease, make_model, make_model_version
from verifier.attestation.retention import purge_old_evidence
from verifier.audit.log import verify_chain
from verifier.db.models import Attestation, AttestationStatus, AuditEvent, Deployment, LeaseStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)
EVIDENCE = [{"type": "intel-tdx", "evidence": "AAAA"}]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with migrated_database("keyward_retention") as url:
        engine = create_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s
        s.rollback()


def _attestation(
    session: Session, *, age: timedelta | None, status: AttestationStatus, lease_id: uuid.UUID | None = None
) -> Attestation:
    entitlement = make_entitlement(session, now=NOW - timedelta(days=90))
    version = make_model_version(session, make_model(session))
    decided = None if age is None else NOW - age
    att = Attestation(
        entitlement_id=entitlement.id,
        model_version_id=version.id,
        lease_id=lease_id,
        deployment_name="d",
        kind="attest",
        platforms=["intel-tdx"],
        status=status,
        nonce=os.urandom(32),
        enclave_jwk={},
        evidence=list(EVIDENCE),
        claims={"intel-tdx": {"mrtd": "ab"}},
        verdict={"accepted": status == AttestationStatus.ACCEPTED, "reasons": [{"code": "x.y"}], "evaluations": []},
        reason_codes="x.y" if status == AttestationStatus.REJECTED else None,
        created_at=(decided or NOW) - timedelta(seconds=1),
        decided_at=decided,
    )
    session.add(att)
    session.flush()
    return att


def _leased(session: Session, *, age: timedelta, lease_status: LeaseStatus, ttl: timedelta) -> Attestation:
    entitlement = make_entitlement(session, now=NOW - timedelta(days=90))
    version = make_model_version(session, make_model(session))
    deployment = Deployment(entitlement_id=entitlement.id, name=f"d-{uuid.uuid4().hex[:6]}")
    session.add(deployment)
    session.flush()
    lease = make_lease(session, deployment, version, now=NOW - age, ttl=ttl, status=lease_status)
    return _attestation(session, age=age, status=AttestationStatus.ACCEPTED, lease_id=lease.id)


def test_purge_old_evidence_empties_only_what_the_policy_says(session: Session) -> None:
    old_rejected = _attestation(session, age=timedelta(days=40), status=AttestationStatus.REJECTED)
    recent_rejected = _attestation(session, age=timedelta(days=10), status=AttestationStatus.REJECTED)
    pending = _attestation(session, age=None, status=AttestationStatus.PENDING)
    old_live = _leased(session, age=timedelta(days=40), lease_status=LeaseStatus.LIVE, ttl=timedelta(days=60))
    old_ended = _leased(session, age=timedelta(days=40), lease_status=LeaseStatus.REVOKED, ttl=timedelta(days=60))
    old_expired = _leased(session, age=timedelta(days=40), lease_status=LeaseStatus.LIVE, ttl=timedelta(hours=1))

    assert purge_old_evidence(session, now=NOW, retention=RETENTION, batch=100) == 3

    def evidence(att: Attestation) -> list[object]:
        session.refresh(att)
        return list(att.evidence)

    assert [evidence(a) for a in (old_rejected, old_ended, old_expired)] == [[], [], []]
    assert [evidence(a) for a in (recent_rejected, pending, old_live)] == [EVIDENCE] * 3
    session.refresh(old_rejected)
    assert (old_rejected.status, old_rejected.reason_codes, old_rejected.claims) == (
        AttestationStatus.REJECTED, "x.y", {"intel-tdx": {"mrtd": "ab"}}
    )  # fmt: skip
    [event] = session.scalars(select(AuditEvent).where(AuditEvent.tag == "beat:evidence:purged"))
    assert event.data["count"] == 3
    assert verify_chain(session).intact
    assert purge_old_evidence(session, now=NOW, retention=RETENTION, batch=100) == 0  # nothing left: no event
    assert len(list(session.scalars(select(AuditEvent).where(AuditEvent.tag == "beat:evidence:purged")))) == 1


def test_purge_old_evidence_batch_bounds_one_run(session: Session) -> None:
    for _ in range(3):
        _attestation(session, age=timedelta(days=40), status=AttestationStatus.REJECTED)
    assert purge_old_evidence(session, now=NOW, retention=RETENTION, batch=2) == 2
    assert purge_old_evidence(session, now=NOW, retention=RETENTION, batch=2) == 1
