"""AMD VCEK/VLEK leaf certificates: robust loading and the AMD extension set (amd-snp.md §3, §3.1).

Every real VCEK/VLEK has serial number 0. cryptography warns about non-positive serials and says a future
release will refuse them, so :func:`load_leaf` first tries cryptography (silencing exactly that warning) and,
if cryptography ever raises, falls back to a small bounds-checked DER walk of the TBSCertificate (issuer, validity,
key, extensions; serial 0 is fine there). pyOpenSSL was considered: it parses serial 0, but exposes unknown
extension OIDs only through private internals, so the walker is the smaller, safer fallback. Both paths give the
same :class:`LeafCert`; signatures are always verified with cryptography over the original TBS bytes. Pure;
errors are ``snp.leaf.*``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning

from verifier.errors import Code, VerificationFailed

AMD_OID: Final = "1.3.6.1.4.1.3704.1"
OID_STRUCT_VERSION: Final = f"{AMD_OID}.1"
OID_PRODUCT_NAME: Final = f"{AMD_OID}.2"
OID_BL_SPL: Final = f"{AMD_OID}.3.1"
OID_TEE_SPL: Final = f"{AMD_OID}.3.2"
OID_SNP_SPL: Final = f"{AMD_OID}.3.3"
OID_UCODE_SPL: Final = f"{AMD_OID}.3.8"
OID_FMC_SPL: Final = f"{AMD_OID}.3.9"
OID_HWID: Final = f"{AMD_OID}.4"
OID_CSP_ID: Final = f"{AMD_OID}.5"


def _bad(code: Code, message: str) -> VerificationFailed:
    return VerificationFailed(code, message)


@dataclass(frozen=True, slots=True)
class LeafCert:
    """The parts of a VCEK/VLEK the verifier needs, whichever parser produced them."""

    der: bytes
    tbs: bytes
    signature: bytes
    issuer_der: bytes
    not_before: datetime
    not_after: datetime
    public_key: ec.EllipticCurvePublicKey
    extensions: dict[str, bytes]  # dotted OID -> extnValue octets
    serial: int
    parsed_by: str  # "cryptography" or "der-fallback"


def der_element(data: bytes, off: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``off``, bounds-checked."""
    if off + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[off], data[off + 1]
    off += 2
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 4 or off + n > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[off : off + n], "big")
        off += n
    if off + length > len(data):
        raise ValueError("DER element overruns")
    return tag, off, off + length


def split_certificate(der: bytes) -> tuple[bytes, bytes]:
    """Return (TBSCertificate DER, signature bytes) from a Certificate DER without interpreting the TBS."""
    tag, start, end = der_element(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("certificate is not one SEQUENCE")
    t_tag, t_start, t_end = der_element(der, start)
    hdr = t_start - start
    tbs = der[start:t_end]
    a_tag, _, a_end = der_element(der, t_end)
    s_tag, s_start, s_end = der_element(der, a_end)
    # s_end > s_start: an empty BIT STRING has no unused-bits octet to read.
    if t_tag != 0x30 or a_tag != 0x30 or s_tag != 0x03 or s_end != end or s_end <= s_start or hdr < 2:
        raise ValueError("unexpected certificate structure")
    if der[s_start] != 0:
        raise ValueError("signature BIT STRING has unused bits")
    return tbs, der[s_start + 1 : s_end]


def _from_cryptography(der: bytes) -> LeafCert:
    with warnings.catch_warnings():
        # Real VCEKs/VLEKs have serial 0; this is the one warning we expect and accept (see module docstring).
        warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, message=".*serial number.*")
        # A name attribute outside its X.520 length is the sender's problem, not a log line per request: the name
        # is only ever compared as the DER received.
        warnings.filterwarnings("ignore", category=UserWarning, message="Attribute's length must be")
        cert = x509.load_der_x509_certificate(der)
        serial = cert.serial_number
        # cryptography parses names, keys and validity lazily: read every field here, so a malformed one raises
        # from this function (and load_leaf falls back or maps it) rather than from a later attribute access.
        key = cert.public_key()
        _ = cert.subject
        tbs, signature, issuer_der = cert.tbs_certificate_bytes, cert.signature, cert.issuer.public_bytes()
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _bad(Code.SNP_LEAF_KEY_INVALID, "VCEK/VLEK key is not an EC key")
    exts: dict[str, bytes] = {}
    try:
        for ext in cert.extensions:
            value = ext.value
            if isinstance(value, x509.UnrecognizedExtension):
                exts[ext.oid.dotted_string] = value.value
            else:
                exts[ext.oid.dotted_string] = b""
    except Exception as e:
        # Deliberately broad: cryptography's lazy extension parsers raise ValueError but also DuplicateExtension and
        # UnsupportedGeneralNameType (a SubjectAltName with x400Address/ediPartyName), which are not ValueErrors.
        raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, f"VCEK/VLEK extensions do not parse: {e}") from e
    return LeafCert(der, tbs, signature, issuer_der, not_before, not_after, key, exts, serial, "cryptography")


