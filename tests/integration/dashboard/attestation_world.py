"""Attestations for the attestation page's tests, made by the real decision (``decide_attestation``) from simulated
evidence and committed (the app under test reads them on its own connection): an accepted TDX quote, a TDX quote
whose MRTD is not the reference set's, a TDX quote with two H100s, and the same with GPU 1's VBIOS measurement
changed. Names carry a random suffix so that runs and tests never collide."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from joserfc import jwk
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.support.service import pending_tdx_attestation
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import DecisionContext, decide_attestation
from verifier.clock import Clock
from verifier.db.models import (
    Attestation,
    Customer,
    CustomerStatus,
    Entitlement,
    EntitlementStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey
from verifier.keywrap.enclave import gpu_nonce, parse_enclave_jwk
from verifier.keywrap.kek import LocalAesKek, model_key_context
from verifier.simulation.intel_pki import SIM_NOW, QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport
from verifier.simulation.nvidia_options import Defect, GpuOptions
from verifier.simulation.nvidia_pki import default_nvidia_pki
from verifier.trust.store import trust_store_from_certificates

SECRET = b"challenge-secret-for-tests-only!"
WRONG_MRTD = bytes.fromhex("7c1a" * 24)


@dataclass(frozen=True)
class Decided:
    """The ids of the decided attestations, and the names they were made under."""

    accepted: uuid.UUID
    rejected_mrtd: uuid.UUID
    gpus: uuid.UUID
    gpu_rejected: uuid.UUID
    deployment: str
    model: str
    deployment_id: uuid.UUID


def _context() -> DecisionContext:
    stores = (default_pki().build(QuoteOptions()).trust_store, default_nvidia_pki().trust_store)
    trust = trust_store_from_certificates(
        {k: r.certificate for store in stores for k, r in store.roots.items()}, simulated=True
    )
    return DecisionContext(
        trust=trust,
        kek=LocalAesKek(os.urandom(32)),
        keyring=ProviderKeyring(ProviderSigningKey.generate()),
        challenge_secret=SECRET,
    )


def _catalog(session: Session, ctx: DecisionContext, suffix: str) -> tuple[Entitlement, ModelVersion, str]:
    customer = Customer(name=f"acme-{suffix}", status=CustomerStatus.ACTIVE, created_at=SIM_NOW)
    model = Model(name=f"acme-llm-{suffix}", created_at=SIM_NOW)
    session.add_all([customer, model])
    session.flush()
    version = ModelVersion(model_id=model.id, version="1.2", created_at=SIM_NOW)
    session.add(version)
    session.flush()
    assert isinstance(ctx.kek, LocalAesKek)
    session.add(
        ModelKey(
            model_version_id=version.id,
            kek_id=ctx.kek.kek_id,
            created_at=SIM_NOW,
            wrapped_dek=ctx.kek.wrap(os.urandom(32), context=model_key_context(str(version.id))),
        )
    )
    sets: dict[str, dict[str, Any]] = {
        "intel-tdx": {"allowed_measurements": {"mrtd": [TdReport().mrtd.hex()]}},
        "nvidia-gpu": {"max_gpus": 8, "architectures": ["HOPPER"]},
    }
    session.add_all(
        ReferenceValueSet(
            model_version_id=version.id,
            platform=platform,
            status=RecordStatus.ACTIVE,
            values=values,
            valid_from=SIM_NOW - timedelta(days=1),
            valid_until=None,
            created_at=SIM_NOW,
        )
        for platform, values in sets.items()
    )
    entitlement = Entitlement(
        customer_id=customer.id,
        model_id=model.id,
        allowed_versions=[],
        allowed_platforms=["intel-tdx"],
        seats=4,
        max_gpus=8,
        lease_ttl_seconds=600,
        status=EntitlementStatus.ACTIVE,
        valid_from=SIM_NOW - timedelta(days=1),
        valid_until=None,
        created_at=SIM_NOW,
    )
    session.add(entitlement)
    session.flush()
    return entitlement, version, model.name


def _decide(
    session: Session,
    ctx: DecisionContext,
    entitlement: Entitlement,
    version: ModelVersion,
    deployment: str,
    *,
    td: TdReport | None = None,
    gpus: int = 0,
    bad: dict[int, Defect] | None = None,
) -> uuid.UUID:
    nonce = issue_challenge(SECRET, SIM_NOW).nonce
    public = dict(jwk.ECKey.generate_key("P-384").as_dict(private=False))
    att = pending_tdx_attestation(
        entitlement.id, version.id, nonce=nonce, enclave_jwk=public, deployment=deployment, td=td
    )
    thumbprint = parse_enclave_jwk(public).thumbprint
    for i in range(gpus):
        options = GpuOptions(device_index=i, nonce=gpu_nonce(nonce, thumbprint, i))
        item = default_nvidia_pki().build(options, (bad or {}).get(i)).evidence_item(i, carry_collateral=True)
        att.evidence = [*att.evidence, item]
    att.platforms = sorted({str(i["type"]) for i in att.evidence})
    session.add(att)
    session.flush()
    return decide_attestation(session, att.id, ctx, Clock.fixed(SIM_NOW)).id


def decide_world(engine: Engine) -> Decided:
    """Four decided attestations of one new customer and model, committed."""
    suffix = uuid.uuid4().hex[:6]
    ctx = _context()
    with Session(engine, expire_on_commit=False) as session:
        entitlement, version, model = _catalog(session, ctx, suffix)
        deployment = f"prod-eu-{suffix}"
        accepted = _decide(session, ctx, entitlement, version, deployment)
        rejected = _decide(session, ctx, entitlement, version, deployment, td=replace(TdReport(), mrtd=WRONG_MRTD))
        gpus = _decide(session, ctx, entitlement, version, f"gpu-node-{suffix}", gpus=2)
        gpu_rejected = _decide(
            session, ctx, entitlement, version, f"gpu-node-{suffix}", gpus=2, bad={1: Defect.MEASUREMENT_CHANGED}
        )
        deployment_id = session.get_one(Attestation, accepted).deployment_id
        assert deployment_id is not None
        session.commit()
    return Decided(accepted, rejected, gpus, gpu_rejected, deployment, model, deployment_id)
