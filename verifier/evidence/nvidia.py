"""NVIDIA GPU / NVSwitch evidence: the attestation report (SPDM 1.1 GET_MEASUREMENTS request + MEASUREMENTS
response), the device certificate chain as NVML returns it, and NVIDIA's "serialized evidence" JSON. Parses bytes
into frozen dataclasses; verifies nothing (no signature, chain, nonce, FWID or RIM check: nvidia-gpu.md §2-§5 are
the verifier's). Pure: no I/O, no clock.

Report = request (37 bytes) ‖ response (offsets of the response relative to byte 37; integers little-endian):

| off (report) | off (resp) | size | field                                                           |
|--------------|------------|------|-----------------------------------------------------------------|
|    0         |            |    1 | request SPDMVersion (0x11)                                      |
|    1         |            |    1 | request RequestResponseCode (0xE0 GET_MEASUREMENTS)             |
|    2         |            |    1 | request Param1 (0x01: signature requested)                      |
|    3         |            |    1 | request Param2 (0xFF: all measurements)                         |
|    4         |            |   32 | request Nonce (the verifier's)                                  |
|   36         |            |    1 | request SlotIDParam (bits 7:4 reserved)                         |
|   37         |     0      |    1 | response SPDMVersion (0x11)                                     |
|   38         |     1      |    1 | response RequestResponseCode (0x60 MEASUREMENTS)                |
|   39         |     2      |    1 | response Param1 (reserved: 0 when all measurements are asked)   |
|   40         |     3      |    1 | response Param2 (bits 3:0 slot id; 7:4 reserved)                |
|   41         |     4      |    1 | NumberOfBlocks N                                                |
|   42         |     5      |    3 | MeasurementRecordLength L1 (uint24)                             |
|   45         |     8      |   L1 | MeasurementRecord: N blocks                                     |
|   45+L1      |     8+L1   |   32 | responder Nonce (GPU-chosen; only feeds the signature)          |
|   77+L1      |    40+L1   |    2 | OpaqueLength L2                                                 |
|   79+L1      |    42+L1   |   L2 | OpaqueData: NVIDIA TLVs ``Type(2) Length(2) Value``             |
|   79+L1+L2   |    42+L1+L2|   96 | Signature r ‖ s (48 + 48 bytes, big-endian), ECDSA P-384        |

Measurement block: ``Index(1) MeasurementSpecification(1)=1 MeasurementSize(2)`` then the DMTF measurement
``ValueType(1) ValueSize(2)=48 Value(48)``.

Signed bytes (§2): ``report[0 : 37 + 42 + L1 + L2]`` — everything before the signature. The signature sits where
the response's own lengths say, never at "the last 96 bytes" (pitfall P3: real reports can carry a trailing byte).
Bytes after the signature: non-zero ones are rejected (``nvidia.report.trailing_data``); zero padding is kept in
:attr:`GpuReport.trailing` so that the verifier's policy can decide (spec P3: tolerate zero padding only by policy).

Structural rules enforced here (§2): SPDM 1.1 codes and parameters, N ≥ 1, blocks exactly fill L1 and are N in
number, no duplicate or zero index, MeasurementSpecification 1, ValueSize 48 = MeasurementSize - 3, opaque TLVs
exactly fill L2, each known TLV type at most once and of its documented size, r and s in [1, n-1] of P-384.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
import struct
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, Protocol

from verifier import limits
from verifier.encoding import is_hex_text, strip_whitespace
from verifier.errors import Code, EvidenceMalformed

REQUEST_SIZE: Final = 37
REQUEST = struct.Struct("<BBBB32sB")
assert REQUEST.size == REQUEST_SIZE
#: Response header up to and including MeasurementRecordLength (a uint24 read as 3 bytes).
RESPONSE_HEADER = struct.Struct("<BBBBB3s")
assert RESPONSE_HEADER.size == 8
#: Responder nonce + OpaqueLength, after the measurement record.
RESPONSE_MIDDLE = struct.Struct("<32sH")
assert RESPONSE_MIDDLE.size == 34
BLOCK_HEADER = struct.Struct("<BBHBH")  # Index, MeasurementSpecification, MeasurementSize, ValueType, ValueSize
assert BLOCK_HEADER.size == 7
#: A well-formed block, header and 48-byte digest: what every real report's record is made of.
BLOCK = struct.Struct("<BBHBH48s")
assert BLOCK.size == 55
TLV_HEADER = struct.Struct("<HH")
assert TLV_HEADER.size == 4
SIGNATURE_SIZE: Final = 96
#: Smallest possible report: request, response header, one 55-byte block, nonce, opaque length, signature.
MIN_REPORT_SIZE: Final = REQUEST_SIZE + RESPONSE_HEADER.size + BLOCK_HEADER.size + 48 + RESPONSE_MIDDLE.size + 96

SPDM_VERSION_1_1: Final = 0x11
GET_MEASUREMENTS: Final = 0xE0
MEASUREMENTS: Final = 0x60
PARAM1_SIGNATURE_REQUESTED: Final = 0x01
PARAM2_ALL_MEASUREMENTS: Final = 0xFF
MEASUREMENT_SPEC_DMTF: Final = 0x01
DIGEST_SIZE: Final = 48

#: Order n of NIST P-384 (r and s must lie in [1, n-1]).
P384_ORDER: Final = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16
)

# Opaque-data TLV types (§2 table; NVIDIA's names).
OPAQUE_CERT_ISSUER_NAME: Final = 1
OPAQUE_CERT_AUTHORITY_KEY_IDENTIFIER: Final = 2
OPAQUE_DRIVER_VERSION: Final = 3
OPAQUE_GPU_INFO: Final = 4
OPAQUE_SKU: Final = 5
OPAQUE_VBIOS_VERSION: Final = 6
OPAQUE_MANUFACTURER_ID: Final = 7
OPAQUE_TAMPER_DETECTION: Final = 8
OPAQUE_SMC: Final = 9
OPAQUE_VPR: Final = 10
OPAQUE_NVDEC0_STATUS: Final = 11
OPAQUE_MSRSCNT: Final = 12
OPAQUE_CPRINFO: Final = 13
OPAQUE_BOARD_ID: Final = 14
OPAQUE_CHIP_SKU: Final = 15
OPAQUE_CHIP_SKU_MOD: Final = 16
OPAQUE_PROJECT: Final = 17
OPAQUE_PROJECT_SKU: Final = 18
OPAQUE_PROJECT_SKU_MOD: Final = 19
OPAQUE_FWID: Final = 20
OPAQUE_PROTECTED_PCIE_STATUS: Final = 21
OPAQUE_SWITCH_PDI: Final = 22
OPAQUE_FLOORSWEPT_PORTS: Final = 23
OPAQUE_POSITION_ID: Final = 24
OPAQUE_LOCK_SWITCH_STATUS: Final = 25
OPAQUE_SWITCH_GPU_PDIS: Final = 26
OPAQUE_GPU_LINK_CONN: Final = 32
OPAQUE_SYS_ENABLE_STATUS: Final = 33
OPAQUE_OPAQUE_DATA_VERSION: Final = 34
OPAQUE_CHIP_INFO: Final = 35
OPAQUE_FEATURE_FLAG: Final = 36
OPAQUE_INVALID: Final = 255
#: Types the spec names: each may appear at most once. Others are kept raw and may repeat.
KNOWN_OPAQUE_TYPES: Final = frozenset((*range(1, 27), 32, 33, 34, 35, 36, 255))
#: Documented value sizes of the typed fields (a size outside these is ``nvidia.report.opaque_malformed``).
_FIXED_SIZES: Final = {
    OPAQUE_GPU_INFO: 8,
    OPAQUE_NVDEC0_STATUS: 1,
    OPAQUE_CPRINFO: 4,
    OPAQUE_BOARD_ID: 4,
    OPAQUE_PROJECT_SKU_MOD: 2,
    OPAQUE_FWID: DIGEST_SIZE,
    OPAQUE_PROTECTED_PCIE_STATUS: 1,
    OPAQUE_FLOORSWEPT_PORTS: 2,
    OPAQUE_POSITION_ID: 2,
    OPAQUE_LOCK_SWITCH_STATUS: 2,
    OPAQUE_SYS_ENABLE_STATUS: 2,
    OPAQUE_OPAQUE_DATA_VERSION: 2,
    OPAQUE_FEATURE_FLAG: 2,
}
PDI_SIZE: Final = 8
#: SWITCH_GPU_PDIS on an NVSwitch: 8 GPU PDIs, then one byte per switch port (§2 table, type 26).
SWITCH_GPU_PDI_COUNT: Final = 8
STATUS_ENABLED: Final = 0xAA
STATUS_DISABLED: Final = 0x55

#: Parse memos (measurement records, opaque data, PEM chains): the parts of a report that only change with the
#: device's firmware and software are parsed once per distinct content, per process; each holds this many entries.
#: Results are immutable; bad input is never remembered (it raises again, identically). :func:`clear_parse_memos`.
PARSE_MEMO_ENTRIES: Final = 256

Arch = Literal["HOPPER", "BLACKWELL", "LS10"]
ARCHES: Final[tuple[Arch, ...]] = ("HOPPER", "BLACKWELL", "LS10")


@dataclass(frozen=True, slots=True)
class GpuRequest:
    """The SPDM GET_MEASUREMENTS request the driver sent (report bytes 0..36)."""

    spdm_version: int
    request_code: int
    param1: int
    param2: int
    nonce: bytes  # the verifier's 32-byte nonce: the binding NVIDIA compares (§2 "Nonce")
    slot_id_param: int

    @property
    def slot_id(self) -> int:
        return self.slot_id_param & 0x0F


class MeasurementBlock(NamedTuple):
    """One DMTF measurement block. ``index`` is 1-based; RIM index i is block index i+1. A named tuple (immutable,
    four times cheaper to build than a frozen dataclass): a report holds 64, unpacked in one pass by
    :func:`_parse_blocks`. The field ``index`` hides ``tuple.index``, which nothing uses on a block."""

    index: int  # type: ignore[assignment]  # the SPDM name; shadows tuple.index on purpose (docstring)
    measurement_specification: int
    measurement_size: int
    value_type: int
    value_size: int
    value: bytes  # 48-byte SHA-384 digest (48 zero bytes for unused indices)

    @property
    def is_digest(self) -> bool:
        """ValueType bit 7 clear: a digest, not a raw bit stream."""
        return not self.value_type & 0x80


_INDEX_AND_VALUE: Final = operator.itemgetter(0, 5)  # (MeasurementBlock.index, MeasurementBlock.value)


class OpaqueField(NamedTuple):
    """One raw opaque-data TLV, exactly as on the wire."""

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class OpaqueData:
    """NVIDIA's opaque data: every TLV in wire order (:attr:`fields`) plus a typed view of the ones the spec names.

    A typed attribute is None when its TLV is absent. Text fields are ASCII with NUL terminators/padding removed.
    Status bytes are kept raw (0xAA enabled, 0x55 disabled): judging them is the verifier's and the policy's.
    """

    fields: tuple[OpaqueField, ...]
    driver_version: str | None
    vbios_version: str | None  # "96.00.9F.00.01"; GPUs encode 8 bytes, NVSwitches ASCII
    vbios_version_raw: bytes | None
    gpu_info: bytes | None
    nvdec0_status: int | None
    msrscnt: tuple[int, ...] | None  # per-index measurement counts
    cprinfo: bytes | None
    board_id: int | None
    chip_sku: str | None
    chip_sku_mod: str | None
    project: str | None
    project_sku: str | None
    project_sku_mod: bytes | None
    fwid: bytes | None
    protected_pcie_status: int | None
    switch_pdis: tuple[bytes, ...] | None  # type 22: a GPU's per-port NVSwitch PDIs, or an NVSwitch's own PDI
    floorswept_ports: int | None
    position_id: int | None
    lock_switch_status: int | None
    switch_gpu_pdis: tuple[bytes, ...] | None  # type 26 (NVSwitch): the 8 GPU PDIs
    switch_port_gpu_slots: bytes | None  # type 26 (NVSwitch): one GPU slot per port (0xFF unused)
    sys_enable_status: int | None
    opaque_data_version: int | None
    chip_info: str | None
    feature_flag: int | None

    def get(self, type_: int) -> bytes | None:
        """The value of the first TLV of ``type_``, or None."""
        return next((f.value for f in self.fields if f.type == type_), None)


@dataclass(frozen=True, slots=True)
class GpuResponse:
    """The SPDM MEASUREMENTS response (report bytes 37..)."""

    spdm_version: int
    response_code: int
    param1: int
    param2: int
    number_of_blocks: int
    measurement_record_length: int
    blocks: tuple[MeasurementBlock, ...]
    responder_nonce: bytes
    opaque_length: int
    opaque: OpaqueData
    signature: bytes  # raw r ‖ s, 96 bytes


@dataclass(frozen=True, slots=True)
class GpuReport:
    """A parsed GPU/NVSwitch attestation report. ``signed`` is exactly what the signature covers (§2)."""

    request: GpuRequest
    response: GpuResponse
    signed: bytes
    signature_r: int
    signature_s: int
    trailing: bytes  # zero bytes after the signature (non-zero ones are rejected); b"" on every real vector
    raw: bytes

    @property
    def nonce(self) -> bytes:
        """The request nonce: the value to compare with the expected nonce."""
        return self.request.nonce

    @property
    def measurements(self) -> dict[int, bytes]:
        """Block index -> digest."""
        return dict(map(_INDEX_AND_VALUE, self.response.blocks))


@dataclass(frozen=True, slots=True)
class SerializedGpuEvidence:
    """One item of NVIDIA's serialized-evidence JSON, with its report and chain parsed.

    ``driver_version`` / ``vbios_version`` are NVML's unauthenticated strings where the tool included them (compare
    with the signed copies in the report's opaque data, never trust them).
    """

    arch: Arch
    nonce: bytes | None  # absent in the NRAS request body form
    evidence: bytes
    certificate: bytes  # the PEM chain text
    report: GpuReport
    chain: tuple[bytes, ...]
    driver_version: str | None = None
    vbios_version: str | None = None
    version: str | None = None


# ----------------------------------------------------------------------------------------------------------
# Report


def _err(
    code: Code, message: str, *, expected: object | None = None, actual: object | None = None
) -> EvidenceMalformed:
    return EvidenceMalformed(code, message, expected=expected, actual=actual)


def decode_report_bytes(data: bytes) -> bytes:
    """Binary reports start with the SPDM version byte 0x11; anything made only of hex digits (and whitespace,
    an optional ``0x`` prefix) is hex text as NVIDIA's older tools write it."""
    if data[:1] == bytes((SPDM_VERSION_1_1,)):
        return data
    if len(data) > limits.MAX_NVIDIA_REPORT_HEX_CHARS:
        raise _err(
            Code.NVIDIA_REPORT_TOO_LARGE,
            "report is far too large",
            expected=limits.MAX_NVIDIA_REPORT_HEX_CHARS,
            actual=len(data),
        )
    digits = strip_whitespace(data)
    if digits[:2] in (b"0x", b"0X"):
        digits = digits[2:]
    if not is_hex_text(digits):
        return data
    try:
        return binascii.unhexlify(digits)
    except binascii.Error as e:
        raise _err(Code.NVIDIA_REPORT_ENCODING, "hex report has an odd number of digits") from e


