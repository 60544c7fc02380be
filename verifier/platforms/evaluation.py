"""Evidence in, Attestation Result out: parse -> verify -> appraise for one piece of evidence (Intel or AMD).

The one place that strings the pure stages together and turns any :class:`~verifier.errors.KeywardError` into
a structured rejection, so every caller (the CLI, and the worker through the platform registry) gets the same
result shape. ``evaluate_intel_quote`` / ``evaluate_snp_report`` take bytes and parse them; the worker parses each
item once (:mod:`verifier.platforms.registry`) and calls ``evaluate_quote`` / ``evaluate_report`` on the parsed
value. Pure: the trust store, collateral, policy and ``now`` are arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from verifier.appraisal.intel import IntelPolicy, appraise_intel
from verifier.appraisal.snp import SnpPolicy, appraise_snp, matched_cce_policy
from verifier.errors import Code, CollateralError, KeywardError, Reason
from verifier.evidence.dcap import Quote, parse_quote
from verifier.evidence.snp import (
    GUID_VCEK,
    GUID_VLEK,
    SIGNING_KEY_VLEK,
    Product,
    SnpReport,
    parse_cert_table,
    parse_snp_report,
)
from verifier.platforms.amd_snp import PLATFORM_SNP, SnpVerificationCache, verify_snp_report
from verifier.platforms.azure_uvm import UvmEndorsement, verify_uvm_endorsement
from verifier.platforms.intel_claims import collateral_json, quote_claims, verified_claims
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX, IntelVerificationCache, verify_quote
from verifier.platforms.snp_claims import report_claims
from verifier.platforms.snp_claims import verified_claims as snp_verified_claims
from verifier.trust.intel_collateral import Collateral
from verifier.trust.store import TrustStore


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The Attestation Result for one piece of evidence (the stable ``keyward verify --json`` shape)."""

    platform: str | None
    verified: bool
    accepted: bool
    tcb_status: str | None
    advisory_ids: tuple[str, ...]
    claims: dict[str, object]
    reasons: tuple[Reason, ...]
    collateral: dict[str, object] = field(default_factory=dict)
    simulated: bool = False
    #: Which of several devices of one platform this is ("GPU-3", "NVSwitch-8"): its EAR submodule's name.
    device: str | None = None
    #: The stored inputs the service appraised it against (``{"reference_values": <set id>, "policy": <policy id or
    #: None>}``); None outside the service (the CLI's files are not stored).
    appraised_with: dict[str, str | None] | None = None

    def to_json(self) -> dict[str, Any]:
        device = {} if self.device is None else {"device": self.device}
        inputs = {} if self.appraised_with is None else {"appraised_with": self.appraised_with}
        return {
            "platform": self.platform,
            **device,
            **inputs,
            "verified": self.verified,
            "accepted": self.accepted,
            "simulated": self.simulated,
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "claims": self.claims,
            "reasons": [r.to_json() for r in self.reasons],
            "collateral": self.collateral,
        }


def rejected(reason: Reason, platform: str | None = None) -> Evaluation:
    """The result for evidence that could not be evaluated at all (its inputs, the trust store): ``reason``."""
    return Evaluation(platform, False, False, None, (), {}, (reason,))


def unverified(platform: str | None, claims: dict[str, object], error: KeywardError, trust: TrustStore) -> Evaluation:
    """The result for evidence that did not parse or verify: the claims read from it (unverified), and why."""
    return Evaluation(
        platform=platform,
        verified=False,
        accepted=False,
        tcb_status=None,
        advisory_ids=(),
        claims=claims,
        reasons=(error.to_reason(),),
        simulated=trust.simulated,
    )


def evaluate_intel_quote(
    evidence: bytes,
    collateral: Collateral | None,
    trust: TrustStore,
    now: datetime,
    policy: IntelPolicy,
    cache: IntelVerificationCache | None = None,
) -> Evaluation:
    """Parse, verify and appraise an Intel quote. Never raises for bad evidence or collateral."""
    try:
        quote = parse_quote(evidence)
    except KeywardError as e:
        return unverified(None, {}, e, trust)
    return evaluate_quote(quote, collateral, trust, now, policy, cache)


def quote_platform(quote: Quote) -> str:
    return PLATFORM_TDX if quote.is_tdx else PLATFORM_SGX


