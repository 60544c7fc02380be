"""The lease service on real PostgreSQL: expiry (the Celery beat job), bulk revocation by entitlement or customer
(admin status changes), single revocation, release, issue and renewal. Seats come back, every state change by
staff, beat or the enclave is audited."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.factories import T0, make_customer, make_entitlement, make_lease, make_model_version
from verifier.attestation.leases import (
    NewLease,
    expire_leases,
    issue_lease,
    lease_times,
    release_lease,
    renew_lease,
    renewable_lease,
    revoke_lease,
    revoke_live_leases,
)
from verifier.audit.log import AuditTag
from verifier.db.models import AuditEvent, Deployment, Entitlement, Lease, LeaseStatus, Model
from verifier.entitlement.service import lock_entitlement, reserve_seat
from verifier.errors import Code, Conflict, NotFound


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

    entries = revoke_live_leases(session, entitlement_id=ent.id, now=T0, actor="admin:x", reason="why")
    assert sorted(e.subject_id for e in entries) == sorted(str(leases[n].id) for n in ("live", "overdue"))
    [entry] = [e for e in entries if e.subject_id == str(leases["live"].id)]
    assert (entry.tag, entry.actor, entry.subject_type) == (AuditTag.LEASE_REVOKED, "admin:x", "lease")
    assert entry.data == {"entitlement_id": ent.id, "deployment_id": leases["live"].deployment_id, "reason": "why"}
    for lease in leases.values():
        session.refresh(lease)
    assert (leases["live"].status, leases["live"].ended_at) == (LeaseStatus.REVOKED, T0)
    assert (leases["overdue"].status, leases["overdue"].ended_at) == (LeaseStatus.REVOKED, T0)  # live, if overdue
    assert (leases["released"].status, leases["elsewhere"].status) == (LeaseStatus.RELEASED, LeaseStatus.LIVE)
    assert revoke_live_leases(session, entitlement_id=ent.id, now=T0, actor="admin:x", reason="why") == []


def _tags(session: Session, lease: Lease) -> list[str]:
    return list(session.scalars(select(AuditEvent.tag).where(AuditEvent.subject_id == str(lease.id))))


def _leased(session: Session, ent: Entitlement, name: str, **kwargs: object) -> Lease:
    model = session.get_one(Model, ent.model_id)
    version = make_model_version(session, model)
    dep = Deployment(entitlement_id=ent.id, name=name, first_attested_at=T0, last_attested_at=T0)
    session.add(dep)
    session.flush()
    return make_lease(session, dep, version, now=T0, **kwargs)  # type: ignore[arg-type]


def test_revoke_live_leases_by_customer_reaches_every_entitlement_of_it(session: Session) -> None:
    customer = make_customer(session)
    mine = [make_entitlement(session, customer=customer) for _ in range(2)]
    other = make_entitlement(session)
    leases = [_leased(session, ent, f"d{i}") for i, ent in enumerate([*mine, other])]

    entries = revoke_live_leases(session, customer_id=customer.id, now=T0, actor="admin:x", reason="suspended")
    assert [e.subject_id for e in entries] == sorted(str(lease.id) for lease in leases[:2])
    for lease in leases:
        session.refresh(lease)
    assert [lease.status for lease in leases] == [LeaseStatus.REVOKED, LeaseStatus.REVOKED, LeaseStatus.LIVE]


@pytest.mark.parametrize(
    "scope",
    [
        {},
        {"entitlement_id": uuid.uuid4(), "customer_id": uuid.uuid4()},
        {"deployment_id": uuid.uuid4(), "entitlement_id": uuid.uuid4()},
    ],
    ids=["no-scope", "two-scopes", "deployment-and-entitlement"],
)
def test_revoke_live_leases_needs_exactly_one_scope(session: Session, scope: dict[str, uuid.UUID]) -> None:
    with pytest.raises(ValueError, match="one entitlement or of one customer"):
        revoke_live_leases(session, now=T0, actor="admin:x", reason="why", **scope)


def test_revoke_lease_ends_a_live_lease_once_and_audits(session: Session) -> None:
    lease = _leased(session, make_entitlement(session), "one")
    assert revoke_lease(session, lease.id, actor="admin:x", now=T0).status is LeaseStatus.REVOKED
    assert (lease.ended_at, _tags(session, lease)) == (T0, ["admin:lease:revoked"])
    with pytest.raises(Conflict) as exc:
        revoke_lease(session, lease.id, actor="admin:x", now=T0)
    assert (exc.value.code, exc.value.actual) == (Code.RESOURCE_CONFLICT, "revoked")
    with pytest.raises(NotFound) as missing:
        revoke_lease(session, uuid.uuid4(), actor="admin:x", now=T0)
    assert missing.value.code is Code.RESOURCE_NOT_FOUND


def test_release_lease_is_idempotent_and_only_for_its_licence(session: Session) -> None:
    ent = make_entitlement(session)
    lease = _leased(session, ent, "one")
    with pytest.raises(NotFound) as exc:
        release_lease(session, lease.id, entitlement_id=uuid.uuid4(), actor="credential:k", now=T0)
    assert exc.value.code is Code.LEASE_NOT_FOUND
    release_lease(session, lease.id, entitlement_id=ent.id, actor="credential:k", now=T0)
    release_lease(session, lease.id, entitlement_id=ent.id, actor="credential:k", now=T0 + timedelta(minutes=1))
    assert (lease.status, lease.ended_at) == (LeaseStatus.RELEASED, T0)
    assert _tags(session, lease) == ["enclave:lease:released"]


def test_issue_lease_takes_the_seat_and_supersedes_the_deployments_lease(session: Session) -> None:
    ent = make_entitlement(session, seats=1)
    version = make_model_version(session, session.get_one(Model, ent.model_id))

    def issue(at: datetime) -> tuple[Lease, list[uuid.UUID]]:
        locked = lock_entitlement(session, ent.id)
        seat = reserve_seat(session, locked, "edge", now=at)
        expires_at, renew_after = lease_times(at, locked.lease_ttl_seconds)
        issued = issue_lease(
            session,
            NewLease(
                lease_id=uuid.uuid4(),
                entitlement_id=ent.id,
                deployment_name="edge",
                seat=seat,
                model_version_id=version.id,
                thumbprint="thumb",
                now=at,
                expires_at=expires_at,
                renew_after=renew_after,
            ),
        )
        return issued.lease, issued.superseded

    first, none = issue(T0)
    second, superseded = issue(T0 + timedelta(minutes=1))
    assert (none, superseded) == ([], [first.id])
    first = session.get_one(Lease, first.id)  # issued by a Core statement: not the session's
    assert (first.status, second.status, second.deployment_id) == (
        LeaseStatus.REVOKED,
        LeaseStatus.LIVE,
        first.deployment_id,
    )
    assert (second.expires_at, second.renew_after) == (
        T0 + timedelta(minutes=1, seconds=ent.lease_ttl_seconds),
        T0 + timedelta(minutes=1, seconds=ent.lease_ttl_seconds * 2 / 3),
    )


def _renewable(session: Session, lease: Lease, **overrides: object) -> Lease:
    kwargs: dict[str, object] = {
        "entitlement_id": lease.entitlement_id,
        "thumbprint": lease.enclave_key_thumbprint,
        "now": T0,
    }
    return renewable_lease(session, lease.id, **(kwargs | overrides))  # type: ignore[arg-type]


def test_renewable_lease_then_renew_extends_it(session: Session) -> None:
    lease = _leased(session, make_entitlement(session), "one")
    renewed = renew_lease(session, _renewable(session, lease), expires_at=T0 + timedelta(hours=2), renew_after=T0)
    assert renewed is lease
    assert lease.expires_at == T0 + timedelta(hours=2)


@pytest.mark.parametrize(
    ("change", "overrides"),
    [
        ({"status": LeaseStatus.REVOKED}, {}),
        ({"status": LeaseStatus.RELEASED}, {}),
        ({"ttl": timedelta(0)}, {}),
        ({}, {"thumbprint": "another-key"}),
        ({}, {"entitlement_id": uuid.uuid4()}),
    ],
    ids=["revoked", "released", "expired", "other-key", "other-licence"],
)
def test_renewable_lease_refuses(session: Session, change: dict[str, object], overrides: dict[str, object]) -> None:
    lease = _leased(session, make_entitlement(session), "one", **change)
    with pytest.raises(Conflict) as exc:
        _renewable(session, lease, **overrides)
    assert exc.value.code is Code.LEASE_NOT_RENEWABLE
