"""The decision flow on real PostgreSQL with simulated Intel TDX evidence (the fake Intel PKI).

Accepting releases a lease whose JWE only the enclave key opens and whose DEK decrypts a sample encrypted model;
every rejection (replayed nonce, wrong binding, debug TD, unknown measurement, wrong platform) is stored and audited.
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwk
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tests.support.service import pending_tdx_attestation
from verifier.attestation.challenges import MAX_DECISION_DELAY, issue_challenge
from verifier.attestation.flows import DecisionContext, decide_attestation
from verifier.audit.log import verify_chain
from verifier.clock import Clock
from verifier.db.models import (
    AppraisalPolicy,
    Attestation,
    AttestationStatus,
    AuditEvent,
    CachedCollateral,
    Customer,
    CustomerStatus,
    Entitlement,
    EntitlementStatus,
    Lease,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
    UsedNonce,
)
from verifier.entitlement.licensing import set_deployment_suspended
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey, audience_for, verify_ear
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk, unwrap_in_enclave
from verifier.keywrap.kek import LocalAesKek, model_key_context
from verifier.simulation.amd_pki import AmdEvidence, Defect, ReportOptions, default_amd_pki
from verifier.simulation.intel_pki import Evidence, QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport

NOW = default_pki().build(QuoteOptions()).now
SECRET = b"challenge-secret-for-tests-only!"


@dataclass
class World:
    ctx: DecisionContext
    entitlement: Entitlement
    version: ModelVersion
    mrtd: bytes
    dek: bytes
    sample_model: bytes
    sample_ciphertext: bytes


@pytest.fixture
def world(session: Session) -> World:
    pki = default_pki()
    kek = LocalAesKek(os.urandom(32))
    customer = Customer(name=f"acme-{uuid.uuid4().hex[:6]}", status=CustomerStatus.ACTIVE, created_at=NOW)
    model = Model(name=f"model-{uuid.uuid4().hex[:6]}", created_at=NOW)
    session.add_all([customer, model])
    session.flush()
    version = ModelVersion(model_id=model.id, version="1.0", created_at=NOW)
    session.add(version)
    session.flush()
    dek = AESGCM.generate_key(bit_length=256)
    session.add(
        ModelKey(
            model_version_id=version.id,
            kek_id=kek.kek_id,
            created_at=NOW,
            wrapped_dek=kek.wrap(dek, context=model_key_context(str(version.id))),
        )
    )
    mrtd = TdReport().mrtd
    session.add(
        ReferenceValueSet(
            model_version_id=version.id,
            platform="intel-tdx",
            status=RecordStatus.ACTIVE,
            values={"allowed_measurements": {"mrtd": [mrtd.hex()]}},
            valid_from=NOW - timedelta(days=1),
            valid_until=None,
            created_at=NOW,
        )
    )
    entitlement = Entitlement(
        customer_id=customer.id,
        model_id=model.id,
        allowed_versions=[],
        allowed_platforms=["intel-tdx"],
        seats=2,
        max_gpus=0,
        lease_ttl_seconds=600,
        status=EntitlementStatus.ACTIVE,
        valid_from=NOW - timedelta(days=1),
        valid_until=None,
        created_at=NOW,
    )
    session.add(entitlement)
    session.flush()
    sample = b"weights of a proprietary model " * 8
    nonce = os.urandom(12)
    ciphertext = nonce + AESGCM(dek).encrypt(nonce, sample, b"model-file")
    ctx = DecisionContext(
        trust=pki.build(QuoteOptions()).trust_store,
        kek=kek,
        keyring=ProviderKeyring(ProviderSigningKey.generate()),
        challenge_secret=SECRET,
    )
    return World(ctx, entitlement, version, mrtd, dek, sample, ciphertext)


def _submit(
    session: Session,
    w: World,
    *,
    td: TdReport | None = None,
    nonce: bytes | None = None,
    bind: bool = True,
    deployment: str = "prod-eu-1",
) -> tuple[Attestation, jwk.ECKey]:
    enclave = jwk.ECKey.generate_key("P-256")
    att = pending_tdx_attestation(
        w.entitlement.id,
        w.version.id,
        nonce=nonce or issue_challenge(SECRET, NOW).nonce,
        enclave_jwk=dict(enclave.as_dict(private=False)),
        deployment=deployment,
        td=td,
        bind=bind,
    )
    session.add(att)
    session.flush()
    return att, enclave


def _codes(att: Attestation) -> list[str]:
    assert att.verdict is not None
    return [r["code"] for r in att.verdict["reasons"]]


def _faults(att: Attestation) -> list[str]:
    """The stored reasons' faults, in order (each is its code's)."""
    assert att.verdict is not None
    return [r["fault"] for r in att.verdict["reasons"]]


def test_decide_attestation_accepts_and_releases_key(session: Session, world: World) -> None:
    att, enclave = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert decided.simulated is True  # the fake PKI: always marked
    # The enclave opens the JWE and decrypts the sample model file with the released DEK.
    assert decided.wrapped_key is not None
    dek = unwrap_in_enclave(decided.wrapped_key, dict(enclave.as_dict(private=True)))
    assert dek == world.dek
    assert AESGCM(dek).decrypt(world.sample_ciphertext[:12], world.sample_ciphertext[12:], b"model-file") == (
        world.sample_model
    )
    # The lease and the attestation-result token.
    lease = session.get(Lease, decided.lease_id)
    assert lease is not None
    assert lease.expires_at == NOW + timedelta(seconds=600)
    assert decided.result_token is not None
    ear = verify_ear(
        decided.result_token,
        world.ctx.keyring.public_jwks(),
        now=NOW,
        issuer=world.ctx.issuer,
        audience=audience_for(str(world.entitlement.customer_id)),
    )
    assert ear["jti"] == str(decided.id)
    # Audited: accepted + lease issued, chain intact.
    tags = session.scalars(select(AuditEvent.tag).where(AuditEvent.subject_id.in_([str(decided.id), str(lease.id)])))
    assert set(tags) == {"worker:attestation:accepted", "worker:lease:issued"}
    assert verify_chain(session).intact


def _recorded_inputs(att: Attestation) -> list[dict[str, str | None]]:
    assert att.verdict is not None
    return [e["appraised_with"] for e in att.verdict["evaluations"]]


def test_decide_attestation_records_the_reference_set_and_policy_used(session: Session, world: World) -> None:
    policy = AppraisalPolicy(
        name=f"tdx-{uuid.uuid4().hex[:6]}", platform="intel-tdx", document={"allow_debug": False}, created_at=NOW
    )
    session.add(policy)
    session.flush()
    world.entitlement.policy_id = policy.id
    [rv] = session.scalars(select(ReferenceValueSet).where(ReferenceValueSet.model_version_id == world.version.id))
    att, _ = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert _recorded_inputs(decided) == [{"reference_values": str(rv.id), "policy": str(policy.id)}]


def test_decide_attestation_records_no_policy_for_another_platform(session: Session, world: World) -> None:
    policy = AppraisalPolicy(
        name=f"snp-{uuid.uuid4().hex[:6]}", platform="amd-snp", document={"allow_debug": False}, created_at=NOW
    )
    session.add(policy)
    session.flush()
    world.entitlement.policy_id = policy.id
    att, _ = _submit(session, world, td=TdReport(mrtd=bytes(48)))  # rejected on its measurement: still recorded
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.REJECTED
    [inputs] = _recorded_inputs(decided)
    assert inputs["policy"] is None
    assert inputs["reference_values"] is not None


def test_decide_attestation_is_idempotent(session: Session, world: World) -> None:
    att, _ = _submit(session, world)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    token = first.wrapped_key
    again = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=5)))
    assert again.wrapped_key == token
    live = select(func.count()).select_from(Lease).where(Lease.deployment_id == first.deployment_id)
    assert session.scalar(live) == 1


def test_decide_attestation_decided_returned_whole_to_a_session_without_it(session: Session, world: World) -> None:
    """A redelivered task's session holds no copy: the decided row is read (its outcome too) and returned as it is."""
    att, _ = _submit(session, world)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    stored = (first.status, first.verdict, first.wrapped_key, first.result_token, first.lease_id, first.decided_at)
    session.expunge_all()
    again = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW + timedelta(seconds=5)))
    assert again is not first
    assert (again.status, again.verdict, again.wrapped_key, again.result_token, again.lease_id, again.decided_at) == (
        stored
    )


