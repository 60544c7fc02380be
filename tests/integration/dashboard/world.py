"""A small seeded world for the dashboard's reads: rows as the decision leaves them, built with the shared
factories (tests/support/factories.py) and two helpers of its own, an attestation and a deployment with its summary."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tests.support.factories import T0
from verifier.attestation.repository import count_decision
from verifier.db.models import Attestation, AttestationStatus, Deployment, Entitlement, Lease, ModelVersion

NOW = T0 + timedelta(hours=12)  # 2026-01-01 12:00 UTC: "today" is 2026-01-01


def make_deployment(
    session: Session,
    entitlement: Entitlement,
    name: str,
    *,
    last_attested_at: datetime | None = NOW,
    platforms: str | None = "intel-tdx",
    tcb_status: str | None = "UpToDate",
    simulated: bool = False,
) -> Deployment:
    deployment = Deployment(
        entitlement_id=entitlement.id,
        name=name,
        first_attested_at=last_attested_at,
        last_attested_at=last_attested_at,
        platforms=platforms,
        tcb_status=tcb_status,
        simulated=simulated,
    )
    session.add(deployment)
    session.flush()
    return deployment


def make_attestation(
    session: Session,
    entitlement: Entitlement,
    version: ModelVersion,
    name: str,
    *,
    decided_at: datetime | None,
    codes: Sequence[str] = (),
    deployment: Deployment | None = None,
    lease: Lease | None = None,
    platforms: Sequence[str] = ("intel-tdx",),
    kind: str = "attest",
    verdict: dict[str, object] | None = None,
    result_token: str | None = None,
) -> Attestation:
    """A decided attestation (pending when ``decided_at`` is None); rejected when ``codes`` are given. An accepted
    one names ``deployment`` and ``lease`` and is written into the deployment's summary as the decision does; a
    decided one is counted in its day's counters as the decision counts it."""
    status = (
        AttestationStatus.PENDING
        if decided_at is None
        else AttestationStatus.REJECTED
        if codes
        else AttestationStatus.ACCEPTED
    )
    accepted = status == AttestationStatus.ACCEPTED
    att = Attestation(
        id=uuid.uuid4(),
        entitlement_id=entitlement.id,
        deployment_id=deployment.id if deployment and accepted else None,
        lease_id=lease.id if lease and accepted else None,
        model_version_id=version.id,
        deployment_name=name,
        kind=kind,
        platforms=list(platforms),
        status=status,
        nonce=os.urandom(32),
        enclave_jwk={},
        evidence=[],
        claims={"intel-tdx": {"mrtd": "ab" * 48}} if accepted else None,
        verdict=verdict
        if verdict is not None
        else {"accepted": accepted, "reasons": [{"code": c} for c in codes], "evaluations": []},
        reason_codes=" ".join(sorted(set(codes))) or None,
        result_token=result_token,
        created_at=(decided_at or NOW) - timedelta(seconds=1),
        decided_at=decided_at,
    )
    session.add(att)
    session.flush()
    if decided_at is not None:
        count_decision(session, decided_at=decided_at, status=status, reason_codes=att.reason_codes)
    if deployment is not None and decided_at is not None:
        if deployment.last_decided_at is None or deployment.last_decided_at <= decided_at:
            deployment.last_attestation_id, deployment.last_status = att.id, status.value
            deployment.last_decided_at = decided_at
        if lease is not None and accepted:
            deployment.lease_id = lease.id
        session.flush()
    return att
