"""Property tests (Hypothesis) for NVIDIA GPU/NVSwitch evidence parsing (evidence/nvidia.py).

(a) ``parse_gpu_report``, ``parse_device_chain`` and ``parse_serialized_evidence`` on arbitrary bytes raise nothing
    but ``EvidenceMalformed``.
(b) ``parse_gpu_report`` on mutated real reports (byte flips, truncation, extension) raises nothing but
    ``EvidenceMalformed``; what it accepts is laid out as the lengths say: signed ‖ signature ‖ zero trailing bytes.
Profiles as in test_properties.py (``KEYWARD_SLOW=1`` for 5000 examples).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.errors import EvidenceMalformed
from verifier.evidence.nvidia import parse_device_chain, parse_gpu_report, parse_serialized_evidence

SLOW: Final = os.environ.get("KEYWARD_SLOW") == "1"  # test-only: picks the Hypothesis profile
_S = settings(
    max_examples=5000 if SLOW else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NVIDIA: Final = Path(__file__).resolve().parents[1] / "vectors" / "nvidia"
REPORTS: Final = {
    p.name: p.read_bytes()
    for p in (
        NVIDIA / "hopperAttestationReport.bin",
        NVIDIA / "devices" / "M2-ppcie-gpu0.bin",
        NVIDIA / "devices" / "M3-blackwell-mpt-gpu0.bin",
    )
}
CHAIN: Final = (NVIDIA / "hopperCertChain.pem").read_bytes()
SERIALIZED: Final = (NVIDIA / "switch_evidence_ls10.json").read_bytes()


@_S
@given(data=st.binary(max_size=5000) | st.binary(min_size=1, max_size=300).map(lambda b: b"\x11\xe0\x01\xff" + b))
def test_parse_gpu_report_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_gpu_report(data)


@_S
@given(data=st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
def test_parse_device_chain_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_device_chain(data)


@_S
@given(data=st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
def test_parse_serialized_evidence_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceMalformed):
        parse_serialized_evidence(data)


@_S
@given(
    name=st.sampled_from(sorted(REPORTS)),
    flips=st.lists(st.tuples(st.integers(0, 4265), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 4300),
    tail=st.binary(max_size=8),
)
def test_parse_gpu_report_mutations_only_our_errors(
    name: str, flips: list[tuple[int, int]], cut: int | None, tail: bytes
) -> None:
    data = bytearray(REPORTS[name])
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    mutated = bytes(data) + tail
    if cut is not None:
        mutated = mutated[:cut]
    try:
        report = parse_gpu_report(mutated)
    except EvidenceMalformed:
        return
    r = report.response
    assert report.raw == mutated
    assert len(report.signed) == 37 + 42 + r.measurement_record_length + r.opaque_length
    assert report.signed + r.signature + report.trailing == mutated
    assert not any(report.trailing)


@_S
@given(flips=st.lists(st.tuples(st.integers(0, len(CHAIN) - 1), st.integers(1, 255)), min_size=1, max_size=3))
def test_parse_device_chain_mutations_only_our_errors(flips: list[tuple[int, int]]) -> None:
    data = bytearray(CHAIN)
    for pos, mask in flips:
        data[pos] ^= mask
    with contextlib.suppress(EvidenceMalformed):
        assert len(parse_device_chain(bytes(data))) <= 5


@_S
@given(flips=st.lists(st.tuples(st.integers(0, len(SERIALIZED) - 1), st.integers(1, 255)), min_size=1, max_size=3))
def test_parse_serialized_evidence_mutations_only_our_errors(flips: list[tuple[int, int]]) -> None:
    data = bytearray(SERIALIZED)
    for pos, mask in flips:
        data[pos] ^= mask
    with contextlib.suppress(EvidenceMalformed):
        parse_serialized_evidence(bytes(data))
