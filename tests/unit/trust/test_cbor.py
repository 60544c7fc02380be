"""The strict CBOR decoder: RFC 8949 Appendix A examples, every rejection, bounds, and fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.trust import cbor
from verifier.trust.cbor import CborValue, Tag

# RFC 8949 Appendix A (the subset this decoder supports: no floats, no undefined, no bignum semantics).
RFC_EXAMPLES: list[tuple[str, CborValue]] = [
    ("00", 0),
    ("01", 1),
    ("0a", 10),
    ("17", 23),
    ("1818", 24),
    ("1819", 25),
    ("1864", 100),
    ("1903e8", 1000),
    ("1a000f4240", 1000000),
    ("1b000000e8d4a51000", 1000000000000),
    ("1bffffffffffffffff", 18446744073709551615),
    ("3bffffffffffffffff", -18446744073709551616),
    ("20", -1),
    ("29", -10),
    ("3863", -100),
    ("3903e7", -1000),
    ("f4", False),
    ("f5", True),
    ("f6", None),
    ("c074323031332d30332d32315432303a30343a30305a", Tag(0, "2013-03-21T20:04:00Z")),
    ("c11a514b67b0", Tag(1, 1363896240)),
    ("d74401020304", Tag(23, b"\x01\x02\x03\x04")),
    ("40", b""),
    ("4401020304", b"\x01\x02\x03\x04"),
    ("60", ""),
    ("6161", "a"),
    ("6449455446", "IETF"),
    ("62225c", '"\\'),
    ("62c3bc", "\u00fc"),
    ("63e6b0b4", "\u6c34"),
    ("64f0908591", "\U00010151"),
    ("80", []),
    ("83010203", [1, 2, 3]),
    ("8301820203820405", [1, [2, 3], [4, 5]]),
    ("a0", {}),
    ("a201020304", {1: 2, 3: 4}),
    ("a26161016162820203", {"a": 1, "b": [2, 3]}),
    ("826161a161626163", ["a", {"b": "c"}]),
]


@pytest.mark.parametrize(("hex_", "value"), RFC_EXAMPLES, ids=[h for h, _ in RFC_EXAMPLES])
def test_decode_rfc8949_examples(hex_: str, value: CborValue) -> None:
    decoded = cbor.decode(bytes.fromhex(hex_))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(("hex_", "value"), RFC_EXAMPLES, ids=[h for h, _ in RFC_EXAMPLES])
def test_encode_rfc8949_examples_preferred_serialization(hex_: str, value: CborValue) -> None:
    assert cbor.encode(value).hex() == hex_


def test_decode_accepts_non_preferred_lengths() -> None:
    # 0 as a 1-, 2-, 4- and 8-byte argument; a 1-byte string with a 2-byte length.
    for data in ("1800", "190000", "1a00000000", "1b0000000000000000"):
        assert cbor.decode(bytes.fromhex(data)) == 0
    assert cbor.decode(bytes.fromhex("59000161")) == b"a"


def test_decode_nested_depth_at_limit_ok() -> None:
    data = b"\x81" * cbor.MAX_DEPTH + b"\x00"
    value = cbor.decode(data)
    for _ in range(cbor.MAX_DEPTH):
        assert isinstance(value, list)
        value = value[0]
    assert value == 0


REJECTED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated_head", bytes.fromhex("19ff")),
    ("truncated_uint64", bytes.fromhex("1b00000000")),
    ("truncated_bstr", bytes.fromhex("44010203")),
    ("truncated_array", bytes.fromhex("830102")),
    ("truncated_map_value", bytes.fromhex("a2010203")),
    ("trailing_bytes", bytes.fromhex("0000")),
    ("trailing_after_array", bytes.fromhex("8001")),
    ("indefinite_bstr", bytes.fromhex("5f42010243030405ff")),
    ("indefinite_tstr", bytes.fromhex("7f657374726561646d696e67ff")),
    ("indefinite_array", bytes.fromhex("9f0102ff")),
    ("indefinite_map", bytes.fromhex("bf616101ff")),
    ("break_alone", bytes.fromhex("ff")),
    ("reserved_info_28", bytes.fromhex("1c")),
    ("reserved_info_29_bstr", bytes.fromhex("5d")),
    ("reserved_info_30_array", bytes.fromhex("9e")),
    ("uint_indefinite", bytes.fromhex("1f")),
    ("float16", bytes.fromhex("f93c00")),
    ("float32", bytes.fromhex("fa47c35000")),
    ("float64", bytes.fromhex("fb3ff199999999999a")),
    ("undefined", bytes.fromhex("f7")),
    ("simple_16", bytes.fromhex("f0")),
    ("simple_255", bytes.fromhex("f8ff")),
    ("invalid_utf8", bytes.fromhex("62c328")),
    ("utf8_surrogate", bytes.fromhex("63eda080")),
    ("duplicate_int_key", bytes.fromhex("a201020103")),
    ("duplicate_text_key", bytes.fromhex("a2616101616102")),
    ("bool_int_key_alias", bytes.fromhex("a201f5f5f4")),
    ("array_key", bytes.fromhex("a1800a")),
    ("map_key", bytes.fromhex("a1a00a")),
    ("tag_key", bytes.fromhex("a1c1010a")),
    ("huge_bstr_length", bytes.fromhex("5bffffffffffffffff")),
    ("bstr_length_beyond_input", bytes.fromhex("5a0000ffff") + b"\x00" * 16),
    ("bstr_over_max", bytes.fromhex("5a") + (cbor.MAX_STRING_BYTES + 1).to_bytes(4, "big")),
    ("huge_array_count", bytes.fromhex("9bffffffffffffffff")),
    ("array_count_beyond_input", bytes.fromhex("9a00010000") + b"\x00" * 8),
    ("huge_map_count", bytes.fromhex("bbffffffffffffffff")),
    ("map_count_beyond_input", bytes.fromhex("b900ff0102")),
    ("too_deep_arrays", b"\x81" * (cbor.MAX_DEPTH + 1) + b"\x00"),
    ("too_deep_tags", b"\xc1" * (cbor.MAX_DEPTH + 1) + b"\x00"),
    ("very_deep", b"\x81" * 100_000),
    ("too_many_items", b"\x99" + (cbor.MAX_ITEMS).to_bytes(2, "big") + b"\x00" * cbor.MAX_ITEMS),
]


@pytest.mark.parametrize("data", [d for _, d in REJECTED], ids=[i for i, _ in REJECTED])
def test_decode_rejects(data: bytes) -> None:
    with pytest.raises(ValueError, match="CBOR"):
        cbor.decode(data)


def test_decode_rejects_document_over_max() -> None:
    data = b"\x5a" + (cbor.MAX_DOCUMENT_BYTES).to_bytes(4, "big") + b"\x00" * cbor.MAX_DOCUMENT_BYTES
    with pytest.raises(ValueError, match="exceeds"):
        cbor.decode(data)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(ValueError, match="bytes"):
        cbor.decode("a0")  # type: ignore[arg-type]


def test_encode_rejects_unsupported_values() -> None:
    with pytest.raises(ValueError, match="cannot CBOR-encode"):
        cbor.encode(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="64 bits"):
        cbor.encode(2**64)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20)
)
_keys = st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=8) | st.binary(max_size=8)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(_keys, children, max_size=5)
        | st.builds(Tag, st.integers(min_value=0, max_value=2**64 - 1), children)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_encode_decode_round_trip(value: CborValue) -> None:
    data = cbor.encode(value)
    assert cbor.decode(data) == value
    assert cbor.encode(cbor.decode(data)) == data


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=256))
def test_decode_arbitrary_bytes_raise_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        cbor.decode(data)


@settings(max_examples=500, deadline=None)
@given(_values, st.data())
def test_decode_mutated_valid_documents_raise_only_value_error(value: CborValue, data: st.DataObject) -> None:
    raw = bytearray(cbor.encode(value))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[index] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    with contextlib.suppress(ValueError):
        cbor.decode(bytes(raw[:cut]))
