"""Byte-exact builders for SIMULATED AMD SEV-SNP ATTESTATION_REPORTs (v2, v3, v5) and certificate tables.

SIMULATION ONLY. Everything this module produces is simulated: reports are signed by keys the caller passes
(the fake PKI of :mod:`verifier.simulation.amd_pki`), never by an AMD secure processor. Evidence built with it is
trusted only when a developer explicitly enables the simulated AMD roots for development; a production trust
store never accepts it, and results computed under the simulated store are marked simulated.

What it does: lays out every field of the 0x4A0-byte report at its amd-snp.md §1 offset (:data:`FIELDS`),
encodes TCB_VERSION per product (§1.2, :class:`Tcb`), signs bytes 0x000..0x29F with ECDSA / SHA-384 and stores
R and S as 72-byte little-endian fields (:func:`sign_report`), patches single fields in place (:func:`put`)
so callers can inject defects, and assembles the extended-report certificate table (§4.1,
:func:`cert_table`). What it does not do: certificates, CRLs or any policy (that is :mod:`amd_pki`), and it
never checks that fields make sense together (a builder of defects must be able to write nonsense).

The offset table is declared independently of :mod:`verifier.evidence.snp` on purpose, so a layout bug in
either shows up as a test failure instead of cancelling out.
"""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

Product = Literal["milan", "genoa", "turin"]
PRODUCTS: Final[tuple[Product, ...]] = ("milan", "genoa", "turin")

REPORT_SIZE: Final = 0x4A0
SIGNED_SIZE: Final = 0x2A0  # the signed message is bytes 0x000..0x29F
SIGNATURE_FIELD_SIZE: Final = 72  # R and S: little-endian, low 48 bytes used
P384_ORDER: Final = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16
)

#: amd-snp.md §1: field name -> (offset, size). Every byte of the report belongs to exactly one entry
#: (checked at import); ``reserved_*`` entries are MBZ in every genuine report.
FIELDS: Final[Mapping[str, tuple[int, int]]] = {
    "version": (0x000, 4),
    "guest_svn": (0x004, 4),
    "policy": (0x008, 8),
    "family_id": (0x010, 16),
    "image_id": (0x020, 16),
    "vmpl": (0x030, 4),
    "signature_algo": (0x034, 4),
    "current_tcb": (0x038, 8),
    "platform_info": (0x040, 8),
    "signer_info": (0x048, 4),  # bit0 AUTHOR_KEY_EN, bit1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY, 31:5 MBZ
    "reserved_04c": (0x04C, 4),
    "report_data": (0x050, 64),
    "measurement": (0x090, 48),
    "host_data": (0x0C0, 32),
    "id_key_digest": (0x0E0, 48),
    "author_key_digest": (0x110, 48),
    "report_id": (0x140, 32),
    "report_id_ma": (0x160, 32),
    "reported_tcb": (0x180, 8),
    "cpuid_fam_id": (0x188, 1),  # v3+; reserved in v2
    "cpuid_mod_id": (0x189, 1),
    "cpuid_step": (0x18A, 1),
    "reserved_18b": (0x18B, 21),
    "chip_id": (0x1A0, 64),
    "committed_tcb": (0x1E0, 8),
    "current_build": (0x1E8, 1),
    "current_minor": (0x1E9, 1),
    "current_major": (0x1EA, 1),
    "reserved_1eb": (0x1EB, 1),
    "committed_build": (0x1EC, 1),
    "committed_minor": (0x1ED, 1),
    "committed_major": (0x1EE, 1),
    "reserved_1ef": (0x1EF, 1),
    "launch_tcb": (0x1F0, 8),
    "launch_mit_vector": (0x1F8, 8),  # v5; reserved before
    "current_mit_vector": (0x200, 8),  # v5; reserved before
    "reserved_208": (0x208, 152),
    "signature_r": (0x2A0, SIGNATURE_FIELD_SIZE),
    "signature_s": (0x2E8, SIGNATURE_FIELD_SIZE),
    "reserved_330": (0x330, 368),
}


