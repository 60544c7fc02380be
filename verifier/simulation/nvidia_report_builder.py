"""Byte-exact SIMULATED NVIDIA GPU attestation reports: SPDM 1.1 GET_MEASUREMENTS request + MEASUREMENTS response
with NVIDIA's opaque-data TLVs, signed ECDSA P-384 / SHA-384 (raw r ‖ s) by whatever key the caller passes.

SIMULATION ONLY. Layout (nvidia-gpu.md §2; the parser is :mod:`verifier.evidence.nvidia`, whose docstring has the
offset table): request ``11 E0 01 FF nonce(32) 00`` ‖ response ``11 60 00 00 N L1(3) blocks nonce(32) L2(2)
opaque(L2) r(48) s(48)``; each block ``index 01 33 00 01 30 00 digest(48)``. The signature covers every byte before
it. The opaque TLVs of a Hopper GPU come in the order of the real H100 reports (vector N1, then the fields newer
drivers append: SWITCH_PDI, OPAQUE_DATA_VERSION, FEATURE_FLAG); those of a Blackwell GPU and of an NVSwitch (LS10)
in the order of the real B200 (M3) and LS10 (S1) reports.

What it does not do: choose keys, certificates or defaults for a device (:mod:`verifier.simulation.nvidia_pki`).
Signatures are deterministic (RFC 6979), so the same inputs give the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REQUEST: Final = struct.Struct("<BBBB32sB")  # SPDMVersion, GET_MEASUREMENTS, Param1, Param2, Nonce, SlotIDParam
BLOCK_HEADER: Final = struct.Struct("<BBHBH")  # Index, MeasurementSpecification, MeasurementSize, ValueType, ValueSize
TLV_HEADER: Final = struct.Struct("<HH")
SPDM_1_1: Final = 0x11
DIGEST_SIZE: Final = 48
SIGNATURE_SIZE: Final = 96
GPU_BLOCKS: Final = 64
VALUE_TYPE_MUTABLE_FIRMWARE: Final = 0x01
STATUS_ENABLED: Final = 0xAA
STATUS_DISABLED: Final = 0x55
#: Opaque TLV types (nvidia-gpu.md §2 table).
T_DRIVER_VERSION: Final = 3
T_GPU_INFO: Final = 4
T_VBIOS_VERSION: Final = 6
T_NVDEC0_STATUS: Final = 11
T_MSRSCNT: Final = 12
T_CPRINFO: Final = 13
T_BOARD_ID: Final = 14
T_CHIP_SKU: Final = 15
T_CHIP_SKU_MOD: Final = 16
T_PROJECT: Final = 17
T_PROJECT_SKU: Final = 18
T_PROJECT_SKU_MOD: Final = 19
T_FWID: Final = 20
T_PROTECTED_PCIE_STATUS: Final = 21
T_SWITCH_PDI: Final = 22
T_FLOORSWEPT_PORTS: Final = 23
T_POSITION_ID: Final = 24
T_LOCK_SWITCH_STATUS: Final = 25
T_SWITCH_GPU_PDIS: Final = 26
T_SYS_ENABLE_STATUS: Final = 33
T_OPAQUE_DATA_VERSION: Final = 34
T_CHIP_INFO: Final = 35
T_FEATURE_FLAG: Final = 36
#: NVSwitch (LS10) reports carry 31 blocks; an LS10 has 64 ports, an HGX board 8 GPUs per switch.
SWITCH_BLOCKS: Final = 31
SWITCH_PORTS: Final = 64
SWITCH_GPUS: Final = 8
#: SWITCH_GPU_PDIS port slot of an unused switch port.
UNUSED_PORT: Final = 0xFF
#: GPU_INFO of a Hopper GPU (0x180, 8 bytes little-endian) as every real H100/H200 report carries it.
HOPPER_GPU_INFO: Final = (0x180).to_bytes(8, "little")
#: GPU_INFO of a Blackwell GPU (0x1a0), as the real B200 reports (M3) carry it.
BLACKWELL_GPU_INFO: Final = (0x1A0).to_bytes(8, "little")
#: CPRINFO of the real H100 PCIe report (N1) and of the real B200 reports (M3).
DEFAULT_CPRINFO: Final = bytes.fromhex("00c00100")
BLACKWELL_CPRINFO: Final = bytes.fromhex("00000400")

OpaqueTlv = tuple[int, bytes]


def vbios_bytes(version: str) -> bytes:
    """The 8-byte VBIOS_VERSION of a GPU for the text ``"96.00.9F.00.01"``: bytes b0..b7 with the text being
    b3.b2.b1.b0.b4 (``00 9f 00 96 01 00 00 00``)."""
    parts = version.split(".")
    if len(parts) != 5:
        raise ValueError(f"VBIOS version {version!r} is not five dotted hex bytes")
    b = [int(p, 16) for p in parts]
    if any(not 0 <= x <= 0xFF for x in b):
        raise ValueError(f"VBIOS version {version!r} has a part outside 00..FF")
    return bytes((b[3], b[2], b[1], b[0], b[4], 0, 0, 0))


def ascii_field(text: str, size: int | None = None) -> bytes:
    """ASCII NUL-terminated (``size`` None) or NUL-padded to ``size`` bytes, as the opaque text fields are."""
    raw = text.encode("ascii") + b"\x00"
    if size is None:
        return raw
    if len(raw) > size:
        raise ValueError(f"{text!r} does not fit {size} bytes with its NUL")
    return raw.ljust(size, b"\x00")


def hopper_opaque(
    *,
    driver_version: str,
    vbios_version: str,
    project: str,
    project_sku: str,
    chip_sku: str,
    fwid: bytes | None,
    nvdec0_status: int,
    protected_pcie_status: int | None,
    msrscnt: Sequence[int],
    board_id: int,
    switch_pdis: Sequence[bytes] | None,
    opaque_data_version: int | None,
    feature_flag: int | None,
) -> tuple[OpaqueTlv, ...]:
    """A Hopper GPU's opaque TLVs in the real order (N1: 6 14 15 16 17 18 19 3 4 12 13 11 20 21; newer drivers
    then 22 34 36). ``None`` leaves a field out (FWID: 2023-era firmware; 22/34/36: drivers before ~560)."""
    tlvs: list[OpaqueTlv] = [
        (T_VBIOS_VERSION, vbios_bytes(vbios_version)),
        (T_BOARD_ID, board_id.to_bytes(4, "little")),
        (T_CHIP_SKU, ascii_field(chip_sku, 9)),
        (T_CHIP_SKU_MOD, ascii_field("0", 5)),
        (T_PROJECT, ascii_field(project, 5)),
        (T_PROJECT_SKU, ascii_field(project_sku, 5)),
        (T_PROJECT_SKU_MOD, bytes(2)),
        (T_DRIVER_VERSION, ascii_field(driver_version)),
        (T_GPU_INFO, HOPPER_GPU_INFO),
        (T_MSRSCNT, b"".join(n.to_bytes(4, "little") for n in msrscnt)),
        (T_CPRINFO, DEFAULT_CPRINFO),
        (T_NVDEC0_STATUS, bytes((nvdec0_status,))),
    ]
    if fwid is not None:
        tlvs.append((T_FWID, fwid))
    if protected_pcie_status is not None:
        tlvs.append((T_PROTECTED_PCIE_STATUS, bytes((protected_pcie_status,))))
    if switch_pdis is not None:
        tlvs.append((T_SWITCH_PDI, b"".join(switch_pdis)))
    if opaque_data_version is not None:
        tlvs.append((T_OPAQUE_DATA_VERSION, opaque_data_version.to_bytes(2, "little")))
    if feature_flag is not None:
        tlvs.append((T_FEATURE_FLAG, feature_flag.to_bytes(2, "little")))
    return tuple(tlvs)


def blackwell_opaque(
    *,
    driver_version: str,
    vbios_version: str,
    project: str,
    project_sku: str,
    chip_sku: str,
    fwid: bytes | None,
    nvdec0_status: int,
    msrscnt: Sequence[int],
    board_id: int,
    sys_enable_status: int,
    chip_info: str,
    opaque_data_version: int,
    feature_flag: int,
) -> tuple[OpaqueTlv, ...]:
    """A Blackwell GPU's opaque TLVs in the order of the real B200 reports (M3: 6 14 15 16 17 18 19 3 4 12 13 11
    20 33 35 34 36; no PROTECTED_PCIE_STATUS, no SWITCH_PDI). ``fwid`` None leaves the FWID out."""
    tlvs: list[OpaqueTlv] = [
        (T_VBIOS_VERSION, vbios_bytes(vbios_version)),
        (T_BOARD_ID, board_id.to_bytes(4, "little")),
        (T_CHIP_SKU, ascii_field(chip_sku, 9)),
        (T_CHIP_SKU_MOD, ascii_field("0", 5)),
        (T_PROJECT, ascii_field(project, 5)),
        (T_PROJECT_SKU, ascii_field(project_sku, 5)),
        (T_PROJECT_SKU_MOD, ascii_field("0", 2)),
        (T_DRIVER_VERSION, ascii_field(driver_version)),
        (T_GPU_INFO, BLACKWELL_GPU_INFO),
        (T_MSRSCNT, b"".join(n.to_bytes(4, "little") for n in msrscnt)),
        (T_CPRINFO, BLACKWELL_CPRINFO),
        (T_NVDEC0_STATUS, bytes((nvdec0_status,))),
    ]
    if fwid is not None:
        tlvs.append((T_FWID, fwid))
    tlvs += [
        (T_SYS_ENABLE_STATUS, sys_enable_status.to_bytes(2, "little")),
        (T_CHIP_INFO, ascii_field(chip_info)),
        (T_OPAQUE_DATA_VERSION, opaque_data_version.to_bytes(2, "little")),
        (T_FEATURE_FLAG, feature_flag.to_bytes(2, "little")),
    ]
    return tuple(tlvs)


def switch_opaque(
    *,
    bios_version: str,
    device_pdi: bytes,
    msrscnt: Sequence[int],
    gpu_pdis: Sequence[bytes],
    port_gpu_slots: bytes,
    floorswept_ports: int,
    position_id: int,
    lock_switch_status: int,
) -> tuple[OpaqueTlv, ...]:
    """An NVSwitch's (LS10) opaque TLVs in the order of the real reports (S1, M1, M2: 6 22 12 26 23 24 25): the
    BIOS version as ASCII without NUL (``96.10.55.00.01``), its own 8-byte PDI (type 22, DEVICE_PDI), the
    measurement counts, SWITCH_GPU_PDIS (type 26: :data:`SWITCH_GPUS` GPU PDIs, then one GPU slot byte per port,
    :data:`UNUSED_PORT` for none), FLOORSWEPT_PORTS, POSITION_ID and LOCK_SWITCH_STATUS (uint16 each)."""
    if len(device_pdi) != 8 or len(gpu_pdis) != SWITCH_GPUS or any(len(p) != 8 for p in gpu_pdis):
        raise ValueError(f"a switch has one 8-byte PDI and lists {SWITCH_GPUS} 8-byte GPU PDIs")
    if len(port_gpu_slots) != SWITCH_PORTS:
        raise ValueError(f"a switch has {SWITCH_PORTS} port slots")
    return (
        (T_VBIOS_VERSION, bios_version.encode("ascii")),
        (T_SWITCH_PDI, device_pdi),
        (T_MSRSCNT, b"".join(n.to_bytes(4, "little") for n in msrscnt)),
        (T_SWITCH_GPU_PDIS, b"".join(gpu_pdis) + port_gpu_slots),
        (T_FLOORSWEPT_PORTS, floorswept_ports.to_bytes(2, "little")),
        (T_POSITION_ID, position_id.to_bytes(2, "little")),
        (T_LOCK_SWITCH_STATUS, lock_switch_status.to_bytes(2, "little")),
    )


def encode_opaque(tlvs: Sequence[OpaqueTlv]) -> bytes:
    """``Type(2) Length(2) Value`` for each TLV, little-endian."""
    return b"".join(TLV_HEADER.pack(t, len(v)) + v for t, v in tlvs)


def replace_tlv(tlvs: Sequence[OpaqueTlv], type_: int, value: bytes | None) -> tuple[OpaqueTlv, ...]:
    """``tlvs`` with the value of ``type_`` replaced (``None``: the TLV removed). Raises if it is absent."""
    if all(t != type_ for t, _ in tlvs):
        raise ValueError(f"no opaque TLV of type {type_}")
    if value is None:
        return tuple((t, v) for t, v in tlvs if t != type_)
    return tuple((t, value if t == type_ else v) for t, v in tlvs)


def measurement_record(values: Mapping[int, bytes]) -> bytes:
    """The blocks for ``values`` (1-based index -> 48-byte digest), in index order."""
    out = bytearray()
    for index in sorted(values):
        value = values[index]
        if len(value) != DIGEST_SIZE or not 1 <= index <= 0xFF:
            raise ValueError(f"block {index}: a 48-byte digest at an index in 1..255 is required")
        out += BLOCK_HEADER.pack(index, 0x01, DIGEST_SIZE + 3, VALUE_TYPE_MUTABLE_FIRMWARE, DIGEST_SIZE) + value
    return bytes(out)


def signed_part(
    *, nonce: bytes, values: Mapping[int, bytes], responder_nonce: bytes, opaque: Sequence[OpaqueTlv]
) -> bytes:
    """Request ‖ response up to (excluding) the signature: exactly the bytes the signature covers."""
    if len(nonce) != 32 or len(responder_nonce) != 32:
        raise ValueError("request and responder nonces are 32 bytes")
    record = measurement_record(values)
    opaque_bytes = encode_opaque(opaque)
    request = REQUEST.pack(SPDM_1_1, 0xE0, 0x01, 0xFF, nonce, 0x00)
    header = bytes((SPDM_1_1, 0x60, 0x00, 0x00, len(values))) + len(record).to_bytes(3, "little")
    middle = responder_nonce + len(opaque_bytes).to_bytes(2, "little")
    return request + header + record + middle + opaque_bytes


def ecdsa_raw(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """Deterministic (RFC 6979) ECDSA P-384 / SHA-384 over ``message`` as raw ``r ‖ s`` (48 + 48 bytes)."""
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA384(), deterministic_signing=True)))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def sign_report(signed: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The full report: ``signed`` followed by its signature by ``key``."""
    return signed + ecdsa_raw(key, signed)


__all__ = [
    "BLACKWELL_GPU_INFO",
    "DIGEST_SIZE",
    "GPU_BLOCKS",
    "HOPPER_GPU_INFO",
    "SIGNATURE_SIZE",
    "STATUS_DISABLED",
    "STATUS_ENABLED",
    "SWITCH_BLOCKS",
    "SWITCH_GPUS",
    "SWITCH_PORTS",
    "UNUSED_PORT",
    "OpaqueTlv",
    "ascii_field",
    "blackwell_opaque",
    "ecdsa_raw",
    "encode_opaque",
    "hopper_opaque",
    "measurement_record",
    "replace_tlv",
    "sign_report",
    "signed_part",
    "switch_opaque",
    "vbios_bytes",
]
