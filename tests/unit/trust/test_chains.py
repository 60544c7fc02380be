"""Helpers shared by the platform verifiers: raw ECDSA signatures, the content cache."""

from __future__ import annotations

import contextlib

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from verifier.trust.chains import ContentCache, raw_to_der_signature

EDGE = st.sampled_from([bytes(32), b"\x00" * 31 + b"\x01", b"\x80" + bytes(31), b"\xff" * 32, b"\x00\x80" + bytes(30)])


@given(r=st.binary(min_size=32, max_size=32) | EDGE, s=st.binary(min_size=32, max_size=32) | EDGE)
def test_raw_to_der_signature_matches_cryptography(r: bytes, s: bytes) -> None:
    want = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert raw_to_der_signature(r + s) == want


def test_content_cache_evicts_least_recently_used() -> None:
    cache: ContentCache[int] = ContentCache(max_entries=2)
    calls: list[bytes] = []

    def compute(k: bytes) -> int:
        calls.append(k)
        return len(calls)

    assert cache.get_or_compute((b"a",), lambda: compute(b"a")) == 1
    assert cache.get_or_compute((b"b",), lambda: compute(b"b")) == 2
    assert cache.get_or_compute((b"a",), lambda: compute(b"a")) == 1  # hit; "a" is now most recent
    assert cache.get_or_compute((b"c",), lambda: compute(b"c")) == 3  # evicts "b"
    assert cache.get_or_compute((b"b",), lambda: compute(b"b")) == 4  # recomputed
    assert calls == [b"a", b"b", b"c", b"b"]
    assert len(cache) == 2


def test_content_cache_does_not_store_failures() -> None:
    cache: ContentCache[int] = ContentCache()

    def boom() -> int:
        raise ValueError("bad input")

    for _ in range(2):
        with contextlib.suppress(ValueError):
            cache.get_or_compute((b"k",), boom)
    assert len(cache) == 0
