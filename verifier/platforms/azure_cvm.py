"""Azure confidential VM verification (SEV-SNP or TDX behind the paravisor and vTPM; azure-cvm.md §8, §9).

``verify_azure_cvm(evidence, trust=..., now=..., nonce=...)`` runs the binding chain as numbered steps and
returns an :class:`AzureCvmVerification`, or raises a :class:`~verifier.errors.KeywardError` naming the first
failed step:

0. Parse (:mod:`verifier.evidence.azure_hcl`, :mod:`verifier.evidence.tpm`): the HCL report for the evidence
   type, its runtime claims (HCLAkPub), the TPMS_ATTEST, the signature and the PCR values.
1. The hardware report. SEV-SNP: the report in the HCL slot with the existing SNP verifier (VCEK chain to the
   pinned AMD roots, CRL when given, TCB binding, signature; :func:`~verifier.platforms.amd_snp.
   verify_snp_report`). TDX: the TD quote with the existing DCAP verifier and its collateral
   (:func:`~verifier.platforms.intel_dcap.verify_quote`); the TDREPORT in the HCL slot is MAC'd for the CPU only.
2. REPORT_DATA[0:32] == SHA-256(runtime-claims bytes) and REPORT_DATA[32:64] == 0
   (``azure.hcl.runtime_claims_hash_mismatch``). TDX, then: the quote body is the HCL TD report field for field
   (``azure.hcl.td_quote_mismatch``), so the HCL report is the one the quote vouches for.
3. HCLAkPub (from the claims the hardware report binds; never an attester-supplied key) verifies the quote
   signature, RSASSA-PKCS1-v1_5 / SHA-256 (``azure.tpm.quote_signature_invalid``).
4. The quote's extraData is the expected nonce binding, compared in constant time (``azure.tpm.nonce_mismatch``);
   evidence version 2 also binds the HCL report: ``user-data`` starts with the nonce
   (``azure.claims.user_data_mismatch``). Without an expected nonce (``keyward verify`` with no ``--nonce``)
   nothing is compared and the result says so (``nonce_checked``).
5. The PCR values given hash to pcrDigest: SHA-256 of the selected PCRs, ascending (``azure.tpm.pcr_digest_mismatch``).
   Without values the quote proves no PCR: none is a claim.
6. An AK certificate, when present, chains to the pinned Azure vTPM root and its key is HCLAkPub
   (:mod:`verifier.platforms.azure_ak`).

Policy (TCB, VMPL, measurements, VM configuration, PCR allow-lists) is :mod:`verifier.appraisal.azure_cvm`. Pure:
the trust store, collateral, nonce and ``now`` are arguments.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from verifier.errors import Code, CollateralError, EvidenceMalformed, VerificationFailed
from verifier.evidence.azure_cvm import AzureEvidence
from verifier.evidence.azure_hcl import (
    HclReport,
    RuntimeClaims,
    TdReport,
    parse_hcl_report,
    parse_runtime_claims,
    parse_td_report,
)
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import parse_snp_report
from verifier.evidence.tpm import TpmQuote, parse_pcr_values, parse_quote_signature, parse_tpm_quote
from verifier.platforms.amd_snp import SnpVerification, SnpVerificationCache, verify_snp_report
from verifier.platforms.azure_ak import AkCertificate, verify_ak_certificate
from verifier.platforms.intel_dcap import IntelVerification, IntelVerificationCache, verify_quote
from verifier.trust.intel_collateral import Collateral
from verifier.trust.store import TrustStore

PLATFORM_AZURE_SNP: Final = "azure-sev-snp-vtpm"
PLATFORM_AZURE_TDX: Final = "azure-tdx-vtpm"
_ZERO32: Final = bytes(32)
#: The TD quote body fields that must equal the HCL TD report's (azure-cvm.md §3.1).
TD_FIELDS: Final = (
    "tee_tcb_svn",
    "mrseam",
    "mrsignerseam",
    "seamattributes",
    "tdattributes",
    "xfam",
    "mrtd",
    "mrconfigid",
    "mrowner",
    "mrownerconfig",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "reportdata",
)


@dataclass(frozen=True, slots=True)
class TpmVerification:
    """A vTPM quote that verified under an AK: its nonce (checked or not) and the PCRs it proves."""

    quote: TpmQuote
    nonce_checked: bool
    #: PCR index -> value, for the selected PCRs whose values hashed to pcrDigest (empty without values).
    pcrs: Mapping[int, bytes]
    pcr_digest_verified: bool


@dataclass(frozen=True, slots=True)
class AzureCvmVerification:
    """Evidence that verified end to end; nothing about policy has been decided."""

    platform: str
    evidence: AzureEvidence
    hcl: HclReport
    claims: RuntimeClaims
    tpm: TpmVerification
    user_data_checked: bool
    snp: SnpVerification | None
    tdx: IntelVerification | None
    td_report: TdReport | None
    ak_cert: AkCertificate | None
    simulated: bool


def check_claims_binding(report_data: bytes, claims: bytes) -> None:
    """Step 2: REPORT_DATA = SHA-256(runtime claims) || 32 zero bytes."""
    want = hashlib.sha256(claims).digest() + _ZERO32
    if not hmac.compare_digest(report_data, want):
        raise VerificationFailed(
            Code.AZURE_HCL_RUNTIME_CLAIMS_HASH_MISMATCH,
            "REPORT_DATA is not SHA-256 of the runtime claims followed by 32 zero bytes",
            expected=want.hex(),
            actual=report_data.hex(),
        )


def check_td_quote_matches(report: TdReport, verification: IntelVerification) -> None:
    """Step 2 (TDX): every TD quote body field equals the HCL TD report's."""
    body = verification.quote.td_body
    for name in TD_FIELDS:
        quoted, reported = getattr(body, name), getattr(report, name)
        if quoted != reported:
            raise VerificationFailed(
                Code.AZURE_HCL_TD_QUOTE_MISMATCH,
                f"the TD quote's {name.upper()} is not the HCL TD report's",
                expected=reported.hex(),
                actual=quoted.hex(),
            )
    if body.tee_tcb_svn2 is not None and body.tee_tcb_svn2 != report.tee_tcb_svn2:
        raise VerificationFailed(
            Code.AZURE_HCL_TD_QUOTE_MISMATCH,
            "the TD quote's TEE_TCB_SVN2 is not the HCL TD report's",
            expected=report.tee_tcb_svn2.hex(),
            actual=body.tee_tcb_svn2.hex(),
        )