def test_decide_attestation_replayed_nonce_rejected(session: Session, world: World) -> None:
    nonce = issue_challenge(SECRET, NOW).nonce
    first, _ = _submit(session, world, nonce=nonce)
    assert decide_attestation(session, first.id, world.ctx, Clock.fixed(NOW)).status == AttestationStatus.ACCEPTED
    second, _ = _submit(session, world, nonce=nonce, deployment="prod-eu-2")
    decided = decide_attestation(session, second.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.REJECTED
    assert _codes(decided) == ["challenge.replayed"]
    assert _faults(decided) == ["failed"]
    assert decided.wrapped_key is None


@pytest.mark.parametrize(("holder", "stored"), [("0123456789abcdef", "0123456789abcdef"), (None, None)])
def test_decide_attestation_nonce_of_its_holder_accepted(
    session: Session, world: World, holder: str | None, stored: str | None
) -> None:
    """The decision checks the nonce's MAC with the key id stored beside the request (issue 17, finding 8); a
    request stored before nonces were bound has none, and its nonce names none."""
    att, _ = _submit(session, world, nonce=issue_challenge(SECRET, NOW, holder=holder or "").nonce)
    att.nonce_holder = stored
    session.flush()
    assert decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW)).status == AttestationStatus.ACCEPTED


