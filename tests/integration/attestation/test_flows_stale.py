"""Late decisions on real PostgreSQL (issue 17, finding 1): a request decided after a newer request of the same
deployment was granted a lease is rejected ``attestation.superseded_by_newer`` and leaves that lease live; a request
older than the decision age bound is rejected ``attestation.request_stale``. Both are stored and audited like every
rejection and hold no seat. The world and helpers are tests/integration/attestation/test_flows.py's."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from joserfc import jwk
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.attestation import test_flows as flows
from tests.support.service import pending_tdx_attestation
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import decide_attestation
from verifier.audit.log import verify_chain
from verifier.clock import Clock
from verifier.db.models import Attestation, AttestationStatus, AuditEvent, Lease, LeaseStatus, UsedNonce

world = flows.world  # the fixture
NOW = flows.NOW
SECRET = flows.SECRET


def _submit(
    session: Session, w: flows.World, *, at: datetime, deployment: str = "same", bind: bool = True
) -> tuple[Attestation, jwk.ECKey]:
    """A pending attestation that arrived at ``at`` (its nonce issued then), as the API stores it."""
    enclave = jwk.ECKey.generate_key("P-256")
    att = pending_tdx_attestation(
        w.entitlement.id,
        w.version.id,
        nonce=issue_challenge(SECRET, at).nonce,
        enclave_jwk=dict(enclave.as_dict(private=False)),
        deployment=deployment,
        bind=bind,
        created_at=at,
    )
    session.add(att)
    session.flush()
    return att, enclave


def _renewal(session: Session, w: flows.World, lease_id: object, enclave: jwk.ECKey, *, at: datetime) -> Attestation:
    att = pending_tdx_attestation(
        w.entitlement.id,
        w.version.id,
        nonce=issue_challenge(SECRET, at).nonce,
        enclave_jwk=dict(enclave.as_dict(private=False)),
        deployment="same",
        kind="renew",
        lease_id=lease_id,  # type: ignore[arg-type]
        created_at=at,
    )
    session.add(att)
    session.flush()
    return att


def _live_leases(session: Session, w: flows.World) -> list[object]:
    session.expire_all()
    return list(
        session.scalars(
            select(Lease.id).where(Lease.entitlement_id == w.entitlement.id, Lease.status == LeaseStatus.LIVE)
        )
    )


def _events(session: Session, subject: object) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.subject_id == str(subject)).order_by(AuditEvent.id))
    )


def _nonce_spent(session: Session, att: Attestation) -> bool:
    return session.get(UsedNonce, att.nonce) is not None


@pytest.mark.parametrize("newer_lease", ["live", "released"], ids=["newer-lease-live", "newer-lease-released"])
def test_decide_late_request_never_displaces_a_newer_requests_lease(
    session: Session, world: flows.World, newer_lease: str
) -> None:
    """Request A is pending (its worker died); the enclave attests again (B), B is decided and leased; then A is
    decided: rejected, B's lease untouched, the one seat still B's, the rejection stored and audited."""
    world.entitlement.seats = 1
    session.flush()
    stale, _ = _submit(session, world, at=NOW)
    newer, _ = _submit(session, world, at=NOW + timedelta(seconds=30))
    b = decide_attestation(session, newer.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=31)))
    assert b.status == AttestationStatus.ACCEPTED, flows._codes(b)
    b_lease = session.get_one(Lease, b.lease_id)
    if newer_lease == "released":  # the newer enclave already gave its seat back: still no place for A's lease
        b_lease.status, b_lease.ended_at = LeaseStatus.RELEASED, NOW + timedelta(seconds=35)
        session.flush()
    leases_before = session.scalar(
        select(func.count()).select_from(Lease).where(Lease.entitlement_id == world.entitlement.id)
    )

    a = decide_attestation(session, stale.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=40)))

    assert a.status == AttestationStatus.REJECTED
    assert flows._codes(a) == ["attestation.superseded_by_newer"]
    assert flows._faults(a) == ["request"]
    assert a.verdict is not None
    assert str(b.id) in a.verdict["reasons"][0]["actual"]
    assert (a.lease_id, a.deployment_id, a.wrapped_key, a.result_token) == (None, None, None, None)
    assert a.reason_codes == "attestation.superseded_by_newer"
    assert _nonce_spent(session, a)  # A's nonce cannot be replayed for another try
    # B's lease as it was: no new lease, nothing superseded, the seat count unchanged.
    session.refresh(b_lease)
    assert b_lease.status == (LeaseStatus.LIVE if newer_lease == "live" else LeaseStatus.RELEASED)
    assert b_lease.ended_at == (None if newer_lease == "live" else NOW + timedelta(seconds=35))
    assert _live_leases(session, world) == ([b.lease_id] if newer_lease == "live" else [])
    assert session.scalar(
        select(func.count()).select_from(Lease).where(Lease.entitlement_id == world.entitlement.id)
    ) == (leases_before)
    assert not session.scalars(select(AuditEvent).where(AuditEvent.tag == "worker:lease:superseded")).all()
    [event] = _events(session, a.id)
    assert event.tag == "worker:attestation:rejected"
    assert event.data["reasons"] == ["attestation.superseded_by_newer"]
    assert (event.data["lease_id"], event.data["superseded_leases"]) == (None, [])
    assert verify_chain(session).intact


def test_decide_newer_request_still_supersedes_an_older_lease_decided_after_it_arrived(
    session: Session, world: flows.World
) -> None:
    """The order of arrival decides, not the order of decision: the older request A is decided (leased) after the
    newer B arrived; B is then decided and replaces A's lease, as any newer attestation of a deployment does."""
    world.entitlement.seats = 1
    session.flush()
    older, _ = _submit(session, world, at=NOW)
    newer, _ = _submit(session, world, at=NOW + timedelta(seconds=10))
    a = decide_attestation(session, older.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=20)))
    b = decide_attestation(session, newer.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=30)))
    assert (a.status, b.status) == (AttestationStatus.ACCEPTED, AttestationStatus.ACCEPTED), flows._codes(b)
    assert _live_leases(session, world) == [b.lease_id]
    assert session.get_one(Lease, a.lease_id).status == LeaseStatus.REVOKED


