"""The decision on Azure confidential ACI evidence: Microsoft's UVM endorsement carried in the evidence item.

Uses the real M1 report (confidential ACI, Milan) and Microsoft's real UVM endorsement with the genuine pinned roots
at the vector's time. The report's REPORT_DATA is the sidecar's, not bound to a fresh nonce here, so every decision
below also rejects for the binding; what is asserted is whether the endorsement check passes.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwk
from sqlalchemy.orm import Session

from tests.support.factories import make_entitlement, make_model_version
from tests.support.vectors import AMD_CASES, VECTORS
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import DecisionContext, decide_attestation
from verifier.clock import Clock
from verifier.db.models import (
    Attestation,
    AttestationStatus,
    Entitlement,
    Model,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey
from verifier.keywrap.kek import LocalAesKek
from verifier.trust.store import load_trust_store

M1 = next(c for c in AMD_CASES if c.id == "M1")
ACI = VECTORS / "amd" / "microsoft-confidential-sidecar-containers"
SECRET = b"challenge-secret-for-aci-tests!!"
#: After the endorsement's signing time (2023-02) and inside the VCEK's validity; the report is from 2022-11.
NOW = datetime(2023, 2, 8, 6, 0, tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def pending(session: Session) -> tuple[DecisionContext, Entitlement, ModelVersion]:
    """An SEV-SNP entitlement whose reference values pin M1's HOST_DATA and require a UVM endorsement."""
    entitlement = make_entitlement(
        session, allowed_platforms=["amd-sev-snp"], valid_from=NOW - timedelta(days=1), valid_until=None, now=NOW
    )
    version = make_model_version(session, session.get_one(Model, entitlement.model_id), now=NOW)
    session.add(
        ReferenceValueSet(
            model_version_id=version.id,
            platform="amd-sev-snp",
            status=RecordStatus.ACTIVE,
            values={
                "allowed_host_data": [M1.raw["host_data"]],
                "require_uvm_endorsement": True,
                "require_crl": False,
                "min_tcb_override": {"milan": {}},  # this 2022 report predates AMD-SB-3019's floor
            },
            valid_from=NOW - timedelta(days=1),
            valid_until=None,
            created_at=NOW,
        )
    )
    session.flush()
    ctx = DecisionContext(
        trust=load_trust_store(),
        kek=LocalAesKek(os.urandom(32)),
        keyring=ProviderKeyring(ProviderSigningKey.generate()),
        challenge_secret=SECRET,
    )
    return ctx, entitlement, version


@pytest.mark.parametrize("endorsed", [True, False], ids=["with-uvm-endorsement", "without"])
def test_decide_attestation_aci_uvm_endorsement_vouches_for_measurement(
    session: Session, pending: tuple[DecisionContext, Entitlement, ModelVersion], endorsed: bool
) -> None:
    ctx, entitlement, version = pending
    item = {"type": "amd-sev-snp", "evidence": _b64(M1.report.read_bytes()), "vcek": _b64(M1.leaf_der())}
    if endorsed:
        item["uvm_endorsement"] = _b64((ACI / "body.uvm_reference_info.bin").read_bytes())
    att = Attestation(
        entitlement_id=entitlement.id,
        model_version_id=version.id,
        deployment_name="aci",
        kind="attest",
        platforms=["amd-sev-snp"],
        status=AttestationStatus.PENDING,
        nonce=issue_challenge(SECRET, NOW).nonce,
        enclave_jwk=dict(jwk.ECKey.generate_key("P-256").as_dict(private=False)),
        created_at=NOW,
        evidence=[item],
    )
    session.add(att)
    session.flush()
    decided = decide_attestation(session, att.id, ctx, Clock.fixed(NOW))
    assert decided.verdict is not None
    reasons = {(r["code"], r["message"]) for r in decided.verdict["reasons"]}
    codes = {code for code, _ in reasons}
    assert "snp.policy.report_data_mismatch" in codes  # the sidecar's REPORT_DATA, not this nonce's
    not_endorsed = ("snp.policy.measurement_not_allowed", "MEASUREMENT is not endorsed by a verified UVM endorsement")
    assert (not_endorsed in reasons) is not endorsed, reasons
    if endorsed:
        assert decided.claims is not None
        (claim,) = decided.claims["amd-sev-snp"]["uvm_endorsements"]
        assert claim["matches_report"] is True
