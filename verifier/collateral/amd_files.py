"""Read AMD SEV-SNP inputs from files: the VCEK/VLEK (PEM or DER, single leaf or a chain), a certificate table
(SNP_GET_EXT_REPORT buffer or configfs-tsm auxblob, raw or base64), and configfs-tsm JSON dumps
``{"outblob", "auxblob", "provider"}`` (base64 or base64url). I/O at the edge; verification gets bytes.

A supplied ARK/ASK/ASVK is ignored: only the pinned roots in ``vendor_roots/`` are trusted.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from verifier.encoding import pem_blocks, strip_whitespace
from verifier.errors import Code, EvidenceMalformed, KeywardError, VerificationFailed
from verifier.trust.amd_certs import der_element, load_leaf


def leaf_from_certificates(data: bytes) -> bytes:
    """The VCEK/VLEK among PEM or DER certificates: the one certificate with an EC key (ARK/ASK/ASVK are RSA)."""
    ders = pem_blocks(data, "CERTIFICATE") if b"-----BEGIN" in data else split_der_certificates(data)
    for der in ders:
        try:
            load_leaf(der)
        except KeywardError:
            continue
        return der
    raise VerificationFailed(Code.SNP_LEAF_MISSING, "no VCEK/VLEK (EC certificate) found in the supplied certificates")


def split_der_certificates(data: bytes) -> list[bytes]:
    """Concatenated DER certificates (a KDS-style chain saved as DER) split at SEQUENCE boundaries; a single
    certificate is a list of one. Malformed framing yields the bytes as one item (the loader then rejects it)."""
    out: list[bytes] = []
    off = 0
    try:
        while off < len(data):
            tag, _, end = der_element(data, off)
            if tag != 0x30:
                raise ValueError("not a SEQUENCE")
            out.append(data[off:end])
            off = end
    except ValueError:
        return [data]
    return out or [data]


def _b64(text: str | bytes) -> bytes:
    raw = strip_whitespace(text.encode() if isinstance(text, str) else text)
    raw = raw.replace(b"-", b"+").replace(b"_", b"/")
    return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)


def cert_table_bytes(data: bytes) -> bytes:
    """A certificate table as raw bytes; base64 text is decoded (a raw table starts with a binary GUID)."""
    try:
        return _b64(data) if data and all(32 <= b < 127 or b in b"\r\n" for b in data[:64]) else data
    except (binascii.Error, ValueError):
        return data


@dataclass(frozen=True, slots=True)
class TsmReport:
    report: bytes
    cert_table: bytes | None
    provider: str | None


def parse_tsm_dump(data: bytes) -> TsmReport | None:
    """A configfs-tsm JSON dump, or None if ``data`` is not one."""
    if data.lstrip()[:1] != b"{":
        return None
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or "outblob" not in doc:
            return None
        aux = doc.get("auxblob")
        return TsmReport(_b64(doc["outblob"]), _b64(aux) if aux else None, doc.get("provider"))
    except (ValueError, TypeError, binascii.Error) as e:
        raise EvidenceMalformed(Code.SNP_REPORT_ENCODING, f"configfs-tsm dump does not decode: {e}") from e
