"""Linear-time text codecs for untrusted input: ASCII whitespace stripping, hex detection, PEM blocks.

No regular expressions: a lazy regex over attacker-controlled PEM text backtracks polynomially (found by the
property tests). Every function here is a single pass (or a bounded number of passes) over its input.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

_WHITESPACE: Final = b" \t\n\r\x0b\x0c"
_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"


def strip_whitespace(data: bytes) -> bytes:
    """``data`` with every ASCII whitespace byte removed."""
    return data.translate(None, _WHITESPACE)


def is_hex_text(data: bytes) -> bool:
    """True iff ``data`` (whitespace already removed) is a non-empty run of hex digits."""
    return bool(data) and not data.translate(None, _HEX_DIGITS)


def pem_blocks(data: bytes, label: str) -> list[bytes]:
    """Decode every ``-----BEGIN {label}-----`` ... ``-----END {label}-----`` block to DER bytes.

    Text between blocks (NUL terminators, comments) is ignored. Raises ValueError on an unterminated block or
    invalid base64 inside one.
    """
    begin = f"-----BEGIN {label}-----".encode()
    end = f"-----END {label}-----".encode()
    out: list[bytes] = []
    pos = 0
    while (start := data.find(begin, pos)) >= 0:
        body_start = start + len(begin)
        stop = data.find(end, body_start)
        if stop < 0:
            raise ValueError(f"unterminated PEM {label} block")
        try:
            out.append(base64.b64decode(strip_whitespace(data[body_start:stop]), validate=True))
        except binascii.Error as e:
            raise ValueError(f"invalid base64 in PEM {label} block") from e
        pos = stop + len(end)
    return out
