"""SGX REPORT body (384 bytes): the enclave report inside an SGX quote and the QE report of every quote.

Parses bytes into a frozen dataclass; verifies nothing. Layout from Intel SGX SDK ``sgx_report_body_t``
(intel-dcap.md §1.2). Offsets are inside the body; add 48 for the quote offset of an SGX v3 quote.

| off | size | field        | notes                                                  |
|-----|------|--------------|--------------------------------------------------------|
|   0 |   16 | CPUSVN       |                                                        |
|  16 |    4 | MISCSELECT   | u32 LE                                                 |
|  20 |   12 | reserved     | must be zero                                           |
|  32 |   16 | ISVEXTPRODID |                                                        |
|  48 |   16 | ATTRIBUTES   | flags u64 + XFRM u64; DEBUG = byte 0 bit 1 (0x02)      |
|  64 |   32 | MRENCLAVE    |                                                        |
|  96 |   32 | reserved     | must be zero                                           |
| 128 |   32 | MRSIGNER     |                                                        |
| 160 |   32 | reserved     | must be zero                                           |
| 192 |   64 | CONFIGID     |                                                        |
| 256 |    2 | ISVPRODID    | u16 LE                                                 |
| 258 |    2 | ISVSVN       | u16 LE                                                 |
| 260 |    2 | CONFIGSVN    | u16 LE                                                 |
| 262 |   42 | reserved     | must be zero                                           |
| 304 |   16 | ISVFAMILYID  |                                                        |
| 320 |   64 | REPORTDATA   |                                                        |
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from verifier.errors import Code, EvidenceMalformed

SGX_REPORT_BODY = struct.Struct("<16sI12s16s16s32s32s32s32s64sHHH42s16s64s")
SGX_REPORT_BODY_SIZE: Final = 384
assert SGX_REPORT_BODY.size == SGX_REPORT_BODY_SIZE

#: ATTRIBUTES.FLAGS bits (byte 0 of ATTRIBUTES).
SGX_FLAG_INIT: Final = 0x01
SGX_FLAG_DEBUG: Final = 0x02
SGX_FLAG_MODE64BIT: Final = 0x04
SGX_FLAG_PROVISIONKEY: Final = 0x10
SGX_FLAG_EINITTOKENKEY: Final = 0x20
SGX_FLAG_KSS: Final = 0x80

_Z12: Final = bytes(12)
_Z32: Final = bytes(32)
_Z42: Final = bytes(42)


@dataclass(frozen=True, slots=True)
class SgxReportBody:
    """An SGX enclave report body. ``raw`` keeps the exact 384 bytes (the QE report signature covers them)."""

    cpusvn: bytes
    miscselect: int
    isvextprodid: bytes
    attributes: bytes
    mrenclave: bytes
    mrsigner: bytes
    configid: bytes
    isvprodid: int
    isvsvn: int
    configsvn: int
    isvfamilyid: bytes
    reportdata: bytes
    raw: bytes

    @property
    def debug(self) -> bool:
        return bool(self.attributes[0] & SGX_FLAG_DEBUG)

    @property
    def xfrm(self) -> bytes:
        return self.attributes[8:16]

    @property
    def miscselect_bytes(self) -> bytes:
        return self.raw[16:20]


def parse_sgx_report_body(data: bytes, *, what: str = "SGX report body") -> SgxReportBody:
    """Parse exactly 384 bytes. Raises :class:`EvidenceMalformed` on a wrong size or non-zero reserved bytes."""
    if len(data) != SGX_REPORT_BODY_SIZE:
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_TRUNCATED,
            f"{what} must be {SGX_REPORT_BODY_SIZE} bytes",
            expected=SGX_REPORT_BODY_SIZE,
            actual=len(data),
        )
    (
        cpusvn,
        miscselect,
        reserved1,
        isvextprodid,
        attributes,
        mrenclave,
        reserved2,
        mrsigner,
        reserved3,
        configid,
        isvprodid,
        isvsvn,
        configsvn,
        reserved4,
        isvfamilyid,
        reportdata,
    ) = SGX_REPORT_BODY.unpack(data)
    # Reserved bytes are zero in every genuine report; a non-zero byte means a layout we do not understand.
    if reserved1 != _Z12 or reserved2 != _Z32 or reserved3 != _Z32 or reserved4 != _Z42:
        raise EvidenceMalformed(Code.INTEL_QUOTE_RESERVED_NONZERO, f"{what} has non-zero reserved bytes")
    return SgxReportBody(
        cpusvn=cpusvn,
        miscselect=miscselect,
        isvextprodid=isvextprodid,
        attributes=attributes,
        mrenclave=mrenclave,
        mrsigner=mrsigner,
        configid=configid,
        isvprodid=isvprodid,
        isvsvn=isvsvn,
        configsvn=configsvn,
        isvfamilyid=isvfamilyid,
        reportdata=reportdata,
        raw=bytes(data),
    )
