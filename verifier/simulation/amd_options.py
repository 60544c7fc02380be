"""What can vary in simulated AMD SEV-SNP evidence (verifier.simulation.amd_pki): genuine :class:`ReportOptions`
and :class:`CrlOptions`, and the :class:`Defect` catalogue, one defect at a time, with the stable code an exact
verifier must answer each with (:func:`expected_code`). SIMULATION ONLY; no keys or certificates here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from verifier.errors import Code
from verifier.simulation.amd_report_builder import (
    DEFAULT_POLICY,
    POLICY_DEBUG,
    POLICY_MIGRATE_MA,
    POLICY_RESERVED_MBO,
    SUPPORTED,
    CertFormat,
    Product,
    Tcb,
)

Kind = Literal["vcek", "vlek"]
KINDS: Final[tuple[Kind, ...]] = ("vcek", "vlek")
DEFAULT_CSP_ID: Final = "CN=keyward-sim-csp"
#: A revoked serial that belongs to nothing in this PKI: the genuine CRL is not empty.
DECOY_REVOKED_SERIAL: Final = 0x0BADC0DE


def sim_bytes(label: str, size: int) -> bytes:
    """``size`` deterministic bytes named by ``label`` (simulated identifiers, measurements, report data)."""
    return hashlib.shake_256(f"keyward-simulated:{label}".encode()).digest(size)


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """Genuine variations of the report and the platform behind it. Defaults: Genoa, report v5, VCEK.

    ``None`` means "derive": TCBs default to the product's :data:`DEFAULT_TCB` (COMMITTED, CURRENT and LAUNCH
    default to REPORTED), PLATFORM_INFO to 0x25 (v3+) / 0x3 (v2), firmware versions to what real firmware of
    that product and report version reported, CHIP_ID to this PKI's chip (VCEK; Turin: 8 bytes + 56 zeros) or
    zeros (VLEK, as on AWS).
    """

    product: Product = "genoa"
    version: int = 5
    signing_key: Kind = "vcek"
    guest_svn: int = 0
    policy: int = DEFAULT_POLICY
    family_id: bytes = bytes(16)
    image_id: bytes = bytes(16)
    vmpl: int = 0
    platform_info: int | None = None
    report_data: bytes = sim_bytes("report-data", 64)
    measurement: bytes = sim_bytes("measurement", 48)
    host_data: bytes = bytes(32)
    id_key_digest: bytes = bytes(48)
    author_key_en: bool = False
    author_key_digest: bytes = bytes(48)
    report_id: bytes = sim_bytes("report-id", 32)
    report_id_ma: bytes = b"\xff" * 32
    reported_tcb: Tcb | None = None
    current_tcb: Tcb | None = None
    committed_tcb: Tcb | None = None
    launch_tcb: Tcb | None = None
    current_version: tuple[int, int, int] | None = None  # (major, minor, build)
    committed_version: tuple[int, int, int] | None = None
    launch_mit_vector: int = 0  # v5 only
    current_mit_vector: int = 0  # v5 only
    chip_id: bytes | None = None
    csp_id: str = DEFAULT_CSP_ID  # VLEK cspID
    cert_format: CertFormat = "der"  # how the certificate table stores certificates

    def check(self) -> None:
        """Raise ValueError for options no genuine platform produces (use a :class:`Defect` instead)."""
        if (self.product, self.version) not in SUPPORTED:
            raise ValueError(f"no report version {self.version} for {self.product!r}")
        if self.signing_key not in KINDS:
            raise ValueError(f"signing key must be one of {KINDS}")
        if self.version < 5 and (self.launch_mit_vector or self.current_mit_vector):
            raise ValueError("MIT vectors exist in report version 5 only")
        if any(self.author_key_digest) and not self.author_key_en:
            raise ValueError("AUTHOR_KEY_DIGEST needs author_key_en (see Defect.AUTHOR_KEY_DIGEST_WITHOUT_EN)")
        for tcb in (self.reported_tcb, self.current_tcb, self.committed_tcb, self.launch_tcb):
            if tcb is not None:
                tcb.encode(self.product)  # raises for an FMC SPL outside Turin
        if self.chip_id is not None and len(self.chip_id) != 64:
            raise ValueError("chip_id must be 64 bytes")
        if self.chip_id is not None and self.product == "turin" and any(self.chip_id[8:]):
            raise ValueError("a Turin chip_id has 8 meaningful bytes followed by 56 zero bytes")


@dataclass(frozen=True, slots=True)
class CrlOptions:
    """The AMD CRL served with the evidence (signed by the ARK). ``include=False``: no CRL (``crl_der`` None)."""

    include: bool = True
    revoked_serials: tuple[int, ...] = (DECOY_REVOKED_SERIAL,)


class Defect(StrEnum):
    """One injected defect. Each makes exactly one check of amd-snp.md §9 (or the §2 default policy) fail.
    The docstring under each member says what is wrong and, after "Reject:", why an exact verifier refuses it;
    :func:`expected_code` gives the code."""

    WRONG_ROOT = "wrong_root"
    """Leaf, ASK/ASVK and ARK form a valid chain under a forger's ARK that copies AMD's names and serials.
    Reject: the supplied ARK is not the pinned one (and the leaf does not verify under the pinned ASK)."""
    LEAF_BAD_SIGNATURE = "leaf_bad_signature"
    """The VCEK/VLEK names the genuine ASK/ASVK as issuer but is signed by another RSA key.
    Reject: the leaf's signature does not verify under the ASK/ASVK."""
    ASK_BAD_SIGNATURE = "ask_bad_signature"
    """The supplied ASK/ASVK has AMD's name but another key (which signed the leaf) and a signature the ARK
    never made. Reject: the ASK/ASVK does not verify under the ARK (nor the leaf under the pinned ASK)."""
    VLEK_PRESENTED_AS_VCEK = "vlek_presented_as_vcek"
    """A VLEK-signed report whose SIGNING_KEY says VCEK (0), the VLEK filed under the VCEK GUID.
    Reject: the certificate kind (cspID, ASVK issuer) contradicts SIGNING_KEY (TEE-Attestation-Verification#142)."""
    VCEK_PRESENTED_AS_VLEK = "vcek_presented_as_vlek"
    """A VCEK-signed report whose SIGNING_KEY says VLEK (1), the VCEK filed under the VLEK GUID.
    Reject: the certificate kind (hwID, ASK issuer) contradicts SIGNING_KEY."""
    WRONG_PRODUCT_CHAIN = "wrong_product_chain"
    """v3+ only: the leaf (otherwise genuine) is issued under another product's ASK/ASVK (Milan -> Genoa's,
    Genoa -> Milan's, Turin -> Genoa's) and the chain supplied is that product's. Reject: the product named by
    CPUID disagrees with the issuing chain (§1.3)."""
    TCB_EXT_MISMATCH_BL = "tcb_ext_mismatch_bl"
    """Leaf blSPL = REPORTED_TCB boot loader + 1. Reject: leaf SPLs must equal REPORTED_TCB exactly (§3.1)."""
    TCB_EXT_MISMATCH_TEE = "tcb_ext_mismatch_tee"
    """Leaf teeSPL = REPORTED_TCB TEE + 1. Reject: as above."""
    TCB_EXT_MISMATCH_SNP = "tcb_ext_mismatch_snp"
    """Leaf snpSPL = REPORTED_TCB SNP + 1. Reject: as above."""
    TCB_EXT_MISMATCH_UCODE = "tcb_ext_mismatch_ucode"
    """Leaf ucodeSPL = REPORTED_TCB microcode + 1. Reject: as above."""
    TCB_EXT_MISMATCH_FMC = "tcb_ext_mismatch_fmc"
    """Turin only: leaf fmcSPL = REPORTED_TCB FMC + 1. Reject: as above."""
    CURRENT_TCB_USED = "current_tcb_used"
    """CURRENT/COMMITTED_TCB are above REPORTED_TCB (snp and ucode + 1) and the leaf certifies CURRENT_TCB, which
    a verifier matching CURRENT_TCB accepts. Reject: the VCEK must match REPORTED_TCB (go-sev-guest#72)."""
    HWID_MISMATCH = "hwid_mismatch"
    """VCEK only: hwID is another chip's ID (Turin: another 8 bytes). Reject: hwID must equal CHIP_ID
    (Turin: CHIP_ID[0:8])."""
    HWID_MISSING = "hwid_missing"
    """VCEK only: no hwID extension (and no cspID). Reject: a VCEK must carry hwID, or it binds to no chip."""
    CSPID_MISSING = "cspid_missing"
    """VLEK only: no cspID extension (and no hwID). Reject: a VLEK must carry cspID."""
    LEAF_EXPIRED = "leaf_expired"
    """Leaf notAfter is one day before ``now``. Reject: leaf not valid at ``now``."""
    LEAF_NOT_YET_VALID = "leaf_not_yet_valid"
    """Leaf notBefore is one day after ``now``. Reject: leaf not valid at ``now``."""
    LEAF_REVOKED = "leaf_revoked"
    """The (genuine, ARK-signed) CRL lists serial 0, the leaf's. Reject: leaf revoked."""
    ASK_REVOKED = "ask_revoked"
    """The (genuine) CRL lists the ASK's serial (VLEK evidence: the ASVK's). Reject: intermediate revoked."""
    CRL_EXPIRED = "crl_expired"
    """CRL nextUpdate is one day before ``now``. Reject: stale revocation data (fail closed)."""
    CRL_NOT_YET_VALID = "crl_not_yet_valid"
    """CRL thisUpdate is one day after ``now``. Reject: CRL not yet valid."""
    CRL_BAD_SIGNATURE = "crl_bad_signature"
    """The CRL names the ARK as issuer but is signed by another RSA key. Reject: CRL signature invalid."""
    REPORT_SIGNATURE_BAD = "report_signature_bad"
    """The report carries a well-formed signature (R, S in range, zero padding) by a P-384 key other than the
    leaf's. Reject: ECDSA over 0x000..0x29F does not verify under the VCEK/VLEK."""
    R_OUT_OF_RANGE = "r_out_of_range"
    """R = n, the P-384 order (S unchanged). Reject: R outside [1, n-1]."""
    S_ZERO = "s_zero"
    """S = 0. Reject: S outside [1, n-1]."""
    SIGNATURE_PADDING_NONZERO = "signature_padding_nonzero"
    """Byte 0x2D0 (first padding byte of the 72-byte R field) is 1; the low 48 bytes still verify.
    Reject: signature padding must be zero (malleability)."""
    RESERVED_NONZERO = "reserved_nonzero"
    """The reserved u32 at 0x04C is 1 (re-signed, so the signature is valid). Reject: reserved bytes MBZ."""
    UNKNOWN_VERSION_4 = "unknown_version_4"
    """VERSION = 4 (never seen; v3 layout), re-signed. Reject: only versions 2, 3 and 5 are supported."""
    UNKNOWN_VERSION_6 = "unknown_version_6"
    """VERSION = 6 (future; the base layout), re-signed. Reject: only versions 2, 3 and 5 are supported."""
    SIGNATURE_ALGO_ZERO = "signature_algo_zero"
    """SIGNATURE_ALGO = 0. Reject: only 1 (ECDSA P-384 SHA-384) is valid; some verifiers wrongly accept 0."""
    MASK_CHIP_KEY = "mask_chip_key"
    """VCEK only: MASK_CHIP_KEY = 1 on a VCEK-signed report. Reject: a masked chip key cannot sign a VCEK
    report (§2.1)."""
    SIGNING_KEY_NONE = "signing_key_none"
    """SIGNING_KEY = 7 (none). Reject: SIGNING_KEY must be VCEK or VLEK."""
    DEBUG_POLICY = "debug_policy"
    """POLICY.DEBUG (bit 19) set. Reject (policy): the host can read guest memory."""
    MIGRATE_MA = "migrate_ma"
    """POLICY.MIGRATE_MA (bit 18) set. Reject (policy): no migration-agent support."""
    POLICY_BIT17_CLEAR = "policy_bit17_clear"
    """POLICY bit 17 (reserved, must be 1) clear. Reject (policy): reserved policy bits."""
    POLICY_RESERVED_BIT = "policy_reserved_bit"
    """POLICY bit 40 (reserved, must be 0) set. Reject (policy): reserved policy bits (fail closed)."""
    VMPL3 = "vmpl3"
    """VMPL = 3. Reject (policy): the default policy allows VMPL 0 only."""
    AUTHOR_KEY_DIGEST_WITHOUT_EN = "author_key_digest_without_en"
    """AUTHOR_KEY_DIGEST non-zero while AUTHOR_KEY_EN = 0. Reject: inconsistent author key fields."""
    LEAF_NOT_P384 = "leaf_not_p384"
    """The leaf's key is P-256 (correctly signed by the ASK/ASVK; the report is signed by that P-256 key).
    Reject: the VCEK/VLEK key must be secp384r1."""
    PSS_WRONG_SALT = "pss_wrong_salt"
    """The *supplied* ASK/ASVK (same key, same TBS otherwise) is signed by the ARK with RSASSA-PSS salt 32 and
    declares salt 32. Reject: PSS parameters must be exactly SHA-384 / MGF1-SHA-384 / salt 48. The pinned ASK
    is unchanged, so only a verifier that checks the supplied chain (or compares it with the pinned one) can
    see this; :attr:`LEAF_PSS_WRONG_SALT` is the variant every verifier sees."""
    LEAF_PSS_WRONG_SALT = "leaf_pss_wrong_salt"
    """The leaf is signed by the genuine ASK/ASVK key with RSASSA-PSS salt 32 and declares salt 32.
    Reject: PSS parameters must be exactly SHA-384 / MGF1-SHA-384 / salt 48."""
    CPUID_ZERO_V3 = "cpuid_zero_v3"
    """v3+ only: CPUID_FAM_ID/MOD_ID/STEP all zero. Reject: a v3+ report must name its product in CPUID."""


