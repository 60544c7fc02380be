"""A SIMULATED AMD SEV-SNP PKI: test ARKs, ASKs, ASVKs, VCEKs, VLEKs, CRLs and signed reports, byte-exact.

SIMULATION ONLY. Nothing here is AMD's: every key is derived from a fixed seed in this module and every
certificate, CRL, certificate table and ATTESTATION_REPORT it produces is simulated. The certificates use
AMD's names (``ARK-Milan``, ``SEV-Milan``, ``SEV-VLEK-Milan``, ``SEV-VCEK``, ...) so that name handling is
exercised, but the key material is ours: these roots never enter ``vendor_roots/`` and are trusted only when a
developer explicitly enables simulated roots for development. Evidence built here must be verified under
:attr:`AmdEvidence.trust_store`, which is marked ``simulated=True``, so every result computed under it is
marked simulated.

What it does: mirrors AMD's PKI shape (amd-snp.md §3) for Milan, Genoa and Turin: a self-signed RSA-4096 ARK,
the ASK (VCEK issuer) and ASVK (VLEK issuer) under it, all RSASSA-PSS SHA-384 / MGF1-SHA-384 / salt 48;
VCEK/VLEK leaves with a P-384 key, serial number 0 and only the AMD extensions (§3.1, built by hand below); the
ARK-signed CRL (§3.2); reports of versions 2, 3 and 5 via :mod:`verifier.testing.amd_report_builder`; and the
extended-report certificate table (§4.1). One :class:`Defect` at a time can be injected; each one makes the
evidence fail exactly one check of an exact verifier (suggested code: :func:`expected_code`).

Usage::

    pki = default_amd_pki()                                    # cached per process; keys are deterministic
    ev = pki.build(ReportOptions(product="genoa", version=5, signing_key="vcek"))
    bad = pki.build(ReportOptions(product="turin"), defect=Defect.TCB_EXT_MISMATCH_FMC)
    ev.report, ev.leaf_der, ev.chain_pem, ev.cert_table, ev.crl_der, ev.now, ev.trust_store

Everything is deterministic: RSA primes and EC keys are derived from the seed, ECDSA signatures use RFC 6979 and
RSASSA-PSS salts are derived from the signed message, so the same options give the same bytes. RSA-4096 keys
are rebuilt from :data:`_PRIME_HINTS` (offsets from a seed-derived start to the next prime), so building the
PKI takes about a second; another seed works too but searches for its primes (~3 s per RSA key).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.errors import Code
from verifier.testing.amd_report_builder import (
    CPUID,
    DEFAULT_FIRMWARE,
    DEFAULT_PLATFORM_INFO,
    DEFAULT_POLICY,
    DEFAULT_TCB,
    GUID_ARK,
    GUID_ASK,
    GUID_VCEK,
    GUID_VLEK,
    P384_ORDER,
    POLICY_DEBUG,
    POLICY_MIGRATE_MA,
    POLICY_RESERVED_MBO,
    PRODUCTS,
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNING_KEY_NONE,
    SIGNING_KEY_VCEK,
    SIGNING_KEY_VLEK,
    SUPPORTED,
    CertFormat,
    Product,
    ReportBody,
    Tcb,
    cert_table,
    put,
    sign_report,
    signer_info,
)
from verifier.testing.der import der_ia5, der_int, tlv
from verifier.trust.store import TrustStore, trust_store_from_certificates

Kind = Literal["vcek", "vlek"]
KINDS: Final[tuple[Kind, ...]] = ("vcek", "vlek")

#: The verification time every simulated item is valid around.
SIM_NOW: Final = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
DEFAULT_SEED: Final = "keyward-simulated-amd-pki/1"
AMD_OID: Final = "1.3.6.1.4.1.3704.1"
TITLE: Final[Mapping[Product, str]] = {"milan": "Milan", "genoa": "Genoa", "turin": "Turin"}
#: productName as KDS writes it: VCEKs carry the stepping on Milan only, VLEKs never (§3.1).
PRODUCT_NAME: Final[Mapping[tuple[Product, Kind], str]] = {
    ("milan", "vcek"): "Milan-B0",
    ("genoa", "vcek"): "Genoa",
    ("turin", "vcek"): "Turin",
    ("milan", "vlek"): "Milan",
    ("genoa", "vlek"): "Genoa",
    ("turin", "vlek"): "Turin",
}
#: Serial numbers of AMD's real ARK / ASK / ASVK (amd-snp.md §5); leaves always have serial 0.
SERIALS: Final[Mapping[tuple[Product, str], int]] = {
    ("milan", "ark"): 0x10000,
    ("milan", "ask"): 0x10001,
    ("milan", "asvk"): 0x10101,
    ("genoa", "ark"): 0x20000,
    ("genoa", "ask"): 0x20002,
    ("genoa", "asvk"): 0x20101,
    ("turin", "ark"): 0x30000,
    ("turin", "ask"): 0x30001,
    ("turin", "asvk"): 0x30101,
}
LEAF_SERIAL: Final = 0
DEFAULT_CSP_ID: Final = "CN=keyward-sim-csp"
#: A revoked serial that belongs to nothing in this PKI: the genuine CRL is not empty.
DECOY_REVOKED_SERIAL: Final = 0x0BADC0DE
PSS_SALT: Final = 48
_DAY: Final = timedelta(days=1)
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_E: Final = 65537


def _utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


#: (notBefore, notAfter) of ARK, ASK, ASVK per product: AMD's real dates (amd-snp.md §5).
_CA_VALIDITY: Final[Mapping[tuple[Product, str], tuple[datetime, datetime]]] = {
    ("milan", "ark"): (_utc(2020, 10, 22), _utc(2045, 10, 22)),
    ("milan", "ask"): (_utc(2020, 10, 22), _utc(2045, 10, 22)),
    ("milan", "asvk"): (_utc(2022, 11, 16), _utc(2047, 11, 16)),
    ("genoa", "ark"): (_utc(2022, 1, 26), _utc(2047, 1, 26)),
    ("genoa", "ask"): (_utc(2022, 10, 31), _utc(2047, 10, 31)),
    ("genoa", "asvk"): (_utc(2022, 11, 18), _utc(2047, 11, 18)),
    ("turin", "ark"): (_utc(2023, 5, 15), _utc(2048, 5, 15)),
    ("turin", "ask"): (_utc(2023, 5, 15), _utc(2048, 5, 15)),
    ("turin", "asvk"): (_utc(2023, 5, 15), _utc(2048, 5, 15)),
}


def _h(label: str, size: int) -> bytes:
    return hashlib.shake_256(f"keyward-simulated:{label}".encode()).digest(size)


T = TypeVar("T")


def _pick(d: Defect | None, choices: Mapping[Defect, T], default: T) -> T:
    """``choices[d]`` when the active defect has an entry, else ``default``."""
    return default if d is None else choices.get(d, default)


# ----------------------------------------------------------------------------------------------------------
# A tiny DER toolkit: the AMD extension values, and surgery on TBS bytes cryptography will not build


def _read(der: bytes, off: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at ``off``."""
    tag, first = der[off], der[off + 1]
    off += 2
    if first & 0x80:
        n = first & 0x7F
        length = int.from_bytes(der[off : off + n], "big")
        off += n
    else:
        length = first
    if off + length > len(der):
        raise ValueError("DER element overruns its buffer")
    return tag, off, off + length