_PRINTABLE_ASCII: Final = bytes(range(0x20, 0x7F))


def _ascii(type_: int, value: bytes) -> str:
    """NUL-terminated / NUL-padded printable ASCII: text before the first NUL, only NULs after it."""
    text, _, pad = value.partition(b"\x00")
    if pad.strip(b"\x00") or text.translate(None, _PRINTABLE_ASCII):
        raise _err(
            Code.NVIDIA_REPORT_OPAQUE_MALFORMED,
            f"opaque field {type_} is not NUL-terminated printable ASCII",
            actual=value.hex(),
        )
    return text.decode("ascii")


def _vbios(value: bytes) -> str:
    if len(value) == 8:  # GPU: b3.b2.b1.b0.b4 (§2 table, type 6)
        return f"{value[3]:02X}.{value[2]:02X}.{value[1]:02X}.{value[0]:02X}.{value[4]:02X}"
    return _ascii(OPAQUE_VBIOS_VERSION, value)  # NVSwitch: ASCII "96.10.55.00.01"


def _entries(type_: int, value: bytes, size: int) -> int:
    """How many ``size``-byte entries ``value`` holds (raises unless a non-zero whole number)."""
    if not value or len(value) % size:
        raise _err(
            Code.NVIDIA_REPORT_OPAQUE_MALFORMED,
            f"opaque field {type_} is not a list of {size}-byte entries",
            expected=f"a non-zero multiple of {size}",
            actual=len(value),
        )
    return len(value) // size


