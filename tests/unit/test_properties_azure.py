"""Property tests (Hypothesis) for the Azure CVM parsers: HCL reports, TD reports, runtime claims, TPM quotes,
quote signatures and the evidence JSON raise nothing but ``EvidenceMalformed`` on arbitrary bytes and on real
vectors cut short or with bytes flipped. Profiles as in test_properties.py (``KEYWARD_SLOW=1`` for 5000 examples).
"""

from __future__ import annotations

import contextlib
import os
from typing import Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.vectors import AZURE_CASES
from verifier.errors import EvidenceMalformed
from verifier.evidence.azure_cvm import parse_azure_evidence
from verifier.evidence.azure_hcl import parse_hcl_report, parse_runtime_claims, parse_td_report
from verifier.evidence.tpm import parse_tpm_quote, parse_tpmt_signature

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