def _oid_text(content: bytes) -> str:
    if not content or content[-1] & 0x80:
        raise ValueError("bad OID")
    arcs = [min(content[0] // 40, 2)]
    arcs.append(content[0] - 40 * arcs[0])
    value = 0
    for b in content[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii")
    fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def _from_der(der: bytes) -> LeafCert:
    """Fallback parser: walk the TBSCertificate (RFC 5280 §4.1) with a bounds-checked DER reader."""
    tbs, signature = split_certificate(der)
    _, off, end = der_element(tbs, 0)
    tag, vs, ve = der_element(tbs, off)
    if tag == 0xA0:  # [0] EXPLICIT version
        off = ve
        tag, vs, ve = der_element(tbs, off)
    if tag != 0x02:
        raise ValueError("serial is not an INTEGER")
    serial = int.from_bytes(tbs[vs:ve], "big", signed=True)
    off = ve
    _, _, off = der_element(tbs, off)  # signature AlgorithmIdentifier
    i_start = off
    _, _, off = der_element(tbs, off)  # issuer
    issuer_der = tbs[i_start:off]
    _, vs, off = der_element(tbs, off)  # validity
    t1, a, b = der_element(tbs, vs)
    t2, c, d = der_element(tbs, b)
    not_before, not_after = _time(t1, tbs[a:b]), _time(t2, tbs[c:d])
    _, _, off = der_element(tbs, off)  # subject
    k_start = off
    _, _, off = der_element(tbs, off)  # subjectPublicKeyInfo
    key = serialization.load_der_public_key(tbs[k_start:off])
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _bad(Code.SNP_LEAF_KEY_INVALID, "VCEK/VLEK key is not an EC key")
    exts: dict[str, bytes] = {}
    while off < end:
        tag, vs, off = der_element(tbs, off)
        if tag != 0xA3:  # [1]/[2] unique IDs are skipped; only [3] extensions matter
            continue
        _, pos, seq_end = der_element(tbs, vs)
        while pos < seq_end:
            _, es, pos = der_element(tbs, pos)
            otag, os_, oe = der_element(tbs, es)
            nxt, vs2, ve2 = der_element(tbs, oe)
            if nxt == 0x01:  # critical BOOLEAN
                nxt, vs2, ve2 = der_element(tbs, ve2)
            oid = _oid_text(tbs[os_:oe])
            if otag != 0x06 or nxt != 0x04 or oid in exts:
                raise ValueError("malformed or duplicate extension")
            exts[oid] = tbs[vs2:ve2]
    return LeafCert(der, tbs, signature, issuer_der, not_before, not_after, key, exts, serial, "der-fallback")


def load_leaf(der: bytes, *, force_fallback: bool = False) -> LeafCert:
    """Load a VCEK/VLEK DER certificate. Raises ``snp.leaf.malformed`` if neither parser accepts it."""
    if not force_fallback:
        try:
            return _from_cryptography(der)
        except (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension, UnsupportedAlgorithm):
            pass  # e.g. a future cryptography refusing serial 0, or lazily parsed garbage: fall back below
    try:
        return _from_der(der)
    except (ValueError, TypeError, IndexError, UnicodeDecodeError, UnsupportedAlgorithm) as e:
        raise _bad(Code.SNP_LEAF_MALFORMED, f"VCEK/VLEK is not a valid certificate: {e}") from e


# ----------------------------------------------------------------------------------------------------------
# The AMD extension set


@dataclass(frozen=True, slots=True)
class AmdLeafExtensions:
    struct_version: int
    product_name: str
    bl_spl: int
    tee_spl: int
    snp_spl: int
    ucode_spl: int
    fmc_spl: int | None
    hwid: bytes | None
    csp_id: str | None

    @property
    def kind(self) -> str:
        return "vlek" if self.csp_id is not None else "vcek"


def _der_uint(value: bytes, what: str) -> int:
    """Strict DER INTEGER: tag 02, minimal, non-negative, at most 8 content bytes."""
    if len(value) < 3 or value[0] != 0x02 or value[1] != len(value) - 2 or len(value) > 10:
        raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, f"{what} is not a DER INTEGER")
    content = value[2:]
    if content[0] & 0x80 or (len(content) > 1 and content[0] == 0 and not content[1] & 0x80):
        raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, f"{what} is negative or not minimally encoded")
    return int.from_bytes(content, "big")


def _der_ia5(value: bytes, what: str) -> str:
    if len(value) < 2 or value[0] != 0x16 or value[1] != len(value) - 2 or value[1] > 127:
        raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, f"{what} is not a short DER IA5String")
    try:
        return value[2:].decode("ascii")
    except UnicodeDecodeError as e:
        raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, f"{what} is not ASCII") from e


def parse_amd_extensions(leaf: LeafCert) -> AmdLeafExtensions:
    """Decode the AMD extensions; a leaf has hwID (VCEK) or cspID (VLEK), never both, never neither."""
    e = leaf.extensions

    def need(oid: str, what: str) -> bytes:
        if oid not in e:
            raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, f"missing {what} extension ({oid})")
        return e[oid]

    hwid = e.get(OID_HWID)
    csp = e.get(OID_CSP_ID)
    if (hwid is None) == (csp is None):
        raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, "leaf must carry exactly one of hwID (VCEK) and cspID (VLEK)")
    if hwid is not None and len(hwid) not in (8, 64):
        raise _bad(Code.SNP_LEAF_EXTENSIONS_INVALID, f"hwID must be 8 or 64 raw bytes, is {len(hwid)}")
    return AmdLeafExtensions(
        struct_version=_der_uint(need(OID_STRUCT_VERSION, "structVersion"), "structVersion"),
        product_name=_der_ia5(need(OID_PRODUCT_NAME, "productName"), "productName"),
        bl_spl=_der_uint(need(OID_BL_SPL, "blSPL"), "blSPL"),
        tee_spl=_der_uint(need(OID_TEE_SPL, "teeSPL"), "teeSPL"),
        snp_spl=_der_uint(need(OID_SNP_SPL, "snpSPL"), "snpSPL"),
        ucode_spl=_der_uint(need(OID_UCODE_SPL, "ucodeSPL"), "ucodeSPL"),
        fmc_spl=_der_uint(e[OID_FMC_SPL], "fmcSPL") if OID_FMC_SPL in e else None,
        hwid=hwid,
        csp_id=_der_ia5(csp, "cspID") if csp is not None else None,
    )