_C = Code
#: The code an exact verifier following amd-snp.md §9 (and the §2 default policy) should report.
EXPECTED_CODES: Final[Mapping[Defect, Code]] = {
    Defect.WRONG_ROOT: _C.SNP_CHAIN_UNTRUSTED,
    Defect.LEAF_BAD_SIGNATURE: _C.SNP_CHAIN_SIGNATURE_INVALID,
    Defect.ASK_BAD_SIGNATURE: _C.SNP_CHAIN_SIGNATURE_INVALID,
    Defect.VLEK_PRESENTED_AS_VCEK: _C.SNP_LEAF_KEY_TYPE_MISMATCH,
    Defect.VCEK_PRESENTED_AS_VLEK: _C.SNP_LEAF_KEY_TYPE_MISMATCH,
    Defect.WRONG_PRODUCT_CHAIN: _C.SNP_CHAIN_PRODUCT_MISMATCH,
    Defect.TCB_EXT_MISMATCH_BL: _C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_TEE: _C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_SNP: _C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_UCODE: _C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_FMC: _C.SNP_LEAF_TCB_MISMATCH,
    Defect.CURRENT_TCB_USED: _C.SNP_LEAF_TCB_MISMATCH,
    Defect.HWID_MISMATCH: _C.SNP_LEAF_HWID_MISMATCH,
    Defect.HWID_MISSING: _C.SNP_LEAF_EXTENSIONS_INVALID,
    Defect.CSPID_MISSING: _C.SNP_LEAF_EXTENSIONS_INVALID,
    Defect.LEAF_EXPIRED: _C.SNP_LEAF_EXPIRED,
    Defect.LEAF_NOT_YET_VALID: _C.SNP_LEAF_NOT_YET_VALID,
    Defect.LEAF_REVOKED: _C.SNP_LEAF_REVOKED,
    Defect.ASK_REVOKED: _C.SNP_CHAIN_REVOKED,
    Defect.CRL_EXPIRED: _C.SNP_CRL_EXPIRED,
    Defect.CRL_NOT_YET_VALID: _C.SNP_CRL_NOT_YET_VALID,
    Defect.CRL_BAD_SIGNATURE: _C.SNP_CRL_SIGNATURE_INVALID,
    Defect.REPORT_SIGNATURE_BAD: _C.SNP_SIGNATURE_INVALID,
    Defect.R_OUT_OF_RANGE: _C.SNP_SIGNATURE_MALFORMED,
    Defect.S_ZERO: _C.SNP_SIGNATURE_MALFORMED,
    Defect.SIGNATURE_PADDING_NONZERO: _C.SNP_SIGNATURE_MALFORMED,
    Defect.RESERVED_NONZERO: _C.SNP_REPORT_RESERVED_NONZERO,
    Defect.UNKNOWN_VERSION_4: _C.SNP_REPORT_UNSUPPORTED_VERSION,
    Defect.UNKNOWN_VERSION_6: _C.SNP_REPORT_UNSUPPORTED_VERSION,
    Defect.SIGNATURE_ALGO_ZERO: _C.SNP_REPORT_SIGNATURE_ALGO,
    Defect.MASK_CHIP_KEY: _C.SNP_REPORT_MASK_CHIP_KEY,
    Defect.SIGNING_KEY_NONE: _C.SNP_REPORT_SIGNING_KEY_INVALID,
    Defect.DEBUG_POLICY: _C.SNP_POLICY_DEBUG,
    Defect.MIGRATE_MA: _C.SNP_POLICY_MIGRATE_MA,
    Defect.POLICY_BIT17_CLEAR: _C.SNP_POLICY_RESERVED_BITS,
    Defect.POLICY_RESERVED_BIT: _C.SNP_POLICY_RESERVED_BITS,
    Defect.VMPL3: _C.SNP_POLICY_VMPL,
    Defect.AUTHOR_KEY_DIGEST_WITHOUT_EN: _C.SNP_REPORT_AUTHOR_KEY_INCONSISTENT,
    Defect.LEAF_NOT_P384: _C.SNP_LEAF_KEY_INVALID,
    Defect.PSS_WRONG_SALT: _C.SNP_CHAIN_PSS_PARAMETERS,
    Defect.LEAF_PSS_WRONG_SALT: _C.SNP_CHAIN_PSS_PARAMETERS,
    Defect.CPUID_ZERO_V3: _C.SNP_REPORT_CPUID_INVALID,
}
#: Defects an appraisal policy (not the verifier) rejects: the evidence itself verifies.
POLICY_DEFECTS: Final = frozenset(d for d, c in EXPECTED_CODES.items() if c.value.startswith("snp.policy."))