def _chunks(type_: int, value: bytes, size: int) -> tuple[bytes, ...]:
    _entries(type_, value, size)
    return tuple(value[i : i + size] for i in range(0, len(value), size))


def _u16(value: bytes) -> int:
    return int.from_bytes(value, "little")


_new_field: Final = functools.partial(tuple.__new__, OpaqueField)


def parse_opaque_data(data: bytes) -> OpaqueData:
    """Parse the opaque-data TLVs, which must exactly fill ``data``. Raises ``nvidia.report.opaque_malformed``.
    Memoised by content (a device's opaque data is the same in each of its reports until its firmware changes)."""
    return _parse_opaque_data(bytes(data))


@functools.lru_cache(maxsize=PARSE_MEMO_ENTRIES)
def _parse_opaque_data(data: bytes) -> OpaqueData:
    fields: list[OpaqueField] = []
    seen: set[int] = set()
    end = len(data)
    off = 0
    while off < end:
        if off + TLV_HEADER.size > end:
            raise _err(
                Code.NVIDIA_REPORT_OPAQUE_MALFORMED,
                "opaque data ends inside a TLV header",
                expected=off + TLV_HEADER.size,
                actual=end,
            )
        type_, length = TLV_HEADER.unpack_from(data, off)
        start = off + TLV_HEADER.size
        off = start + length
        if off > end:
            raise _err(
                Code.NVIDIA_REPORT_OPAQUE_MALFORMED,
                f"opaque field {type_} overruns the opaque data",
                expected=end - start,
                actual=length,
            )
        if type_ in seen:  # only known types are remembered
            raise _err(Code.NVIDIA_REPORT_OPAQUE_MALFORMED, f"opaque field {type_} appears twice")
        if type_ in KNOWN_OPAQUE_TYPES:
            seen.add(type_)
        if (size := _FIXED_SIZES.get(type_)) is not None and length != size:
            raise _err(
                Code.NVIDIA_REPORT_OPAQUE_MALFORMED,
                f"opaque field {type_} has the wrong size",
                expected=size,
                actual=length,
            )
        fields.append(_new_field((type_, data[start:off])))
    by_type = {f.type: f.value for f in reversed(fields)}  # first occurrence wins (known types are unique anyway)

    def text(t: int) -> str | None:
        v = by_type.get(t)
        return None if v is None else _ascii(t, v)

    def u16(t: int) -> int | None:
        v = by_type.get(t)
        return None if v is None else _u16(v)

    def byte(t: int) -> int | None:
        v = by_type.get(t)
        return None if v is None else v[0]

    vbios_raw = by_type.get(OPAQUE_VBIOS_VERSION)
    msrscnt_raw = by_type.get(OPAQUE_MSRSCNT)
    msrscnt = None
    if msrscnt_raw is not None:
        msrscnt = struct.unpack(f"<{_entries(OPAQUE_MSRSCNT, msrscnt_raw, 4)}I", msrscnt_raw)  # uint32 each
    board = by_type.get(OPAQUE_BOARD_ID)
    pdis_raw = by_type.get(OPAQUE_SWITCH_PDI)
    gpu_pdis_raw = by_type.get(OPAQUE_SWITCH_GPU_PDIS)
    gpu_pdis: tuple[bytes, ...] | None = None
    port_slots: bytes | None = None
    if gpu_pdis_raw is not None:
        head = SWITCH_GPU_PDI_COUNT * PDI_SIZE
        if len(gpu_pdis_raw) < head:
            raise _err(
                Code.NVIDIA_REPORT_OPAQUE_MALFORMED,
                f"opaque field {OPAQUE_SWITCH_GPU_PDIS} is shorter than {SWITCH_GPU_PDI_COUNT} PDIs",
                expected=f">= {head}",
                actual=len(gpu_pdis_raw),
            )
        gpu_pdis = _chunks(OPAQUE_SWITCH_GPU_PDIS, gpu_pdis_raw[:head], PDI_SIZE)
        port_slots = gpu_pdis_raw[head:]
    return OpaqueData(
        fields=tuple(fields),
        driver_version=text(OPAQUE_DRIVER_VERSION),
        vbios_version=None if vbios_raw is None else _vbios(vbios_raw),
        vbios_version_raw=vbios_raw,
        gpu_info=by_type.get(OPAQUE_GPU_INFO),
        nvdec0_status=byte(OPAQUE_NVDEC0_STATUS),
        msrscnt=msrscnt,
        cprinfo=by_type.get(OPAQUE_CPRINFO),
        board_id=None if board is None else int.from_bytes(board, "little"),
        chip_sku=text(OPAQUE_CHIP_SKU),
        chip_sku_mod=text(OPAQUE_CHIP_SKU_MOD),
        project=text(OPAQUE_PROJECT),
        project_sku=text(OPAQUE_PROJECT_SKU),
        project_sku_mod=by_type.get(OPAQUE_PROJECT_SKU_MOD),
        fwid=by_type.get(OPAQUE_FWID),
        protected_pcie_status=byte(OPAQUE_PROTECTED_PCIE_STATUS),
        switch_pdis=None if pdis_raw is None else _chunks(OPAQUE_SWITCH_PDI, pdis_raw, PDI_SIZE),
        floorswept_ports=u16(OPAQUE_FLOORSWEPT_PORTS),
        position_id=u16(OPAQUE_POSITION_ID),
        lock_switch_status=u16(OPAQUE_LOCK_SWITCH_STATUS),
        switch_gpu_pdis=gpu_pdis,
        switch_port_gpu_slots=port_slots,
        sys_enable_status=u16(OPAQUE_SYS_ENABLE_STATUS),
        opaque_data_version=u16(OPAQUE_OPAQUE_DATA_VERSION),
        chip_info=text(OPAQUE_CHIP_INFO),
        feature_flag=u16(OPAQUE_FEATURE_FLAG),
    )


