"""The decision on Azure confidential VM evidence on real PostgreSQL: simulated ``azure-sev-snp-vtpm`` and
``azure-tdx-vtpm`` items (:mod:`verifier.simulation.azure_cvm_builder`) whose TPM quote (and, evidence version 2,
HCL user-data) carries the attestation's binding SHA-512(nonce || key thumbprint), appraised against the model
version's PCR reference values; accepted ones release the key, a quote for another nonce or a PCR outside the
reference values is a stored rejection with its code."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwk
from sqlalchemy.orm import Session

from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import DecisionContext, decide_attestation
from verifier.clock import Clock
from verifier.db.models import (
    Attestation,
    AttestationStatus,
    Customer,
    CustomerStatus,
    Deployment,
    Entitlement,
    EntitlementStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk
from verifier.keywrap.kek import LocalAesKek, model_key_context
from verifier.simulation.amd_pki import SIM_NOW
from verifier.simulation.azure_cvm_builder import AzureCvmBuilder, Kind

NOW = SIM_NOW
SECRET = b"challenge-secret-for-tests-only!"
PLATFORMS = {"snp": "azure-sev-snp-vtpm", "tdx": "azure-tdx-vtpm"}
PCR7 = hashlib.sha256(b"pcr7").digest().hex()
BUILDER = AzureCvmBuilder()


@dataclass
class World:
    ctx: DecisionContext
    entitlement: Entitlement
    version: ModelVersion


@pytest.fixture
def world(session: Session) -> World:
    kek = LocalAesKek(os.urandom(32))
    customer = Customer(name=f"azure-{uuid.uuid4().hex[:6]}", status=CustomerStatus.ACTIVE, created_at=NOW)
    model = Model(name=f"azure-model-{uuid.uuid4().hex[:6]}", created_at=NOW)
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
    sets: dict[str, dict[str, Any]] = {
        "azure-sev-snp-vtpm": {"allowed_pcrs": {"7": [PCR7]}, "require_crl": False, "require_ak_cert": True},
        "azure-tdx-vtpm": {"allowed_pcrs": {"7": [PCR7]}, "require_user_data_binding": True},
    }
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
        allowed_platforms=list(sets),
        seats=4,
        lease_ttl_seconds=600,
        status=EntitlementStatus.ACTIVE,
        valid_from=NOW - timedelta(days=1),
        valid_until=None,
        created_at=NOW,
    )
    session.add(entitlement)
    session.flush()
    trust = BUILDER.build("snp").trust_store
    ctx = DecisionContext(
        trust=trust, kek=kek, keyring=ProviderKeyring(ProviderSigningKey.generate()), challenge_secret=SECRET
    )
    return World(ctx, entitlement, version)


def _decide(session: Session, w: World, kind: Kind, *, bound: bool = True, **build: Any) -> Attestation:
    nonce = issue_challenge(SECRET, NOW).nonce
    key = jwk.ECKey.generate_key("P-256").as_dict(private=False)
    binding = expected_report_data(nonce, parse_enclave_jwk(dict(key)))
    ev = BUILDER.build(kind, nonce=binding if bound else hashlib.sha512(b"another challenge").digest(), **build)
    item: dict[str, Any] = {"type": PLATFORMS[kind], "evidence": base64.b64encode(ev.evidence_json).decode()}
    if ev.collateral_json is not None:
        item["collateral"] = ev.collateral_json
    att = Attestation(
        entitlement_id=w.entitlement.id,
        model_version_id=w.version.id,
        deployment_name="azure-cvm",
        kind="attest",
        platforms=[PLATFORMS[kind]],
        status=AttestationStatus.PENDING,
        nonce=nonce,
        enclave_jwk=dict(key),
        created_at=NOW,
        evidence=[item],
    )
    session.add(att)
    session.flush()
    return decide_attestation(session, att.id, w.ctx, Clock.fixed(NOW))


def _codes(att: Attestation) -> list[str]:
    return [r["code"] for r in (att.verdict or {}).get("reasons", [])]


@pytest.mark.parametrize("kind", ["snp", "tdx"])
def test_decide_attestation_azure_cvm_bound_accepted(session: Session, world: World, kind: Kind) -> None:
    decided = _decide(session, world, kind)
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert decided.claims is not None
    claims = decided.claims[PLATFORMS[kind]]
    assert claims["nonce_checked"] is True
    assert claims["user_data_bound"] is True
    assert claims["pcrs"]["7"] == PCR7


def test_decide_attestation_azure_tdx_deployment_records_its_tcb_evaluation(session: Session, world: World) -> None:
    """The staff dashboard's stale-TCB warning reads the Intel TCB evaluation a deployment was judged with; an Azure
    TDX CVM's is its TD quote's, as for plain TDX."""
    decided = _decide(session, world, "tdx")
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    collateral = (decided.collateral or {})["azure-tdx-vtpm"]
    deployment = session.get_one(Deployment, decided.deployment_id)
    session.refresh(deployment)
    assert deployment.tcb_eval_number == collateral["tcb_eval_number"]
    assert deployment.tcb_info_id == f"TDX:{collateral['fmspc'].lower()}"


@pytest.mark.parametrize("kind", ["snp", "tdx"])
def test_decide_attestation_azure_cvm_quote_for_another_nonce_rejected(
    session: Session, world: World, kind: Kind
) -> None:
    decided = _decide(session, world, kind, bound=False)
    assert decided.status == AttestationStatus.REJECTED
    assert _codes(decided) == ["azure.tpm.nonce_mismatch"]


def test_decide_attestation_azure_cvm_reference_values_applied(session: Session, world: World) -> None:
    """The TDX set requires the fresh HCL report of evidence version 2."""
    decided = _decide(session, world, "tdx", version=1)
    assert decided.status == AttestationStatus.REJECTED
    assert _codes(decided) == ["azure.policy.user_data_binding_required"]
