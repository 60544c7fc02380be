"""Property tests (Hypothesis) for the NVIDIA RIM verifier (trust/nvidia_rim.py, nvidia-gpu.md §4).

``verify_rim`` on arbitrary bytes, on genuine RIMs with bytes flipped, cut or extended, and on genuine RIMs with XML
fragments spliced in (markup, entities, DTD and signature pieces) raises nothing but ``nvidia.rim.*`` errors
(``EvidenceMalformed`` / ``CollateralError``); what it accepts after a mutation has the genuine RIM's measurements.
Profiles as in test_properties.py (``KEYWARD_SLOW=1`` for 5000 examples).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.errors import CollateralError, EvidenceMalformed
from verifier.trust.nvidia_rim import VerifiedRim, verify_rim
from verifier.trust.store import TrustStore, load_trust_store

SLOW: Final = os.environ.get("KEYWARD_SLOW") == "1"  # test-only: picks the Hypothesis profile
_S = settings(
    max_examples=5000 if SLOW else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RIMS: Final = Path(__file__).resolve().parents[1] / "vectors" / "nvidia" / "rim"
GENUINE: Final = {
    name: (RIMS / name).read_bytes()
    for name in ("NV_GPU_DRIVER_GH100_550.90.07.xml", "NV_GPU_VBIOS_1010_0200_882_96009F0001.xml")
}
NOW: Final = datetime(2025, 10, 24, 12, tzinfo=UTC)
FRAGMENTS: Final = (
    b"<",
    b">",
    b"/>",
    b"&",
    b"&amp;",
    b"&x;",
    b"&#0;",
    b"&#x10FFFF;",
    b"<!DOCTYPE a>",
    b'<!ENTITY x "y">',
    b"<![CDATA[x]]>",
    b"<!-- c -->",
    b"<?pi x?>",
    b"<x>",
    b"</x>",
    b'xmlns="urn:x"',
    b'xml:id="a"',
    b"<ds:Signature>",
    b"</ds:Signature>",
    b'<ds:Reference URI="#a">',
    b"\x00",
    b"\xff",
    b'"',
    b"'",
    b"=",
    b" ",
)


@cache
def _trust() -> TrustStore:
    return load_trust_store()


@cache
def _genuine(name: str) -> VerifiedRim:
    return verify_rim(GENUINE[name], _trust(), NOW)


def _only_our_errors(data: bytes) -> VerifiedRim | None:
    try:
        return verify_rim(data, _trust(), NOW)
    except (EvidenceMalformed, CollateralError) as e:
        code = e.code.value
    assert code.startswith("nvidia.rim."), code
    return None


@_S
@given(data=st.binary(max_size=4096) | st.text(max_size=2048).map(str.encode))
def test_verify_rim_arbitrary_bytes_only_our_errors(data: bytes) -> None:
    assert _only_our_errors(data) is None


@_S
@given(
    name=st.sampled_from(sorted(GENUINE)),
    flips=st.lists(st.tuples(st.integers(0, 21_100), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 21_100),
    tail=st.binary(max_size=8),
)
def test_verify_rim_byte_mutations_only_our_errors(
    name: str, flips: list[tuple[int, int]], cut: int | None, tail: bytes
) -> None:
    data = bytearray(GENUINE[name])
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    mutated = bytes(data) + tail
    if cut is not None:
        mutated = mutated[:cut]
    rim = _only_our_errors(mutated)
    if rim is not None:  # a flip the signature does not cover (whitespace in base64, a comment): same content
        assert rim.measurements == _genuine(name).measurements


@_S
@given(
    name=st.sampled_from(sorted(GENUINE)),
    splices=st.lists(st.tuples(st.integers(0, 21_100), st.sampled_from(FRAGMENTS)), min_size=1, max_size=3),
)
def test_verify_rim_spliced_markup_only_our_errors(name: str, splices: list[tuple[int, bytes]]) -> None:
    data = GENUINE[name]
    for pos, fragment in splices:
        at = pos % (len(data) + 1)
        data = data[:at] + fragment + data[at:]
    rim = _only_our_errors(data)
    if rim is not None:
        assert rim.measurements == _genuine(name).measurements