def _need(buf: bytes, end: int, what: str) -> None:
    if end > len(buf):
        raise _err(Code.NVIDIA_REPORT_TRUNCATED, f"report ends inside {what}", expected=end, actual=len(buf))


_SPEC_COLUMN: Final = bytes((MEASUREMENT_SPEC_DMTF,))
_MSIZE_LOW: Final = bytes((DIGEST_SIZE + 3,))  # MeasurementSize 51, uint16 little-endian: 0x33 0x00
_VSIZE_LOW: Final = bytes((DIGEST_SIZE,))  # ValueSize 48: 0x30 0x00
_ZERO: Final = b"\x00"


_new_block: Final = functools.partial(tuple.__new__, MeasurementBlock)


@functools.lru_cache(maxsize=PARSE_MEMO_ENTRIES)
def _parse_blocks(record: bytes, count: int) -> tuple[MeasurementBlock, ...]:
    """The ``count`` blocks that exactly fill ``record`` (memoised by content: a device measures the same values
    in each report until its software changes). A record of ``count`` well-formed 55-byte blocks (spec 1,
    MeasurementSize 51, ValueSize 48, distinct non-zero indices: checked column by column) is unpacked in one pass;
    anything else goes through :func:`_parse_blocks_one_by_one`, which says what is wrong (same result, same error
    as it would give for a well-formed record)."""
    size = BLOCK.size
    if (
        len(record) == count * size
        and record[1::size] == _SPEC_COLUMN * count
        and record[2::size] == _MSIZE_LOW * count
        and record[3::size] == _ZERO * count
        and record[5::size] == _VSIZE_LOW * count
        and record[6::size] == _ZERO * count
    ):
        indices = record[0::size]
        if 0 not in indices and len(set(indices)) == count:
            return tuple(map(_new_block, BLOCK.iter_unpack(record)))
    return _parse_blocks_one_by_one(record, count)