def _check_tiling() -> None:
    pos = 0
    for name, (off, size) in sorted(FIELDS.items(), key=lambda kv: kv[1][0]):
        if off != pos:  # the spec layout is the contract; fail at import, never at build time
            raise RuntimeError(f"report field {name} at 0x{off:03x}, expected 0x{pos:03x}")
        pos = off + size
    if pos != REPORT_SIZE or FIELDS["signature_r"][0] != SIGNED_SIZE:
        raise RuntimeError("report fields do not tile 0x4A0 bytes")


_check_tiling()

SIGNING_KEY_VCEK: Final = 0
SIGNING_KEY_VLEK: Final = 1
SIGNING_KEY_NONE: Final = 7
SIGNATURE_ALGO_ECDSA_P384_SHA384: Final = 1

POLICY_SMT: Final = 1 << 16
POLICY_RESERVED_MBO: Final = 1 << 17  # must be 1
POLICY_MIGRATE_MA: Final = 1 << 18
POLICY_DEBUG: Final = 1 << 19
DEFAULT_POLICY: Final = POLICY_RESERVED_MBO | POLICY_SMT  # 0x30000

PLATFORM_SMT_EN: Final = 1 << 0
PLATFORM_TSME_EN: Final = 1 << 1
PLATFORM_ECC_EN: Final = 1 << 2
PLATFORM_ALIAS_CHECK_COMPLETE: Final = 1 << 5
#: PLATFORM_INFO defaults (§2.2): v3+ SMT_EN|ECC_EN|ALIAS_CHECK_COMPLETE (0x25); v2 SMT_EN|TSME_EN (0x3).
DEFAULT_PLATFORM_INFO: Final[Mapping[int, int]] = {
    2: PLATFORM_SMT_EN | PLATFORM_TSME_EN,
    3: PLATFORM_SMT_EN | PLATFORM_ECC_EN | PLATFORM_ALIAS_CHECK_COMPLETE,
    5: PLATFORM_SMT_EN | PLATFORM_ECC_EN | PLATFORM_ALIAS_CHECK_COMPLETE,
}

#: CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP as real v3+ reports carry them (§1.3).
CPUID: Final[Mapping[Product, tuple[int, int, int]]] = {
    "milan": (0x19, 0x01, 1),
    "genoa": (0x19, 0x11, 1),
    "turin": (0x1A, 0x02, 1),
}
#: Firmware (major, minor, build) per product and report version, from the real reports in amd-snp.md §1.1.
DEFAULT_FIRMWARE: Final[Mapping[tuple[Product, int], tuple[int, int, int]]] = {
    ("milan", 2): (1, 55, 18),
    ("milan", 3): (1, 55, 29),
    ("milan", 5): (1, 55, 35),
    ("genoa", 2): (1, 55, 21),
    ("genoa", 3): (1, 55, 40),
    ("genoa", 5): (1, 55, 49),
    ("turin", 3): (1, 55, 61),
    ("turin", 5): (1, 55, 61),
}
#: (product, version) pairs real firmware emits: Turin never writes version 2 (§1.3).
SUPPORTED: Final = frozenset(DEFAULT_FIRMWARE)


@dataclass(frozen=True, slots=True)
class Tcb:
    """A TCB_VERSION by component. ``fmc`` exists on Turin only (must be 0 elsewhere)."""

    bl: int
    tee: int
    snp: int
    ucode: int
    fmc: int = 0

    COMPONENTS = ("bl", "tee", "snp", "ucode", "fmc")

    def __post_init__(self) -> None:
        for name in self.COMPONENTS:
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"TCB component {name} must fit one byte")

    def encode(self, product: Product) -> bytes:
        """The 8 bytes as stored in the report (§1.2): the byte layout depends on the product."""
        if product == "turin":
            return bytes([self.fmc, self.bl, self.tee, self.snp, 0, 0, 0, self.ucode])
        if self.fmc:
            raise ValueError(f"{product} TCB_VERSION has no FMC SPL")
        return bytes([self.bl, self.tee, 0, 0, 0, 0, self.snp, self.ucode])

    @classmethod
    def decode(cls, raw: bytes, product: Product) -> Tcb:
        if len(raw) != 8:
            raise ValueError("TCB_VERSION is 8 bytes")
        if product == "turin":
            return cls(bl=raw[1], tee=raw[2], snp=raw[3], ucode=raw[7], fmc=raw[0])
        return cls(bl=raw[0], tee=raw[1], snp=raw[6], ucode=raw[7])

    def bumped(self, component: str, delta: int = 1) -> Tcb:
        """This TCB with one component moved by ``delta`` (wrapping inside 0..255)."""
        if component not in self.COMPONENTS:
            raise ValueError(f"unknown TCB component {component!r}")
        return replace(self, **{component: (getattr(self, component) + delta) % 256})