def _signed_parts(der: bytes) -> tuple[bytes, bytes]:
    """(TBS element, signatureAlgorithm element) of a Certificate or CertificateList."""
    _, start, _ = _read(der, 0)
    _, _, tbs_end = _read(der, start)
    _, _, alg_end = _read(der, tbs_end)
    return der[start:tbs_end], der[tbs_end:alg_end]


def _assemble(tbs: bytes, alg_id: bytes, signature: bytes) -> bytes:
    """Certificate / CertificateList ::= SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }."""
    return tlv(0x30, tbs + alg_id + tlv(0x03, b"\x00" + signature))


def _tbs_with_serial_zero(tbs: bytes) -> bytes:
    """Replace the TBSCertificate serial ``02 01 01`` by ``02 01 00`` (cryptography refuses to build serial 0)."""
    _, start, _ = _read(tbs, 0)
    tag, _, version_end = _read(tbs, start)
    stag, s_start, s_end = _read(tbs, version_end)
    if tag != 0xA0 or stag != 0x02 or tbs[s_start:s_end] != b"\x01":
        raise ValueError("expected a v3 TBSCertificate built with serial 1")
    return tbs[:s_start] + b"\x00" + tbs[s_end:]


def _tbs_crl_serial_to_zero(tbs: bytes, placeholder: int) -> bytes:
    """Rewrite the revoked entry whose one-byte serial is ``placeholder`` to serial 0 (same length)."""
    _, off, end = _read(tbs, 0)
    while off < end:
        tag, start, nxt = _read(tbs, off)
        if tag == 0x30 and start < nxt and tbs[start] == 0x30:  # revokedCertificates: SEQUENCE OF SEQUENCE
            pos = start
            while pos < nxt:
                _, e_start, e_end = _read(tbs, pos)
                itag, i_start, i_end = _read(tbs, e_start)
                if itag == 0x02 and tbs[i_start:i_end] == bytes([placeholder]):
                    return tbs[:i_start] + b"\x00" + tbs[i_end:]
                pos = e_end
        off = nxt
    raise ValueError("placeholder serial not found in the CRL")


# ----------------------------------------------------------------------------------------------------------
# Deterministic keys: RSA-4096 from seed-derived primes, RSASSA-PSS with derived salts, EC by derivation

#: Offsets from each seed-derived 2048-bit start (see :func:`_prime_start`) to the first probable prime p
#: with gcd(e, p-1) = 1, for :data:`DEFAULT_SEED`. Found once with :func:`_next_prime`; checked on every load.
_PRIME_HINTS: Final[Mapping[str, tuple[int, int]]] = {
    "milan/ark": (498, 578),
    "milan/ask": (342, 2674),
    "milan/asvk": (504, 2314),
    "genoa/ark": (556, 692),
    "genoa/ask": (748, 1462),
    "genoa/asvk": (2118, 1308),
    "turin/ark": (1728, 1182),
    "turin/ask": (898, 834),
    "turin/asvk": (1804, 278),
    "alt/ark": (500, 1956),
    "alt/ask": (1424, 174),
    "rogue": (5752, 24),
}


