"""Suspending and reinstating one deployment on PostgreSQL (:func:`verifier.entitlement.licensing.
set_deployment_suspended`): its live lease is revoked and audited, its seat step refuses it while suspended
(``entitlement.deployment_suspended``) and takes it again once reinstated; the entitlement's other deployments are
untouched; a repeated suspension changes and records nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.factories import T0, make_entitlement, make_lease, make_model, make_model_version
from verifier.db.models import AuditEvent, Deployment, Entitlement, Lease, LeaseStatus, ModelVersion
from verifier.entitlement.licensing import set_deployment_suspended
from verifier.entitlement.service import lock_entitlement, reserve_seat, take_seat
from verifier.errors import Code, NotEntitled, NotFound

LATER = T0 + timedelta(minutes=5)


def _seat(session: Session, entitlement: Entitlement, name: str) -> Deployment:
    """What a decision does for a new lease's seat: lock, reserve, take."""
    locked = lock_entitlement(session, entitlement.id)
    seat = reserve_seat(session, locked, name, now=T0)
    take_seat(session, locked.id, name, seat, now=T0)
    return session.get_one(Deployment, seat.deployment_id, populate_existing=True)


def _events(session: Session, subject_type: str, subject_id: object) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == str(subject_id))
            .order_by(AuditEvent.id)
        )
    )


@pytest.fixture
def held(session: Session) -> tuple[Entitlement, ModelVersion, Deployment, Lease]:
    """A 2-seat entitlement whose deployment "edge-1" holds a live lease."""
    model = make_model(session)
    version = make_model_version(session, model)
    entitlement = make_entitlement(session, model=model, seats=2)
    deployment = _seat(session, entitlement, "edge-1")
    return entitlement, version, deployment, make_lease(session, deployment, version)


def test_set_deployment_suspended_revokes_its_live_lease_and_audits(
    session: Session, held: tuple[Entitlement, ModelVersion, Deployment, Lease]
) -> None:
    entitlement, _, deployment, lease = held

    set_deployment_suspended(session, deployment.id, True, actor="staff:olga", now=LATER)

    session.refresh(lease)
    session.refresh(deployment)
    assert (lease.status, lease.ended_at, deployment.suspended_at) == (LeaseStatus.REVOKED, LATER, LATER)
    [change] = _events(session, "deployment", deployment.id)
    assert (change.tag, change.actor) == ("admin:deployment:status_changed", "staff:olga")
    assert change.data == {
        "from": "active",
        "to": "suspended",
        "entitlement_id": str(entitlement.id),
        "revoked_leases": [str(lease.id)],
    }
    [revoked] = _events(session, "lease", lease.id)
    assert (revoked.tag, revoked.actor, revoked.data["reason"]) == (
        "admin:lease:revoked",
        "staff:olga",
        "deployment suspended",
    )


def test_reserve_seat_suspended_deployment_refused(
    session: Session, held: tuple[Entitlement, ModelVersion, Deployment, Lease]
) -> None:
    entitlement, _, deployment, _ = held
    set_deployment_suspended(session, deployment.id, True, actor="staff:olga", now=LATER)

    with pytest.raises(NotEntitled) as exc:
        _seat(session, entitlement, "edge-1")

    assert exc.value.code is Code.ENTITLEMENT_DEPLOYMENT_SUSPENDED


def test_set_deployment_suspended_leaves_other_deployments_alone(
    session: Session, held: tuple[Entitlement, ModelVersion, Deployment, Lease]
) -> None:
    entitlement, version, deployment, _ = held
    other_lease = make_lease(session, _seat(session, entitlement, "edge-2"), version)

    set_deployment_suspended(session, deployment.id, True, actor="staff:olga", now=LATER)

    session.refresh(other_lease)
    assert other_lease.status == LeaseStatus.LIVE
    assert _seat(session, entitlement, "edge-2").suspended_at is None


def test_set_deployment_suspended_reinstated_takes_a_seat_again(
    session: Session, held: tuple[Entitlement, ModelVersion, Deployment, Lease]
) -> None:
    entitlement, _, deployment, _ = held
    set_deployment_suspended(session, deployment.id, True, actor="staff:olga", now=LATER)

    set_deployment_suspended(session, deployment.id, False, actor="staff:olga", now=LATER + timedelta(minutes=1))

    assert _seat(session, entitlement, "edge-1").suspended_at is None
    tags = [(e.data["from"], e.data["to"]) for e in _events(session, "deployment", deployment.id)]
    assert tags == [("active", "suspended"), ("suspended", "active")]


def test_set_deployment_suspended_repeated_changes_nothing(
    session: Session, held: tuple[Entitlement, ModelVersion, Deployment, Lease]
) -> None:
    _, _, deployment, _ = held
    set_deployment_suspended(session, deployment.id, True, actor="staff:olga", now=LATER)

    set_deployment_suspended(session, deployment.id, True, actor="staff:olga", now=LATER + timedelta(hours=1))

    session.refresh(deployment)
    assert deployment.suspended_at == LATER
    assert len(_events(session, "deployment", deployment.id)) == 1


def test_set_deployment_suspended_unknown_deployment_not_found(session: Session) -> None:
    with pytest.raises(NotFound) as exc:
        set_deployment_suspended(session, uuid.uuid4(), True, actor="staff:olga", now=LATER)
    assert exc.value.code is Code.RESOURCE_NOT_FOUND