def evaluate_quote(
    quote: Quote,
    collateral: Collateral | None,
    trust: TrustStore,
    now: datetime,
    policy: IntelPolicy,
    cache: IntelVerificationCache | None = None,
) -> Evaluation:
    """Verify and appraise a parsed Intel quote. Never raises for bad evidence or collateral."""
    try:
        if collateral is None:
            raise CollateralError(Code.INTEL_COLLATERAL_MISSING, "no collateral supplied; cannot verify the quote")
        v = verify_quote(quote, collateral, trust, now, cache)
    except KeywardError as e:
        return unverified(quote_platform(quote), dict(quote_claims(quote)), e, trust)
    verdict = appraise_intel(v, policy)
    return Evaluation(
        platform=v.platform,
        verified=True,
        accepted=verdict.accepted,
        tcb_status=v.tcb.status,
        advisory_ids=v.tcb.advisory_ids,
        claims=dict(verified_claims(v)),
        reasons=verdict.reasons,
        collateral=dict(collateral_json(v.collateral)),
        simulated=v.simulated,
    )


def evaluate_snp_report(
    evidence: bytes,
    *,
    leaf_der: bytes | None,
    cert_table: bytes | None,
    trust: TrustStore,
    now: datetime,
    policy: SnpPolicy,
    product: Product | None = None,
    crl_der: bytes | None = None,
    cache: SnpVerificationCache | None = None,
    uvm_endorsements: Sequence[bytes] = (),
) -> Evaluation:
    """Parse, verify and appraise an SEV-SNP report (:func:`evaluate_report`). Never raises for bad evidence or
    certificates."""
    try:
        report = parse_snp_report(evidence)
    except KeywardError as e:
        return unverified(PLATFORM_SNP, {}, e, trust)
    return evaluate_report(
        report,
        leaf_der=leaf_der,
        cert_table=cert_table,
        trust=trust,
        now=now,
        policy=policy,
        product=product,
        crl_der=crl_der,
        cache=cache,
        uvm_endorsements=uvm_endorsements,
    )


def evaluate_report(
    report: SnpReport,
    *,
    leaf_der: bytes | None,
    cert_table: bytes | None,
    trust: TrustStore,
    now: datetime,
    policy: SnpPolicy,
    product: Product | None = None,
    crl_der: bytes | None = None,
    cache: SnpVerificationCache | None = None,
    uvm_endorsements: Sequence[bytes] = (),
) -> Evaluation:
    """Verify and appraise a parsed SEV-SNP report. The leaf comes from ``leaf_der`` or the certificate table
    (VCEK or VLEK entry, as SIGNING_KEY says). Never raises for bad evidence or certificates."""
    try:
        if leaf_der is None and cert_table is not None:
            table = parse_cert_table(cert_table)
            leaf_der = table.get(GUID_VLEK if report.signing_key == SIGNING_KEY_VLEK else GUID_VCEK)
        v = verify_snp_report(report, leaf_der, trust, now, product=product, crl_der=crl_der, cache=cache)
    except KeywardError as e:
        return unverified(PLATFORM_SNP, dict(report_claims(report)), e, trust)
    # Confidential ACI: verified Microsoft UVM endorsements vouch for the UVM launch measurement.
    endorsed: list[UvmEndorsement] = []
    endorsement_reasons: list[Reason] = []
    for doc in uvm_endorsements:
        try:
            endorsed.append(verify_uvm_endorsement(doc, trust, now, validity_at="signing_time"))
        except KeywardError as e:
            endorsement_reasons.append(e.to_reason())
    verdict = appraise_snp(v, policy, endorsed_measurements=frozenset(e.launch_measurement for e in endorsed))
    claims: dict[str, object] = dict(snp_verified_claims(v))
    claims["cce_policy"] = matched_cce_policy(v, policy)
    if uvm_endorsements:
        claims["uvm_endorsements"] = [
            {
                "launch_measurement": e.launch_measurement.hex(),
                "guest_svn": e.guest_svn,
                "feed": e.feed,
                "issuer": e.issuer,
                "matches_report": e.launch_measurement == v.report.measurement,
            }
            for e in endorsed
        ]
    reasons = (*endorsement_reasons, *verdict.reasons)
    return Evaluation(
        platform=PLATFORM_SNP,
        verified=True,
        accepted=not reasons,
        tcb_status=None,
        advisory_ids=(),
        claims=claims,
        reasons=reasons,
        collateral={
            "product": v.product,
            "signing_key": v.signing_key,
            "leaf_not_before": v.leaf_not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "leaf_not_after": v.leaf_not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "crl_checked": v.crl_checked,
        },
        simulated=v.simulated,
    )
