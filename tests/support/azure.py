"""Azure CVM evidence JSON (``az-snp-vtpm`` / ``az-tdx-vtpm``) assembled from the files of a real case of
tests/vectors/azure-cvm, and the case's Intel collateral: what a Confidential Containers guest would send."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.vectors import AZURE_VECTORS, AzureCase
from verifier.encoding import pem_blocks
from verifier.trust.intel_collateral import Collateral, parse_collateral_json


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def vcek_der(case: AzureCase) -> bytes:
    """The case's VCEK as DER (the first certificate of its PEM file, or its DER file)."""
    der = case.read("vcek.der")
    if der is not None:
        return der
    pem = case.read("vcek.pem") or case.read("vcek_ask_ark.pem") or b""
    return pem_blocks(pem, "CERTIFICATE")[0]


def ak_intermediates(case: AzureCase) -> list[bytes]:
    pem = case.read("ak_intermediates.pem")
    return [] if pem is None else pem_blocks(pem, "CERTIFICATE")


def evidence_doc(case: AzureCase, *, version: int = 1, ak_cert: bool = True) -> dict[str, Any]:
    """The evidence JSON of a case with an HCL report and a TPM quote."""
    pcrs = case.read("tpm_pcrs_sha256.bin") or b""
    doc: dict[str, Any] = {
        "version": version,
        "tpm_quote": {
            "signature": (case.read("tpm_quote_signature.bin") or b"").hex(),
            "message": (case.read("tpm_quote_attest.bin") or b"").hex(),
            "pcrs": [pcrs[i : i + 32].hex() for i in range(0, len(pcrs), 32)],
        },
        "hcl_report": b64url(case.read("hcl_report.bin") or b""),
    }
    if case.read("td_quote.bin") is not None:
        doc["td_quote"] = b64url(case.read("td_quote.bin") or b"")
    else:
        doc["vcek"] = b64url(vcek_der(case))
    nv = case.read("ak_cert_nv.bin")
    if ak_cert and nv is not None:
        doc["ak_cert"] = b64url(nv)
        if ak_intermediates(case):
            doc["ak_intermediates"] = [b64url(c) for c in ak_intermediates(case)]
    return doc


def evidence_json(case: AzureCase, **kwargs: Any) -> bytes:
    return json.dumps(evidence_doc(case, **kwargs)).encode()


def collateral_text(case: AzureCase) -> str | None:
    name = case.raw.get("tdx", {}).get("collateral")
    return None if name is None else (AZURE_VECTORS / name).read_text()


def collateral(case: AzureCase) -> Collateral | None:
    text = collateral_text(case)
    return None if text is None else parse_collateral_json(text)
