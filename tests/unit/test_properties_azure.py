"""Property tests (Hypothesis) for the Azure CVM parsers: HCL reports, TD reports, runtime claims, TPM quotes,
quote signatures and the evidence JSON raise nothing but ``EvidenceMalformed`` on arbitrary bytes and on real
vectors cut short or with bytes flipped; the evaluation of a real case (S4) with its HCL report, quote or signature
changed never raises and accepts only the unchanged bytes. Profiles as in test_properties.py (``KEYWARD_SLOW=1``
for 5000 examples).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from datetime import UTC, datetime
from typing import Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.azure import evidence_json
from tests.support.vectors import AZURE_CASES
from verifier.appraisal.azure_cvm import parse_azure_snp_policy
from verifier.errors import EvidenceMalformed
from verifier.evidence.azure_cvm import parse_azure_evidence
from verifier.evidence.azure_hcl import parse_hcl_report, parse_runtime_claims, parse_td_report
from verifier.evidence.tpm import parse_tpm_quote, parse_tpmt_signature
from verifier.platforms.azure_evidence import evaluate_azure_evidence
from verifier.platforms.item import Verifying
from verifier.trust.store import load_trust_store

SLOW: Final = os.environ.get("KEYWARD_SLOW") == "1"  # test-only: picks the Hypothesis profile
_S = settings(
    max_examples=5000 if SLOW else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HCLS: Final = [c.read("hcl_report.bin") or b"" for c in AZURE_CASES.values() if c.read("hcl_report.bin")]
QUOTES: Final = [c.read("tpm_quote_attest.bin") or b"" for c in AZURE_CASES.values() if c.read("tpm_quote_attest.bin")]
EVIDENCE: Final = (AZURE_CASES["S6"].dir / "upstream" / "evidence-v2.json").read_bytes()


def _mutated(sources: list[bytes]) -> st.SearchStrategy[bytes]:
    """A real input with up to four bytes replaced, then possibly cut short."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(sources)))
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        cut = draw(st.none() | st.integers(0, len(data)))
        return bytes(data if cut is None else data[:cut])

    return build()


@_S
@given(data=st.binary(max_size=3000) | _mutated(HCLS))
def test_parse_hcl_report_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        report = parse_hcl_report(data)
        parse_runtime_claims(report.runtime_claims)
        if report.kind == "tdx":
            parse_td_report(report.hardware_report)


@_S
@given(data=st.binary(max_size=1200) | _mutated([h[0x20:0x420] for h in HCLS]))
def test_parse_td_report_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_td_report(data)


@_S
@given(data=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode) | _mutated([h[0x4D4:] for h in HCLS]))
def test_parse_runtime_claims_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_runtime_claims(data.rstrip(b"\x00"))


@_S
@given(data=st.binary(max_size=300) | _mutated(QUOTES))
def test_parse_tpm_quote_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_tpm_quote(data)


@_S
@given(data=st.binary(max_size=300))
def test_parse_tpmt_signature_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_tpmt_signature(data)


@_S
@given(data=st.binary(max_size=500) | _mutated([EVIDENCE]), kind=st.sampled_from(["snp", "tdx"]))
def test_parse_azure_evidence_arbitrary_bytes_only_our_errors(data: bytes, kind: str) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_azure_evidence(data, "snp" if kind == "snp" else "tdx")


S4: Final = AZURE_CASES["S4"]
S4_DOC: Final = json.loads(evidence_json(S4))
S4_POLICY: Final = parse_azure_snp_policy({"expected_nonce": (S4.read("nonce.bin") or b"").hex()})
TRUST: Final = load_trust_store()


@settings(max_examples=400 if SLOW else 40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    part=st.sampled_from(["hcl_report", "message", "signature"]),
    flips=st.lists(st.tuples(st.integers(0, 2599), st.integers(1, 255)), min_size=0, max_size=3),
    cut=st.none() | st.integers(0, 2600),
)
def test_evaluate_azure_mutated_real_evidence_never_raises(
    part: str, flips: list[tuple[int, int]], cut: int | None
) -> None:
    """Any change to the HCL report (but the length of its zero padding, which the NV index size sets), the
    TPMS_ATTEST or its signature is rejected; nothing raises."""
    doc = json.loads(json.dumps(S4_DOC))
    quote = doc["tpm_quote"]
    raw = base64.urlsafe_b64decode(doc["hcl_report"]) if part == "hcl_report" else bytes.fromhex(quote[part])
    data = bytearray(raw)
    for offset, xor in flips:
        if offset < len(data):
            data[offset] ^= xor
    mutated = bytes(data if cut is None else data[:cut])
    if part == "hcl_report":
        doc["hcl_report"] = base64.urlsafe_b64encode(mutated).decode()
    else:
        quote[part] = mutated.hex()
    evidence = parse_azure_evidence(json.dumps(doc).encode(), "snp")
    result = evaluate_azure_evidence(evidence, S4_POLICY, Verifying(TRUST, S4.now or datetime.now(UTC)))
    if part == "hcl_report":
        mutated, raw = mutated.rstrip(b"\x00"), raw.rstrip(b"\x00")  # the claims end with "}"
    assert result.accepted is (mutated == raw)