def expected_code(defect: Defect) -> Code:
    """Suggested code for ``defect``. ``snp.policy.*`` codes come from appraisal under the default policy:
    the report verifies, and the policy bit or VMPL is then refused."""
    return EXPECTED_CODES[defect]


_VCEK_ONLY: Final = frozenset(
    {Defect.HWID_MISMATCH, Defect.HWID_MISSING, Defect.MASK_CHIP_KEY, Defect.VCEK_PRESENTED_AS_VLEK}
)
_VLEK_ONLY: Final = frozenset({Defect.CSPID_MISSING, Defect.VLEK_PRESENTED_AS_VCEK})
_V3_PLUS: Final = frozenset(
    {Defect.WRONG_PRODUCT_CHAIN, Defect.CPUID_ZERO_V3, Defect.UNKNOWN_VERSION_4, Defect.UNKNOWN_VERSION_6}
)


def defect_applies(defect: Defect, options: ReportOptions) -> bool:
    """Whether ``defect`` can be injected into a report built with ``options`` without being a no-op."""
    kind, p = options.signing_key, options.policy
    return not (
        (defect in _VCEK_ONLY and kind != "vcek")
        or (defect in _VLEK_ONLY and kind != "vlek")
        or (defect in _V3_PLUS and options.version < 3)
        or (defect is Defect.TCB_EXT_MISMATCH_FMC and options.product != "turin")
        or (defect is Defect.VMPL3 and options.vmpl == 3)
        or (defect is Defect.AUTHOR_KEY_DIGEST_WITHOUT_EN and options.author_key_en)
        or (defect is Defect.DEBUG_POLICY and p & POLICY_DEBUG)
        or (defect is Defect.MIGRATE_MA and p & POLICY_MIGRATE_MA)
        or (defect is Defect.POLICY_BIT17_CLEAR and not p & POLICY_RESERVED_MBO)
        or (defect is Defect.POLICY_RESERVED_BIT and p & (1 << 40))
    )


def applicable_defects(options: ReportOptions) -> tuple[Defect, ...]:
    return tuple(d for d in Defect if defect_applies(d, options))
