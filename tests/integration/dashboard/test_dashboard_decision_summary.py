"""The deployment summary and reason codes the decision keeps for the dashboard
(:func:`verifier.attestation.flows.record`), through the real decision with simulated TDX evidence (the world and
helpers of tests/integration/attestation/test_flows.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from tests.integration.attestation import test_flows as flows
from verifier.attestation.flows import decide_attestation
from verifier.clock import Clock
from verifier.db.models import AttestationStatus, Deployment
from verifier.simulation.intel_quote_builder import TdReport

world = flows.world  # the fixture
NOW = flows.NOW


def _deployment(session: Session, w: flows.World, name: str) -> Deployment:
    session.expire_all()
    return session.query(Deployment).filter_by(entitlement_id=w.entitlement.id, name=name).one()


def test_record_acceptance_writes_the_deployment_summary(session: Session, world: flows.World) -> None:
    att, _ = flows._submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    dep = _deployment(session, world, "prod-eu-1")
    assert (dep.lease_id, dep.last_attestation_id, dep.last_status, dep.last_decided_at) == (
        decided.lease_id, decided.id, "accepted", NOW
    )  # fmt: skip
    assert (dep.platforms, dep.tcb_status, dep.simulated) == ("intel-tdx", "UpToDate", True)
    assert decided.reason_codes is None


def test_record_rejection_is_the_last_decision_but_keeps_the_lease(session: Session, world: flows.World) -> None:
    att, _ = flows._submit(session, world)
    accepted = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    later = NOW + timedelta(minutes=1)
    bad, _ = flows._submit(session, world, td=TdReport(mrtd=bytes(48)))
    rejected = decide_attestation(session, bad.id, world.ctx, Clock.fixed(later))
    assert rejected.status == AttestationStatus.REJECTED
    assert rejected.reason_codes == "intel.policy.measurement_not_allowed"
    dep = _deployment(session, world, "prod-eu-1")
    assert (dep.last_attestation_id, dep.last_status, dep.last_decided_at) == (rejected.id, "rejected", later)
    assert (dep.lease_id, dep.last_attested_at, dep.tcb_status) == (accepted.lease_id, NOW, "UpToDate")


def test_record_older_rejection_never_replaces_a_later_decision(session: Session, world: flows.World) -> None:
    att, _ = flows._submit(session, world)
    accepted = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    bad, _ = flows._submit(session, world, td=TdReport(mrtd=bytes(48)))
    decide_attestation(session, bad.id, world.ctx, Clock.fixed(NOW - timedelta(seconds=1)))
    dep = _deployment(session, world, "prod-eu-1")
    assert (dep.last_attestation_id, dep.last_status) == (accepted.id, "accepted")


def test_record_renewal_moves_last_attested(session: Session, world: flows.World) -> None:
    att, enclave = flows._submit(session, world)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    later = NOW + timedelta(minutes=8)
    renewal = decide_attestation(
        session, flows._renew(session, world, first, enclave, at=later).id, world.ctx, Clock.fixed(later)
    )
    assert renewal.status == AttestationStatus.ACCEPTED
    dep = _deployment(session, world, "prod-eu-1")
    assert (dep.first_attested_at, dep.last_attested_at, dep.last_attestation_id) == (NOW, later, renewal.id)
    assert dep.lease_id == first.lease_id
