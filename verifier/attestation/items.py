"""The evidence items of a request, each parsed once (:func:`~verifier.platforms.registry.parse_evidence`): the
REPORTDATA each must carry, and each one verified and appraised with the cached documents its platform says it
needs (the same :attr:`~verifier.platforms.registry.ParsedItem.needs` the prefetch fetched; the newer of what
rides along and the cached copy is verified) against the policy document for its platform.

Reads the collateral cache; writes nothing. Nothing here knows a platform: the registry's entry does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.attestation.catalog import Catalog, policy_document, policy_inputs
from verifier.attestation.context import DecisionContext
from verifier.collateral.documents import Document, Documents, RowKey
from verifier.collateral.repository import read_documents
from verifier.errors import Code, EvidenceMalformed, PolicyRejected, Reason, VerificationFailed
from verifier.keywrap.enclave import EnclaveKey, parse_enclave_jwk
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import EvidenceItem, Verifying, b64
from verifier.platforms.registry import PLATFORMS, Parsed, ParsedItem, Unparsed, platform


def binding_for(item: EvidenceItem, nonce: bytes, key: EnclaveKey, default: bytes) -> bytes:
    """The REPORTDATA an evidence item must carry.

    Default: SHA-512(nonce || thumbprint). A platform with its own binding (NVIDIA devices: the SPDM nonce
    :func:`~verifier.keywrap.enclave.gpu_nonce`) says so in its registry entry. Confidential ACI (SEV-SNP only): the
    SKR sidecar reports SHA-256(runtime data) in REPORT_DATA[0:32] and zeros after; the item then carries
    ``runtime_data`` (base64 of the exact JSON bytes), which must name this nonce (``"nonce"``, base64url) and this
    enclave key (one JWK in ``"keys"`` with the same RFC 7638 thumbprint).
    """
    entry = platform(item.type)
    if entry.binding is not None:
        return entry.binding(item, nonce, key)
    if item.runtime_data is None:
        return default
    if not entry.runtime_data_binding:
        names = " | ".join(p.name for p in PLATFORMS.values() if p.runtime_data_binding)
        raise EvidenceMalformed(Code.ATTESTATION_EVIDENCE_MALFORMED, f"runtime_data binding is for {names} evidence")
    data = b64(item.runtime_data, "runtime_data")
    try:
        doc = json.loads(data)
        claimed_nonce = base64.urlsafe_b64decode(doc["nonce"] + "=" * (-len(doc["nonce"]) % 4))
        thumbprints = {parse_enclave_jwk(k).thumbprint for k in doc["keys"]}
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as e:
        raise EvidenceMalformed(
            Code.ATTESTATION_EVIDENCE_MALFORMED, f"runtime_data is not the expected JSON: {e}"
        ) from e
    if claimed_nonce != nonce or key.thumbprint not in thumbprints:
        raise VerificationFailed(
            Code.ATTESTATION_BINDING_MISMATCH, "runtime data does not name this nonce and enclave key"
        )
    return hashlib.sha256(data).digest() + bytes(32)


def read_needs(session: Session, items: Iterable[Parsed]) -> dict[RowKey, Document]:
    """The cached documents every parsed item needs, in one statement."""
    return read_documents(session, (w for p in items if isinstance(p, ParsedItem) for w in p.needs))


def evaluate_item(
    parsed: Parsed,
    documents: Documents,
    nonce: bytes,
    key: EnclaveKey,
    default_binding: bytes,
    catalog: Catalog,
    ctx: DecisionContext,
    now: datetime,
) -> Evaluation:
    """Evaluate one parsed item with the documents read for its needs (:func:`read_needs`). Raises the item's own
    error for an item too malformed to evaluate, and the binding's, catalog's or policy's errors. The evaluation
    records the reference-value set and policy it was appraised against."""
    if isinstance(parsed, Unparsed):
        raise parsed.error
    binding = binding_for(parsed.item, nonce, key, default_binding)
    inputs = policy_inputs(catalog, parsed.item.type, now, production=ctx.production)
    document = {**inputs.document, "expected_report_data": binding.hex()}
    env = Verifying(ctx.trust, now, ctx.intel_cache, ctx.snp_cache, ctx.nvidia_cache, ctx.collateral_cache)
    return replace(parsed.evaluate(documents, document, env), appraised_with=inputs.recorded())


def attestation_rules(
    items: Sequence[Parsed], evaluations: Sequence[Evaluation], catalog: Catalog, ctx: DecisionContext, now: datetime
) -> tuple[Reason, ...]:
    """Every registry entry's rules over the whole attestation (NVIDIA: CPU evidence to bind to, each device once,
    the GPU count and protected PCIe), each with its platform's policy document for the model version, or None
    when the model version has no reference values for it."""
    reasons: list[Reason] = []
    for entry in PLATFORMS.values():
        if entry.attestation_rules is None:
            continue
        try:
            document: dict[str, Any] | None = policy_document(catalog, entry.name, now, production=ctx.production)
        except PolicyRejected as e:
            if e.code != Code.ATTESTATION_REFERENCE_VALUES_MISSING:
                raise
            document = None
        reasons.extend(entry.attestation_rules(items, evaluations, document))
    return tuple(reasons)


def attested_gpus(items: Sequence[Parsed]) -> int:
    """The GPUs the attestation's items attest (what the entitlement caps and billing counts)."""
    return sum(p.platform.gpus(p.value) for p in items if isinstance(p, ParsedItem))
