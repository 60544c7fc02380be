"""A strict, bounds-checked DER reader and raw views of the X.509 parts the vendor chains are checked on.

Why not only ``cryptography``: its ``Name`` objects cost ~16 µs each to build, ``extensions`` ~8 µs and
``tbs_certificate_bytes`` / ``tbs_certlist_bytes`` re-encode the TBS (~70 µs for a 2.6 KB PCK CRL). A DCAP
verification touches a dozen names, so the Intel chain checks read these fields straight from the DER that
``cryptography`` has already accepted (it still loads every certificate and CRL, and gives serials, validity,
keys and revocation lookups):

* ``tbs``: the signed ``TBSCertificate`` / ``TBSCertList`` element exactly as received (RFC 5280 §4.1, §5.1);
* ``issuer`` / ``subject``: the ``Name`` elements as received; names are compared byte for byte (stricter
  than RFC 5280 §7.1 matching, which a fixed vendor PKI never needs; a mismatch fails closed);
* ``extensions``: extnID content bytes -> (critical, extnValue content).

Every error is :class:`DerError` (a ``ValueError``), which callers already map to their ``*.malformed`` codes.
Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

TAG_BOOLEAN: Final = 0x01
TAG_INTEGER: Final = 0x02
TAG_BIT_STRING: Final = 0x03
TAG_OCTET_STRING: Final = 0x04
TAG_OID: Final = 0x06
TAG_ENUMERATED: Final = 0x0A
TAG_SEQUENCE: Final = 0x30
TAG_SET: Final = 0x31

#: DER content bytes of the object identifiers read here.
OID_COMMON_NAME: Final = bytes.fromhex("550403")  # 2.5.4.3
OID_SUBJECT_KEY_ID: Final = bytes.fromhex("551d0e")  # 2.5.29.14
OID_BASIC_CONSTRAINTS: Final = bytes.fromhex("551d13")  # 2.5.29.19
OID_CRL_NUMBER: Final = bytes.fromhex("551d14")  # 2.5.29.20
OID_AUTHORITY_KEY_ID: Final = bytes.fromhex("551d23")  # 2.5.29.35

_STRING_TAGS: Final = frozenset({0x0C, 0x13, 0x14, 0x16, 0x1E, 0x1C})  # UTF8, Printable, T61, IA5, BMP, Universal


class DerError(ValueError):
    """Input is not the DER this reader expects."""


def read_tlv(data: bytes, off: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the element at ``off``; never reads past ``end``; DER lengths only."""
    if off + 2 > end:
        raise DerError("truncated element header")
    tag = data[off]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used here")
    length = data[off + 1]
    off += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or off + n > end:
            raise DerError("invalid length encoding")
        length = int.from_bytes(data[off : off + n], "big")
        if length < 0x80 or data[off] == 0:
            raise DerError("non-minimal length encoding")
        off += n
    if off + length > end:
        raise DerError("element overruns its container")
    return tag, off, off + length


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """Every element of ``data[start:end]`` as (tag, value start, value end); they must fill it exactly."""
    out = []
    off = start
    while off < end:
        element = read_tlv(data, off, end)
        out.append(element)
        off = element[2]
    return out


def elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """Like :func:`children`, with each element's own start: (tag, element start, value start, value end)."""
    out = []
    off = start
    while off < end:
        tag, vs, ve = read_tlv(data, off, end)
        out.append((tag, off, vs, ve))
        off = ve
    return out


def _expect(element: tuple[int, int, int], tag: int, what: str) -> tuple[int, int, int]:
    if element[0] != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{element[0]:02x}")
    return element


def _field(element: tuple[int, int, int, int], tag: int, what: str) -> tuple[int, int, int, int]:
    if element[0] != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{element[0]:02x}")
    return element


