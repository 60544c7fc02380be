"""Evidence in, Attestation Result out: parse -> verify -> appraise for one piece of evidence.

The one place that strings the pure stages together and turns any :class:`~verifier.errors.KeywardError` into
a structured rejection, so every caller (CLI today, the worker later) gets the same result shape. Pure: the
trust store, collateral, policy and ``now`` are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from verifier.appraisal.intel import IntelPolicy, appraise_intel
from verifier.errors import Code, KeywardError, Reason
from verifier.evidence.dcap import Quote, parse_quote
from verifier.platforms.intel_claims import ClaimValue, collateral_json, quote_claims, verified_claims
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX, IntelVerificationCache, verify_quote
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
    claims: dict[str, ClaimValue]
    reasons: tuple[Reason, ...]
    collateral: dict[str, str | int] = field(default_factory=dict)
    simulated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "verified": self.verified,
            "accepted": self.accepted,
            "simulated": self.simulated,
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "claims": self.claims,
            "reasons": [r.to_json() for r in self.reasons],
            "collateral": self.collateral,
        }


def evaluate_intel_quote(
    evidence: bytes,
    collateral: Collateral | None,
    trust: TrustStore,
    now: datetime,
    policy: IntelPolicy,
    cache: IntelVerificationCache | None = None,
) -> Evaluation:
    """Parse, verify and appraise an Intel quote. Never raises for bad evidence or collateral."""
    quote: Quote | None = None
    try:
        quote = parse_quote(evidence)
        if collateral is None:
            raise KeywardError(Code.INTEL_COLLATERAL_MISSING, "no collateral supplied; cannot verify the quote")
        v = verify_quote(quote, collateral, trust, now, cache)
    except KeywardError as e:
        return Evaluation(
            platform=None if quote is None else (PLATFORM_TDX if quote.is_tdx else PLATFORM_SGX),
            verified=False,
            accepted=False,
            tcb_status=None,
            advisory_ids=(),
            claims={} if quote is None else quote_claims(quote),
            reasons=(e.to_reason(),),
            simulated=trust.simulated,
        )
    verdict = appraise_intel(v, policy)
    return Evaluation(
        platform=v.platform,
        verified=True,
        accepted=verdict.accepted,
        tcb_status=v.tcb.status,
        advisory_ids=v.tcb.advisory_ids,
        claims=verified_claims(v),
        reasons=verdict.reasons,
        collateral=collateral_json(v.collateral),
        simulated=v.simulated,
    )
