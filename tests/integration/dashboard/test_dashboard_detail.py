"""A deployment's detail (timeline, latest claims) and an attestation's detail (every check with expected vs actual,
the reference sets in force, the policy, the decoded token) on PostgreSQL."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from tests.integration.dashboard.world import NOW, make_attestation, make_deployment
from tests.support.factories import make_entitlement, make_lease, make_model, make_model_version
from verifier.attestation.leases import revoke_lease
from verifier.audit.log import AuditTag, record_event
from verifier.dashboard.service import LeaseState, attestation_detail, decode_token, deployment_detail
from verifier.db.models import AppraisalPolicy, LeaseStatus, RecordStatus, ReferenceValueSet
from verifier.errors import Code, NotFound


def test_deployment_detail_timeline_newest_first(session: Session) -> None:
    model = make_model(session)
    version = make_model_version(session, model)
    ent = make_entitlement(session, model=model)
    dep = make_deployment(session, ent, "prod")
    t1, t2, t3 = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    first = make_lease(session, dep, version, now=t1)
    a1 = make_attestation(session, ent, version, "prod", decided_at=t1, deployment=dep, lease=first)
    record_event(
        session, tag=AuditTag.LEASE_ISSUED, actor="worker", subject_type="lease", subject_id=str(first.id),
        data={"attestation_id": str(a1.id)}, at=t1,
    )  # fmt: skip
    a2 = make_attestation(session, ent, version, "prod", decided_at=t2, codes=["intel.policy.td_debug"], deployment=dep)
    first.status, first.ended_at = LeaseStatus.REVOKED, t3
    second = make_lease(session, dep, version, now=t3)
    a3 = make_attestation(session, ent, version, "prod", decided_at=t3, deployment=dep, lease=second)
    record_event(
        session, tag=AuditTag.LEASE_SUPERSEDED, actor="worker", subject_type="lease", subject_id=str(first.id),
        data={"by": str(second.id), "attestation_id": str(a3.id)}, at=t3,
    )  # fmt: skip
    revoke_lease(session, second.id, actor="admin:alice", now=NOW)

    detail = deployment_detail(session, dep.id, NOW)

    assert [(e.kind, e.at) for e in detail.timeline] == [
        ("admin:lease:revoked", NOW),
        ("attest:accepted", t3),
        ("worker:lease:superseded", t3),
        ("attest:rejected", t2),
        ("attest:accepted", t1),
        ("worker:lease:issued", t1),
    ]
    rejected = detail.timeline[3]
    assert (rejected.attestation_id, rejected.detail) == (a2.id, {"reasons": ["intel.policy.td_debug"]})
    assert detail.timeline[0].actor == "admin:alice"
    assert (detail.latest_acceptance_id, detail.latest_claims) == (a3.id, a3.claims)
    assert (detail.summary.lease_state, detail.summary.last_status) == (LeaseState.REVOKED, "accepted")


def test_deployment_detail_timeline_is_bounded(session: Session) -> None:
    model = make_model(session)
    version = make_model_version(session, model)
    ent = make_entitlement(session, model=model)
    dep = make_deployment(session, ent, "busy")
    for i in range(5):
        make_attestation(session, ent, version, "busy", decided_at=NOW - timedelta(minutes=i), codes=["x.y"])
    assert len(deployment_detail(session, dep.id, NOW, limit=3).timeline) == 3


def test_deployment_detail_missing_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound) as raised:
        deployment_detail(session, uuid.uuid4(), NOW)
    assert raised.value.code == Code.RESOURCE_NOT_FOUND


def _b64(doc: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def test_attestation_detail_unrecorded_inputs_shows_what_was_in_force(session: Session) -> None:
    model = make_model(session)
    version = make_model_version(session, model, version="1.2")
    policy = AppraisalPolicy(
        name=f"strict-{uuid.uuid4().hex[:6]}", platform="intel-tdx", document={"allow_debug": False}, created_at=NOW
    )
    session.add(policy)
    session.flush()
    ent = make_entitlement(session, model=model)
    ent.policy_id = policy.id
    in_force = ReferenceValueSet(
        model_version_id=version.id, platform="intel-tdx", status=RecordStatus.ACTIVE,
        values={"mrtd": ["aa"]}, valid_from=NOW - timedelta(days=1), valid_until=None, created_at=NOW,
    )  # fmt: skip
    later = ReferenceValueSet(
        model_version_id=version.id, platform="intel-tdx", status=RecordStatus.DRAFT,
        values={"mrtd": ["bb"]}, valid_from=NOW + timedelta(days=1), valid_until=None, created_at=NOW,
    )  # fmt: skip
    session.add_all([in_force, later])
    dep = make_deployment(session, ent, "prod-eu")
    reason = {
        "code": "intel.policy.measurement_not_allowed", "fault": "policy", "message": "MRTD differs",
        "expected": "aa", "actual": "cc",
    }  # fmt: skip
    verdict = {
        "accepted": False,
        "reasons": [reason],
        "evaluations": [
            {
                "platform": "intel-tdx", "verified": True, "accepted": False, "simulated": True,
                "tcb_status": "UpToDate", "advisory_ids": ["INTEL-SA-00001"], "claims": {"mrtd": "cc"},
                "reasons": [reason], "collateral": {"tcb_info": {"version": 3}},
            }
        ],
    }  # fmt: skip
    token = f"{_b64({'alg': 'ES256'})}.{_b64({'jti': 'x', 'ear.status': 'contraindicated'})}.c2ln"
    att = make_attestation(
        session, ent, version, "prod-eu", decided_at=NOW, codes=[reason["code"]], verdict=verdict, result_token=token
    )

    detail = attestation_detail(session, att.id)

    assert (detail.status, detail.deployment_id, detail.model_version) == ("rejected", dep.id, "1.2")
    [evaluation] = detail.evaluations
    [check] = evaluation.reasons
    assert (check.code, check.expected, check.actual, check.fault) == (reason["code"], "aa", "cc", "policy")
    assert (evaluation.tcb_status, evaluation.advisory_ids) == ("UpToDate", ("INTEL-SA-00001",))
    assert evaluation.collateral == {"tcb_info": {"version": 3}}
    assert [s.id for s in detail.reference_sets] == [in_force.id]
    assert ([(p.name, p.document) for p in detail.policies], detail.inputs_recorded) == (
        [(policy.name, {"allow_debug": False})], False
    )  # fmt: skip
    assert detail.token is not None
    assert (detail.token.header, detail.token.claims["ear.status"]) == ({"alg": "ES256"}, "contraindicated")


def test_attestation_detail_recorded_inputs_are_the_rows_used_not_those_in_force(session: Session) -> None:
    model = make_model(session)
    version = make_model_version(session, model, version="1.2")
    used_policy = AppraisalPolicy(
        name=f"used-{uuid.uuid4().hex[:6]}", platform="intel-tdx", document={"allow_debug": False}, created_at=NOW
    )
    current_policy = AppraisalPolicy(
        name=f"now-{uuid.uuid4().hex[:6]}", platform="intel-tdx", document={"allow_debug": True}, created_at=NOW
    )
    session.add_all([used_policy, current_policy])
    session.flush()
    ent = make_entitlement(session, model=model)
    ent.policy_id = current_policy.id  # changed after the decision
    used = ReferenceValueSet(
        model_version_id=version.id, platform="intel-tdx", status=RecordStatus.RETIRED,
        values={"mrtd": ["aa"]}, valid_from=NOW - timedelta(days=3), valid_until=None, created_at=NOW,
    )  # fmt: skip
    in_force = ReferenceValueSet(
        model_version_id=version.id, platform="intel-tdx", status=RecordStatus.ACTIVE,
        values={"mrtd": ["bb"]}, valid_from=NOW - timedelta(days=1), valid_until=None, created_at=NOW,
    )  # fmt: skip
    session.add_all([used, in_force])
    session.flush()
    evaluation = {
        "platform": "intel-tdx", "verified": True, "accepted": True, "claims": {"mrtd": "aa"}, "reasons": [],
        "appraised_with": {"reference_values": str(used.id), "policy": str(used_policy.id)},
    }  # fmt: skip
    att = make_attestation(
        session,
        ent,
        version,
        "p",
        decided_at=NOW,
        verdict={"accepted": True, "reasons": [], "evaluations": [evaluation]},
    )

    detail = attestation_detail(session, att.id)

    assert detail.inputs_recorded
    assert [(s.id, s.status) for s in detail.reference_sets] == [(used.id, "retired")]
    assert [p.id for p in detail.policies] == [used_policy.id]


def test_attestation_detail_recorded_inputs_malformed_ids_fall_back_to_in_force(session: Session) -> None:
    model = make_model(session)
    version = make_model_version(session, model)
    ent = make_entitlement(session, model=model)
    evaluation = {"platform": "intel-tdx", "reasons": [], "appraised_with": {"reference_values": "not-a-uuid"}}
    att = make_attestation(
        session,
        ent,
        version,
        "p",
        decided_at=NOW,
        verdict={"accepted": False, "reasons": [], "evaluations": [evaluation]},
    )

    detail = attestation_detail(session, att.id)

    assert (detail.inputs_recorded, detail.evaluations[0].appraised_with) == (False, None)


def test_attestation_detail_stored_reason_without_fault_gets_its_codes(session: Session) -> None:
    model = make_model(session)
    version = make_model_version(session, model)
    ent = make_entitlement(session, model=model)
    att = make_attestation(session, ent, version, "n", decided_at=NOW, codes=["challenge.expired"])
    [reason] = attestation_detail(session, att.id).reasons
    assert (reason.code, reason.fault) == ("challenge.expired", "failed")


@pytest.mark.parametrize(
    "token",
    [None, "", "only.two", "!!.!!.!!", f"{_b64({'a': 1})}.W10.x"],
    ids=["none", "empty", "two-parts", "not-b64", "not-object"],
)
def test_decode_token_unreadable_is_none(token: str | None) -> None:
    assert decode_token(token) is None


def test_attestation_detail_missing_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound) as raised:
        attestation_detail(session, uuid.uuid4())
    assert raised.value.code == Code.RESOURCE_NOT_FOUND