def _parse_blocks_one_by_one(record: bytes, count: int) -> tuple[MeasurementBlock, ...]:
    def bad(message: str, *, expected: object | None = None, actual: object | None = None) -> EvidenceMalformed:
        return _err(Code.NVIDIA_REPORT_MALFORMED, f"measurement record: {message}", expected=expected, actual=actual)

    blocks: list[MeasurementBlock] = []
    seen: set[int] = set()
    off = 0
    while off < len(record):
        if len(blocks) == count:
            raise bad("bytes left after NumberOfBlocks blocks", expected=off, actual=len(record))
        if off + BLOCK_HEADER.size > len(record):
            raise bad("record ends inside a block header", expected=off + BLOCK_HEADER.size, actual=len(record))
        index, spec, msize, vtype, vsize = BLOCK_HEADER.unpack_from(record, off)
        if off + 4 + msize > len(record):
            raise bad(f"block {index} overruns MeasurementRecordLength", expected=len(record) - off - 4, actual=msize)
        if index == 0 or index in seen:
            raise bad(f"block index {index} is zero or repeated")
        seen.add(index)
        if spec != MEASUREMENT_SPEC_DMTF:
            raise bad(f"block {index} MeasurementSpecification", expected=MEASUREMENT_SPEC_DMTF, actual=spec)
        if vsize != DIGEST_SIZE or msize != vsize + 3:
            raise bad(f"block {index} sizes", expected="ValueSize 48, MeasurementSize 51", actual=f"{vsize}, {msize}")
        value = record[off + BLOCK_HEADER.size : off + BLOCK_HEADER.size + vsize]
        blocks.append(
            MeasurementBlock(
                index=index,
                measurement_specification=spec,
                measurement_size=msize,
                value_type=vtype,
                value_size=vsize,
                value=value,
            )
        )
        off += 4 + msize
    if len(blocks) != count:
        raise bad("fewer blocks than NumberOfBlocks", expected=count, actual=len(blocks))
    return tuple(blocks)


