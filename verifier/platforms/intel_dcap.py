"""Intel DCAP quote verification (SGX v3, TDX v4, v5), exact to Intel's QVL/QvE rules.

``verify_quote(quote, collateral, trust, now)`` runs intel-dcap.md §4 as numbered steps and returns an
:class:`IntelVerification` (claims + TCB evaluation + collateral summary), or raises a
:class:`~verifier.errors.KeywardError` naming the first failed step. It is pure: time, the trust store and the
collateral are arguments; there is no I/O, clock or network. It never applies policy (debug bits, accepted
statuses): that is :mod:`verifier.appraisal.intel`.

Caching (optional ``cache``): the results of steps 2-5 that do not depend on time (chain signatures, CRL
signatures and issuer binding, collateral signatures and parsing, revocation lookups) are pure functions of
their bytes, so they are memoised by content hash together with the trust-store fingerprint. Every call still
re-checks every validity window against ``now`` and always does the per-quote work: QE report signature,
attestation-key binding, QE identity, TDX module identity, quote signature and TCB matching.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from verifier.errors import Code, CollateralError, VerificationFailed
from verifier.evidence.dcap import Quote
from verifier.evidence.sgx import SgxReportBody
from verifier.evidence.tdx import TdReportBody
from verifier.platforms.intel_endorsements import (
    CollateralSummary,
    IntelVerificationCache,
    verify_binding,
    verify_pck_chain,
    verify_signed_collateral,
)
from verifier.platforms.intel_tcb import TcbEvaluation, evaluate_tcb, match_identity_level
from verifier.trust.chains import p256_key_from_raw, verify_p256_raw
from verifier.trust.intel_collateral import Collateral
from verifier.trust.intel_pck import PckExtensions
from verifier.trust.intel_tcb_info import IdentityLevel, QeIdentity, TcbInfo
from verifier.trust.store import TrustStore

__all__ = [
    "PLATFORM_SGX",
    "PLATFORM_TDX",
    "CollateralSummary",
    "IntelVerification",
    "IntelVerificationCache",
    "verify_quote",
]

PLATFORM_SGX: Final = "intel-sgx"
PLATFORM_TDX: Final = "intel-tdx"
_ZERO32: Final = bytes(32)


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class IntelVerification:
    """A quote that verified: genuine, bound, and matched to a TCB level. Policy has not been applied yet."""

    platform: str
    quote: Quote
    pck: PckExtensions
    tcb: TcbEvaluation
    collateral: CollateralSummary
    simulated: bool


# ----------------------------------------------------------------------------------------------------------
# The algorithm


def verify_quote(
    quote: Quote,
    collateral: Collateral,
    trust: TrustStore,
    now: datetime,
    cache: IntelVerificationCache | None = None,
) -> IntelVerification:
    """Verify ``quote`` against ``collateral`` and the pinned Intel root at time ``now`` (UTC-aware).

    Raises:
        VerificationFailed: chain, signature, binding, identity or TCB-level failure.
        CollateralError: collateral not genuine, expired, not yet valid, or for another platform/TEE.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    sig = quote.signature_data
    cert = sig.certification
    fp = trust.fingerprint

    # Steps 2-5, time-independent parts (memoised by content hash when a cache is given).
    chain_key = (fp, cert.pck_chain_pem)
    coll_key = (fp, collateral.digest)
    if cache is None:
        chain = verify_pck_chain(cert.pck_chain_pem, trust)
        signed = verify_signed_collateral(collateral, trust)
        binding = verify_binding(chain, collateral, signed)
    else:
        chain = cache.chains.get_or_compute(chain_key, lambda: verify_pck_chain(cert.pck_chain_pem, trust))
        signed = cache.collateral.get_or_compute(coll_key, lambda: verify_signed_collateral(collateral, trust))
        binding = cache.bindings.get_or_compute(
            (*chain_key, collateral.digest), lambda: verify_binding(chain, collateral, signed)
        )

    # 2d-5d. Every validity window at `now`, in step order: PCK chain, CRLs, TCB Info, QE Identity.
    summary = binding.summary
    if not summary.latest_issue <= now <= summary.earliest_expiry:  # fast path: one comparison for all windows
        for w in binding.windows:
            w.check(now)

    tcb_info, qe_identity = signed.tcb_info, signed.qe_identity
    is_tdx = quote.is_tdx
    # 4e. TCB Info is for this TEE, this FMSPC and this PCE (P8: SGX collateral offered for a TDX quote).
    if tcb_info.id != ("TDX" if is_tdx else "SGX"):
        raise CollateralError(
            Code.INTEL_COLLATERAL_TCB_INFO_WRONG_TEE,
            "TCB Info is for another TEE",
            expected="TDX" if is_tdx else "SGX",
            actual=tcb_info.id,
        )
    pck = chain.extensions
    if tcb_info.fmspc != pck.fmspc:
        raise CollateralError(
            Code.INTEL_COLLATERAL_FMSPC_MISMATCH,
            "TCB Info FMSPC differs from the PCK's",
            expected=pck.fmspc,
            actual=tcb_info.fmspc,
        )
    if tcb_info.pce_id != pck.pce_id:
        raise CollateralError(
            Code.INTEL_COLLATERAL_PCE_ID_MISMATCH,
            "TCB Info PCE-ID differs from the PCK's",
            expected=pck.pce_id,
            actual=tcb_info.pce_id,
        )
    # 5e. QE Identity is the TD QE's for TDX, the QE's for SGX.
    want_qe = "TD_QE" if is_tdx else "QE"
    if qe_identity.id != want_qe:
        raise CollateralError(
            Code.INTEL_COLLATERAL_QE_IDENTITY_WRONG_TEE,
            "QE Identity is for another QE",
            expected=want_qe,
            actual=qe_identity.id,
        )

    # 6. QE report signature by the PCK key.
    qe = cert.qe_report
    if not verify_p256_raw(chain.leaf_key, cert.qe_report_signature, qe.raw):
        raise VerificationFailed(
            Code.INTEL_QE_REPORT_SIGNATURE_INVALID, "QE report signature does not verify under the PCK key"
        )
    # 7. Attestation-key binding: all 64 bytes of QE REPORTDATA.
    ak_hash = hashlib.sha256(sig.attestation_key + cert.qe_auth_data).digest()
    if qe.reportdata[:32] != ak_hash or qe.reportdata[32:] != _ZERO32:
        raise VerificationFailed(
            Code.INTEL_QE_REPORT_AK_BINDING,
            "QE REPORTDATA does not bind the attestation key",
            expected=ak_hash + _ZERO32,
            actual=qe.reportdata,
        )
    # 8. The QE is the one Intel's QE Identity describes; its TCB level.
    qe_level = _match_qe_identity(qe, qe_identity)
    # 9. TDX module identity.
    if is_tdx:
        _check_tdx_module(quote, tcb_info)
    # 10. Quote signature by the (now bound) attestation key over header + body.
    try:
        ak = (
            p256_key_from_raw(sig.attestation_key)
            if cache is None
            else cache.keys.get_or_compute((sig.attestation_key,), lambda: p256_key_from_raw(sig.attestation_key))
        )
    except ValueError as e:
        raise VerificationFailed(
            Code.INTEL_QUOTE_ATTESTATION_KEY_INVALID, "attestation key is not a P-256 point"
        ) from e
    if not verify_p256_raw(ak, sig.signature, quote.signed):
        raise VerificationFailed(Code.INTEL_QUOTE_SIGNATURE_INVALID, "quote signature does not verify")
    # 11. TCB level and status merge.
    body = quote.body
    tcb = evaluate_tcb(
        tcb_info,
        sgx_levels=binding.sgx_levels,
        pck_components=pck.tcb_components,
        pck_pcesvn=pck.pcesvn,
        qe_level=qe_level,
        tee_tcb_svn=body.tee_tcb_svn if isinstance(body, TdReportBody) else None,
        tee_tcb_svn2=body.tee_tcb_svn2 if isinstance(body, TdReportBody) else None,
    )
    return IntelVerification(
        PLATFORM_TDX if is_tdx else PLATFORM_SGX, quote, pck, tcb, binding.summary, trust.simulated
    )


