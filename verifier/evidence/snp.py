"""AMD SEV-SNP ATTESTATION_REPORT (versions 2, 3, 5; always 0x4A0 = 1184 bytes) and the extended-report
certificate table. Parses bytes into frozen dataclasses; verifies nothing (amd-snp.md §1, §2, §4.1).

| off   | size | field              | off   | size | field                                     |
|-------|------|--------------------|-------|------|-------------------------------------------|
| 0x000 |    4 | VERSION            | 0x180 |    8 | REPORTED_TCB                              |
| 0x004 |    4 | GUEST_SVN          | 0x188 |    3 | CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (v3+) |
| 0x008 |    8 | POLICY             | 0x18B |   21 | reserved (MBZ; v2: 0x188..0x19F reserved) |
| 0x010 |   16 | FAMILY_ID          | 0x1A0 |   64 | CHIP_ID                                   |
| 0x020 |   16 | IMAGE_ID           | 0x1E0 |    8 | COMMITTED_TCB                             |
| 0x030 |    4 | VMPL               | 0x1E8 |    4 | CURRENT_BUILD, _MINOR, _MAJOR, reserved   |
| 0x034 |    4 | SIGNATURE_ALGO     | 0x1EC |    4 | COMMITTED_BUILD, _MINOR, _MAJOR, reserved |
| 0x038 |    8 | CURRENT_TCB        | 0x1F0 |    8 | LAUNCH_TCB                                |
| 0x040 |    8 | PLATFORM_INFO      | 0x1F8 |    8 | LAUNCH_MIT_VECTOR (v5; reserved before)   |
| 0x048 |    4 | signer info        | 0x200 |    8 | CURRENT_MIT_VECTOR (v5; reserved before)  |
| 0x04C |    4 | reserved (MBZ)     | 0x208 |  152 | reserved (MBZ)                            |
| 0x050 |   64 | REPORT_DATA        | 0x2A0 |   72 | SIGNATURE R (little-endian, low 48 used)  |
| 0x090 |   48 | MEASUREMENT        | 0x2E8 |   72 | SIGNATURE S (little-endian, low 48 used)  |
| 0x0C0 |   32 | HOST_DATA          | 0x330 |  368 | reserved (MBZ)                            |
| 0x0E0 |   48 | ID_KEY_DIGEST      |       |      |                                           |
| 0x110 |   48 | AUTHOR_KEY_DIGEST  |       |      | signed message: bytes 0x000..0x29F        |
| 0x140 |   32 | REPORT_ID          |       |      |                                           |
| 0x160 |   32 | REPORT_ID_MA       |       |      |                                           |

Structural rules enforced here (§9 step 1): exact size, VERSION in {2, 3, 5}, SIGNATURE_ALGO 1, every reserved
range zero (strict MBZ closes malleability games; all real vectors comply), SIGNING_KEY in {VCEK, VLEK},
signature padding zero and R/S in [1, n-1] of P-384. TCB_VERSION decoding depends on the *product*
(:func:`decode_tcb`), which the verifier determines, so reports keep TCBs as raw 8-byte values.
"""

from __future__ import annotations

import binascii
import struct
import uuid
from dataclasses import dataclass
from typing import Final, Literal

from verifier.encoding import is_hex_text, pem_blocks, strip_whitespace
from verifier.errors import Code, EvidenceMalformed

REPORT_SIZE: Final = 0x4A0
SIGNED_SIZE: Final = 0x2A0

BODY = struct.Struct("<IIQ16s16sII8sQII64s48s32s48s48s32s32s8sBBB21s64s8sBBBBBBBB8sQQ152s")
assert BODY.size == SIGNED_SIZE
SIGNATURE = struct.Struct("<72s72s368s")
assert SIGNED_SIZE + SIGNATURE.size == REPORT_SIZE

SUPPORTED_VERSIONS: Final = (2, 3, 5)
SIGNATURE_ALGO_ECDSA_P384_SHA384: Final = 1
SIGNING_KEY_VCEK: Final = 0
SIGNING_KEY_VLEK: Final = 1
SIGNING_KEY_NONE: Final = 7

#: Order n of NIST P-384 (R and S must lie in [1, n-1]).
P384_ORDER: Final = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16
)

# POLICY bits (§2).
POLICY_SMT: Final = 1 << 16
POLICY_RESERVED_MBO: Final = 1 << 17
POLICY_MIGRATE_MA: Final = 1 << 18
POLICY_DEBUG: Final = 1 << 19
POLICY_SINGLE_SOCKET: Final = 1 << 20
POLICY_CXL_ALLOW: Final = 1 << 21
POLICY_MEM_AES_256_XTS: Final = 1 << 22
POLICY_RAPL_DIS: Final = 1 << 23
POLICY_CIPHERTEXT_HIDING: Final = 1 << 24
POLICY_PAGE_SWAP_DISABLE: Final = 1 << 25
POLICY_RESERVED_MASK: Final = ((1 << 64) - 1) & ~((1 << 26) - 1)