#: The REPORTED_TCBs of real reports (Oak vectors): Milan `04 00 00 00 00 00 18 db`, Genoa
#: `0a 00 00 00 00 00 19 54`, Turin `00 01 00 02 00 00 00 47`. Milan's ucode 0xDB needs a two-byte DER INTEGER
#: (`02 02 00 db`) in the VCEK, which exercises strict INTEGER decoding.
DEFAULT_TCB: Final[Mapping[Product, Tcb]] = {
    "milan": Tcb(bl=4, tee=0, snp=24, ucode=0xDB),
    "genoa": Tcb(bl=10, tee=0, snp=25, ucode=0x54),
    "turin": Tcb(bl=1, tee=0, snp=2, ucode=0x47, fmc=0),
}


def _fixed(name: str, value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def put(buf: bytearray, name: str, value: int | bytes) -> None:
    """Write ``value`` into field ``name`` of a report (or of its signed body): ints little-endian."""
    off, size = FIELDS[name]
    if off + size > len(buf):
        raise ValueError(f"field {name} lies outside a {len(buf)}-byte buffer")
    raw = value.to_bytes(size, "little") if isinstance(value, int) else _fixed(name, value, size)
    buf[off : off + size] = raw


def get(report: bytes, name: str) -> bytes:
    """The raw bytes of field ``name``."""
    off, size = FIELDS[name]
    return report[off : off + size]


def signer_info(*, signing_key: int, mask_chip_key: bool = False, author_key_en: bool = False) -> int:
    """The u32 at 0x048: bit0 AUTHOR_KEY_EN, bit1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY."""
    if not 0 <= signing_key <= 7:
        raise ValueError("SIGNING_KEY is three bits")
    return (signing_key << 2) | (int(mask_chip_key) << 1) | int(author_key_en)


@dataclass(frozen=True, slots=True)
class ReportBody:
    """Every signed field of an ATTESTATION_REPORT as it is written (raw TCB bytes, raw CPUID).

    This is the layout level: no defaults are derived from the product and nothing is validated beyond
    sizes. :class:`verifier.simulation.amd_pki.ReportOptions` is the friendly level above it.
    """

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    signer_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid: tuple[int, int, int]  # zeros in v2
    chip_id: bytes
    committed_tcb: bytes
    current_version: tuple[int, int, int]  # major, minor, build
    committed_version: tuple[int, int, int]
    launch_tcb: bytes
    launch_mit_vector: int = 0
    current_mit_vector: int = 0
    reserved: Mapping[str, bytes] = field(default_factory=dict)  # reserved_* name -> bytes (defects only)

    def pack(self) -> bytes:
        """The 0x2A0 signed bytes."""
        buf = bytearray(SIGNED_SIZE)
        ints = {
            "version": self.version,
            "guest_svn": self.guest_svn,
            "policy": self.policy,
            "vmpl": self.vmpl,
            "signature_algo": self.signature_algo,
            "platform_info": self.platform_info,
            "signer_info": self.signer_info,
            "cpuid_fam_id": self.cpuid[0],
            "cpuid_mod_id": self.cpuid[1],
            "cpuid_step": self.cpuid[2],
            "current_major": self.current_version[0],
            "current_minor": self.current_version[1],
            "current_build": self.current_version[2],
            "committed_major": self.committed_version[0],
            "committed_minor": self.committed_version[1],
            "committed_build": self.committed_version[2],
            "launch_mit_vector": self.launch_mit_vector,
            "current_mit_vector": self.current_mit_vector,
        }
        for name, value in ints.items():
            put(buf, name, value)
        blobs = {
            "family_id": self.family_id,
            "image_id": self.image_id,
            "current_tcb": self.current_tcb,
            "report_data": self.report_data,
            "measurement": self.measurement,
            "host_data": self.host_data,
            "id_key_digest": self.id_key_digest,
            "author_key_digest": self.author_key_digest,
            "report_id": self.report_id,
            "report_id_ma": self.report_id_ma,
            "reported_tcb": self.reported_tcb,
            "chip_id": self.chip_id,
            "committed_tcb": self.committed_tcb,
            "launch_tcb": self.launch_tcb,
            **self.reserved,
        }
        for name, blob in blobs.items():
            if name.startswith("reserved_") and FIELDS[name][0] >= SIGNED_SIZE:
                raise ValueError(f"{name} is not part of the signed body")
            put(buf, name, blob)
        return bytes(buf)


def signature_block(r: int, s: int) -> bytes:
    """The 0x200 bytes at 0x2A0: R and S as 72-byte little-endian fields, then 368 zero bytes."""
    limit = 1 << (8 * SIGNATURE_FIELD_SIZE)
    if not (0 <= r < limit and 0 <= s < limit):
        raise ValueError("R and S must fit 72 bytes")
    return r.to_bytes(SIGNATURE_FIELD_SIZE, "little") + s.to_bytes(SIGNATURE_FIELD_SIZE, "little") + bytes(368)


def ecdsa_rs(key: ec.EllipticCurvePrivateKey, message: bytes) -> tuple[int, int]:
    """Deterministic (RFC 6979) ECDSA / SHA-384 over ``message``: (r, s)."""
    der = key.sign(message, ec.ECDSA(hashes.SHA384(), deterministic_signing=True))
    return decode_dss_signature(der)


def sign_report(body: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The full 1184-byte report: ``body`` (0x2A0 bytes) followed by its signature by ``key``."""
    if len(body) != SIGNED_SIZE:
        raise ValueError(f"signed body must be 0x{SIGNED_SIZE:x} bytes")
    return body + signature_block(*ecdsa_rs(key, body))


# ----------------------------------------------------------------------------------------------------------
# Certificate table (SNP_GET_EXT_REPORT certs buffer / configfs-tsm auxblob), amd-snp.md §4.1

GUID_ARK: Final = "c0b406a4-a803-4952-9743-3fb6014cd0ae"
GUID_ASK: Final = "4ab7b379-bbac-4fe4-a02f-05aef327c782"
GUID_VCEK: Final = "63da758d-e664-4564-adc5-f4b93be8accd"
GUID_VLEK: Final = "a8074bc2-a25a-483e-aae6-39c045a0b8a1"
CERT_TABLE_ENTRY: Final = struct.Struct("<16sII")  # GUID (canonical big-endian bytes), offset u32, length u32
CertFormat = Literal["der", "pem"]


def pem_certificate(der: bytes) -> bytes:
    """PEM text of a DER certificate (RFC 7468), without parsing it (serial-0 leaves make parsers warn)."""
    b64 = base64.b64encode(der)
    lines = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


def cert_table(entries: Sequence[tuple[str, x509.Certificate | bytes]], fmt: CertFormat = "der") -> bytes:
    """Header of 24-byte entries ending with an all-zero entry, then each certificate (DER or PEM) in order.

    Offsets count from the start of the blob. ``bytes`` entries are DER certificates (as VCEK/VLEK leaves are
    kept, unparsed); every entry is written in ``fmt``.
    """
    header = CERT_TABLE_ENTRY.size * (len(entries) + 1)
    head, body = bytearray(), bytearray()
    for guid, cert in entries:
        raw = cert if isinstance(cert, bytes) else cert.public_bytes(Encoding.DER)
        data = pem_certificate(raw) if fmt == "pem" else raw
        head += CERT_TABLE_ENTRY.pack(uuid.UUID(guid).bytes, header + len(body), len(data))
        body += data
    head += bytes(CERT_TABLE_ENTRY.size)
    return bytes(head + body)


__all__ = [
    "CERT_TABLE_ENTRY",
    "CPUID",
    "DEFAULT_FIRMWARE",
    "DEFAULT_PLATFORM_INFO",
    "DEFAULT_POLICY",
    "DEFAULT_TCB",
    "FIELDS",
    "GUID_ARK",
    "GUID_ASK",
    "GUID_VCEK",
    "GUID_VLEK",
    "P384_ORDER",
    "PRODUCTS",
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "SUPPORTED",
    "CertFormat",
    "Product",
    "ReportBody",
    "Tcb",
    "cert_table",
    "ecdsa_rs",
    "get",
    "pem_certificate",
    "put",
    "sign_report",
    "signature_block",
    "signer_info",
]