def _match_qe_identity(qe: SgxReportBody, ident: QeIdentity) -> IdentityLevel:
    mismatches = []
    misc_mask, misc_want = ident.miscselect_mask_int, ident.miscselect_int
    if qe.miscselect & misc_mask != misc_want:
        mismatches.append(("MISCSELECT", ident.miscselect.hex(), format(qe.miscselect, "08x")))
    if int.from_bytes(qe.attributes, "big") & ident.attributes_mask_int != ident.attributes_int:
        mismatches.append(("ATTRIBUTES", ident.attributes.hex(), qe.attributes.hex()))
    if qe.mrsigner != ident.mrsigner:
        mismatches.append(("MRSIGNER", ident.mrsigner.hex(), qe.mrsigner.hex()))
    if qe.isvprodid != ident.isvprodid:
        mismatches.append(("ISVPRODID", str(ident.isvprodid), str(qe.isvprodid)))
    if mismatches:
        field, expected, actual = mismatches[0]
        raise VerificationFailed(
            Code.INTEL_QE_IDENTITY_MISMATCH,
            f"QE report {field} does not match QE Identity {ident.id}",
            expected=expected,
            actual=actual,
        )
    return match_identity_level(ident.levels, qe.isvsvn, "QE")


def _check_tdx_module(quote: Quote, tcb_info: TcbInfo) -> None:
    body = quote.td_body
    major = body.tee_tcb_svn[1]
    if quote.header.version > 3 and major > 0:
        ident = tcb_info.module_identity(major)
        if ident is None:
            raise VerificationFailed(
                Code.INTEL_TDX_MODULE_MISMATCH,
                "TCB Info has no identity for this TDX module",
                expected=f"TDX_{major:02X}",
                actual="absent",
            )
        mrsigner, attributes = ident.mrsigner, ident.attributes
    elif tcb_info.tdx_module is not None:
        mrsigner, attributes = tcb_info.tdx_module.mrsigner, tcb_info.tdx_module.attributes
    else:  # parse_tcb_info already refuses TDX TCB Info without tdxModule
        raise CollateralError(Code.INTEL_COLLATERAL_MALFORMED, "TDX TCB Info lacks tdxModule")
    if body.mrsignerseam != mrsigner:
        raise VerificationFailed(
            Code.INTEL_TDX_MODULE_MISMATCH,
            "MRSIGNERSEAM is not the TDX module signer",
            expected=mrsigner,
            actual=body.mrsignerseam,
        )
    if body.seamattributes != attributes or any(body.seamattributes):
        raise VerificationFailed(
            Code.INTEL_TDX_MODULE_MISMATCH,
            "SEAMATTRIBUTES must be zero and match the module",
            expected=attributes,
            actual=body.seamattributes,
        )
