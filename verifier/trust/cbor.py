"""A minimal, strict CBOR decoder (RFC 8949) for the COSE structures Keyward reads.

Supported: major types 0-7 with *definite* lengths only: unsigned and negative integers, byte strings, UTF-8
text strings, arrays, maps, tags (kept as :class:`Tag`) and the simple values false/true/null.

Rejected with :class:`ValueError` (callers map it to their own error code): indefinite lengths (additional info
31) and the break code, reserved additional info 28-30, floats and other simple values, undefined, invalid UTF-8,
duplicate map keys (including 1 vs true and 0 vs false, which one dict cannot hold apart), map keys that are
arrays, maps or tags, nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_ITEMS` items in one document,
a string longer than :data:`MAX_STRING_BYTES`, a declared length larger than what is left of the input (checked
*before* allocating), and trailing bytes after the top item.

Non-minimal ("non-preferred") length encodings are accepted, as RFC 8949 §5.3.1 allows for a generic decoder;
what matters for COSE is that signatures cover the exact protected-header *bytes*, never a re-encoding.

Pure: no I/O. Recursion depth is capped before recursing and every length is checked against the bytes left
before anything is allocated, so hostile input can exhaust neither the stack nor memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Deepest nesting of arrays/maps/tags accepted (COSE_Sign1 with an x5chain array needs 4).
MAX_DEPTH: Final = 16
#: Most data items (every int, string, array, map, tag counts one) in one document.
MAX_ITEMS: Final = 4096
#: Largest byte or text string accepted (an x5chain certificate is ~2 KiB; a UVM payload < 1 KiB).
MAX_STRING_BYTES: Final = 1024 * 1024
#: Largest document accepted at all.
MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024

_FALSE: Final = 20
_TRUE: Final = 21
_NULL: Final = 22


@dataclass(frozen=True, slots=True)
class Tag:
    """A tagged item (major type 6): ``tag`` number and its decoded ``value``."""

    tag: int
    value: CborValue


#: What :func:`decode` returns. Maps are plain dicts (keys are ints, strings, bytes, bools or None).
CborValue = int | bytes | str | bool | None | list["CborValue"] | dict["CborKey", "CborValue"] | Tag
CborKey = int | bytes | str | bool | None


class _Decoder:
    __slots__ = ("data", "items", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.items = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise ValueError(f"CBOR truncated: need {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _head(self) -> tuple[int, int, int]:
        """Return (major type, additional info, argument) of the next item head."""
        (initial,) = self._take(1)
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            return major, info, int.from_bytes(self._take(size), "big")
        if info == 31:
            raise ValueError(f"CBOR indefinite length or break at offset {self.pos - 1} is not supported")
        raise ValueError(f"CBOR reserved additional information {info} at offset {self.pos - 1}")

    def _count(self, n: int = 1) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise ValueError(f"CBOR document has more than {MAX_ITEMS} items")

    def item(self, depth: int) -> CborValue:
        if depth > MAX_DEPTH:
            raise ValueError(f"CBOR nesting deeper than {MAX_DEPTH}")
        self._count()
        start = self.pos
        major, info, arg = self._head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            if arg > MAX_STRING_BYTES:
                raise ValueError(f"CBOR string of {arg} bytes exceeds {MAX_STRING_BYTES}")
            raw = self._take(arg)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"CBOR text string at offset {start} is not valid UTF-8") from e
        if major == 4:
            # Every element takes at least one byte: a count beyond what is left is a lie; refuse before looping.
            if arg > len(self.data) - self.pos or arg > MAX_ITEMS:
                raise ValueError(f"CBOR array of {arg} items at offset {start} exceeds the input or MAX_ITEMS")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if arg > (len(self.data) - self.pos) // 2 or arg > MAX_ITEMS:
                raise ValueError(f"CBOR map of {arg} pairs at offset {start} exceeds the input or MAX_ITEMS")
            out: dict[CborKey, CborValue] = {}
            for _ in range(arg):
                key_at = self.pos
                key = self.item(depth + 1)
                if isinstance(key, list | dict | Tag):
                    raise ValueError(f"CBOR map key at offset {key_at} is not a scalar")
                if key in out:  # also catches 1 vs true and 0 vs false, which one dict cannot hold apart
                    raise ValueError(f"CBOR duplicate map key {key!r} at offset {key_at}")
                out[key] = self.item(depth + 1)
            return out
        if major == 6:
            return Tag(arg, self.item(depth + 1))
        # major 7: simple values and floats
        if info < 24 and arg == _FALSE:
            return False
        if info < 24 and arg == _TRUE:
            return True
        if info < 24 and arg == _NULL:
            return None
        raise ValueError(f"CBOR simple value / float (info {info}) at offset {start} is not supported")


def decode(data: bytes) -> CborValue:
    """Decode exactly one CBOR item from ``data``. Raises ValueError on anything malformed or unsupported."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError("CBOR input must be bytes")
    data = bytes(data)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"CBOR document of {len(data)} bytes exceeds {MAX_DOCUMENT_BYTES}")
    if not data:
        raise ValueError("CBOR input is empty")
    dec = _Decoder(data)
    value = dec.item(0)
    if dec.pos != len(data):
        raise ValueError(f"CBOR trailing bytes: {len(data) - dec.pos} after the top-level item")
    return value


def _encode_head(major: int, arg: int) -> bytes:
    if arg < 0:
        raise ValueError("CBOR argument must be non-negative")
    if arg < 24:
        return bytes(((major << 5) | arg,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * size):
            return bytes(((major << 5) | info,)) + arg.to_bytes(size, "big")
    raise ValueError("CBOR integer does not fit in 64 bits")


def encode(value: CborValue) -> bytes:
    """Encode ``value`` with preferred (shortest) heads and definite lengths, map keys in insertion order.

    Used for the COSE ``Sig_structure`` (which must be encoded exactly like this, RFC 9052 §4.4) and by test
    builders. Raises ValueError for values :func:`decode` would not return.
    """
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _encode_head(0, value) if value >= 0 else _encode_head(1, -1 - value)
    if isinstance(value, bytes):
        return _encode_head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _encode_head(3, len(raw)) + raw
    if isinstance(value, list):
        return _encode_head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _encode_head(5, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    if isinstance(value, Tag):
        return _encode_head(6, value.tag) + encode(value.value)
    raise ValueError(f"cannot CBOR-encode {type(value).__name__}")
