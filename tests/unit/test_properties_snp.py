"""Property tests (Hypothesis) for SEV-SNP inputs: reports, certificate tables, VCEK/VLEK certificates.

(a) ``parse_snp_report`` and ``parse_cert_table`` on arbitrary bytes raise nothing but ``EvidenceMalformed``.
(b) ``evaluate_snp_report`` on mutated real reports (byte flips, truncation, extension) never raises and accepts
    only when the signed bytes 0x000..0x29F and the signature are unchanged.
(c) ``load_leaf`` + ``parse_amd_extensions`` on mutated real VCEKs raise nothing but ``VerificationFailed``.
Profiles as in test_properties.py (``KEYWARD_SLOW=1`` for 5000 examples).
"""

from __future__ import annotations

import contextlib
import os
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.vectors import AMD_CASES
from verifier.appraisal.snp import SnpPolicy
from verifier.errors import EvidenceMalformed, VerificationFailed
from verifier.evidence.snp import REPORT_SIZE, SIGNED_SIZE, parse_cert_table, parse_snp_report
from verifier.platforms.evaluation import evaluate_snp_report
from verifier.trust.amd_certs import load_leaf, parse_amd_extensions
from verifier.trust.store import load_trust_store

SLOW: Final = os.environ.get("KEYWARD_SLOW") == "1"  # test-only: picks the Hypothesis profile
_S = settings(
    max_examples=5000 if SLOW else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TRUST: Final = load_trust_store()
CASES: Final = {c.id: c for c in AMD_CASES if c.id in ("O1", "O2", "O3", "M1", "T1")}
#: M1 and T1 run Milan SNP SPL 8, below the built-in AMD-SB-3019 floor: lifted here, these properties are about
#: what is authenticated, not about the TCB.
POLICY: Final = SnpPolicy(allowed_vmpls=frozenset({0, 1}), min_tcb_override={"milan": {}})


@_S
@given(data=st.binary(max_size=2 * REPORT_SIZE) | st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE))
def test_parse_snp_report_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_snp_report(data)


@_S
@given(data=st.binary(max_size=4096))
def test_parse_cert_table_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_cert_table(data)


@_S
@given(
    case_id=st.sampled_from(sorted(CASES)),
    flips=st.lists(st.tuples(st.integers(0, REPORT_SIZE - 1), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, REPORT_SIZE + 8),
)
def test_evaluate_snp_report_mutations_never_raise(case_id: str, flips: list[tuple[int, int]], cut: int | None) -> None:
    case = CASES[case_id]
    original = case.report.read_bytes()
    data = bytearray(original)
    for pos, mask in flips:
        data[pos] ^= mask
    mutated = bytes(data) if cut is None else (bytes(data) + bytes(8))[:cut]
    result = evaluate_snp_report(
        mutated, leaf_der=case.leaf_der(), cert_table=None, trust=TRUST, now=case.now, policy=POLICY
    )
    if result.accepted:
        # Accepting a mutated report is only possible if nothing authenticated changed.
        assert mutated[:SIGNED_SIZE] == original[:SIGNED_SIZE]
        assert mutated[0x2A0:0x330] == original[0x2A0:0x330]


def test_evaluate_snp_report_unmutated_cases_accepted() -> None:
    for case in CASES.values():
        r = evaluate_snp_report(
            case.report.read_bytes(),
            leaf_der=case.leaf_der(),
            cert_table=None,
            trust=TRUST,
            now=case.now,
            policy=POLICY,
        )
        assert r.accepted, (case.id, r.reasons)


@_S
@given(
    case_id=st.sampled_from(sorted(CASES)),
    flips=st.lists(st.tuples(st.integers(0, 1400), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_load_leaf_mutated_vcek_only_our_errors(case_id: str, flips: list[tuple[int, int]]) -> None:
    der = bytearray(CASES[case_id].leaf_der())
    for pos, mask in flips:
        der[pos % len(der)] ^= mask
    with contextlib.suppress(VerificationFailed):
        parse_amd_extensions(load_leaf(bytes(der)))


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_evaluate_snp_report_any_single_signed_byte_flip_rejected(case_id: str) -> None:
    # Exhaustive over positions would be 672 x 5 verifications; one flip per 16 bytes covers every field.
    case = CASES[case_id]
    original = case.report.read_bytes()
    for pos in range(0, SIGNED_SIZE, 16):
        data = bytearray(original)
        data[pos] ^= 0x01
        r = evaluate_snp_report(
            bytes(data), leaf_der=case.leaf_der(), cert_table=None, trust=TRUST, now=case.now, policy=POLICY
        )
        assert not r.verified, (case_id, hex(pos))