def test_decide_attestation_nonce_of_another_holder_rejected(session: Session, world: World) -> None:
    att, _ = _submit(session, world, nonce=issue_challenge(SECRET, NOW, holder="0123456789abcdef").nonce)
    att.nonce_holder = "fedcba9876543210"
    session.flush()
    assert _codes(decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))) == ["challenge.invalid"]


def test_decide_attestation_expired_nonce_rejected(session: Session, world: World) -> None:
    att, _ = _submit(session, world, nonce=issue_challenge(SECRET, NOW - timedelta(hours=1)).nonce)
    assert _codes(decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))) == ["challenge.expired"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"bind": False}, "intel.policy.report_data_mismatch"),
        ({"td": TdReport(tdattributes=((1 << 28) | 1).to_bytes(8, "little"))}, "intel.policy.td_debug"),
        ({"td": TdReport(mrtd=bytes(48))}, "intel.policy.measurement_not_allowed"),
    ],
    ids=["wrong-binding", "debug-td", "unknown-measurement"],
)
def test_decide_attestation_rejections_stored_and_audited(
    session: Session, world: World, kwargs: dict[str, object], code: str
) -> None:
    att, _ = _submit(session, world, **kwargs)  # type: ignore[arg-type]
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.REJECTED
    assert code in _codes(decided)
    assert set(_faults(decided)) == {"policy"}
    assert decided.wrapped_key is None
    assert decided.lease_id is None
    event = session.scalars(select(AuditEvent).where(AuditEvent.subject_id == str(decided.id))).one()
    assert event.tag == "worker:attestation:rejected"
    assert code in event.data["reasons"]


def test_decide_attestation_tcb_status_not_accepted(session: Session, world: World) -> None:
    enclave = jwk.ECKey.generate_key("P-256")
    att = pending_tdx_attestation(
        world.entitlement.id,
        world.version.id,
        nonce=issue_challenge(SECRET, NOW).nonce,
        enclave_jwk=dict(enclave.as_dict(private=False)),
        deployment="old",
        platform_tcb="out_of_date",
    )
    session.add(att)
    session.flush()
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert _codes(decided) == ["intel.policy.tcb_status_not_accepted"]
    assert decided.verdict is not None
    assert decided.verdict["evaluations"][0]["tcb_status"] == "OutOfDate"


def test_decide_attestation_expired_entitlement_rejected(session: Session, world: World) -> None:
    world.entitlement.valid_until = NOW - timedelta(seconds=1)
    session.flush()
    att, _ = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert (_codes(decided), _faults(decided)) == (["entitlement.expired"], ["entitlement"])


def test_decide_attestation_customer_suspended_rejected(session: Session, world: World) -> None:
    customer = session.get_one(Customer, world.entitlement.customer_id)
    customer.status = CustomerStatus.SUSPENDED
    session.flush()
    att, _ = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.REJECTED
    assert _codes(decided) == ["entitlement.customer_suspended"]
    assert decided.wrapped_key is None
    assert (
        session.scalar(select(func.count()).select_from(Lease).where(Lease.entitlement_id == world.entitlement.id)) == 0
    )


def test_decide_attestation_deployment_suspended_rejected(session: Session, world: World) -> None:
    first = decide_attestation(session, _submit(session, world, deployment="edge")[0].id, world.ctx, Clock.fixed(NOW))
    assert first.status == AttestationStatus.ACCEPTED, _codes(first)
    assert first.deployment_id is not None
    set_deployment_suspended(session, first.deployment_id, True, actor="staff:olga", now=NOW)

    again = decide_attestation(session, _submit(session, world, deployment="edge")[0].id, world.ctx, Clock.fixed(NOW))

    assert _codes(again) == ["entitlement.deployment_suspended"]
    assert again.wrapped_key is None


def test_decide_attestation_wrong_platform_rejected(session: Session, world: World) -> None:
    world.entitlement.allowed_platforms = ["amd-sev-snp"]
    session.flush()
    att, _ = _submit(session, world)
    assert _codes(decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))) == [
        "entitlement.platform_not_allowed"
    ]


def _renew(
    session: Session, w: World, first: Attestation, enclave: jwk.ECKey, *, same_key: bool = True, at: datetime = NOW
) -> Attestation:
    key = enclave if same_key else jwk.ECKey.generate_key("P-256")
    att = pending_tdx_attestation(
        w.entitlement.id,
        w.version.id,
        nonce=issue_challenge(SECRET, at).nonce,
        enclave_jwk=dict(key.as_dict(private=False)),
        deployment="ignored",
        kind="renew",
        lease_id=first.lease_id,
    )
    session.add(att)
    session.flush()
    return att