def parse_gpu_report(data: bytes) -> GpuReport:
    """Parse a GPU/NVSwitch attestation report (raw bytes or hex text). Raises :class:`EvidenceMalformed`."""
    if len(data) > limits.MAX_NVIDIA_REPORT_HEX_CHARS:
        raise _err(
            Code.NVIDIA_REPORT_TOO_LARGE,
            "report is far too large",
            expected=limits.MAX_NVIDIA_REPORT_BYTES,
            actual=len(data),
        )
    buf = decode_report_bytes(bytes(data))
    if len(buf) > limits.MAX_NVIDIA_REPORT_BYTES:
        raise _err(
            Code.NVIDIA_REPORT_TOO_LARGE,
            "report is too large",
            expected=limits.MAX_NVIDIA_REPORT_BYTES,
            actual=len(buf),
        )
    _need(buf, REQUEST_SIZE, "the GET_MEASUREMENTS request")
    version, code, param1, param2, nonce, slot = REQUEST.unpack_from(buf, 0)
    request = GpuRequest(
        spdm_version=version, request_code=code, param1=param1, param2=param2, nonce=nonce, slot_id_param=slot
    )
    if version != SPDM_VERSION_1_1:
        raise _err(Code.NVIDIA_REPORT_UNSUPPORTED, "request SPDMVersion", expected="0x11", actual=f"0x{version:02x}")
    if code != GET_MEASUREMENTS:
        raise _err(
            Code.NVIDIA_REPORT_UNSUPPORTED, "request is not GET_MEASUREMENTS", expected="0xe0", actual=f"0x{code:02x}"
        )
    if param1 != PARAM1_SIGNATURE_REQUESTED:
        raise _err(
            Code.NVIDIA_REPORT_UNSUPPORTED, "request Param1 (signature)", expected="0x01", actual=f"0x{param1:02x}"
        )
    if param2 != PARAM2_ALL_MEASUREMENTS:
        raise _err(
            Code.NVIDIA_REPORT_UNSUPPORTED,
            "request Param2 (all measurements)",
            expected="0xff",
            actual=f"0x{param2:02x}",
        )
    if slot & 0xF0:
        raise _err(Code.NVIDIA_REPORT_MALFORMED, "request SlotIDParam reserved bits are set", actual=f"0x{slot:02x}")

    base = REQUEST_SIZE
    _need(buf, base + RESPONSE_HEADER.size, "the MEASUREMENTS response header")
    r_version, r_code, r_param1, r_param2, count, l1_raw = RESPONSE_HEADER.unpack_from(buf, base)
    if r_version != SPDM_VERSION_1_1:
        raise _err(Code.NVIDIA_REPORT_UNSUPPORTED, "response SPDMVersion", expected="0x11", actual=f"0x{r_version:02x}")
    if r_code != MEASUREMENTS:
        raise _err(
            Code.NVIDIA_REPORT_UNSUPPORTED, "response is not MEASUREMENTS", expected="0x60", actual=f"0x{r_code:02x}"
        )
    if r_param1 != 0:
        raise _err(Code.NVIDIA_REPORT_MALFORMED, "response Param1 is reserved", expected=0, actual=r_param1)
    if r_param2 & 0xF0:
        raise _err(Code.NVIDIA_REPORT_MALFORMED, "response Param2 reserved bits are set", actual=f"0x{r_param2:02x}")
    if count == 0:
        raise _err(Code.NVIDIA_REPORT_MALFORMED, "NumberOfBlocks is zero", expected=">= 1", actual=0)
    l1 = int.from_bytes(l1_raw, "little")
    record_start = base + RESPONSE_HEADER.size
    _need(buf, record_start + l1, "the measurement record")
    blocks = _parse_blocks(buf[record_start : record_start + l1], count)

    middle = record_start + l1
    _need(buf, middle + RESPONSE_MIDDLE.size, "the responder nonce and OpaqueLength")
    responder_nonce, l2 = RESPONSE_MIDDLE.unpack_from(buf, middle)
    opaque_start = middle + RESPONSE_MIDDLE.size
    _need(buf, opaque_start + l2, "the opaque data")
    opaque = parse_opaque_data(buf[opaque_start : opaque_start + l2])

    sig_start = opaque_start + l2
    sig_end = sig_start + SIGNATURE_SIZE
    _need(buf, sig_end, "the signature")
    signature = buf[sig_start:sig_end]
    trailing = buf[sig_end:]
    if any(trailing):
        raise _err(
            Code.NVIDIA_REPORT_TRAILING_DATA,
            "non-zero bytes after the signature",
            expected=sig_end,
            actual=len(buf),
        )
    r = int.from_bytes(signature[:48], "big")
    s = int.from_bytes(signature[48:], "big")
    if not (0 < r < P384_ORDER and 0 < s < P384_ORDER):
        raise _err(Code.NVIDIA_REPORT_SIGNATURE_MALFORMED, "signature r or s is outside [1, n-1]")
    response = GpuResponse(
        spdm_version=r_version,
        response_code=r_code,
        param1=r_param1,
        param2=r_param2,
        number_of_blocks=count,
        measurement_record_length=l1,
        blocks=blocks,
        responder_nonce=responder_nonce,
        opaque_length=l2,
        opaque=opaque,
        signature=signature,
    )
    return GpuReport(
        request=request,
        response=response,
        signed=buf[:sig_start],
        signature_r=r,
        signature_s=s,
        trailing=trailing,
        raw=buf,
    )