def test_decide_late_request_not_blocked_by_a_newer_rejected_request(session: Session, world: flows.World) -> None:
    """Only a newer request that was granted a lease supersedes: a newer rejected one (unbound evidence) does not,
    and neither does an accepted request of another deployment."""
    stale, _ = _submit(session, world, at=NOW)
    rejected, _ = _submit(session, world, at=NOW + timedelta(seconds=10), bind=False)
    other, _ = _submit(session, world, at=NOW + timedelta(seconds=10), deployment="other")
    later = Clock.fixed(NOW + timedelta(seconds=20))
    assert decide_attestation(session, rejected.id, world.ctx, later).status == AttestationStatus.REJECTED
    assert decide_attestation(session, other.id, world.ctx, later).status == AttestationStatus.ACCEPTED
    a = decide_attestation(session, stale.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=30)))
    assert a.status == AttestationStatus.ACCEPTED, flows._codes(a)


@pytest.mark.parametrize(
    ("waited", "status"),
    [(timedelta(seconds=60), AttestationStatus.ACCEPTED), (timedelta(seconds=61), AttestationStatus.REJECTED)],
    ids=["at-the-bound", "past-the-bound"],
)
def test_decide_request_older_than_the_age_bound_is_rejected_stale(
    session: Session, world: flows.World, waited: timedelta, status: AttestationStatus
) -> None:
    ctx = replace(world.ctx, max_decision_age=timedelta(seconds=60))
    att, _ = _submit(session, world, at=NOW, deployment="late")
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW + waited))
    assert decided.status == status, flows._codes(decided)
    if status == AttestationStatus.ACCEPTED:
        return
    assert flows._codes(decided) == ["attestation.request_stale"]
    assert flows._faults(decided) == ["failed"]
    assert decided.verdict is not None
    assert decided.verdict["reasons"][0]["expected"] == "decided within 0:01:00 of arrival"
    assert decided.lease_id is None
    assert _live_leases(session, world) == []
    assert _nonce_spent(session, decided)
    [event] = _events(session, decided.id)
    assert (event.tag, event.data["reasons"]) == ("worker:attestation:rejected", ["attestation.request_stale"])
    assert verify_chain(session).intact


def test_decide_stale_renewal_is_rejected_and_the_lease_keeps_its_expiry(session: Session, world: flows.World) -> None:
    ctx = replace(world.ctx, max_decision_age=timedelta(seconds=60))
    att, enclave = _submit(session, world, at=NOW)
    first = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    lease = session.get_one(Lease, first.lease_id)
    expires = lease.expires_at
    renewal = _renewal(session, world, first.lease_id, enclave, at=NOW + timedelta(minutes=1))
    decided = decide_attestation(session, renewal.id, ctx, Clock.fixed(NOW + timedelta(minutes=3)))
    assert flows._codes(decided) == ["attestation.request_stale"]
    session.refresh(lease)
    assert (lease.status, lease.expires_at) == (LeaseStatus.LIVE, expires)


def test_decide_renewal_of_a_lease_a_newer_request_superseded_fails_and_leaves_the_new_lease(
    session: Session, world: flows.World
) -> None:
    """A renewal pending while a newer attestation of the deployment took its seat: the renewal fails
    (``lease.not_renewable``: its lease was superseded) and the newer lease stays live, unextended by it."""
    att, old_key = _submit(session, world, at=NOW)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    renewal = _renewal(session, world, first.lease_id, old_key, at=NOW + timedelta(seconds=60))
    newer, _ = _submit(session, world, at=NOW + timedelta(seconds=70))
    b = decide_attestation(session, newer.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=71)))
    assert b.status == AttestationStatus.ACCEPTED, flows._codes(b)
    b_expires = session.get_one(Lease, b.lease_id).expires_at
    decided = decide_attestation(session, renewal.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=80)))
    assert flows._codes(decided) == ["lease.not_renewable"]
    assert _live_leases(session, world) == [b.lease_id]
    assert session.get_one(Lease, b.lease_id).expires_at == b_expires