@dataclass(frozen=True, slots=True)
class SignedView:
    """The raw parts of a certificate or CRL (see module docstring). ``subject`` is empty for a CRL."""

    tbs: bytes
    issuer: bytes
    subject: bytes
    extensions: Mapping[bytes, tuple[bool, bytes]]

    def extension(self, oid: bytes) -> bytes | None:
        found = self.extensions.get(oid)
        return None if found is None else found[1]


def _outer(der: bytes, what: str) -> tuple[bytes, int, int]:
    """The TBS element of a ``SEQUENCE { tbs, algorithm, signature }`` filling ``der``; (tbs, value start, end)."""
    tag, vs, ve = read_tlv(der, 0, len(der))
    if tag != TAG_SEQUENCE or ve != len(der):
        raise DerError(f"{what} is not one SEQUENCE")
    parts = children(der, vs, ve)
    if len(parts) != 3 or parts[0][0] != TAG_SEQUENCE or parts[2][0] != TAG_BIT_STRING:
        raise DerError(f"{what} is not {{tbs, algorithm, signature}}")
    _, ts, te = parts[0]  # the TBS element starts where the outer value starts
    return der[vs:te], ts - vs, te - vs


def _extensions(data: bytes, start: int, end: int) -> dict[bytes, tuple[bool, bytes]]:
    _, vs, ve = _expect(read_tlv(data, start, end), TAG_SEQUENCE, "extensions")
    out: dict[bytes, tuple[bool, bytes]] = {}
    for tag, es, ee in children(data, vs, ve):
        if tag != TAG_SEQUENCE:
            raise DerError("extension is not a SEQUENCE")
        parts = children(data, es, ee)
        if len(parts) == 3:
            btag, bs, be = parts[1]
            if btag != TAG_BOOLEAN or be - bs != 1 or data[bs] not in (0x00, 0xFF):
                raise DerError("extension critical flag is not a DER BOOLEAN")
            critical = data[bs] == 0xFF
        elif len(parts) == 2:
            critical = False
        else:
            raise DerError("extension is not {extnID, critical?, extnValue}")
        otag, os_, oe = parts[0]
        vtag, vs_, ve_ = parts[-1]
        if otag != TAG_OID or vtag != TAG_OCTET_STRING:
            raise DerError("extension is not {OID, ..., OCTET STRING}")
        oid = data[os_:oe]
        if oid in out:
            raise DerError(f"duplicate extension {oid.hex()}")
        out[oid] = (critical, data[vs_:ve_])
    return out


def extensions_of(data: bytes) -> dict[bytes, tuple[bool, bytes]]:
    """An ``Extensions`` SEQUENCE filling ``data`` (RFC 5280 §4.1.2.9): extnID -> (critical, extnValue)."""
    return _extensions(data, 0, len(data))


def certificate_view(der: bytes) -> SignedView:
    """Raw parts of an X.509 certificate (RFC 5280 §4.1)."""
    tbs, start, end = _outer(der, "certificate")
    fields = elements(tbs, start, end)
    i = 1 if fields and fields[0][0] == 0xA0 else 0  # [0] EXPLICIT version
    if len(fields) < i + 6:
        raise DerError("TBSCertificate has too few fields")
    serial, algorithm, issuer, validity, subject, spki = fields[i : i + 6]
    _field(serial, TAG_INTEGER, "serialNumber")
    _field(algorithm, TAG_SEQUENCE, "signature")
    _field(validity, TAG_SEQUENCE, "validity")
    _field(spki, TAG_SEQUENCE, "subjectPublicKeyInfo")
    extensions: dict[bytes, tuple[bool, bytes]] = {}
    for tag, _, vs, ve in fields[i + 6 :]:
        if tag == 0xA3:
            extensions = _extensions(tbs, vs, ve)
        elif tag not in (0x81, 0xA1, 0x82, 0xA2):  # issuer/subject unique IDs
            raise DerError(f"unexpected TBSCertificate field 0x{tag:02x}")
    return SignedView(tbs, _name(tbs, issuer), _name(tbs, subject), extensions)