def verify_tpm_quote(
    attest: bytes,
    signature: bytes,
    ak: rsa.RSAPublicKey,
    nonce: bytes | None,
    pcr_values: tuple[bytes, ...],
) -> TpmVerification:
    """Steps 3-5 for a quote under ``ak``: parse, signature, nonce (when one is expected), PCR digest."""
    quote = parse_tpm_quote(attest)
    signature = parse_quote_signature(signature)
    values = parse_pcr_values(pcr_values)
    # 3. RSASSA-PKCS1-v1_5 / SHA-256 over the exact TPMS_ATTEST bytes.
    try:
        ak.verify(signature, quote.raw, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as e:
        raise VerificationFailed(
            Code.AZURE_TPM_QUOTE_SIGNATURE_INVALID, "the TPM quote signature does not verify under HCLAkPub"
        ) from e
    # 4. extraData is the expected nonce binding.
    if nonce is not None and not hmac.compare_digest(quote.extra_data, nonce):
        raise VerificationFailed(
            Code.AZURE_TPM_NONCE_MISMATCH,
            "the TPM quote's extraData is not the expected nonce",
            expected=nonce.hex(),
            actual=quote.extra_data.hex(),
        )
    # 5. The PCR values given are the ones quoted.
    pcrs: dict[int, bytes] = {}
    if values:
        digest = hashlib.sha256(b"".join(values[i] for i in quote.pcr_selection)).digest()
        if not hmac.compare_digest(digest, quote.pcr_digest):
            raise VerificationFailed(
                Code.AZURE_TPM_PCR_DIGEST_MISMATCH,
                "SHA-256 of the selected PCR values is not the quote's pcrDigest",
                expected=quote.pcr_digest.hex(),
                actual=digest.hex(),
            )
        pcrs = {i: values[i] for i in quote.pcr_selection}
    return TpmVerification(quote, nonce is not None, pcrs, bool(values))


def _hardware_snp(
    evidence: AzureEvidence,
    hcl: HclReport,
    trust: TrustStore,
    now: datetime,
    crl_der: bytes | None,
    cache: SnpVerificationCache | None,
) -> tuple[SnpVerification, bytes]:
    report = parse_snp_report(hcl.hardware_report)
    v = verify_snp_report(report, evidence.vcek or None, trust, now, crl_der=crl_der, cache=cache)
    return v, report.report_data


def _hardware_tdx(
    evidence: AzureEvidence,
    collateral: Collateral | None,
    trust: TrustStore,
    now: datetime,
    cache: IntelVerificationCache | None,
) -> IntelVerification:
    quote = parse_quote(evidence.td_quote or b"")
    if not quote.is_tdx:
        raise EvidenceMalformed(
            Code.AZURE_EVIDENCE_MALFORMED, "td_quote is not a TDX quote", expected="TDX", actual="SGX"
        )
    if collateral is None:
        raise CollateralError(Code.INTEL_COLLATERAL_MISSING, "no collateral supplied; cannot verify the TD quote")
    return verify_quote(quote, collateral, trust, now, cache)


def verify_azure_cvm(
    evidence: AzureEvidence,
    *,
    trust: TrustStore,
    now: datetime,
    nonce: bytes | None,
    crl_der: bytes | None = None,
    collateral: Collateral | None = None,
    snp_cache: SnpVerificationCache | None = None,
    intel_cache: IntelVerificationCache | None = None,
) -> AzureCvmVerification:
    """Verify Azure CVM evidence (steps 0-6 above) at ``now`` (UTC-aware), the quote against ``nonce``.

    Raises:
        EvidenceMalformed: ``azure.hcl.*``, ``azure.claims.*``, ``azure.tpm.*`` parse codes, the hardware report's.
        VerificationFailed: the hardware verifier's codes; ``azure.hcl.runtime_claims_hash_mismatch``,
            ``azure.hcl.td_quote_mismatch``, ``azure.tpm.quote_signature_invalid``, ``azure.tpm.nonce_mismatch``,
            ``azure.claims.user_data_mismatch``, ``azure.tpm.pcr_digest_mismatch``, ``azure.ak_cert.*``.
        CollateralError: the AMD CRL's or the Intel collateral's codes.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # 0. Parse everything the attester sent (the header only locates bytes; every field of it is checked).
    hcl = parse_hcl_report(evidence.hcl_report, evidence.kind)
    claims = parse_runtime_claims(hcl.runtime_claims)
    td_report = parse_td_report(hcl.hardware_report) if evidence.kind == "tdx" else None
    # 1. The hardware report, by the platform's own verifier.
    snp: SnpVerification | None = None
    tdx: IntelVerification | None = None
    if td_report is None:
        snp, report_data = _hardware_snp(evidence, hcl, trust, now, crl_der, snp_cache)
    else:
        tdx = _hardware_tdx(evidence, collateral, trust, now, intel_cache)
        report_data = tdx.quote.td_body.reportdata
    # 2. The hardware report binds the runtime claims (and, for TDX, is the HCL report's TD report).
    check_claims_binding(report_data, hcl.runtime_claims)
    if td_report is not None and tdx is not None:
        check_td_quote_matches(td_report, tdx)
    # 3-5. The quote under HCLAkPub, its nonce, its PCRs.
    tpm = verify_tpm_quote(evidence.tpm_attest, evidence.tpm_signature, claims.ak, nonce, evidence.pcrs)
    # 4 (evidence v2). The HCL report is fresh too: user-data starts with the nonce.
    user_data_checked = False
    if evidence.version >= 2 and nonce is not None:
        user_data = claims.user_data or b""
        if not hmac.compare_digest(user_data[: len(nonce)], nonce):
            raise VerificationFailed(
                Code.AZURE_CLAIMS_USER_DATA_MISMATCH,
                "evidence version 2: the HCL user-data does not start with the nonce",
                expected=nonce.hex(),
                actual=user_data[: len(nonce)].hex(),
            )
        user_data_checked = True
    # 6. The AK certificate, when sent.
    ak_cert = None
    if evidence.ak_cert is not None:
        ak_cert = verify_ak_certificate(evidence.ak_cert, evidence.ak_intermediates, trust, now, claims.ak)
    return AzureCvmVerification(
        platform=PLATFORM_AZURE_SNP if evidence.kind == "snp" else PLATFORM_AZURE_TDX,
        evidence=evidence,
        hcl=hcl,
        claims=claims,
        tpm=tpm,
        user_data_checked=user_data_checked,
        snp=snp,
        tdx=tdx,
        td_report=td_report,
        ak_cert=ak_cert,
        simulated=trust.simulated,
    )


__all__ = [
    "PLATFORM_AZURE_SNP",
    "PLATFORM_AZURE_TDX",
    "AzureCvmVerification",
    "TpmVerification",
    "check_claims_binding",
    "check_td_quote_matches",
    "verify_azure_cvm",
    "verify_tpm_quote",
]