def test_decide_attestation_renewal_extends_the_same_lease(session: Session, world: World) -> None:
    att, enclave = _submit(session, world)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    later = NOW + timedelta(minutes=8)
    renewal = decide_attestation(
        session, _renew(session, world, first, enclave, at=later).id, world.ctx, Clock.fixed(later)
    )
    assert renewal.status == AttestationStatus.ACCEPTED, _codes(renewal)
    assert renewal.lease_id == first.lease_id
    lease = session.get(Lease, first.lease_id)
    assert lease is not None
    assert lease.expires_at == later + timedelta(seconds=600)
    assert renewal.wrapped_key is not None
    assert unwrap_in_enclave(renewal.wrapped_key, dict(enclave.as_dict(private=True))) == world.dek


def test_decide_attestation_renewal_from_another_key_rejected(session: Session, world: World) -> None:
    att, enclave = _submit(session, world)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    renewal = decide_attestation(
        session, _renew(session, world, first, enclave, same_key=False).id, world.ctx, Clock.fixed(NOW)
    )
    assert (_codes(renewal), _faults(renewal)) == (["lease.not_renewable"], ["request"])


def test_decide_attestation_revoked_lease_never_renews(session: Session, world: World) -> None:
    from verifier.db.models import LeaseStatus

    att, enclave = _submit(session, world)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    lease = session.get(Lease, first.lease_id)
    assert lease is not None
    lease.status = LeaseStatus.REVOKED
    session.flush()
    renewal = decide_attestation(session, _renew(session, world, first, enclave).id, world.ctx, Clock.fixed(NOW))
    assert renewal.status == AttestationStatus.REJECTED
    assert _codes(renewal) == ["lease.not_renewable"]


def test_decide_attestation_new_lease_supersedes_the_deployments_lease(session: Session, world: World) -> None:
    """One seat, one deployment, two enclaves (two keys): the second's lease replaces the first's, whose renewal
    then fails; the deployment still holds the one seat, so another deployment gets none."""
    from verifier.db.models import LeaseStatus

    world.entitlement.seats = 1
    session.flush()
    first_att, first_key = _submit(session, world, deployment="same")
    first = decide_attestation(session, first_att.id, world.ctx, Clock.fixed(NOW))
    later = NOW + timedelta(minutes=1)
    second_att, second_key = _submit(session, world, deployment="same")
    second = decide_attestation(session, second_att.id, world.ctx, Clock.fixed(later))
    assert (first.status, second.status) == (AttestationStatus.ACCEPTED, AttestationStatus.ACCEPTED), _codes(second)
    assert first.deployment_id == second.deployment_id
    old = session.get_one(Lease, first.lease_id)
    session.refresh(old)
    assert (old.status, old.ended_at) == (LeaseStatus.REVOKED, later)
    live = session.scalars(
        select(Lease.id).where(Lease.entitlement_id == world.entitlement.id, Lease.status == LeaseStatus.LIVE)
    )
    assert list(live) == [second.lease_id]
    renewal = decide_attestation(
        session, _renew(session, world, first, first_key, at=later).id, world.ctx, Clock.fixed(later)
    )
    assert _codes(renewal) == ["lease.not_renewable"]
    renewal = decide_attestation(
        session, _renew(session, world, second, second_key, at=later).id, world.ctx, Clock.fixed(later)
    )
    assert renewal.status == AttestationStatus.ACCEPTED, _codes(renewal)
    other, _ = _submit(session, world, deployment="other")
    assert _codes(decide_attestation(session, other.id, world.ctx, Clock.fixed(later))) == [
        "entitlement.seats_exhausted"
    ]
    event = session.scalars(
        select(AuditEvent).where(
            AuditEvent.tag == "worker:lease:superseded", AuditEvent.subject_id == str(first.lease_id)
        )
    ).one()
    assert event.data["by"] == str(second.lease_id)


def test_decide_attestation_failure_after_seat_leaves_no_lease(session: Session, world: World) -> None:
    # No usable model key: the seat and lease made in step 4-5 are rolled back with the rejection.
    from sqlalchemy import update

    session.execute(update(ModelKey).where(ModelKey.model_version_id == world.version.id).values(retired_at=NOW))
    att, _ = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert _codes(decided) == ["attestation.model_key_missing"]
    leases = session.scalar(select(func.count()).select_from(Lease).where(Lease.entitlement_id == world.entitlement.id))
    assert leases == 0


def _live_leases(session: Session, world: World) -> int | None:
    return session.scalar(select(func.count()).select_from(Lease).where(Lease.entitlement_id == world.entitlement.id))