# ----------------------------------------------------------------------------------------------------------
# Device certificate chain (§3)

_PEM_BEGIN: Final = b"-----BEGIN CERTIFICATE-----"
_PEM_END: Final = b"-----END CERTIFICATE-----"
#: Between PEM blocks NVML's buffer holds only whitespace and NUL terminators/padding.
_FILLER: Final = b" \t\n\r\x0b\x0c\x00"


def _der_length_ok(der: bytes) -> bool:
    """The outer DER ``SEQUENCE`` header is well formed and its length covers exactly ``der``."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return 2 + first == len(der)
    n = first & 0x7F
    if n == 0 or n > 3 or len(der) < 2 + n or der[2] == 0:
        return False
    return 2 + n + int.from_bytes(der[2 : 2 + n], "big") == len(der)


def parse_device_chain(pem: bytes) -> tuple[bytes, ...]:
    """The device certificate chain as NVML/NSCQ return it (concatenated PEM, leaf first) -> DER certificates, in
    order. Checks sizes and PEM/DER framing only; the verifier builds and checks the chain (§3).
    Raises ``nvidia.chain.malformed``. Memoised by content (a device sends the same chain every time)."""
    return _parse_device_chain(bytes(pem))


@functools.lru_cache(maxsize=PARSE_MEMO_ENTRIES)
def _parse_device_chain(pem: bytes) -> tuple[bytes, ...]:
    def bad(message: str, *, expected: object | None = None, actual: object | None = None) -> EvidenceMalformed:
        return _err(
            Code.NVIDIA_CHAIN_MALFORMED, f"device certificate chain: {message}", expected=expected, actual=actual
        )

    if len(pem) > limits.MAX_NVIDIA_CHAIN_PEM_BYTES:
        raise bad("too large", expected=limits.MAX_NVIDIA_CHAIN_PEM_BYTES, actual=len(pem))
    data = pem
    out: list[bytes] = []
    pos = 0
    while True:
        start = data.find(_PEM_BEGIN, pos)
        gap = data[pos:] if start < 0 else data[pos:start]
        if gap.translate(None, _FILLER):
            raise bad("text outside the PEM CERTIFICATE blocks")
        if start < 0:
            break
        if len(out) == limits.MAX_NVIDIA_CHAIN_CERTS:
            raise bad("too many certificates", expected=limits.MAX_NVIDIA_CHAIN_CERTS, actual=f"> {len(out)}")
        body = start + len(_PEM_BEGIN)
        stop = data.find(_PEM_END, body)
        if stop < 0:
            raise bad("unterminated PEM block")
        text = strip_whitespace(data[body:stop])
        if len(text) > limits.MAX_NVIDIA_CERT_DER_BYTES * 4 // 3 + 4:
            raise bad("certificate too large", expected=limits.MAX_NVIDIA_CERT_DER_BYTES)
        try:
            der = base64.b64decode(text, validate=True)
        except binascii.Error as e:
            raise bad(f"invalid base64 in certificate {len(out)}") from e
        if not _der_length_ok(der):
            raise bad(f"certificate {len(out)} is not one DER SEQUENCE")
        out.append(der)
        pos = stop + len(_PEM_END)
    if not out:
        raise bad("no certificate")
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------
# Serialized evidence JSON (§1)

_REQUIRED_KEYS: Final = frozenset(("arch", "evidence", "certificate"))
_OPTIONAL_KEYS: Final = frozenset(("nonce", "driver_version", "vbios_version", "version"))
NONCE_SIZE: Final = 32


def parse_serialized_evidence(json_bytes: bytes) -> tuple[SerializedGpuEvidence, ...]:
    """NVIDIA's serialized-evidence JSON: a list of ``{arch, nonce, evidence: b64(report), certificate: b64(PEM
    chain)}`` (the PPCIe tools add NVML's ``driver_version``, ``vbios_version``, ``version``). Each report and chain
    is parsed (their own codes); the JSON framing raises ``nvidia.evidence.malformed``."""

    def bad(message: str, *, expected: object | None = None, actual: object | None = None) -> EvidenceMalformed:
        return _err(Code.NVIDIA_EVIDENCE_MALFORMED, f"serialized evidence: {message}", expected=expected, actual=actual)

    if len(json_bytes) > limits.MAX_NVIDIA_EVIDENCE_JSON_BYTES:
        raise bad("too large", expected=limits.MAX_NVIDIA_EVIDENCE_JSON_BYTES, actual=len(json_bytes))
    try:
        doc = json.loads(bytes(json_bytes))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad("not JSON") from e
    if not isinstance(doc, list) or not doc:
        raise bad("not a non-empty list")
    if len(doc) > limits.MAX_NVIDIA_EVIDENCE_ITEMS:
        raise bad("too many items", expected=limits.MAX_NVIDIA_EVIDENCE_ITEMS, actual=len(doc))
    items: list[SerializedGpuEvidence] = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise bad(f"item {i} is not an object")
        keys = frozenset(item)
        if missing := _REQUIRED_KEYS - keys:
            raise bad(f"item {i} lacks {', '.join(sorted(missing))}")
        if unknown := keys - _REQUIRED_KEYS - _OPTIONAL_KEYS:
            raise bad(f"item {i} has unknown members {', '.join(sorted(unknown))}")
        if any(not isinstance(v, str) for v in item.values()):
            raise bad(f"item {i} has a member that is not a string")
        arch = item["arch"]
        if arch not in ARCHES:
            raise bad(f"item {i} arch", expected="HOPPER, BLACKWELL or LS10", actual=arch[:32])
        nonce: bytes | None = None
        if "nonce" in item:
            raw_nonce = item["nonce"]
            if len(raw_nonce) != 2 * NONCE_SIZE or not is_hex_text(raw_nonce.encode("ascii", "replace")):
                raise bad(f"item {i} nonce is not 64 hex digits", actual=raw_nonce[:80])
            nonce = bytes.fromhex(raw_nonce)
        evidence = _b64(item["evidence"], limits.MAX_NVIDIA_REPORT_BYTES, f"item {i} evidence", bad)
        certificate = _b64(item["certificate"], limits.MAX_NVIDIA_CHAIN_PEM_BYTES, f"item {i} certificate", bad)
        items.append(
            SerializedGpuEvidence(
                arch=arch,
                nonce=nonce,
                evidence=evidence,
                certificate=certificate,
                report=parse_gpu_report(evidence),
                chain=parse_device_chain(certificate),
                driver_version=item.get("driver_version"),
                vbios_version=item.get("vbios_version"),
                version=item.get("version"),
            )
        )
    return tuple(items)


class _Bad(Protocol):  # the shape of the local ``bad`` helpers
    def __call__(
        self, message: str, *, expected: object | None = None, actual: object | None = None
    ) -> EvidenceMalformed: ...


def _b64(text: str, max_bytes: int, what: str, bad: _Bad) -> bytes:
    if len(text) > 4 * ((max_bytes + 2) // 3):
        raise bad(f"{what} is too large", expected=max_bytes)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as e:
        raise bad(f"{what} is not base64") from e


def clear_parse_memos() -> None:
    """Forget every memoised parse (:data:`PARSE_MEMO_ENTRIES`): a first-sight parse, for benchmarks and tests."""
    _parse_blocks.cache_clear()
    _parse_opaque_data.cache_clear()
    _parse_device_chain.cache_clear()