# PLATFORM_INFO bits (§2.2).
PLATFORM_SMT_EN: Final = 1 << 0
PLATFORM_TSME_EN: Final = 1 << 1
PLATFORM_ECC_EN: Final = 1 << 2
PLATFORM_RAPL_DIS: Final = 1 << 3
PLATFORM_CIPHERTEXT_HIDING_EN: Final = 1 << 4
PLATFORM_ALIAS_CHECK_COMPLETE: Final = 1 << 5

Product = Literal["milan", "genoa", "turin"]
#: The chain a report is signed under (SIGNING_KEY): ARK -> ASK -> VCEK, or ARK -> ASVK -> VLEK.
SigningKeyName = Literal["vcek", "vlek"]
PRODUCTS: Final[tuple[Product, ...]] = ("milan", "genoa", "turin")

_Z: Final = {n: bytes(n) for n in (21, 152, 368, 24)}


@dataclass(frozen=True, slots=True)
class TcbVersion:
    """A decoded TCB_VERSION. ``fmc`` is None except on Turin. Compare component-wise, never as one integer."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    def components(self) -> dict[str, int]:
        c = {"bootloader": self.bootloader, "tee": self.tee, "snp": self.snp, "microcode": self.microcode}
        if self.fmc is not None:
            c["fmc"] = self.fmc
        return c


def decode_tcb(raw: bytes, product: Product) -> TcbVersion:
    """Decode an 8-byte TCB_VERSION by product (§1.2). Raises on non-zero reserved bytes."""
    if product == "turin":
        if any(raw[4:7]):
            raise EvidenceMalformed(
                Code.SNP_REPORT_RESERVED_NONZERO,
                "Turin TCB_VERSION reserved bytes 4-6 are set",
                expected="00",
                actual=raw.hex(),
            )
        return TcbVersion(bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
    if any(raw[2:6]):
        raise EvidenceMalformed(
            Code.SNP_REPORT_RESERVED_NONZERO, "TCB_VERSION reserved bytes 2-5 are set", expected="00", actual=raw.hex()
        )
    return TcbVersion(bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])


@dataclass(frozen=True, slots=True)
class SnpReport:
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid_fam_id: int | None
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: bytes
    current_version: tuple[int, int, int]  # major, minor, build
    committed_version: tuple[int, int, int]
    launch_tcb: bytes
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int
    signed: bytes
    raw: bytes

    @property
    def signing_key_name(self) -> str:
        return {SIGNING_KEY_VCEK: "vcek", SIGNING_KEY_VLEK: "vlek"}.get(self.signing_key, "none")

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)


def product_from_cpuid(report: SnpReport) -> Product | None:
    """The product line from CPUID (report v3+), or None for v2 reports (no CPUID). §1.3."""
    fam, mod = report.cpuid_fam_id, report.cpuid_mod_id
    if fam is None or mod is None:
        return None
    if fam == 0x19 and mod <= 0x0F:
        return "milan"
    if fam == 0x19 and (0x10 <= mod <= 0x1F or 0xA0 <= mod <= 0xAF):  # Genoa; Bergamo/Siena use Genoa keys
        return "genoa"
    if fam == 0x1A and mod <= 0x11:
        return "turin"
    raise EvidenceMalformed(
        Code.SNP_REPORT_CPUID_INVALID,
        "CPUID family/model is not Milan, Genoa or Turin",
        expected="0x19/0x00-0x1F|0xA0-0xAF or 0x1A/0x00-0x11",
        actual=f"0x{fam:02x}/0x{mod:02x}",
    )


def decode_report_bytes(data: bytes) -> bytes:
    """Binary reports start with a little-endian version (``02``, ``03``, ``05``); anything made only of hex
    digits (and whitespace) is hex text."""
    if data[:1] and data[0] < 0x10:
        return data
    digits = strip_whitespace(data)
    if not is_hex_text(digits):
        return data
    try:
        return binascii.unhexlify(digits)
    except binascii.Error as e:
        raise EvidenceMalformed(Code.SNP_REPORT_ENCODING, "hex report has an odd number of digits") from e


def _mbz(ok: bool, what: str) -> None:
    if not ok:
        raise EvidenceMalformed(Code.SNP_REPORT_RESERVED_NONZERO, f"reserved bytes are not zero: {what}")


def parse_snp_report(data: bytes) -> SnpReport:
    """Parse exactly 1184 bytes (binary or hex text). Raises :class:`EvidenceMalformed` with a stable code."""
    if len(data) > 4 * REPORT_SIZE:
        raise EvidenceMalformed(
            Code.SNP_REPORT_TRAILING_DATA, "report is far too large", expected=REPORT_SIZE, actual=len(data)
        )
    buf = decode_report_bytes(bytes(data))
    if len(buf) < REPORT_SIZE:
        raise EvidenceMalformed(
            Code.SNP_REPORT_TRUNCATED, "report is shorter than 0x4A0 bytes", expected=REPORT_SIZE, actual=len(buf)
        )
    if len(buf) > REPORT_SIZE:
        raise EvidenceMalformed(
            Code.SNP_REPORT_TRAILING_DATA, "bytes after the 0x4A0-byte report", expected=REPORT_SIZE, actual=len(buf)
        )
    f = BODY.unpack_from(buf, 0)
    (
        version,
        guest_svn,
        policy,
        family_id,
        image_id,
        vmpl,
        sig_algo,
        current_tcb,
        platform_info,
        signer_info,
        reserved_04c,
        report_data,
        measurement,
        host_data,
        id_key_digest,
        author_key_digest,
        report_id,
        report_id_ma,
        reported_tcb,
        fam,
        mod,
        step,
        reserved_18b,
        chip_id,
        committed_tcb,
        cur_build,
        cur_minor,
        cur_major,
        res_1eb,
        com_build,
        com_minor,
        com_major,
        res_1ef,
        launch_tcb,
        launch_mit,
        current_mit,
        reserved_208,
    ) = f
    # §9 step 1, in order: version, algorithm, reserved bytes, signing key.
    if version not in SUPPORTED_VERSIONS:
        raise EvidenceMalformed(
            Code.SNP_REPORT_UNSUPPORTED_VERSION, "unsupported report version", expected="2, 3 or 5", actual=version
        )
    if sig_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        raise EvidenceMalformed(
            Code.SNP_REPORT_SIGNATURE_ALGO,
            "signature algorithm is not ECDSA P-384 SHA-384",
            expected=SIGNATURE_ALGO_ECDSA_P384_SHA384,
            actual=sig_algo,
        )
    _mbz(reserved_04c == 0, "0x04C")
    _mbz(signer_info >> 5 == 0, "signer info bits 31:5")
    _mbz(reserved_18b == _Z[21], "0x18B..0x19F")
    _mbz(res_1eb == 0 and res_1ef == 0, "0x1EB, 0x1EF")
    _mbz(reserved_208 == _Z[152], "0x208..0x29F")
    if version == 2:
        _mbz(fam == mod == step == 0, "0x188..0x18A (v2)")
    if version < 5:
        _mbz(launch_mit == current_mit == 0, "0x1F8..0x207 (before v5)")
    if version >= 3 and fam == mod == 0:
        raise EvidenceMalformed(Code.SNP_REPORT_CPUID_INVALID, "report v3+ with all-zero CPUID", actual="0x00/0x00")
    signing_key = (signer_info >> 2) & 0x7
    if signing_key not in (SIGNING_KEY_VCEK, SIGNING_KEY_VLEK):
        raise EvidenceMalformed(
            Code.SNP_REPORT_SIGNING_KEY_INVALID,
            "SIGNING_KEY is neither VCEK nor VLEK",
            expected="0 (VCEK) or 1 (VLEK)",
            actual=signing_key,
        )
    mask_chip_key = bool(signer_info & 0x2)
    if mask_chip_key and signing_key == SIGNING_KEY_VCEK:
        raise EvidenceMalformed(
            Code.SNP_REPORT_MASK_CHIP_KEY,
            "MASK_CHIP_KEY is set on a VCEK-signed report",
            expected="0 with VCEK",
            actual=1,
        )
    author_key_en = bool(signer_info & 0x1)
    if not author_key_en and any(author_key_digest):
        raise EvidenceMalformed(
            Code.SNP_REPORT_AUTHOR_KEY_INCONSISTENT,
            "AUTHOR_KEY_DIGEST is set but AUTHOR_KEY_EN is 0",
            expected="zero digest",
            actual=author_key_digest.hex(),
        )
    # Signature: two 72-byte little-endian fields, low 48 bytes used; padding and the tail must be zero.
    r_field, s_field, tail = SIGNATURE.unpack_from(buf, SIGNED_SIZE)
    if r_field[48:] != _Z[24] or s_field[48:] != _Z[24] or tail != _Z[368]:
        raise EvidenceMalformed(Code.SNP_SIGNATURE_MALFORMED, "signature padding bytes are not zero")
    r = int.from_bytes(r_field[:48], "little")
    s = int.from_bytes(s_field[:48], "little")
    if not (0 < r < P384_ORDER and 0 < s < P384_ORDER):
        raise EvidenceMalformed(Code.SNP_SIGNATURE_MALFORMED, "signature R or S is outside [1, n-1]")
    has_cpuid = version >= 3
    return SnpReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=family_id,
        image_id=image_id,
        vmpl=vmpl,
        signature_algo=sig_algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        author_key_en=author_key_en,
        mask_chip_key=mask_chip_key,
        signing_key=signing_key,
        report_data=report_data,
        measurement=measurement,
        host_data=host_data,
        id_key_digest=id_key_digest,
        author_key_digest=author_key_digest,
        report_id=report_id,
        report_id_ma=report_id_ma,
        reported_tcb=reported_tcb,
        cpuid_fam_id=fam if has_cpuid else None,
        cpuid_mod_id=mod if has_cpuid else None,
        cpuid_step=step if has_cpuid else None,
        chip_id=chip_id,
        committed_tcb=committed_tcb,
        current_version=(cur_major, cur_minor, cur_build),
        committed_version=(com_major, com_minor, com_build),
        launch_tcb=launch_tcb,
        launch_mit_vector=launch_mit if version >= 5 else None,
        current_mit_vector=current_mit if version >= 5 else None,
        signature_r=r,
        signature_s=s,
        signed=buf[:SIGNED_SIZE],
        raw=buf,
    )


# ----------------------------------------------------------------------------------------------------------
# Certificate table (SNP_GET_EXT_REPORT certs buffer, configfs-tsm auxblob): §4.1

CERT_TABLE_ENTRY = struct.Struct("<16sII")
GUID_ARK: Final = "c0b406a4-a803-4952-9743-3fb6014cd0ae"
GUID_ASK: Final = "4ab7b379-bbac-4fe4-a02f-05aef327c782"
GUID_VCEK: Final = "63da758d-e664-4564-adc5-f4b93be8accd"
GUID_VLEK: Final = "a8074bc2-a25a-483e-aae6-39c045a0b8a1"
MAX_CERT_TABLE_ENTRIES: Final = 32
MAX_CERT_TABLE_BYTES: Final = 64 * 1024


def parse_cert_table(blob: bytes) -> dict[str, bytes]:
    """Parse a certificate table into ``{guid: DER}``. Entries may hold DER or PEM (PEM is decoded).

    Every entry is bounds-checked: offsets point past the header, lie inside the blob, do not overlap, and GUIDs
    are unique. Unknown GUIDs are kept (callers ignore them). Raises ``snp.cert_table.malformed``.
    """

    def bad(message: str) -> EvidenceMalformed:
        return EvidenceMalformed(Code.SNP_CERT_TABLE_MALFORMED, f"certificate table: {message}")

    if len(blob) > MAX_CERT_TABLE_BYTES:
        raise bad("too large")
    entries: list[tuple[str, int, int]] = []
    off = 0
    while True:
        if off + CERT_TABLE_ENTRY.size > len(blob):
            raise bad("no terminating all-zero entry")
        guid_raw, offset, length = CERT_TABLE_ENTRY.unpack_from(blob, off)
        off += CERT_TABLE_ENTRY.size
        if guid_raw == bytes(16) and offset == 0 and length == 0:
            break
        if len(entries) >= MAX_CERT_TABLE_ENTRIES:
            raise bad("too many entries")
        entries.append((str(uuid.UUID(bytes=guid_raw)), offset, length))
    header_end = off
    out: dict[str, bytes] = {}
    spans: list[tuple[int, int]] = []
    for guid, offset, length in entries:
        if guid in out:
            raise bad(f"duplicate GUID {guid}")
        if length == 0 or offset < header_end or offset + length > len(blob):
            raise bad(f"entry {guid} lies outside the blob")
        if any(offset < e and s < offset + length for s, e in spans):
            raise bad(f"entry {guid} overlaps another")
        spans.append((offset, offset + length))
        data = blob[offset : offset + length]
        if data.lstrip()[:5] == b"-----":
            try:
                blocks = pem_blocks(data, "CERTIFICATE")
            except ValueError as e:
                raise bad(f"entry {guid}: {e}") from e
            if len(blocks) != 1:
                raise bad(f"entry {guid} must hold exactly one certificate")
            data = blocks[0]
        out[guid] = data
    return out