def test_decide_attestation_release_failure_is_a_stored_rejection(session: Session, world: World) -> None:
    """The DEK does not open under this worker's KEK (step 5): rejected with the code, the evaluations kept."""
    att, _ = _submit(session, world)
    ctx = replace(world.ctx, kek=LocalAesKek(os.urandom(32)))
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert (decided.status, _codes(decided)) == (AttestationStatus.REJECTED, ["keywrap.unwrap_failed"])
    assert decided.verdict is not None
    assert [e["accepted"] for e in decided.verdict["evaluations"]] == [True]
    assert (decided.wrapped_key, decided.result_token, _live_leases(session, world)) == (None, None, 0)
    event = session.scalars(select(AuditEvent).where(AuditEvent.subject_id == str(decided.id))).one()
    assert (event.tag, event.data["reasons"]) == ("worker:attestation:rejected", ["keywrap.unwrap_failed"])


def test_decide_attestation_release_unexpected_error_is_internal_error(
    session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_: object, **__: object) -> str:
        raise KeyError("signer bug")

    monkeypatch.setattr("verifier.attestation.flows.issue_ear", crash)
    att, _ = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert (decided.status, _codes(decided)) == (AttestationStatus.REJECTED, ["internal.error"])
    assert _live_leases(session, world) == 0


