"""Intel DCAP quotes: SGX quote v3, TDX quote v4, quote v5 (body types 1-4), and their signature data.

Turns untrusted bytes (raw binary or hex text) into a :class:`Quote`. Every length is checked before it is
used; any malformed input raises :class:`~verifier.errors.EvidenceMalformed` with a stable code. Nothing here
verifies a signature or consults collateral: that is :mod:`verifier.platforms.intel_dcap`.

Header (48 bytes, intel-dcap.md §1.1):

| off | size | field                                   |
|-----|------|-----------------------------------------|
|   0 |    2 | version (3, 4, 5)                       |
|   2 |    2 | attestation key type (2 = ECDSA P-256)  |
|   4 |    4 | TEE type (0 SGX, 0x81 TDX)              |
|   8 |    2 | QE SVN (v3; reserved in v4/v5)          |
|  10 |    2 | PCE SVN (v3; reserved in v4/v5)         |
|  12 |   16 | QE vendor ID (Intel: 939a7233...0607)   |
|  28 |   20 | user data (first 16 bytes: QE ID)       |

Body (§1.2): v3 SGX report at 48 (384 B); v4 TD report at 48 (584 B); v5 ``body_type`` u16 at 48,
``body_size`` u32 at 50, body at 54. The quote signature covers ``[0, end of body)``. Then ``u32`` signature
data length and the signature data (§1.3):

v3:    0 quote sig[64] | 64 attestation key[64] | 128 QE report[384] | 512 QE report sig[64] |
       576 auth size u16 N | 578 auth[N] | cert type u16 (=5) | cert size u32 | PCK chain PEM
v4/5:  0 quote sig[64] | 64 attestation key[64] | 128 cert type u16 (=6) | 130 size u32 | 134 {
       QE report[384] | QE report sig[64] | auth size u16 N | auth[N] | cert type u16 (=5) | size u32 | PEM }

Rules decided here:

* Bytes after ``signature_data_len`` are ignored, never parsed (Intel's QVL does the same; real quote buffers
  carry zero padding and, in one go-tdx-guest sample, text). They are covered by no signature; their count is
  reported as ``trailing_bytes``. The whole buffer is still bounded by ``MAX_QUOTE_BYTES``.
* Inside the signature data every byte must be accounted for: a nested length that overruns its container, or
  a container with bytes left over, is ``intel.quote.length_invalid``. A buffer that simply ends early is
  ``intel.quote.truncated``.
* Hex text is accepted (optional ``0x`` prefix, surrounding whitespace); anything else is treated as binary.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from typing import Final

from verifier import limits
from verifier.encoding import is_hex_text, strip_whitespace
from verifier.errors import Code, EvidenceMalformed
from verifier.evidence.sgx import SGX_REPORT_BODY_SIZE, SgxReportBody, parse_sgx_report_body
from verifier.evidence.tdx import (
    TD_REPORT10_SIZE,
    TD_REPORT15_EX_SIZE,
    TD_REPORT15_SIZE,
    TdReportBody,
    parse_td_report_body,
)

HEADER = struct.Struct("<HHIHH16s20s")
HEADER_SIZE: Final = 48
assert HEADER.size == HEADER_SIZE

V5_BODY_DESCRIPTOR = struct.Struct("<HI")  # body_type, body_size at quote offset 48
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
CERT_DATA_HEADER = struct.Struct("<HI")  # certification data type, size

TEE_TYPE_SGX: Final = 0x00000000
TEE_TYPE_TDX: Final = 0x00000081
ATT_KEY_TYPE_ECDSA_P256: Final = 2
INTEL_QE_VENDOR_ID: Final = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

BODY_TYPE_SGX: Final = 1
BODY_TYPE_TD10: Final = 2
BODY_TYPE_TD15: Final = 3
BODY_TYPE_TD15_EX: Final = 4
_BODY_SIZES: Final = {
    BODY_TYPE_SGX: SGX_REPORT_BODY_SIZE,
    BODY_TYPE_TD10: TD_REPORT10_SIZE,
    BODY_TYPE_TD15: TD_REPORT15_SIZE,
    BODY_TYPE_TD15_EX: TD_REPORT15_EX_SIZE,
}

CERT_TYPE_PCK_CHAIN: Final = 5
CERT_TYPE_QE_REPORT: Final = 6

_SIG: Final = 64  # raw r||s, 2 x 32 bytes big-endian
_KEY: Final = 64  # raw x||y, no 0x04 prefix


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes

    @property
    def is_tdx(self) -> bool:
        return self.tee_type == TEE_TYPE_TDX


@dataclass(frozen=True, slots=True)
class QeReportCertificationData:
    """The QE report and what binds the attestation key to the PCK (§1.3)."""

    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_cert_type: int
    pck_chain_pem: bytes


@dataclass(frozen=True, slots=True)
class QuoteSignatureData:
    signature: bytes
    attestation_key: bytes
    certification: QeReportCertificationData


@dataclass(frozen=True, slots=True)
class Quote:
    """A parsed DCAP quote. ``signed`` is the exact byte range the attestation key signs."""

    header: QuoteHeader
    body_type: int
    body: SgxReportBody | TdReportBody
    signed: bytes
    signature_data: QuoteSignatureData
    trailing_bytes: int

    @property
    def is_tdx(self) -> bool:
        return self.header.is_tdx

    @property
    def sgx_body(self) -> SgxReportBody:
        if not isinstance(self.body, SgxReportBody):
            raise TypeError("not an SGX quote")
        return self.body

    @property
    def td_body(self) -> TdReportBody:
        if not isinstance(self.body, TdReportBody):
            raise TypeError("not a TDX quote")
        return self.body


def decode_quote_bytes(data: bytes) -> bytes:
    """Return binary quote bytes from raw binary or hex text (optional ``0x``, whitespace allowed).

    A binary quote starts with a little-endian version (``03 00``, ``04 00``, ``05 00``), which is never an
    ASCII hex digit pair, so the two encodings cannot be confused.
    """
    if len(data) > limits.MAX_HEX_EVIDENCE_CHARS:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_TOO_LARGE, "evidence is too large", expected=limits.MAX_QUOTE_BYTES, actual=len(data)
        )
    if data[:1] in (b"\x03", b"\x04", b"\x05"):
        return data
    digits = strip_whitespace(data)
    if digits[:2] in (b"0x", b"0X"):
        digits = digits[2:]
    if not is_hex_text(digits):
        return data
    try:
        return binascii.unhexlify(digits)
    except binascii.Error as e:
        raise EvidenceMalformed(Code.INTEL_QUOTE_ENCODING, "hex evidence has an odd number of digits") from e


def _truncated(what: str, need: int, have: int) -> EvidenceMalformed:
    return EvidenceMalformed(
        Code.INTEL_QUOTE_TRUNCATED, f"quote ends inside {what}", expected=f">= {need} bytes", actual=f"{have} bytes"
    )


def _overrun(what: str, declared: int, available: int) -> EvidenceMalformed:
    return EvidenceMalformed(
        Code.INTEL_QUOTE_LENGTH_INVALID,
        f"{what} length overruns its container",
        expected=f"<= {available}",
        actual=declared,
    )


def parse_quote(data: bytes) -> Quote:
    """Parse a DCAP quote (binary or hex). Raises :class:`EvidenceMalformed` with a stable code."""
    buf = decode_quote_bytes(data if type(data) is bytes else bytes(data))
    size = len(buf)
    if size > limits.MAX_QUOTE_BYTES:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_TOO_LARGE, "quote is too large", expected=limits.MAX_QUOTE_BYTES, actual=size
        )
    if size < HEADER_SIZE:
        raise _truncated("the header", HEADER_SIZE, size)

    # 1. Header (§1.1) and the checks of §4 step 1 that need only the header.
    version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data = HEADER.unpack_from(buf, 0)
    if version not in (3, 4, 5):
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_UNSUPPORTED_VERSION, "unknown quote version", expected="3, 4 or 5", actual=version
        )
    if key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_UNSUPPORTED_KEY_TYPE,
            "attestation key type is not ECDSA P-256",
            expected=ATT_KEY_TYPE_ECDSA_P256,
            actual=key_type,
        )
    if tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX) or (version == 3 and tee_type != TEE_TYPE_SGX):
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE,
            "TEE type not valid for this quote version",
            expected="0x0 (SGX) or 0x81 (TDX, v4/v5)",
            actual=hex(tee_type),
        )
    if version == 4 and tee_type != TEE_TYPE_TDX:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE, "quote v4 is TDX only", expected="0x81", actual=hex(tee_type)
        )
    if vendor != INTEL_QE_VENDOR_ID:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_VENDOR_MISMATCH, "QE vendor ID is not Intel's", expected=INTEL_QE_VENDOR_ID, actual=vendor
        )
    header = QuoteHeader(version, key_type, tee_type, qe_svn, pce_svn, vendor, user_data)

    # 2. Body (§1.2).
    if version == 5:
        if size < HEADER_SIZE + V5_BODY_DESCRIPTOR.size:
            raise _truncated("the v5 body descriptor", HEADER_SIZE + V5_BODY_DESCRIPTOR.size, size)
        body_type, body_size = V5_BODY_DESCRIPTOR.unpack_from(buf, HEADER_SIZE)
        expected_size = _BODY_SIZES.get(body_type)
        if expected_size is None:
            raise EvidenceMalformed(
                Code.INTEL_QUOTE_BODY_TYPE_INVALID, "unknown v5 body type", expected="1, 2, 3 or 4", actual=body_type
            )
        if (body_type == BODY_TYPE_SGX) != (tee_type == TEE_TYPE_SGX):
            raise EvidenceMalformed(
                Code.INTEL_QUOTE_BODY_TYPE_INVALID,
                "body type does not match TEE type",
                expected="1 for SGX, 2-4 for TDX",
                actual=body_type,
            )
        if body_size != expected_size:
            raise EvidenceMalformed(
                Code.INTEL_QUOTE_BODY_SIZE_INVALID,
                "body size does not match body type",
                expected=expected_size,
                actual=body_size,
            )
        body_off = HEADER_SIZE + V5_BODY_DESCRIPTOR.size
    else:
        body_type = BODY_TYPE_SGX if version == 3 else BODY_TYPE_TD10
        body_size = _BODY_SIZES[body_type]
        body_off = HEADER_SIZE
    body_end = body_off + body_size
    if size < body_end:
        raise _truncated("the report body", body_end, size)
    body_bytes = buf[body_off:body_end]
    body: SgxReportBody | TdReportBody
    if body_type == BODY_TYPE_SGX:
        body = parse_sgx_report_body(body_bytes, what="enclave report")
    else:
        body = parse_td_report_body(body_bytes)

    # 3. Signature data (§1.3). Bytes past its declared length are ignored (see module docstring).
    if size < body_end + U32.size:
        raise _truncated("the signature data length", body_end + U32.size, size)
    (sig_len,) = U32.unpack_from(buf, body_end)
    sig_off = body_end + U32.size
    if sig_len > size - sig_off:
        raise _truncated("the signature data", sig_off + sig_len, size)
    sig_data = _parse_signature_data(buf[sig_off : sig_off + sig_len], version)
    return Quote(
        header=header,
        body_type=body_type,
        body=body,
        signed=buf[:body_end],
        signature_data=sig_data,
        trailing_bytes=size - sig_off - sig_len,
    )


def _parse_signature_data(sd: bytes, version: int) -> QuoteSignatureData:
    n = len(sd)
    if n < _SIG + _KEY:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_LENGTH_INVALID,
            "signature data too short for signature and key",
            expected=f">= {_SIG + _KEY}",
            actual=n,
        )
    signature = sd[0:_SIG]
    att_key = sd[_SIG : _SIG + _KEY]
    off = _SIG + _KEY
    if version == 3:
        cert = _parse_qe_report_cert_data(sd, off, n, outer=True)
    else:
        if n < off + CERT_DATA_HEADER.size:
            raise _overrun("certification data header", off + CERT_DATA_HEADER.size, n)
        cert_type, cert_size = CERT_DATA_HEADER.unpack_from(sd, off)
        if cert_type != CERT_TYPE_QE_REPORT:
            raise EvidenceMalformed(
                Code.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED,
                "outer certification data must be QE report certification data",
                expected=CERT_TYPE_QE_REPORT,
                actual=cert_type,
            )
        start = off + CERT_DATA_HEADER.size
        if cert_size > n - start:
            raise _overrun("QE report certification data", cert_size, n - start)
        if start + cert_size != n:
            raise EvidenceMalformed(
                Code.INTEL_QUOTE_LENGTH_INVALID,
                "bytes left over after certification data",
                expected=n - start,
                actual=cert_size,
            )
        cert = _parse_qe_report_cert_data(sd, start, start + cert_size, outer=False)
    return QuoteSignatureData(signature=signature, attestation_key=att_key, certification=cert)


def _parse_qe_report_cert_data(sd: bytes, off: int, end: int, *, outer: bool) -> QeReportCertificationData:
    """Parse QE report + signature + auth data + PCK certification data occupying exactly ``sd[off:end]``."""
    fixed = SGX_REPORT_BODY_SIZE + _SIG + U16.size
    if end - off < fixed:
        raise _overrun("QE report certification data", fixed, end - off)
    qe_report = parse_sgx_report_body(sd[off : off + SGX_REPORT_BODY_SIZE], what="QE report")
    off += SGX_REPORT_BODY_SIZE
    qe_sig = sd[off : off + _SIG]
    off += _SIG
    (auth_len,) = U16.unpack_from(sd, off)
    off += U16.size
    if auth_len > limits.MAX_QE_AUTH_DATA_BYTES:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_LENGTH_INVALID,
            "QE auth data is too large",
            expected=f"<= {limits.MAX_QE_AUTH_DATA_BYTES}",
            actual=auth_len,
        )
    if auth_len > end - off:
        raise _overrun("QE auth data", auth_len, end - off)
    auth = sd[off : off + auth_len]
    off += auth_len
    if end - off < CERT_DATA_HEADER.size:
        raise _overrun("PCK certification data header", CERT_DATA_HEADER.size, end - off)
    cert_type, cert_size = CERT_DATA_HEADER.unpack_from(sd, off)
    off += CERT_DATA_HEADER.size
    if cert_type != CERT_TYPE_PCK_CHAIN:
        where = "certification data" if outer else "inner certification data"
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED,
            f"{where} must be a PCK certificate chain",
            expected=CERT_TYPE_PCK_CHAIN,
            actual=cert_type,
        )
    if cert_size > limits.MAX_CERT_DATA_BYTES:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_LENGTH_INVALID,
            "PCK certification data is too large",
            expected=f"<= {limits.MAX_CERT_DATA_BYTES}",
            actual=cert_size,
        )
    if cert_size > end - off:
        raise _overrun("PCK certification data", cert_size, end - off)
    if off + cert_size != end:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_LENGTH_INVALID,
            "bytes left over after PCK certification data",
            expected=end - off,
            actual=cert_size,
        )
    return QeReportCertificationData(
        qe_report=qe_report,
        qe_report_signature=qe_sig,
        qe_auth_data=auth,
        pck_cert_type=cert_type,
        pck_chain_pem=sd[off:end],
    )
