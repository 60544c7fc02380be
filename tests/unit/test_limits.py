"""The request limits of verifier.limits leave generous headroom over the real vectors (tests/vectors): genuine
evidence must never come near a limit. Headroom is asserted at 4x for every field and for a full request."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.support.tools import ROOT
from tests.support.vectors import AMD_VECTORS, INTEL_CASES, INTEL_VECTORS
from verifier import limits
from verifier.encoding import pem_blocks
from verifier.keywrap.enclave import MAX_NVIDIA_DEVICES
from verifier.simulation.amd_pki import ReportOptions, default_amd_pki

HEADROOM = 4


def _b64_len(data: bytes) -> int:
    return len(base64.b64encode(data))


def _largest(paths: list[Path]) -> bytes:
    return max((p.read_bytes() for p in paths), key=len)


def test_limits_intel_quote_and_collateral_headroom() -> None:
    quote = _largest([c.quote for c in INTEL_CASES])
    collateral = _largest(sorted(INTEL_VECTORS.rglob("*.collateral.json")))
    json.loads(collateral)  # it is the JSON text the API carries
    assert _b64_len(quote) * HEADROOM <= limits.MAX_HEX_EVIDENCE_CHARS
    assert len(collateral) * HEADROOM <= limits.MAX_COLLATERAL_JSON_CHARS


def test_limits_amd_leaf_table_and_crl_headroom() -> None:
    vcek = _largest(sorted(AMD_VECTORS.rglob("*vcek*.der")) + sorted(AMD_VECTORS.rglob("*vlek*.der")))
    chain = pem_blocks(
        (AMD_VECTORS / "confidential-containers-trustee/az-snp-vtpm_vcek_ask_ark_milan.pem").read_bytes(), "CERTIFICATE"
    )
    ev = default_amd_pki().build(ReportOptions(product="genoa"))
    assert ev.crl_der is not None
    table = max(len(ev.cert_table), sum(len(c) for c in chain) + 4 * 24)  # three entries + terminator
    assert _b64_len(vcek) * HEADROOM <= limits.MAX_VCEK_B64_CHARS
    assert (table * 4 // 3 + 4) * HEADROOM <= limits.MAX_CERT_TABLE_B64_CHARS
    assert _b64_len(ev.crl_der) * HEADROOM <= limits.MAX_CRL_B64_CHARS
    uvm = AMD_VECTORS / "microsoft-confidential-sidecar-containers" / "body.uvm_reference_info.bin"
    assert _b64_len(uvm.read_bytes()) * HEADROOM <= limits.MAX_UVM_ENDORSEMENT_B64_CHARS


NVIDIA_VECTORS = ROOT / "tests" / "vectors" / "nvidia"


@pytest.mark.parametrize("items", [1, limits.MAX_EVIDENCE_ITEMS], ids=["one-item", "max-items"])
def test_limits_request_body_headroom(items: int) -> None:
    """One Intel item with the largest real collateral fits many times over; a full request (CPU items and the most
    NVIDIA devices, each the largest real report and chain) fits once."""
    quote = _largest([c.quote for c in INTEL_CASES])
    collateral = _largest(sorted(INTEL_VECTORS.rglob("*.collateral.json"))).decode()
    item = {"type": "intel-tdx", "evidence": base64.b64encode(quote).decode(), "collateral": collateral}
    report = _largest(sorted(NVIDIA_VECTORS.glob("devices/*.bin")))
    chain = _largest(sorted(NVIDIA_VECTORS.glob("devices/*.pem")))
    gpu = {"type": "nvidia-gpu", "evidence": base64.b64encode(report).decode()}
    gpu["certs"] = base64.b64encode(chain).decode()
    gpus = min(MAX_NVIDIA_DEVICES, items - 1)
    body = {"nonce": "n" * 43, "model": "m" * 64, "deployment": "d" * 64, "enclave_key": {"kty": "RSA", "n": "n" * 683}}
    size = len(json.dumps({**body, "evidence": [item] * (items - gpus) + [{**gpu, "device_index": 15}] * gpus}))
    assert size * (HEADROOM if items == 1 else 1) <= limits.MAX_REQUEST_BODY_BYTES
    assert limits.MAX_EVIDENCE_ITEMS > MAX_NVIDIA_DEVICES  # every device and its CPU evidence


def test_limits_azure_cvm_evidence_headroom() -> None:
    from tests.support.azure import evidence_json
    from tests.support.vectors import AZURE_CASES

    full = [
        evidence_json(c, version=2)
        for c in AZURE_CASES.values()
        if c.read("tpm_quote_attest.bin") and c.read("hcl_report.bin")
    ]
    largest = max(full, key=len)
    assert len(largest) * HEADROOM <= limits.MAX_AZURE_EVIDENCE_JSON_BYTES
    assert _b64_len(largest) * HEADROOM <= limits.MAX_HEX_EVIDENCE_CHARS
    hcl = max((c.read("hcl_report.bin") or b"" for c in AZURE_CASES.values()), key=len)
    assert len(hcl) * 3 <= limits.MAX_AZURE_HCL_BYTES  # the NV index is 2600 bytes: 3x, not 4x
    claims = max((c.read("runtime_claims.json") or b"" for c in AZURE_CASES.values()), key=len)
    assert len(claims) * 3 <= limits.MAX_AZURE_CLAIMS_BYTES