def test_decide_attestation_error_while_recording_propagates(
    session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the key is released, nothing is turned into a rejection: the task fails, its transaction rolls back."""

    def crash(*_: object, **__: object) -> list[uuid.UUID]:
        raise RuntimeError("seat write bug")

    monkeypatch.setattr("verifier.attestation.leases.take_seat", crash)
    att, _ = _submit(session, world)
    with pytest.raises(RuntimeError, match="seat write bug"):
        decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))


def _pending_snp(
    session: Session,
    w: World,
    nonce: bytes,
    public: dict[str, Any],
    *,
    deployment: str,
    evidence: list[dict[str, str]],
) -> Attestation:
    att = Attestation(
        entitlement_id=w.entitlement.id,
        model_version_id=w.version.id,
        deployment_name=deployment,
        kind="attest",
        platforms=["amd-sev-snp"],
        status=AttestationStatus.PENDING,
        nonce=nonce,
        enclave_jwk=public,
        created_at=NOW,
        evidence=evidence,
    )
    session.add(att)
    session.flush()
    return att


def _snp_world(session: Session, w: World) -> DecisionContext:
    """Extend the world to SEV-SNP: reference values, the platform allowed, and both simulated PKIs trusted."""
    from verifier.config import Settings
    from verifier.simulation.amd_pki import ReportOptions
    from verifier.wiring import trust_store_for

    session.add(
        ReferenceValueSet(
            model_version_id=w.version.id,
            platform="amd-sev-snp",
            status=RecordStatus.ACTIVE,
            values={"allowed_measurements": [ReportOptions().measurement.hex()]},
            valid_from=NOW - timedelta(days=1),
            valid_until=None,
            created_at=NOW,
        )
    )
    w.entitlement.allowed_platforms = ["intel-tdx", "amd-sev-snp"]
    session.flush()
    trust = trust_store_for(Settings(allow_simulated_roots=True))
    return DecisionContext(trust=trust, kek=w.ctx.kek, keyring=w.ctx.keyring, challenge_secret=SECRET)


@pytest.mark.parametrize("variant", ["matching", "other-key", "other-nonce"])
def test_decide_attestation_aci_skr_runtime_data_binding(session: Session, world: World, variant: str) -> None:
    import hashlib
    import json as _json

    from verifier.simulation.amd_pki import ReportOptions, default_amd_pki

    ctx = _snp_world(session, world)
    enclave = jwk.ECKey.generate_key("P-256")
    public = dict(enclave.as_dict(private=False))
    nonce = issue_challenge(SECRET, NOW).nonce
    named_key = public if variant != "other-key" else dict(jwk.ECKey.generate_key("P-256").as_dict(private=False))
    named_nonce = nonce if variant != "other-nonce" else os.urandom(32)
    runtime = _json.dumps(
        {"nonce": base64.urlsafe_b64encode(named_nonce).rstrip(b"=").decode(), "keys": [named_key]}
    ).encode()
    ev = default_amd_pki().build(ReportOptions(report_data=hashlib.sha256(runtime).digest() + bytes(32)))
    att = _pending_snp(
        session,
        world,
        nonce,
        public,
        deployment="aci",
        evidence=[
            {
                "type": "amd-sev-snp",
                "evidence": base64.b64encode(ev.report).decode(),
                "vcek": base64.b64encode(ev.leaf_der).decode(),
                "crl": base64.b64encode(ev.crl_der or b"").decode(),
                "runtime_data": base64.b64encode(runtime).decode(),
            }
        ],
    )
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    if variant == "matching":
        assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
        assert decided.wrapped_key is not None
        assert unwrap_in_enclave(decided.wrapped_key, dict(enclave.as_dict(private=True))) == world.dek
    else:
        assert _codes(decided) == ["attestation.binding_mismatch"]


def _submit_without_collateral(session: Session, w: World) -> tuple[Attestation, Evidence]:
    enclave = jwk.ECKey.generate_key("P-256")
    nonce = issue_challenge(SECRET, NOW).nonce
    att = pending_tdx_attestation(
        w.entitlement.id,
        w.version.id,
        nonce=nonce,
        enclave_jwk=dict(enclave.as_dict(private=False)),
        deployment="cached",
        with_collateral=False,
    )
    session.add(att)
    session.flush()
    return att, default_pki().build(QuoteOptions())  # the same platform's collateral, as PCS serves it


def test_decide_attestation_reads_intel_collateral_from_cache(session: Session, world: World) -> None:
    import json

    from sqlalchemy import delete

    from verifier.collateral.repository import INTEL, put_document
    from verifier.db.models import CachedCollateral
    from verifier.trust.intel_collateral import signed_member

    session.execute(delete(CachedCollateral))
    att, ev = _submit_without_collateral(session, world)
    # Nothing cached yet: fail closed.
    assert _codes(decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))) == ["intel.collateral.missing"]
    pcs = ev.pcs
    fmspc = json.loads(signed_member(pcs.tcb_info_body, "tcbInfo")[0])["fmspc"].lower()
    for kind, key, body, chain in (
        ("tcb_info", f"tdx:{fmspc}", pcs.tcb_info_body, pcs.tcb_info_issuer_chain),
        ("qe_identity", "tdx", pcs.qe_identity_body, pcs.qe_identity_issuer_chain),
        ("pck_crl", pcs.ca, pcs.pck_crl, pcs.pck_crl_issuer_chain),
        ("root_ca_crl", "root", pcs.root_ca_crl, None),
    ):
        put_document(session, INTEL, kind, key, body, issuer_chain=chain, fetched_at=NOW, next_update=None)
    again, _ = _submit_without_collateral(session, world)
    decided = decide_attestation(session, again.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)


def test_decide_attestation_reads_vcek_from_cache(session: Session, world: World) -> None:
    from verifier.collateral.repository import AMD, put_document, vcek_key
    from verifier.evidence.snp import parse_snp_report
    from verifier.simulation.amd_pki import ReportOptions, default_amd_pki

    ctx = _snp_world(session, world)
    enclave = jwk.ECKey.generate_key("P-256")
    public = dict(enclave.as_dict(private=False))
    nonce = issue_challenge(SECRET, NOW).nonce
    ev = default_amd_pki().build(ReportOptions(report_data=expected_report_data(nonce, parse_enclave_jwk(public))))
    report = parse_snp_report(ev.report)
    put_document(
        session,
        AMD,
        "vcek",
        vcek_key(report.chip_id, report.reported_tcb),
        ev.leaf_der,
        issuer_chain=None,
        fetched_at=NOW,
        next_update=None,
    )
    _cache_amd_crl(session, ev)
    att = _pending_snp(
        session,
        world,
        nonce,
        public,
        deployment="snp",
        evidence=[{"type": "amd-sev-snp", "evidence": base64.b64encode(ev.report).decode()}],
    )
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)  # the VCEK came from the cache
    assert decided.collateral is not None
    assert decided.collateral["amd-sev-snp"]["crl_checked"] is True  # and the CRL too


def _cache_amd_crl(session: Session, ev: AmdEvidence) -> None:
    from verifier.collateral.repository import AMD, amd_crl_key, put_document

    assert ev.crl_der is not None
    key = amd_crl_key(ev.options.product, ev.options.signing_key)
    put_document(session, AMD, "crl", key, ev.crl_der, issuer_chain=None, fetched_at=NOW, next_update=None)


def _forget_amd_crl(session: Session, ev: AmdEvidence) -> None:
    from verifier.collateral.repository import AMD, amd_crl_key

    key = amd_crl_key(ev.options.product, ev.options.signing_key)
    session.execute(
        delete(CachedCollateral).where(
            CachedCollateral.vendor == AMD, CachedCollateral.kind == "crl", CachedCollateral.key == key
        )
    )


def _snp_attestation(
    session: Session, world: World, *, defect: Defect | None = None, crl: bool = False
) -> tuple[Attestation, AmdEvidence]:
    """A pending SEV-SNP attestation with its VCEK attached, and the CRL too when ``crl``; no AMD CRL cached (another
    module may have cached one in the shared database: it is deleted in this test's transaction, rolled back)."""
    enclave = jwk.ECKey.generate_key("P-256")
    public = dict(enclave.as_dict(private=False))
    nonce = issue_challenge(SECRET, NOW).nonce
    options = ReportOptions(report_data=expected_report_data(nonce, parse_enclave_jwk(public)))
    ev = default_amd_pki().build(options, defect)
    _forget_amd_crl(session, ev)
    item = {"type": "amd-sev-snp", "evidence": b64(ev.report), "vcek": b64(ev.leaf_der)}
    if crl:
        item["crl"] = b64(ev.crl_der or b"")
    return _pending_snp(session, world, nonce, public, deployment="snp-crl", evidence=[item]), ev


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_decide_attestation_snp_without_crl_rejected(session: Session, world: World) -> None:
    """Fail closed: no CRL rides along and none is cached, so revocation cannot be checked."""
    ctx = _snp_world(session, world)
    att, _ = _snp_attestation(session, world)
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert _codes(decided) == ["snp.crl.missing"]
    assert decided.lease_id is None


def test_decide_attestation_snp_crl_from_cache_accepts(session: Session, world: World) -> None:
    ctx = _snp_world(session, world)
    att, ev = _snp_attestation(session, world)
    _cache_amd_crl(session, ev)
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)


@pytest.mark.parametrize(
    ("defect", "code"),
    [
        (Defect.LEAF_REVOKED, "snp.leaf.revoked"),
        (Defect.ASK_REVOKED, "snp.chain.revoked"),
        (Defect.CRL_EXPIRED, "snp.crl.expired"),
        (Defect.CRL_BAD_SIGNATURE, "snp.crl.signature_invalid"),
    ],
)
def test_decide_attestation_snp_crl_defect_rejected(session: Session, world: World, defect: Defect, code: str) -> None:
    ctx = _snp_world(session, world)
    att, _ = _snp_attestation(session, world, defect=defect, crl=True)
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert _codes(decided) == [code]


def test_decide_attestation_snp_policy_may_waive_crl(session: Session, world: World) -> None:
    """A provider without KDS access can say so in the entitlement's policy; the result records it."""
    ctx = _snp_world(session, world)
    policy = AppraisalPolicy(
        name=f"no-crl-{uuid.uuid4().hex[:6]}", platform="snp", document={"require_crl": False}, created_at=NOW
    )
    session.add(policy)
    session.flush()
    world.entitlement.policy_id = policy.id
    session.flush()
    att, _ = _snp_attestation(session, world)
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert decided.collateral is not None
    assert decided.collateral["amd-sev-snp"]["crl_checked"] is False


def test_decide_attestation_nonce_expiry_counts_from_arrival(session: Session, world: World) -> None:
    """Received a minute before its nonce expired, decided 20 minutes later (vendor fetch, requeue): accepted, with
    the decision age bound (``attestation.request_stale``, 10 minutes by default) at its ceiling."""
    ctx = replace(world.ctx, max_decision_age=MAX_DECISION_DELAY)
    att, _ = _submit(session, world, nonce=issue_challenge(SECRET, NOW - timedelta(minutes=4)).nonce)
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW + timedelta(minutes=20)))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)


