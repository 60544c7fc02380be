"""The decision with NVIDIA GPUs on real PostgreSQL: simulated TDX evidence (the fake Intel PKI) and simulated H100s
(the fake NVIDIA PKI; each item carries its RIMs and OCSP answers), decided in one composite decision.

One attestation: the CPU quote bound by REPORTDATA, GPU ``i`` bound by its SPDM nonce
``gpu_nonce(nonce, thumbprint, i)``; the model version's ``nvidia-gpu`` reference values are its GPU policy; the
entitlement caps the GPUs; the lease records them (billing's GPU time); the EAR has one submodule per device.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwk
from sqlalchemy.orm import Session

from tests.support.service import pending_tdx_attestation
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import DecisionContext, decide_attestation
from verifier.billing.usage import Granularity, UsageQuery, compute_usage
from verifier.clock import Clock
from verifier.db.models import (
    Attestation,
    AttestationStatus,
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
)
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey, verify_ear
from verifier.keywrap.enclave import gpu_nonce, parse_enclave_jwk
from verifier.keywrap.kek import LocalAesKek, model_key_context
from verifier.simulation.intel_pki import SIM_NOW, QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport
from verifier.simulation.nvidia_hgx import HgxDefect, build_hgx
from verifier.simulation.nvidia_options import Defect, GpuOptions
from verifier.simulation.nvidia_pki import default_nvidia_pki
from verifier.trust.store import trust_store_from_certificates

NOW = SIM_NOW
SECRET = b"challenge-secret-for-tests-only!"


@dataclass
class World:
    ctx: DecisionContext
    entitlement: Entitlement
    version: ModelVersion


def _trust() -> Any:
    stores = (default_pki().build(QuoteOptions()).trust_store, default_nvidia_pki().trust_store)
    return trust_store_from_certificates(
        {k: r.certificate for store in stores for k, r in store.roots.items()}, simulated=True
    )


def _world(session: Session, *, max_gpus: int = 8, gpu_policy: dict[str, Any] | None = None) -> World:
    kek = LocalAesKek(os.urandom(32))
    customer = Customer(name=f"gpu-{uuid.uuid4().hex[:6]}", status=CustomerStatus.ACTIVE, created_at=NOW)
    model = Model(name=f"gpu-model-{uuid.uuid4().hex[:6]}", created_at=NOW)
    session.add_all([customer, model])
    session.flush()
    version = ModelVersion(model_id=model.id, version="1.0", created_at=NOW)
    session.add(version)
    session.flush()
    session.add(
        ModelKey(
            model_version_id=version.id,
            kek_id=kek.kek_id,
            created_at=NOW,
            wrapped_dek=kek.wrap(os.urandom(32), context=model_key_context(str(version.id))),
        )
    )
    sets = {"intel-tdx": {"allowed_measurements": {"mrtd": [TdReport().mrtd.hex()]}}}
    if gpu_policy is not None:
        sets["nvidia-gpu"] = gpu_policy
    for platform, values in sets.items():
        session.add(
            ReferenceValueSet(
                model_version_id=version.id,
                platform=platform,
                status=RecordStatus.ACTIVE,
                values=values,
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
        seats=4,
        max_gpus=max_gpus,
        lease_ttl_seconds=600,
        status=EntitlementStatus.ACTIVE,
        valid_from=NOW - timedelta(days=1),
        valid_until=None,
        created_at=NOW,
    )
    session.add(entitlement)
    session.flush()
    ctx = DecisionContext(
        trust=_trust(),
        kek=kek,
        keyring=ProviderKeyring(ProviderSigningKey.generate()),
        challenge_secret=SECRET,
    )
    return World(ctx, entitlement, version)


@pytest.fixture
def world(session: Session) -> World:
    return _world(session, gpu_policy={"max_gpus": 8, "architectures": ["HOPPER"]})


def _gpu_item(nonce: bytes, thumbprint: bytes, index: int, defect: Defect | None = None, **opts: Any) -> Any:
    options = GpuOptions(device_index=index, nonce=gpu_nonce(nonce, thumbprint, index), **opts)
    return default_nvidia_pki().build(options, defect).evidence_item(index, carry_collateral=True)


def _submit(
    session: Session,
    w: World,
    gpus: int,
    *,
    cpu: bool = True,
    bad: dict[int, Defect] | None = None,
    items: Sequence[Any] | None = None,
    deployment: str = "gpu-node-1",
    enclave: jwk.ECKey | None = None,
    renew: uuid.UUID | None = None,
) -> Attestation:
    nonce = issue_challenge(SECRET, NOW).nonce
    public = dict((enclave or jwk.ECKey.generate_key("P-384")).as_dict(private=False))
    att = pending_tdx_attestation(
        w.entitlement.id,
        w.version.id,
        nonce=nonce,
        enclave_jwk=public,
        deployment=deployment,
        kind="attest" if renew is None else "renew",
        lease_id=renew,
    )
    thumbprint = parse_enclave_jwk(public).thumbprint
    gpu_items = list(items) if items is not None else []
    gpu_items += [_gpu_item(nonce, thumbprint, i, (bad or {}).get(i)) for i in range(gpus)]
    att.evidence = [*(att.evidence if cpu else []), *gpu_items]
    att.platforms = sorted({str(i["type"]) for i in att.evidence})
    session.add(att)
    session.flush()
    return att


def _decide(session: Session, w: World, att: Attestation) -> Attestation:
    return decide_attestation(session, att.id, w.ctx, Clock.fixed(NOW))


def _codes(att: Attestation) -> list[str]:
    assert att.verdict is not None
    return [r["code"] for r in att.verdict["reasons"]]


def test_decide_cpu_and_one_gpu_accepted(session: Session, world: World) -> None:
    decided = _decide(session, world, _submit(session, world, 1))
    assert decided.status == AttestationStatus.ACCEPTED, decided.verdict
    lease = session.get(Lease, decided.lease_id)
    assert lease is not None
    assert lease.gpus == 1
    assert decided.result_token is not None
    ear = verify_ear(decided.result_token, world.ctx.keyring.public_jwks(), now=NOW)
    assert set(ear["submods"]) == {"intel-tdx", "nvidia-gpu:GPU-0"}
    assert ear["submods"]["nvidia-gpu:GPU-0"]["ear.status"] == "affirming"
    assert decided.simulated is True
    evaluations = decided.verdict["evaluations"] if decided.verdict else []
    gpu = next(e for e in evaluations if e["platform"] == "nvidia-gpu")
    assert gpu["device"] == "GPU-0"
    assert gpu["claims"]["measres"] == "success"


def test_decide_cpu_and_eight_gpus_accepted(session: Session, world: World) -> None:
    decided = _decide(session, world, _submit(session, world, 8))
    assert decided.status == AttestationStatus.ACCEPTED, decided.verdict
    lease = session.get(Lease, decided.lease_id)
    assert lease is not None
    assert lease.gpus == 8
    assert decided.result_token is not None
    ear = verify_ear(decided.result_token, world.ctx.keyring.public_jwks(), now=NOW)
    assert set(ear["submods"]) == {"intel-tdx", *(f"nvidia-gpu:GPU-{i}" for i in range(8))}


def test_decide_one_bad_gpu_rejects_the_whole_attestation_naming_it(session: Session, world: World) -> None:
    decided = _decide(session, world, _submit(session, world, 8, bad={5: Defect.MEASUREMENT_CHANGED}))
    assert decided.status == AttestationStatus.REJECTED
    assert decided.lease_id is None
    assert decided.wrapped_key is None
    assert _codes(decided) == ["nvidia.measurement.mismatch"]
    assert decided.verdict is not None
    assert decided.verdict["reasons"][0]["message"].startswith("GPU 5: ")


def test_decide_gpu_of_another_session_rejected_nonce_mismatch(session: Session, world: World) -> None:
    stolen = _gpu_item(os.urandom(32), os.urandom(32), 0)  # bound to another challenge and enclave key
    decided = _decide(session, world, _submit(session, world, 0, items=[stolen]))
    assert _codes(decided) == ["nvidia.nonce.mismatch"]


def test_decide_gpus_without_cpu_evidence_rejected(session: Session, world: World) -> None:
    decided = _decide(session, world, _submit(session, world, 1, cpu=False))
    assert _codes(decided) == ["nvidia.policy.cpu_required"]


def test_decide_same_gpu_twice_rejected(session: Session, world: World) -> None:
    att = _submit(session, world, 2)
    thumbprint = parse_enclave_jwk(att.enclave_jwk).thumbprint
    # GPU 0 asked twice (two NVML calls, two nonces): a genuine, bound report for slot 2, from the same device.
    options = GpuOptions(device_index=0, nonce=gpu_nonce(att.nonce, thumbprint, 2))
    twin = default_nvidia_pki().build(options).evidence_item(2, carry_collateral=True)
    att.evidence = [*att.evidence, twin]
    session.flush()
    decided = _decide(session, world, att)
    assert _codes(decided) == ["nvidia.device.duplicate"]
    assert decided.verdict is not None
    assert decided.verdict["reasons"][0]["message"].startswith("GPU 2: the same device as device 0")


def test_decide_more_gpus_than_entitled_rejected(session: Session) -> None:
    w = _world(session, max_gpus=2, gpu_policy={})
    assert _codes(_decide(session, w, _submit(session, w, 3))) == ["entitlement.gpus_exceeded"]


def test_decide_more_gpus_than_the_policy_allows_rejected(session: Session) -> None:
    w = _world(session, gpu_policy={"max_gpus": 2})
    assert _codes(_decide(session, w, _submit(session, w, 3))) == ["nvidia.policy.gpu_count"]


def test_decide_cpu_only_when_the_model_version_requires_gpus_rejected(session: Session) -> None:
    w = _world(session, gpu_policy={"min_gpus": 1})
    assert _codes(_decide(session, w, _submit(session, w, 0))) == ["nvidia.policy.gpu_count"]


def test_decide_gpus_without_nvidia_reference_values_rejected(session: Session) -> None:
    w = _world(session, gpu_policy=None)
    assert _codes(_decide(session, w, _submit(session, w, 1))) == ["attestation.reference_values_missing"]


def test_decide_gpu_architecture_not_allowed_rejected(session: Session) -> None:
    w = _world(session, gpu_policy={"architectures": ["BLACKWELL"]})
    assert _codes(_decide(session, w, _submit(session, w, 1))) == ["nvidia.policy.architecture"]


def test_decide_cpu_only_without_gpu_policy_accepted(session: Session) -> None:
    w = _world(session, gpu_policy=None)
    decided = _decide(session, w, _submit(session, w, 0))
    assert decided.status == AttestationStatus.ACCEPTED, decided.verdict
    lease = session.get(Lease, decided.lease_id)
    assert lease is not None
    assert lease.gpus == 0


def test_decide_gpu_seconds_billed_from_the_attested_gpus(session: Session, world: World) -> None:
    decided = _decide(session, world, _submit(session, world, 4))
    lease = session.get(Lease, decided.lease_id)
    assert lease is not None
    query = UsageQuery(NOW, NOW + timedelta(hours=1), Granularity.HOUR, entitlement_id=world.entitlement.id)
    rows = compute_usage(session, query, now=NOW + timedelta(hours=1))
    lease_us = 600 * 1_000_000  # the lease's whole attested time (ttl 600 s)
    assert [(r.lease_us, r.gpu_us) for r in rows] == [(lease_us, 4 * lease_us)]


def test_decide_renewal_with_the_same_gpus_accepted_and_other_count_rejected(session: Session, world: World) -> None:
    enclave = jwk.ECKey.generate_key("P-384")
    first = _decide(session, world, _submit(session, world, 2, enclave=enclave))
    assert first.status == AttestationStatus.ACCEPTED, first.verdict
    same = _decide(session, world, _submit(session, world, 2, enclave=enclave, renew=first.lease_id))
    assert same.status == AttestationStatus.ACCEPTED, same.verdict
    fewer = _decide(session, world, _submit(session, world, 1, enclave=enclave, renew=first.lease_id))
    assert _codes(fewer) == ["nvidia.policy.gpu_count"]
    lease = session.get(Lease, first.lease_id)
    assert lease is not None
    assert lease.gpus == 2


def _hgx_items(att: Attestation, defect: HgxDefect | None = None) -> list[Any]:
    thumbprint = parse_enclave_jwk(att.enclave_jwk).thumbprint
    nonces = [gpu_nonce(att.nonce, thumbprint, i) for i in range(12)]
    return build_hgx(nonces, defect=defect).items(carry_collateral=True)


def test_decide_hgx_board_protected_pcie_accepted(session: Session) -> None:
    w = _world(session, gpu_policy={"require_ppcie": True, "min_gpus": 8, "max_gpus": 8})
    att = _submit(session, w, 0)
    att.evidence = [*att.evidence, *_hgx_items(att)]  # 8 GPUs in PPCIe mode and their 4 NVSwitches
    session.flush()
    decided = _decide(session, w, att)
    assert decided.status == AttestationStatus.ACCEPTED, decided.verdict
    lease = session.get(Lease, decided.lease_id)
    assert lease is not None
    assert lease.gpus == 8  # NVSwitches are attested, not counted
    assert decided.result_token is not None
    submods = verify_ear(decided.result_token, w.ctx.keyring.public_jwks(), now=NOW)["submods"]
    assert {"nvidia-gpu:NVSwitch-8", "nvidia-gpu:NVSwitch-11", "nvidia-gpu:GPU-7"} <= set(submods)


def test_decide_hgx_board_topology_mismatch_rejected(session: Session) -> None:
    w = _world(session, gpu_policy={"require_ppcie": True})
    att = _submit(session, w, 0)
    att.evidence = [*att.evidence, *_hgx_items(att, HgxDefect.SWITCH_GPU_LIST_DIFFERS)]
    session.flush()
    assert _codes(_decide(session, w, att)) == ["nvidia.topology.mismatch"]


def test_decide_ppcie_required_gpus_not_in_ppcie_mode_rejected_each_named(session: Session) -> None:
    w = _world(session, gpu_policy={"require_ppcie": True})
    decided = _decide(session, w, _submit(session, w, 2))
    assert _codes(decided) == ["nvidia.policy.ppcie_required"] * 2
    assert decided.verdict is not None
    assert [r["message"][:6] for r in decided.verdict["reasons"]] == ["GPU 0:", "GPU 1:"]


def test_decide_ppcie_required_gpus_without_their_switches_rejected(session: Session) -> None:
    w = _world(session, gpu_policy={"require_ppcie": True})
    att = _submit(session, w, 0)
    att.evidence = [*att.evidence, *_hgx_items(att)[:8]]  # the board's GPUs, in PPCIe mode, without the NVSwitches
    session.flush()
    decided = _decide(session, w, att)
    assert _codes(decided) == ["nvidia.policy.ppcie_required"]
    assert decided.verdict is not None
    assert "NVSwitch" in decided.verdict["reasons"][0]["message"]
