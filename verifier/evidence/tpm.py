"""TPM 2.0 quote structures of an Azure vTPM (azure-cvm.md §6; TPM 2.0 Library Part 2): the signed TPMS_ATTEST of a
TPM2_Quote, its TPMT_SIGNATURE and the SHA-256 PCR values shipped beside it. Parses bytes into frozen dataclasses;
verifies nothing (the signature, nonce and PCR digest are :mod:`verifier.platforms.azure_cvm`'s).

TPMS_ATTEST of a quote (big-endian; N = extraData size, S = sizeofSelect):

| off      | size | field                 | rule here                                                        |
|----------|------|-----------------------|------------------------------------------------------------------|
| 0        |    4 | magic                 | ``FF 54 43 47`` (TPM_GENERATED_VALUE)                            |
| 4        |    2 | type                  | ``80 18`` (TPM_ST_ATTEST_QUOTE)                                  |
| 6        |    2 | qualifiedSigner.size  | <= 66 (a TPM2B_NAME); its bytes are kept, never compared          |
| 8        |    Q | qualifiedSigner       |                                                                  |
| 8+Q      |    2 | extraData.size        | N <= 64 (TPM2B_DATA)                                             |
| 10+Q     |    N | extraData             | the qualifying data (the verifier's nonce binding)               |
| 10+Q+N   |   17 | clockInfo             | clock u64, resetCount u32, restartCount u32, safe u8 (0 or 1)    |
| 27+Q+N   |    8 | firmwareVersion       |                                                                  |
| 35+Q+N   |    4 | pcrSelect.count       | exactly 1 bank                                                   |
| 39+Q+N   |    2 | hash                  | 0x000B (SHA-256)                                                 |
| 41+Q+N   |    1 | sizeofSelect          | S in 3..4 (PCR 0-23 or 0-31); bits above PCR 23 must be clear     |
| 42+Q+N   |    S | pcrSelect bitmap      | bit i of byte i/8 = PCR i; at least one PCR                      |
| 42+Q+N+S |    2 | pcrDigest.size        | 32                                                               |
| 44+Q+N+S |   32 | pcrDigest             | ends the structure: trailing bytes are rejected                  |

TPMT_SIGNATURE (the TPM's own encoding, accepted where a wire format carries it): sigAlg ``00 14`` (RSASSA),
hash ``00 0B`` (SHA-256), size ``01 00``, then the 256-byte signature; nothing after it. The evidence JSON of
Confidential Containers carries the bare 256-byte signature instead (:func:`parse_quote_signature`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from verifier import limits
from verifier.errors import Code, EvidenceMalformed

TPM_GENERATED_VALUE: Final = 0xFF544347
TPM_ST_ATTEST_QUOTE: Final = 0x8018
TPM_ALG_SHA256: Final = 0x000B
TPM_ALG_RSASSA: Final = 0x0014
#: Largest TPMS_ATTEST accepted (azure-cvm.md §9 step 1).
MAX_ATTEST_BYTES: Final = limits.MAX_TPM_ATTEST_BYTES
#: TPM2B_NAME holds at most a hash algorithm id and a SHA-512 digest.
MAX_NAME_BYTES: Final = 66
#: TPM2B_DATA: qualifyingData is at most the size of the largest digest (64).
MAX_EXTRA_DATA_BYTES: Final = 64
#: PCRs of the one SHA-256 bank a vTPM quotes.
PCR_COUNT: Final = 24
PCR_SIZE: Final = 32
RSA2048_SIGNATURE_SIZE: Final = 256

_U16 = struct.Struct(">H")
_HEADER = struct.Struct(">IH")
_CLOCK = struct.Struct(">QIIBQ")  # clock, resetCount, restartCount, safe, firmwareVersion
assert _CLOCK.size == 25
_SELECTION = struct.Struct(">IHB")  # count, hash, sizeofSelect
_SIGNATURE_HEADER = struct.Struct(">HHH")  # sigAlg, hash, size


@dataclass(frozen=True, slots=True)
class TpmQuote:
    """A parsed TPMS_ATTEST of type quote. ``raw`` is the exact signed message."""

    raw: bytes
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    #: Selected PCR indexes of the SHA-256 bank, ascending.
    pcr_selection: tuple[int, ...]
    pcr_digest: bytes


def _truncated(what: str, need: int, have: int) -> EvidenceMalformed:
    return EvidenceMalformed(Code.AZURE_TPM_TRUNCATED, f"TPMS_ATTEST ends inside {what}", expected=need, actual=have)


def _take(data: bytes, offset: int, size: int, what: str) -> bytes:
    if offset + size > len(data):
        raise _truncated(what, offset + size, len(data))
    return data[offset : offset + size]


def parse_tpm_quote(data: bytes) -> TpmQuote:
    """Parse a TPMS_ATTEST of a TPM2_Quote (the table above). Raises ``azure.tpm.*`` (EvidenceMalformed)."""
    if len(data) > MAX_ATTEST_BYTES:
        raise EvidenceMalformed(
            Code.AZURE_TPM_TOO_LARGE, "TPMS_ATTEST is too large", expected=f"<= {MAX_ATTEST_BYTES}", actual=len(data)
        )
    magic, kind = _HEADER.unpack(_take(data, 0, _HEADER.size, "the header"))
    if magic != TPM_GENERATED_VALUE:
        raise EvidenceMalformed(
            Code.AZURE_TPM_MAGIC_INVALID,
            "TPMS_ATTEST magic is not TPM_GENERATED_VALUE",
            expected=f"{TPM_GENERATED_VALUE:#010x}",
            actual=f"{magic:#010x}",
        )
    if kind != TPM_ST_ATTEST_QUOTE:
        raise EvidenceMalformed(
            Code.AZURE_TPM_TYPE_INVALID,
            "TPMS_ATTEST is not a quote",
            expected=f"{TPM_ST_ATTEST_QUOTE:#06x}",
            actual=f"{kind:#06x}",
        )
    at = _HEADER.size
    (name_size,) = _U16.unpack(_take(data, at, 2, "qualifiedSigner.size"))
    if name_size > MAX_NAME_BYTES:
        raise EvidenceMalformed(
            Code.AZURE_TPM_MALFORMED, "qualifiedSigner is too long", expected=f"<= {MAX_NAME_BYTES}", actual=name_size
        )
    signer = _take(data, at + 2, name_size, "qualifiedSigner")
    at += 2 + name_size
    (extra_size,) = _U16.unpack(_take(data, at, 2, "extraData.size"))
    if extra_size > MAX_EXTRA_DATA_BYTES:
        raise EvidenceMalformed(
            Code.AZURE_TPM_MALFORMED, "extraData is too long", expected=f"<= {MAX_EXTRA_DATA_BYTES}", actual=extra_size
        )
    extra = _take(data, at + 2, extra_size, "extraData")
    at += 2 + extra_size
    clock, reset_count, restart_count, safe, firmware = _CLOCK.unpack(_take(data, at, _CLOCK.size, "clockInfo"))
    if safe not in (0, 1):
        raise EvidenceMalformed(Code.AZURE_TPM_MALFORMED, "clockInfo.safe is not a TPMI_YES_NO", actual=safe)
    at += _CLOCK.size
    selection, at = _parse_selection(data, at)
    (digest_size,) = _U16.unpack(_take(data, at, 2, "pcrDigest.size"))
    if digest_size != PCR_SIZE:
        raise EvidenceMalformed(
            Code.AZURE_TPM_PCR_SELECTION_INVALID, "pcrDigest is not a SHA-256 digest", expected=32, actual=digest_size
        )
    digest = _take(data, at + 2, PCR_SIZE, "pcrDigest")
    at += 2 + PCR_SIZE
    if at != len(data):
        raise EvidenceMalformed(
            Code.AZURE_TPM_TRAILING_DATA, "bytes after the TPMS_ATTEST", expected=at, actual=len(data)
        )
    return TpmQuote(data, signer, extra, clock, reset_count, restart_count, bool(safe), firmware, selection, digest)


def _parse_selection(data: bytes, at: int) -> tuple[tuple[int, ...], int]:
    count, alg, size = _SELECTION.unpack(_take(data, at, _SELECTION.size, "pcrSelect"))
    if count != 1:
        raise EvidenceMalformed(
            Code.AZURE_TPM_PCR_SELECTION_INVALID, "the quote must select exactly one PCR bank", expected=1, actual=count
        )
    if alg != TPM_ALG_SHA256:
        raise EvidenceMalformed(
            Code.AZURE_TPM_PCR_SELECTION_INVALID,
            "the quoted PCR bank is not SHA-256",
            expected=f"{TPM_ALG_SHA256:#06x}",
            actual=f"{alg:#06x}",
        )
    if size not in (3, 4):
        raise EvidenceMalformed(
            Code.AZURE_TPM_PCR_SELECTION_INVALID, "sizeofSelect is not 3 or 4", expected="3 | 4", actual=size
        )
    bitmap = _take(data, at + _SELECTION.size, size, "the pcrSelect bitmap")
    selected = tuple(i for i in range(8 * size) if bitmap[i // 8] >> (i % 8) & 1)
    if not selected or selected[-1] >= PCR_COUNT:
        raise EvidenceMalformed(
            Code.AZURE_TPM_PCR_SELECTION_INVALID,
            "the PCR selection is empty or names a PCR above 23",
            expected="PCRs in 0..23",
            actual=bitmap.hex(),
        )
    return selected, at + _SELECTION.size + size


def parse_quote_signature(data: bytes) -> bytes:
    """The bare RSASSA-PKCS1-v1_5 signature of a quote as Confidential Containers ships it: exactly 256 bytes."""
    if len(data) != RSA2048_SIGNATURE_SIZE:
        raise EvidenceMalformed(
            Code.AZURE_TPM_SIGNATURE_MALFORMED,
            "the quote signature is not 256 bytes (RSA-2048)",
            expected=RSA2048_SIGNATURE_SIZE,
            actual=len(data),
        )
    return data


def parse_tpmt_signature(data: bytes) -> bytes:
    """A TPMT_SIGNATURE (RSASSA, SHA-256, 256 bytes) as the TPM returns it: the 256-byte signature."""
    if len(data) < _SIGNATURE_HEADER.size:
        raise EvidenceMalformed(
            Code.AZURE_TPM_SIGNATURE_MALFORMED, "TPMT_SIGNATURE is truncated", expected=6, actual=len(data)
        )
    alg, hash_alg, size = _SIGNATURE_HEADER.unpack_from(data, 0)
    if (alg, hash_alg, size) != (TPM_ALG_RSASSA, TPM_ALG_SHA256, RSA2048_SIGNATURE_SIZE):
        raise EvidenceMalformed(
            Code.AZURE_TPM_SIGNATURE_MALFORMED,
            "TPMT_SIGNATURE is not RSASSA / SHA-256 / 256 bytes",
            expected="0014 000b 0100",
            actual=data[:6].hex(),
        )
    return parse_quote_signature(data[_SIGNATURE_HEADER.size :])


def parse_pcr_values(values: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The SHA-256 bank's PCR values in index order: none (not supplied) or all 24, each 32 bytes."""
    if len(values) not in (0, PCR_COUNT) or any(len(v) != PCR_SIZE for v in values):
        raise EvidenceMalformed(
            Code.AZURE_TPM_PCR_VALUES_MALFORMED,
            "PCR values must be all 24 PCRs of the SHA-256 bank, 32 bytes each (or none)",
            expected=f"0 or {PCR_COUNT} x {PCR_SIZE} bytes",
            actual=f"{len(values)} values",
        )
    return values


__all__ = [
    "MAX_ATTEST_BYTES",
    "PCR_COUNT",
    "TpmQuote",
    "parse_pcr_values",
    "parse_quote_signature",
    "parse_tpm_quote",
    "parse_tpmt_signature",
]