@functools.cache
def _small_primes(limit: int = 20000) -> tuple[int, ...]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return tuple(i for i in range(3, limit + 1) if sieve[i])


def _strong_probable_prime(n: int, base: int = 2) -> bool:
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    x = pow(base, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(r - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def _prime_start(seed: str, label: str, which: str) -> int:
    """An odd 2048-bit number with the top two bits set (so p*q has exactly 4096 bits)."""
    raw = hashlib.shake_256(f"{seed}/rsa/{label}/{which}".encode()).digest(256)
    return int.from_bytes(raw, "big") | (3 << 2046) | 1


def _usable(n: int) -> bool:
    return (n - 1) % _E != 0 and _strong_probable_prime(n)


def _next_prime(start: int, window: int = 4096) -> int:
    """Offset from ``start`` (odd) to the first usable probable prime: sieve a window, then Miller-Rabin."""
    base = 0
    while True:
        marks = bytearray([1]) * window  # index i stands for start + base + 2i
        for p in _small_primes():
            i0 = (-((start + base) % p) * pow(2, -1, p)) % p
            marks[i0::p] = bytearray(len(marks[i0::p]))
        for i in range(window):
            if marks[i] and _usable(start + base + 2 * i):
                return base + 2 * i
        base += 2 * window


def _prime(seed: str, label: str, which: str, hint: int | None) -> int:
    start = _prime_start(seed, label, which)
    if hint is not None and _usable(start + hint):
        return start + hint
    return start + _next_prime(start)


def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    out = b"".join(hashlib.sha384(seed + i.to_bytes(4, "big")).digest() for i in range((length + 47) // 48))
    return out[:length]


@dataclass(frozen=True, eq=False)
class RsaKey:
    """An RSA key with its CRT numbers, signing RSASSA-PSS deterministically (salt derived from the message)."""

    label: str
    private: rsa.RSAPrivateKey
    n: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @classmethod
    def derive(cls, seed: str, label: str) -> RsaKey:
        hints = _PRIME_HINTS.get(label) if seed == DEFAULT_SEED else None
        p = _prime(seed, label, "p", hints[0] if hints else None)
        q = _prime(seed, label, "q", hints[1] if hints else None)
        d = pow(_E, -1, (p - 1) * (q - 1))
        dp, dq, qinv = d % (p - 1), d % (q - 1), pow(q, -1, p)
        numbers = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv, rsa.RSAPublicNumbers(_E, p * q))
        return cls(label, numbers.private_key(unsafe_skip_rsa_key_validation=True), p * q, p, q, dp, dq, qinv)

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def sign_pss(self, message: bytes, salt_length: int = PSS_SALT) -> bytes:
        """RSASSA-PSS (RFC 8017 §8.1) with SHA-384 and MGF1-SHA-384; the salt is derived, not random."""
        if not 0 <= salt_length <= 48:
            raise ValueError("salt length must be 0..48")
        m_hash = hashlib.sha384(message).digest()
        salt = hashlib.sha384(f"keyward-simulated:pss-salt/{self.label}/".encode() + m_hash).digest()[:salt_length]
        em_bits = self.n.bit_length() - 1
        em_len = (em_bits + 7) // 8
        h = hashlib.sha384(bytes(8) + m_hash + salt).digest()
        db = bytes(em_len - salt_length - 48 - 2) + b"\x01" + salt
        masked = bytearray(a ^ b for a, b in zip(db, _mgf1_sha384(h, em_len - 49), strict=True))
        masked[0] &= 0xFF >> (8 * em_len - em_bits)
        m = int.from_bytes(bytes(masked) + h + b"\xbc", "big")
        m1, m2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        s = m2 + (self.qinv * (m1 - m2) % self.p) * self.q
        return s.to_bytes((self.n.bit_length() + 7) // 8, "big")


def _pss(salt_length: int = PSS_SALT) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=salt_length)


def amd_name(cn: str) -> x509.Name:
    """AMD's name shape: OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=<cn>."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def intermediate_role(kind: Kind) -> str:
    """``"ask"`` issues VCEKs, ``"asvk"`` issues VLEKs."""
    return "asvk" if kind == "vlek" else "ask"


def _ca_cn(product: Product, role: str) -> str:
    return {"ark": "ARK-", "ask": "SEV-", "asvk": "SEV-VLEK-"}[role] + TITLE[product]


def _crl_url(product: Product, kind: Kind) -> str:
    # Deliberately not kdsintf.amd.com: nothing should ever fetch anything for a simulated certificate.
    return f"https://sim.keyward.invalid/{kind}/v1/{TITLE[product]}/crl"


# ----------------------------------------------------------------------------------------------------------
# VCEK / VLEK leaves (amd-snp.md §3.1)


@dataclass(frozen=True, slots=True)
class LeafSpec:
    """Everything a VCEK/VLEK certifies and who signs it. Extensions follow ``product``'s KDS layout."""

    product: Product
    kind: Kind
    tcb: Tcb
    hwid: bytes | None  # VCEK: 64 bytes (8 on Turin), raw; None leaves the extension out
    csp_id: str | None  # VLEK only; None leaves the extension out
    not_before: datetime
    not_after: datetime
    key_label: str
    curve: Literal["p384", "p256"] = "p384"
    issuer_product: Product | None = None  # whose ASK/ASVK name goes in the issuer (None: ``product``)
    signer: str | None = None  # RSA key label that signs (None: the genuine ASK/ASVK of the issuer product)
    salt_length: int = PSS_SALT


def leaf_extensions(spec: LeafSpec) -> list[x509.UnrecognizedExtension]:
    """The AMD extensions in KDS's order. extnValue holds DER for .1/.2/.3.x/.5 and the raw bytes for .4."""

    def ext(arc: str, value: bytes) -> x509.UnrecognizedExtension:
        return x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{AMD_OID}.{arc}"), value)

    t = spec.tcb
    head = [
        ext("1", der_int(1 if spec.product == "turin" else 0)),
        ext("2", der_ia5(PRODUCT_NAME[spec.product, spec.kind])),
    ]
    if spec.product == "turin":  # real Turin VCEK: .1 .2 .3.9 .3.1 .3.2 .3.3 .3.5 .3.6 .3.7 .3.8 .4 (no spl4)
        spl = [("3.9", t.fmc), ("3.1", t.bl), ("3.2", t.tee), ("3.3", t.snp)]
        spl += [("3.5", 0), ("3.6", 0), ("3.7", 0), ("3.8", t.ucode)]
    else:  # real Milan/Genoa VCEK: .1 .2 .3.1 .3.2 .3.4 .3.5 .3.6 .3.7 .3.3 .3.8 .4
        spl = [("3.1", t.bl), ("3.2", t.tee), ("3.4", 0), ("3.5", 0), ("3.6", 0), ("3.7", 0)]
        spl += [("3.3", t.snp), ("3.8", t.ucode)]
    tail = []
    if spec.hwid is not None:
        tail.append(ext("4", spec.hwid))
    if spec.csp_id is not None:
        tail.append(ext("5", der_ia5(spec.csp_id)))
    return [*head, *(ext(arc, der_int(v)) for arc, v in spl), *tail]


# ----------------------------------------------------------------------------------------------------------
# Options and defects

Window = tuple[datetime, datetime]


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
    report_data: bytes = _h("report-data", 64)
    measurement: bytes = _h("measurement", 48)
    host_data: bytes = bytes(32)
    id_key_digest: bytes = bytes(48)
    author_key_en: bool = False
    author_key_digest: bytes = bytes(48)
    report_id: bytes = _h("report-id", 32)
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


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class AmdEvidence:
    """A simulated report with everything that travels with it, the time it is valid at and the trust store."""

    report: bytes  # 1184 bytes
    leaf_der: bytes  # VCEK or VLEK (serial 0)
    chain_pem: str  # ASK (VCEK) or ASVK (VLEK), then ARK: KDS's cert_chain order
    cert_table: bytes  # SNP_GET_EXT_REPORT / configfs-tsm auxblob: ARK, ASK|ASVK, VCEK|VLEK
    crl_der: bytes | None  # the ARK-signed CRL, None when CrlOptions.include is False
    now: datetime
    trust_store: TrustStore  # always the *genuine* simulated ARK/ASK/ASVK of every product, simulated=True
    options: ReportOptions
    defect: Defect | None
    crl_options: CrlOptions = field(default_factory=CrlOptions)

    @property
    def simulated(self) -> bool:
        return self.trust_store.simulated

    @property
    def product(self) -> Product:
        return self.options.product


# ----------------------------------------------------------------------------------------------------------
# The PKI


_OTHER_PRODUCT: Final[Mapping[Product, Product]] = {"milan": "genoa", "genoa": "milan", "turin": "genoa"}
_TCB_DEFECTS: Final[Mapping[Defect, str]] = {
    Defect.TCB_EXT_MISMATCH_BL: "bl",
    Defect.TCB_EXT_MISMATCH_TEE: "tee",
    Defect.TCB_EXT_MISMATCH_SNP: "snp",
    Defect.TCB_EXT_MISMATCH_UCODE: "ucode",
    Defect.TCB_EXT_MISMATCH_FMC: "fmc",
}


class AmdPki:
    """A simulated AMD SEV-SNP PKI with deterministic keys (see module docstring). Use :func:`default_amd_pki`."""

    def __init__(self, seed: str = DEFAULT_SEED) -> None:
        self._seed = seed
        self._rsa: dict[str, RsaKey] = {}
        self._certs: dict[tuple[object, ...], x509.Certificate] = {}
        self._leaves: dict[LeafSpec, bytes] = {}
        self._crls: dict[tuple[object, ...], bytes] = {}
        self.ark = {p: self.ark_cert(p) for p in PRODUCTS}
        self.ask = {p: self.intermediate_cert(p, "vcek") for p in PRODUCTS}
        self.asvk = {p: self.intermediate_cert(p, "vlek") for p in PRODUCTS}
        roots: dict[str, x509.Certificate] = {}
        for p in PRODUCTS:
            roots |= {f"amd.{p}.ark": self.ark[p], f"amd.{p}.ask": self.ask[p], f"amd.{p}.asvk": self.asvk[p]}
        self.trust_store = trust_store_from_certificates(roots, simulated=True)

    # -- keys ---------------------------------------------------------------------------------------------

    def rsa_key(self, label: str) -> RsaKey:
        """RSA-4096 key ``label`` ("<product>/ark|ask|asvk", "alt/ark", "alt/ask", "rogue"), built once."""
        if label not in self._rsa:
            self._rsa[label] = RsaKey.derive(self._seed, label)
        return self._rsa[label]

    def ec_key(self, label: str, curve: Literal["p384", "p256"] = "p384") -> ec.EllipticCurvePrivateKey:
        """An EC key derived from the seed and ``label`` (test use only)."""
        order, crv = (P384_ORDER, ec.SECP384R1()) if curve == "p384" else (_P256_ORDER, ec.SECP256R1())
        digest = hashlib.sha512(f"{self._seed}/ec/{curve}/{label}".encode()).digest()
        return ec.derive_private_key(int.from_bytes(digest, "big") % (order - 1) + 1, crv)

    def leaf_key(self, product: Product, kind: Kind) -> ec.EllipticCurvePrivateKey:
        return self.ec_key(f"{product}/{kind}")

    def chip_id(self, product: Product, label: str = "chip") -> bytes:
        """This PKI's CHIP_ID for ``product``: 64 bytes, or 8 meaningful bytes + 56 zeros on Turin."""
        raw = hashlib.sha512(f"{self._seed}/{label}/{product}".encode()).digest()
        return raw[:8] + bytes(56) if product == "turin" else raw

    # -- certificates --------------------------------------------------------------------------------------

    def _issue(
        self,
        *,
        subject: x509.Name,
        issuer: x509.Name,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        serial: int,
        validity: Window,
        extensions: Iterable[tuple[x509.ExtensionType, bool]],
        signer: RsaKey,
        salt_length: int = PSS_SALT,
    ) -> bytes:
        """DER of a certificate signed RSASSA-PSS SHA-384 by ``signer``. cryptography builds the TBS (with a
        throw-away signature); the TBS is then signed deterministically and the certificate assembled by hand,
        which is also how serial 0 gets in: built as 1, patched to 0 in the TBS before signing."""
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(serial or 1)
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
        )
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        scratch = b.sign(signer.private, hashes.SHA384(), rsa_padding=_pss(salt_length))
        tbs, alg_id = _signed_parts(scratch.public_bytes(Encoding.DER))
        if serial == 0:
            tbs = _tbs_with_serial_zero(tbs)
        return _assemble(tbs, alg_id, signer.sign_pss(tbs, salt_length))

    def ark_cert(self, product: Product, key_label: str | None = None) -> x509.Certificate:
        """ARK-<P>: self-signed, CA, keyCertSign+cRLSign. ``key_label`` "alt/ark" gives a forger's twin."""
        label = key_label or f"{product}/ark"
        cache_key: tuple[object, ...] = ("ark", product, label)
        if cache_key not in self._certs:
            key = self.rsa_key(label)
            name = amd_name(_ca_cn(product, "ark"))
            der = self._issue(
                subject=name,
                issuer=name,
                public_key=key.public,
                serial=SERIALS[product, "ark"],
                validity=_CA_VALIDITY[product, "ark"],
                extensions=[
                    (_key_usage(crl_sign=True), True),
                    (x509.SubjectKeyIdentifier.from_public_key(key.public), False),
                    (x509.BasicConstraints(ca=True, path_length=None), True),
                    (_crl_dp(_crl_url(product, "vcek")), False),
                ],
                signer=key,
            )
            self._certs[cache_key] = x509.load_der_x509_certificate(der)
        return self._certs[cache_key]

    def intermediate_cert(
        self,
        product: Product,
        kind: Kind,
        *,
        key_label: str | None = None,
        signer_label: str | None = None,
        salt_length: int = PSS_SALT,
    ) -> x509.Certificate:
        """ASK (``kind`` vcek, CN SEV-<P>) or ASVK (vlek, CN SEV-VLEK-<P>) under ARK-<P>'s name: CA pathlen 0,
        keyCertSign. Defaults give the genuine one; other labels/salt give defect variants with AMD's names."""
        role = intermediate_role(kind)
        key = self.rsa_key(key_label or f"{product}/{role}")
        signer = self.rsa_key(signer_label or f"{product}/ark")
        cache_key: tuple[object, ...] = (role, product, key.label, signer.label, salt_length)
        if cache_key not in self._certs:
            ark_key = self.rsa_key("alt/ark" if signer.label == "alt/ark" else f"{product}/ark")
            der = self._issue(
                subject=amd_name(_ca_cn(product, role)),
                issuer=amd_name(_ca_cn(product, "ark")),
                public_key=key.public,
                serial=SERIALS[product, role],
                validity=_CA_VALIDITY[product, role],
                extensions=[
                    (x509.SubjectKeyIdentifier.from_public_key(key.public), False),
                    (x509.AuthorityKeyIdentifier.from_issuer_public_key(ark_key.public), False),
                    (x509.BasicConstraints(ca=True, path_length=0), True),
                    (_key_usage(crl_sign=False), True),
                    (_crl_dp(_crl_url(product, kind)), False),
                ],
                signer=signer,
                salt_length=salt_length,
            )
            self._certs[cache_key] = x509.load_der_x509_certificate(der)
        return self._certs[cache_key]

    def intermediate(self, product: Product, kind: Kind) -> x509.Certificate:
        """The genuine ASK (vcek) or ASVK (vlek) of ``product``."""
        return self.ask[product] if kind == "vcek" else self.asvk[product]

    def leaf_spec(self, product: Product, kind: Kind, tcb: Tcb | None = None) -> LeafSpec:
        """The genuine VCEK/VLEK for this PKI's chip at ``tcb`` (default: the product's default TCB), issued 30
        days before :data:`SIM_NOW`: VCEKs for 7 years, VLEKs for 1 year."""
        not_before = SIM_NOW - 30 * _DAY
        return LeafSpec(
            product=product,
            kind=kind,
            tcb=tcb or DEFAULT_TCB[product],
            hwid=self.chip_id(product)[: 8 if product == "turin" else 64] if kind == "vcek" else None,
            csp_id=DEFAULT_CSP_ID if kind == "vlek" else None,
            not_before=not_before,
            not_after=not_before.replace(year=not_before.year + 7) if kind == "vcek" else not_before + 365 * _DAY,
            key_label=f"{product}/{kind}",
        )

    def leaf(self, spec: LeafSpec) -> bytes:
        """DER of the VCEK/VLEK ``spec`` describes: serial 0, CN SEV-VCEK|SEV-VLEK, only AMD extensions."""
        if spec not in self._leaves:
            issuer_product = spec.issuer_product or spec.product
            role = intermediate_role(spec.kind)
            signer = self.rsa_key(spec.signer or f"{issuer_product}/{role}")
            self._leaves[spec] = self._issue(
                subject=amd_name("SEV-VLEK" if spec.kind == "vlek" else "SEV-VCEK"),
                issuer=amd_name(_ca_cn(issuer_product, role)),
                public_key=self.ec_key(spec.key_label, spec.curve).public_key(),
                serial=LEAF_SERIAL,
                validity=(spec.not_before, spec.not_after),
                extensions=[(e, False) for e in leaf_extensions(spec)],
                signer=signer,
                salt_length=spec.salt_length,
            )
        return self._leaves[spec]

    def crl(
        self,
        product: Product,
        *,
        revoked: Iterable[int] = (DECOY_REVOKED_SERIAL,),
        window: Window | None = None,
        signer_label: str | None = None,
    ) -> bytes:
        """DER of the AMD CRL for ``product``: issuer ARK-<P>, RSASSA-PSS SHA-384 by the ARK (``signer_label``
        for another key), thisUpdate/nextUpdate = ``window`` (default: now-5d .. now+25d), CRL Number and
        AKI. Serial 0 (every VCEK/VLEK) can be listed: it is patched in, as cryptography refuses to build it."""
        serials = tuple(sorted(set(revoked)))
        win = window or (SIM_NOW - 5 * _DAY, SIM_NOW + 25 * _DAY)
        signer = self.rsa_key(signer_label or f"{product}/ark")
        cache_key: tuple[object, ...] = (product, serials, win, signer.label)
        if cache_key not in self._crls:
            ark = self.ark[product]
            placeholder = next(i for i in range(1, 0x80) if i not in serials) if 0 in serials else None
            b = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(ark.subject)
                .last_update(win[0])
                .next_update(win[1])
                .add_extension(x509.CRLNumber(1), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.rsa_key(f"{product}/ark").public),
                    critical=False,
                )
            )
            for serial in serials:
                b = b.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial or placeholder or 1)
                    .revocation_date(win[0] - _DAY)
                    .build()
                )
            scratch = b.sign(signer.private, hashes.SHA384(), rsa_padding=_pss())
            tbs, alg_id = _signed_parts(scratch.public_bytes(Encoding.DER))
            if placeholder is not None:
                tbs = _tbs_crl_serial_to_zero(tbs, placeholder)
            self._crls[cache_key] = _assemble(tbs, alg_id, signer.sign_pss(tbs))
        return self._crls[cache_key]

    # -- the one entry point -------------------------------------------------------------------------------

    def build(
        self,
        options: ReportOptions = ReportOptions(),
        defect: Defect | None = None,
        crl: CrlOptions = CrlOptions(),
    ) -> AmdEvidence:
        """Build a report, its leaf, chain, certificate table and CRL, genuine unless ``defect`` is given.
        Raises ValueError for impossible options or a defect that does not apply (:func:`defect_applies`)."""
        options.check()
        if defect is not None and not defect_applies(defect, options):
            raise ValueError(f"defect {defect.value!r} does not apply to {options}")
        d, product, kind = defect, options.product, options.signing_key
        tcbs = self._tcbs(options, d)
        chip_id = options.chip_id if options.chip_id is not None else self._default_chip_id(product, kind)
        spec = self._leaf_spec_for(options, d, tcbs, chip_id)
        leaf_der = self.leaf(spec)
        report = self._report(options, d, tcbs, chip_id, self.ec_key(spec.key_label, spec.curve))
        inter, ark = self._chain(options, d)
        claimed: Kind = _pick(d, {Defect.VLEK_PRESENTED_AS_VCEK: "vcek", Defect.VCEK_PRESENTED_AS_VLEK: "vlek"}, kind)
        table = cert_table(
            [(GUID_ARK, ark), (GUID_ASK, inter), (GUID_VLEK if claimed == "vlek" else GUID_VCEK, leaf_der)],
            options.cert_format,
        )
        return AmdEvidence(
            report=report,
            leaf_der=leaf_der,
            chain_pem="".join(c.public_bytes(Encoding.PEM).decode() for c in (inter, ark)),
            cert_table=table,
            crl_der=self._crl_for(options, d, crl),
            now=SIM_NOW,
            trust_store=self.trust_store,
            options=options,
            defect=d,
            crl_options=crl,
        )

    def _default_chip_id(self, product: Product, kind: Kind) -> bytes:
        return self.chip_id(product) if kind == "vcek" else bytes(64)

    @staticmethod
    def _tcbs(o: ReportOptions, d: Defect | None) -> dict[str, Tcb]:
        """1. REPORTED / COMMITTED / CURRENT / LAUNCH TCB (COMMITTED and CURRENT raised for CURRENT_TCB_USED)."""
        reported = o.reported_tcb or DEFAULT_TCB[o.product]
        current = o.current_tcb or reported
        committed = o.committed_tcb or reported
        if d is Defect.CURRENT_TCB_USED and current == reported:
            current = committed = reported.bumped("snp").bumped("ucode")
        return {"reported": reported, "current": current, "committed": committed, "launch": o.launch_tcb or reported}

    def _leaf_spec_for(self, o: ReportOptions, d: Defect | None, tcbs: Mapping[str, Tcb], chip_id: bytes) -> LeafSpec:
        """2. What the leaf certifies and who signs it (§3.1; defects on the leaf and its issuer)."""
        product, kind = o.product, o.signing_key
        spec = self.leaf_spec(product, kind, tcbs["reported"])
        hwid_len = 8 if product == "turin" else 64
        spec = replace(spec, hwid=chip_id[:hwid_len]) if kind == "vcek" else replace(spec, csp_id=o.csp_id)
        lifetime = spec.not_after - spec.not_before
        if d is None:
            return spec
        if d in _TCB_DEFECTS:
            return replace(spec, tcb=spec.tcb.bumped(_TCB_DEFECTS[d]))
        if d is Defect.CURRENT_TCB_USED:
            return replace(spec, tcb=tcbs["current"])
        if d is Defect.HWID_MISMATCH:
            return replace(spec, hwid=self.chip_id(product, "other-chip")[:hwid_len])
        if d is Defect.HWID_MISSING:
            return replace(spec, hwid=None)
        if d is Defect.CSPID_MISSING:
            return replace(spec, csp_id=None)
        if d is Defect.LEAF_EXPIRED:
            return replace(spec, not_before=SIM_NOW - lifetime - _DAY, not_after=SIM_NOW - _DAY)
        if d is Defect.LEAF_NOT_YET_VALID:
            return replace(spec, not_before=SIM_NOW + _DAY, not_after=SIM_NOW + _DAY + lifetime)
        if d is Defect.LEAF_NOT_P384:
            return replace(spec, curve="p256")
        if d is Defect.LEAF_BAD_SIGNATURE:
            return replace(spec, signer="rogue")
        if d in (Defect.ASK_BAD_SIGNATURE, Defect.WRONG_ROOT):  # signed by the (forged) ASK's own key
            return replace(spec, signer="alt/ask")
        if d is Defect.WRONG_PRODUCT_CHAIN:
            return replace(spec, issuer_product=_OTHER_PRODUCT[product])
        if d is Defect.LEAF_PSS_WRONG_SALT:
            return replace(spec, salt_length=32)
        return spec

    def _report(
        self,
        o: ReportOptions,
        d: Defect | None,
        tcbs: Mapping[str, Tcb],
        chip_id: bytes,
        leaf_key: ec.EllipticCurvePrivateKey,
    ) -> bytes:
        """3. The report (§1): fields, defects in the signed body, signature, defects in the signature."""
        product, version = o.product, o.version
        version = _pick(d, {Defect.UNKNOWN_VERSION_4: 4, Defect.UNKNOWN_VERSION_6: 6}, version)
        signing_key = _pick(
            d,
            {
                Defect.VLEK_PRESENTED_AS_VCEK: SIGNING_KEY_VCEK,
                Defect.VCEK_PRESENTED_AS_VLEK: SIGNING_KEY_VLEK,
                Defect.SIGNING_KEY_NONE: SIGNING_KEY_NONE,
            },
            SIGNING_KEY_VLEK if o.signing_key == "vlek" else SIGNING_KEY_VCEK,
        )
        policy = o.policy | _pick(
            d,
            {
                Defect.DEBUG_POLICY: POLICY_DEBUG,
                Defect.MIGRATE_MA: POLICY_MIGRATE_MA,
                Defect.POLICY_RESERVED_BIT: 1 << 40,
            },
            0,
        )
        if d is Defect.POLICY_BIT17_CLEAR:
            policy &= ~POLICY_RESERVED_MBO
        author_digest = _h("author-key", 48) if d is Defect.AUTHOR_KEY_DIGEST_WITHOUT_EN else o.author_key_digest
        fw = DEFAULT_FIRMWARE[product, o.version]
        body = ReportBody(
            version=version,
            guest_svn=o.guest_svn,
            policy=policy,
            family_id=o.family_id,
            image_id=o.image_id,
            vmpl=3 if d is Defect.VMPL3 else o.vmpl,
            signature_algo=0 if d is Defect.SIGNATURE_ALGO_ZERO else SIGNATURE_ALGO_ECDSA_P384_SHA384,
            current_tcb=tcbs["current"].encode(product),
            platform_info=DEFAULT_PLATFORM_INFO[o.version] if o.platform_info is None else o.platform_info,
            signer_info=signer_info(
                signing_key=signing_key, mask_chip_key=d is Defect.MASK_CHIP_KEY, author_key_en=o.author_key_en
            ),
            report_data=o.report_data,
            measurement=o.measurement,
            host_data=o.host_data,
            id_key_digest=o.id_key_digest,
            author_key_digest=author_digest,
            report_id=o.report_id,
            report_id_ma=o.report_id_ma,
            reported_tcb=tcbs["reported"].encode(product),
            cpuid=CPUID[product] if o.version >= 3 and d is not Defect.CPUID_ZERO_V3 else (0, 0, 0),
            chip_id=chip_id,
            committed_tcb=tcbs["committed"].encode(product),
            current_version=o.current_version or fw,
            committed_version=o.committed_version or o.current_version or fw,
            launch_tcb=tcbs["launch"].encode(product),
            launch_mit_vector=o.launch_mit_vector,
            current_mit_vector=o.current_mit_vector,
            reserved={"reserved_04c": (1).to_bytes(4, "little")} if d is Defect.RESERVED_NONZERO else {},
        )
        signer = self.ec_key("rogue") if d is Defect.REPORT_SIGNATURE_BAD else leaf_key
        report = bytearray(sign_report(body.pack(), signer))
        if d is Defect.R_OUT_OF_RANGE:
            put(report, "signature_r", P384_ORDER)
        elif d is Defect.S_ZERO:
            put(report, "signature_s", 0)
        elif d is Defect.SIGNATURE_PADDING_NONZERO:
            report[0x2D0] = 0x01
        return bytes(report)

    def _chain(self, o: ReportOptions, d: Defect | None) -> tuple[x509.Certificate, x509.Certificate]:
        """4. The supplied chain: (ASK|ASVK, ARK) as KDS's cert_chain and the certificate table carry them."""
        product, kind = o.product, o.signing_key
        if d is Defect.WRONG_ROOT:
            alt = self.intermediate_cert(product, kind, key_label="alt/ask", signer_label="alt/ark")
            return alt, self.ark_cert(product, "alt/ark")
        if d is Defect.ASK_BAD_SIGNATURE:
            return self.intermediate_cert(product, kind, key_label="alt/ask", signer_label="rogue"), self.ark[product]
        if d is Defect.PSS_WRONG_SALT:
            return self.intermediate_cert(product, kind, salt_length=32), self.ark[product]
        if d is Defect.WRONG_PRODUCT_CHAIN:
            other = _OTHER_PRODUCT[product]
            return self.intermediate(other, kind), self.ark[other]
        return self.intermediate(product, kind), self.ark[product]

    def _crl_for(self, o: ReportOptions, d: Defect | None, c: CrlOptions) -> bytes | None:
        """5. The CRL (§3.2), with its defects. CRL defects always produce a CRL."""
        crl_defects = {Defect.LEAF_REVOKED, Defect.ASK_REVOKED, Defect.CRL_EXPIRED}
        crl_defects |= {Defect.CRL_NOT_YET_VALID, Defect.CRL_BAD_SIGNATURE}
        if not c.include and d not in crl_defects:
            return None
        revoked = set(c.revoked_serials)
        if d is Defect.LEAF_REVOKED:
            revoked.add(LEAF_SERIAL)
        if d is Defect.ASK_REVOKED:
            revoked.add(SERIALS[o.product, intermediate_role(o.signing_key)])
        window: Window | None = _pick(
            d,
            {
                Defect.CRL_EXPIRED: (SIM_NOW - 31 * _DAY, SIM_NOW - _DAY),
                Defect.CRL_NOT_YET_VALID: (SIM_NOW + _DAY, SIM_NOW + 31 * _DAY),
            },
            None,
        )
        return self.crl(
            o.product,
            revoked=revoked,
            window=window,
            signer_label="rogue" if d is Defect.CRL_BAD_SIGNATURE else None,
        )


def _key_usage(*, crl_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])


@functools.cache
def default_amd_pki() -> AmdPki:
    """The process-wide simulated AMD PKI (deterministic, built once)."""
    return AmdPki()


__all__ = [
    "DEFAULT_CSP_ID",
    "LEAF_SERIAL",
    "PRODUCT_NAME",
    "SERIALS",
    "SIM_NOW",
    "AmdEvidence",
    "AmdPki",
    "CrlOptions",
    "Defect",
    "Kind",
    "LeafSpec",
    "ReportOptions",
    "RsaKey",
    "amd_name",
    "applicable_defects",
    "default_amd_pki",
    "defect_applies",
    "expected_code",
    "leaf_extensions",
]
