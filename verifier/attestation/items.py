"""The evidence items of a request: the REPORTDATA each must carry, and each one parsed, verified and appraised
with its collateral (the newer of what rides along and the database cache the fetchers fill) against the policy
document for its platform.

Reads the collateral cache; writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.appraisal.intel import parse_intel_policy
from verifier.appraisal.snp import parse_snp_policy
from verifier.attestation.catalog import Catalog, policy_document
from verifier.attestation.context import DecisionContext
from verifier.attestation.evaluation import Evaluation, evaluate_intel_quote, evaluate_snp_report
from verifier.collateral.cache import amd_crl_for, intel_collateral_for, vcek_from_cache
from verifier.errors import Code, KeywardError
from verifier.keywrap.enclave import EnclaveKey, parse_enclave_jwk
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX
from verifier.trust.intel_collateral import parse_collateral_json

INTEL_PLATFORMS = (PLATFORM_TDX, PLATFORM_SGX)


def binding_for(item: dict[str, Any], nonce: bytes, key: EnclaveKey, default: bytes) -> bytes:
    """The REPORTDATA an evidence item must carry.

    Default: SHA-512(nonce || thumbprint). Confidential ACI (SEV-SNP only): the SKR sidecar reports
    SHA-256(runtime data) in REPORT_DATA[0:32] and zeros after; the item then carries ``runtime_data`` (base64 of
    the exact JSON bytes), which must name this nonce (``"nonce"``, base64url) and this enclave key (one JWK in
    ``"keys"`` with the same RFC 7638 thumbprint).
    """
    runtime = item.get("runtime_data")
    if runtime is None:
        return default
    if item.get("type") != PLATFORM_SNP:
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, "runtime_data binding is for amd-sev-snp evidence")
    data = b64(runtime, "runtime_data")
    try:
        doc = json.loads(data)
        claimed_nonce = base64.urlsafe_b64decode(doc["nonce"] + "=" * (-len(doc["nonce"]) % 4))
        thumbprints = {parse_enclave_jwk(k).thumbprint for k in doc["keys"]}
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as e:
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, f"runtime_data is not the expected JSON: {e}") from e
    if claimed_nonce != nonce or key.thumbprint not in thumbprints:
        raise KeywardError(Code.ATTESTATION_BINDING_MISMATCH, "runtime data does not name this nonce and enclave key")
    return hashlib.sha256(data).digest() + bytes(32)


def evaluate_item(
    session: Session,
    item: dict[str, Any],
    binding: bytes,
    catalog: Catalog,
    ctx: DecisionContext,
    now: datetime,
) -> Evaluation:
    kind = item.get("type")
    if kind not in (*INTEL_PLATFORMS, PLATFORM_SNP):
        raise KeywardError(
            Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
            f"unsupported evidence type {kind!r}",
            expected="intel-tdx | intel-sgx | amd-sev-snp",
            actual=kind,
        )
    evidence = b64(item.get("evidence"), "evidence")
    document = policy_document(catalog, str(kind), now, production=ctx.production)
    document["expected_report_data"] = binding.hex()
    if kind == PLATFORM_SNP:
        # Revocation is checked unless the provider's policy says otherwise: the CRL rides along or comes from
        # the cache the fetchers fill (KDS, by product and chain).
        document.setdefault("require_crl", True)
        snp_policy = parse_snp_policy(document)
        cert_table = b64(item["cert_table"], "cert_table") if item.get("cert_table") else None
        leaf = (
            b64(item["vcek"], "vcek")
            if item.get("vcek")
            else (None if cert_table is not None else vcek_from_cache(session, evidence))
        )
        # A CRL that rides along is used only if it is for this chain and newer than the cached one.
        supplied_crl = b64(item["crl"], "crl") if item.get("crl") else None
        crl = amd_crl_for(session, evidence, leaf, cert_table, supplied_crl, ctx.trust)
        # Confidential ACI: Microsoft's UVM endorsement, verified to its pinned root, vouches for MEASUREMENT.
        uvm = b64(item["uvm_endorsement"], "uvm_endorsement") if item.get("uvm_endorsement") else None
        return evaluate_snp_report(
            evidence,
            leaf_der=leaf,
            cert_table=cert_table,
            trust=ctx.trust,
            now=now,
            policy=snp_policy,
            crl_der=crl,
            cache=ctx.snp_cache,
            uvm_endorsements=() if uvm is None else (uvm,),
        )
    # Collateral that rides along is weighed against the cache document by document; the newer is verified (an
    # attester cannot hide a revocation or a TCB recovery behind an older, still valid document).
    supplied = parse_collateral_json(str(item["collateral"])) if item.get("collateral") else None
    collateral = intel_collateral_for(session, evidence, supplied)
    result = evaluate_intel_quote(
        evidence, collateral, ctx.trust, now, parse_intel_policy(json.dumps(document)), ctx.intel_cache
    )
    if result.platform not in (None, kind):
        raise KeywardError(
            Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
            "evidence is not of its declared type",
            expected=str(kind),
            actual=str(result.platform),
        )
    return result


def b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, f"{what} is not base64") from e