def test_decide_attestation_unexpected_error_is_a_stored_rejection(
    session: Session, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A verifier bug on hostile bytes is recorded as internal.error, audited, with its nonce consumed: the task
    does not fail, so the request is not requeued forever."""

    def crash(*_: object, **__: object) -> None:
        raise IndexError("parser bug")

    monkeypatch.setattr("verifier.platforms.intel_evidence.evaluate_quote", crash)
    att, _ = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.REJECTED
    assert (_codes(decided), _faults(decided)) == (["internal.error"], ["internal"])
    assert decided.wrapped_key is None
    assert "parser bug" not in str(decided.verdict)  # the customer sees the code, staff see the log
    assert "parser bug" in caplog.text
    event = session.scalars(select(AuditEvent).where(AuditEvent.subject_id == str(decided.id))).one()
    assert event.data["reasons"] == ["internal.error"]
    assert session.get(UsedNonce, decided.nonce) is not None


@pytest.mark.parametrize(("production", "accepted"), [(False, True), (True, False)], ids=["development", "production"])
def test_decide_attestation_debug_allowance_only_outside_production(
    session: Session, world: World, production: bool, accepted: bool
) -> None:
    rv = session.scalars(select(ReferenceValueSet).where(ReferenceValueSet.model_version_id == world.version.id)).one()
    rv.values = {**rv.values, "allow_debug": True}
    session.flush()
    ctx = replace(world.ctx, production=production)
    att, _ = _submit(session, world, td=TdReport(tdattributes=((1 << 28) | 1).to_bytes(8, "little")))
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert (decided.status == AttestationStatus.ACCEPTED) is accepted, _codes(decided)
    if not accepted:
        assert _codes(decided) == ["intel.policy.td_debug"]


def test_decide_attestation_reference_values_that_pin_nothing_rejected(session: Session, world: World) -> None:
    """An old row saved before reference values were validated: it would accept any bound guest, so it rejects."""
    rv = session.scalars(select(ReferenceValueSet).where(ReferenceValueSet.model_version_id == world.version.id)).one()
    rv.values = {"allow_migratable": False}
    session.flush()
    att, _ = _submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW))
    assert _codes(decided) == ["attestation.reference_values_unconstrained"]


def test_decide_attestation_parses_each_item_once(
    session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision parses each stored item once (the cache reads take its keys, not its bytes); handed the items
    the task already parsed for the prefetch, it parses nothing."""
    from verifier.evidence import dcap
    from verifier.platforms import intel_evidence
    from verifier.platforms.registry import parse_evidence

    calls: list[bytes] = []

    def counting(data: bytes) -> Any:
        calls.append(data)
        return dcap.parse_quote(data)

    monkeypatch.setattr(intel_evidence, "parse_quote", counting)
    att, _ = _submit(session, world)
    assert decide_attestation(session, att.id, world.ctx, Clock.fixed(NOW)).status == AttestationStatus.ACCEPTED
    assert len(calls) == 1
    again, _ = _submit(session, world, deployment="prod-eu-2")
    parsed = parse_evidence(again.evidence)
    calls.clear()
    decided = decide_attestation(session, again.id, world.ctx, Clock.fixed(NOW), evidence=parsed)
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert calls == []


def _without_reportdata(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_reportdata(v) for k, v in value.items() if k != "reportdata"}
    if isinstance(value, list | tuple):
        return [_without_reportdata(v) for v in value]
    return value


def _cache_intel_rows(session: Session, ev: Evidence) -> None:
    import json

    from verifier.collateral.repository import INTEL, put_document
    from verifier.trust.intel_collateral import signed_member

    pcs = ev.pcs
    fmspc = json.loads(signed_member(pcs.tcb_info_body, "tcbInfo")[0])["fmspc"].lower()
    for kind, key, body, chain in (
        ("tcb_info", f"tdx:{fmspc}", pcs.tcb_info_body, pcs.tcb_info_issuer_chain),
        ("qe_identity", "tdx", pcs.qe_identity_body, pcs.qe_identity_issuer_chain),
        ("pck_crl", pcs.ca, pcs.pck_crl, pcs.pck_crl_issuer_chain),
        ("root_ca_crl", "root", pcs.root_ca_crl, None),
    ):
        put_document(session, INTEL, kind, key, body, issuer_chain=chain, fetched_at=NOW, next_update=None)


@pytest.mark.parametrize("with_collateral", [True, False], ids=["supplied-and-cached", "cached-only"])
def test_decide_attestation_same_verdict_with_and_without_collateral_cache(
    session: Session, world: World, with_collateral: bool
) -> None:
    from sqlalchemy import delete

    from verifier.db.models import CachedCollateral

    session.execute(delete(CachedCollateral))
    _cache_intel_rows(session, default_pki().build(QuoteOptions()))
    world.entitlement.seats = 10
    plain = replace(world.ctx, collateral_cache=None)
    verdicts = []
    for ctx in (plain, world.ctx, world.ctx):  # uncached, then the cache filled, then hit
        enclave = jwk.ECKey.generate_key("P-256")
        att = pending_tdx_attestation(
            world.entitlement.id,
            world.version.id,
            nonce=issue_challenge(SECRET, NOW).nonce,
            enclave_jwk=dict(enclave.as_dict(private=False)),
            deployment=f"cache-{uuid.uuid4().hex[:6]}",
            with_collateral=with_collateral,
        )
        session.add(att)
        session.flush()
        decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
        assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
        assert decided.wrapped_key is not None
        assert unwrap_in_enclave(decided.wrapped_key, dict(enclave.as_dict(private=True))) == world.dek
        verdicts.append((decided.verdict, decided.claims, decided.collateral))
    # Equal but for REPORTDATA (each attestation binds its own nonce and enclave key).
    assert _without_reportdata(verdicts[0]) == _without_reportdata(verdicts[1]) == _without_reportdata(verdicts[2])
    assert world.ctx.collateral_cache is not None
    assert len(world.ctx.collateral_cache.intel) == 1


def test_task_shaped_decision_reads_collateral_once(session: Session, world: World) -> None:
    """The decide task's path (lock, parse once, the prefetch check, decide with the documents it read): one
    statement on the collateral cache, where the decision read it again before."""
    from sqlalchemy import delete, event

    from verifier.attestation.flows import decide_locked, lock_attestation
    from verifier.db.models import CachedCollateral
    from verifier.platforms.registry import parse_evidence
    from verifier.worker.refresh import prefetch_check

    session.execute(delete(CachedCollateral))
    _cache_intel_rows(session, default_pki().build(QuoteOptions()))
    att, _enclave = _submit(session, world)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", seen)
    try:
        locked = lock_attestation(session, att.id)
        evidence = parse_evidence(locked.evidence, world.ctx.collateral_cache)
        needs, documents = prefetch_check(session, locked, NOW, evidence=evidence)
        assert needs == []
        assert documents is not None
        assert len(documents) == 4
        decided = decide_locked(session, locked, world.ctx, Clock.fixed(NOW), evidence=evidence, documents=documents)
    finally:
        event.remove(bind, "before_cursor_execute", seen)
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert sum("FROM collateral_cache" in s for s in statements) == 1