def crl_view(der: bytes) -> SignedView:
    """Raw parts of an X.509 CRL (RFC 5280 §5.1)."""
    tbs, start, end = _outer(der, "CRL")
    fields = elements(tbs, start, end)
    i = 1 if fields and fields[0][0] == TAG_INTEGER else 0  # version, optional
    if len(fields) < i + 3:
        raise DerError("TBSCertList has too few fields")
    _field(fields[i], TAG_SEQUENCE, "signature")
    extensions: dict[bytes, tuple[bool, bytes]] = {}
    if fields[-1][0] == 0xA0:
        _, _, vs, ve = fields[-1]
        extensions = _extensions(tbs, vs, ve)
    return SignedView(tbs, _name(tbs, fields[i + 1]), b"", extensions)


def _name(tbs: bytes, element: tuple[int, int, int, int]) -> bytes:
    _, start, _, end = _field(element, TAG_SEQUENCE, "Name")
    return tbs[start:end]


def common_name(name: bytes) -> str:
    """The subject/issuer CN of a raw ``Name``; "" unless there is exactly one."""
    _, vs, ve = _expect(read_tlv(name, 0, len(name)), TAG_SEQUENCE, "Name")
    found: list[str] = []
    for rtag, rs, re_ in children(name, vs, ve):
        if rtag != TAG_SET:
            raise DerError("RDN is not a SET")
        for atag, as_, ae in children(name, rs, re_):
            if atag != TAG_SEQUENCE:
                raise DerError("attribute is not a SEQUENCE")
            otag, os_, oe = read_tlv(name, as_, ae)
            vtag, s, e = read_tlv(name, oe, ae)
            if otag != TAG_OID or e != ae:
                raise DerError("attribute is not {OID, value}")
            if name[os_:oe] == OID_COMMON_NAME:
                if vtag not in _STRING_TAGS:
                    raise DerError("CN is not a string")
                found.append(name[s:e].decode("utf-16-be" if vtag == 0x1E else "utf-8", errors="replace"))
    return found[0] if len(found) == 1 else ""


def _extension_body(view: SignedView, oid: bytes, tag: int, what: str) -> tuple[bytes, int, int] | None:
    """An extension's value, which must be exactly one element with ``tag``: (value, content start, content end);
    None when the extension is absent."""
    value = view.extension(oid)
    if value is None:
        return None
    found, vs, ve = read_tlv(value, 0, len(value))
    if found != tag or ve != len(value):
        raise DerError(f"{what} is not {'a SEQUENCE' if tag == TAG_SEQUENCE else 'an OCTET STRING'}")
    return value, vs, ve


def is_ca(view: SignedView) -> bool:
    """basicConstraints cA is TRUE (RFC 5280 §4.2.1.9); absent or unreadable is False."""
    body = _extension_body(view, OID_BASIC_CONSTRAINTS, TAG_SEQUENCE, "basicConstraints")
    if body is None or body[1] == body[2]:
        return False
    value, vs, ve = body
    btag, bs, be = read_tlv(value, vs, ve)
    return btag == TAG_BOOLEAN and be - bs == 1 and value[bs] == 0xFF


def subject_key_id(view: SignedView) -> bytes | None:
    body = _extension_body(view, OID_SUBJECT_KEY_ID, TAG_OCTET_STRING, "subjectKeyIdentifier")
    return None if body is None else body[0][body[1] : body[2]]


def authority_key_id(view: SignedView) -> bytes | None:
    """The ``keyIdentifier`` of authorityKeyIdentifier (RFC 5280 §4.2.1.1), or None."""
    body = _extension_body(view, OID_AUTHORITY_KEY_ID, TAG_SEQUENCE, "authorityKeyIdentifier")
    if body is None:
        return None
    value, vs, ve = body
    for ktag, ks, ke in children(value, vs, ve):
        if ktag == 0x80:
            return value[ks:ke]
    return None
