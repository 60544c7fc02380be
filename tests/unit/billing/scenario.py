"""A usage scenario with figures worked out by hand, shared by the service and HTTP tests of billing.

Entitlement ``main`` (deployments d1, d2, d3) and entitlement ``other`` (another customer), March 2026, UTC,
seen at ``NOW`` = 2026-03-03T12:00Z:

* L1 d1, 03-01 22:00 -> expires 03-02 02:00; beat marked it expired at 02:00:30 (that lag is not attested):
  7200 s on 03-01 and 7200 s on 03-02, crossing midnight.
* L2 d2, 03-02 10:00, released at 10:30:00.5: 1800.5 s.
* L3 d3, 03-02 12:00, 4 GPUs, revoked at 12:15: 900 s, 3600 GPU-seconds (1 GPU-hour).
* L4 d1, 03-03 09:00, 2 GPUs, live (renewed at 11:00 to expire at 15:00): 10800 s and 21600 GPU-seconds up to NOW.
* L5 (``other``), 03-01 05:00 -> expires 06:00, still ``live`` (beat has not run): 3600 s.
* Decisions of ``main``: attests accepted at 03-01 22:00, 03-02 10:00, 12:00, 03-03 09:00; attests rejected at
  03-01 23:59:59.999999 and 03-02 00:00; renewal rejected 03-02 01:00, accepted 03-03 11:00; one pending (never
  counted). ``other``: one attest accepted at 03-01 05:00.

Daily rows of ``main``: 03-01 (7200 s, 1 deployment, 1 accepted, 1 rejected); 03-02 (9900.5 s, 3600 GPU-s, 3
deployments, 2 accepted, 1 rejected, 1 renewal rejected); 03-03 open (10800 s, 21600 GPU-s, 1 deployment, 1
accepted, 1 renewal accepted).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tests.support.factories import delete_entitlement_tree, make_entitlement, make_lease, make_model_version
from verifier.db.models import (
    Attestation,
    AttestationStatus,
    Deployment,
    Entitlement,
    Lease,
    LeaseStatus,
    Model,
    ModelVersion,
)


def at(day: int, hour: int, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, microsecond, tzinfo=UTC)


NOW = at(3, 12)


@dataclass(frozen=True)
class Scenario:
    main: Entitlement
    other: Entitlement
    versions: tuple[ModelVersion, ModelVersion]
    deployments: tuple[Deployment, Deployment, Deployment]
    live_lease: Lease


def seed(session: Session) -> Scenario:
    """Add the scenario (flushed, not committed)."""
    main = make_entitlement(session, seats=3, max_gpus=4, valid_from=at(1, 0) - timedelta(days=30))
    other = make_entitlement(session, valid_from=at(1, 0) - timedelta(days=30))
    versions = (_version(session, main), _version(session, other))
    d1, d2, d3 = (_deployment(session, main, name) for name in ("d1", "d2", "d3"))
    _lease(session, d1, versions[0], at(1, 22), at(2, 2), ended=(LeaseStatus.EXPIRED, at(2, 2, 0, 30)))
    _lease(session, d2, versions[0], at(2, 10), at(2, 11), ended=(LeaseStatus.RELEASED, at(2, 10, 30, 0, 500_000)))
    _lease(session, d3, versions[0], at(2, 12), at(2, 13), gpus=4, ended=(LeaseStatus.REVOKED, at(2, 12, 15)))
    live = _lease(session, d1, versions[0], at(3, 9), at(3, 15), gpus=2)
    _lease(session, _deployment(session, other, "o1"), versions[1], at(1, 5), at(1, 6))
    accepted, rejected, pending = AttestationStatus.ACCEPTED, AttestationStatus.REJECTED, AttestationStatus.PENDING
    for when in (at(1, 22), at(2, 10), at(2, 12), at(3, 9)):
        decision(session, main, versions[0], "attest", accepted, when)
    decision(session, main, versions[0], "attest", rejected, at(1, 23, 59, 59, 999_999))
    decision(session, main, versions[0], "attest", rejected, at(2, 0))
    decision(session, main, versions[0], "renew", rejected, at(2, 1))
    decision(session, main, versions[0], "renew", accepted, at(3, 11))
    decision(session, main, versions[0], "attest", pending, at(3, 11, 30))
    decision(session, other, versions[1], "attest", accepted, at(1, 5))
    return Scenario(main, other, versions, (d1, d2, d3), live)


def decision(
    session: Session,
    entitlement: Entitlement,
    version: ModelVersion,
    kind: str,
    status: AttestationStatus,
    when: datetime,
) -> Attestation:
    """A decided (or, when pending, undecided) attestation row; only the fields billing reads matter."""
    att = Attestation(
        entitlement_id=entitlement.id,
        model_version_id=version.id,
        deployment_name="d",
        kind=kind,
        platforms=["intel-tdx"],
        status=status,
        nonce=os.urandom(32),
        enclave_jwk={},
        evidence=[],
        created_at=when,
        decided_at=None if status == AttestationStatus.PENDING else when,
    )
    session.add(att)
    session.flush()
    return att


def remove(session: Session, scenario: Scenario) -> None:
    """Delete everything :func:`seed` added (for tests that commit); the caller commits."""
    for entitlement, version in zip((scenario.main, scenario.other), scenario.versions, strict=True):
        session.execute(delete(Attestation).where(Attestation.entitlement_id == entitlement.id))
        delete_entitlement_tree(session, entitlement, version)


def _version(session: Session, entitlement: Entitlement) -> ModelVersion:
    model = session.get(Model, entitlement.model_id)
    assert model is not None
    return make_model_version(session, model)


def _deployment(session: Session, entitlement: Entitlement, name: str) -> Deployment:
    deployment = Deployment(entitlement_id=entitlement.id, name=name, first_attested_at=None, last_attested_at=None)
    session.add(deployment)
    session.flush()
    return deployment


def _lease(
    session: Session,
    deployment: Deployment,
    version: ModelVersion,
    issued: datetime,
    expires: datetime,
    *,
    gpus: int = 0,
    ended: tuple[LeaseStatus, datetime] | None = None,
) -> Lease:
    lease = make_lease(session, deployment, version, now=issued, ttl=expires - issued, gpus=gpus)
    if ended is not None:
        lease.status, lease.ended_at = ended
        session.flush()
    return lease
