"""The Intel SGX extension of PCK certificates (OID 1.2.840.113741.1.13.1), parsed by OID, not position.

intel-dcap.md §2. The extension value is ``SEQUENCE OF SEQUENCE { OID, value }``; the TCB member is itself a
sequence of 18 ``{OID, value}`` pairs (16 component SVNs, PCESVN, CPUSVN). Required members 1-5 must be
present exactly once; Platform-CA PCKs also carry 6 (Platform Instance ID) and 7 (Configuration). The PPID is
parsed only to validate its shape and is never exposed.

The bounds-checked DER reader of :mod:`verifier.trust.der` is enough: the extension is opaque bytes to
cryptography. Pure; errors are :class:`~verifier.errors.VerificationFailed` with ``intel.pck.extensions_invalid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography import x509

from verifier.errors import Code, VerificationFailed
from verifier.trust.der import (
    TAG_BOOLEAN,
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerError,
    read_tlv,
)

SGX_EXTENSION_OID: Final = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
SGX_EXTENSION_OID_DER: Final = bytes.fromhex("2a864886f84d010d01")  # its DER content bytes
#: DER content bytes of 1.2.840.113741.1.13.1; member OIDs are this plus one arc (all arcs used are < 128, so
#: each is a single byte), TCB members add ``.2.n`` and configuration members ``.7.n``.
_SGX_OID: Final = SGX_EXTENSION_OID_DER
_TCB_OID: Final = _SGX_OID + b"\x02"
_CONFIG_OID: Final = _SGX_OID + b"\x07"


SGX_TYPES: Final = {0: "Standard", 1: "Scalable", 2: "ScalableWithIntegrity"}


def _bad(message: str) -> VerificationFailed:
    return VerificationFailed(Code.INTEL_PCK_EXTENSIONS_INVALID, f"PCK SGX extension: {message}")


def _read_tlv(data: bytes, off: int, end: int) -> tuple[int, int, int]:
    """:func:`verifier.trust.der.read_tlv` with its failures as ``intel.pck.extensions_invalid``."""
    try:
        return read_tlv(data, off, end)
    except DerError as e:
        raise _bad(str(e)) from e


def _pairs(data: bytes, start: int, end: int, what: str) -> list[tuple[bytes, int, bytes]]:
    """``data[start:end]`` as a run of ``SEQUENCE { OID, value }``: (OID content, value tag, value content)."""
    out = []
    off = start
    while off < end:
        tag, ms, me = _read_tlv(data, off, end)
        if tag != TAG_SEQUENCE:
            raise _bad(f"{what} is not a SEQUENCE")
        otag, os_, oe = _read_tlv(data, ms, me)
        vtag, vs, ve = _read_tlv(data, oe, me) if otag == TAG_OID else (0, 0, 0)
        if otag != TAG_OID or ve != me:
            raise _bad(f"{what} is not {{OID, value}}")
        out.append((data[os_:oe], vtag, data[vs:ve]))
        off = me
    return out


def _arc(oid: bytes, prefix: bytes, lo: int, hi: int) -> int:
    """The last arc of ``oid`` (DER content) if it is ``prefix`` plus one single-byte arc in [lo, hi]."""
    if len(oid) != len(prefix) + 1 or not oid.startswith(prefix) or not lo <= oid[-1] <= hi:
        raise _bad(f"unexpected OID {oid.hex()}")
    return oid[-1]


def _int(data: bytes) -> int:
    if not data or (len(data) > 1 and data[0] == 0 and not data[1] & 0x80):
        raise _bad("non-minimal INTEGER")
    return int.from_bytes(data, "big", signed=True)


@dataclass(frozen=True, slots=True)
class PckExtensions:
    """What TCB matching and collateral selection need from a PCK certificate. (The PPID is not kept.)"""

    tcb_components: tuple[int, ...]  # 16 SGX TCB component SVNs
    pcesvn: int
    cpusvn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: str
    platform_instance_id: bytes | None
    dynamic_platform: bool | None
    cached_keys: bool | None
    smt_enabled: bool | None


def parse_pck_extensions(cert: x509.Certificate, *, platform_ca: bool) -> PckExtensions:
    """Parse and validate the SGX extension of a PCK leaf. ``platform_ca``: issued by the Platform CA."""
    try:
        ext = cert.extensions.get_extension_for_oid(SGX_EXTENSION_OID)
    except x509.ExtensionNotFound as e:
        raise _bad("missing") from e
    except (ValueError, x509.DuplicateExtension) as e:  # duplicate extensions, malformed extension lists
        raise _bad(f"unreadable extension list: {e}") from e
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise _bad("unexpected extension type")
    return parse_sgx_extension_value(value.value, platform_ca=platform_ca)


def parse_sgx_extension_value(der: bytes, *, platform_ca: bool) -> PckExtensions:
    tag, vs, ve = _read_tlv(der, 0, len(der))
    if tag != TAG_SEQUENCE or ve != len(der):
        raise _bad("value is not a single SEQUENCE")
    members: dict[int, tuple[int, bytes]] = {}
    for oid, mtag, mvalue in _pairs(der, vs, ve, "member"):
        arc = _arc(oid, _SGX_OID, 1, 127)
        if arc in members:
            raise _bad(f"duplicate member {arc}")
        members[arc] = (mtag, mvalue)
    required = {1, 2, 3, 4, 5} | ({6, 7} if platform_ca else set())
    missing = required - members.keys()
    if missing:
        raise _bad(f"missing members {sorted(missing)}")

    def octets(arc: int, size: int) -> bytes:
        t, v = members[arc]
        if t != TAG_OCTET_STRING or len(v) != size:
            raise _bad(f"member {arc} must be an OCTET STRING of {size} bytes")
        return v

    octets(1, 16)  # PPID: shape-checked, never kept
    comps, pcesvn, cpusvn = _parse_tcb(members[2])
    etag, evalue = members[5]
    if etag != TAG_ENUMERATED or _int(evalue) not in SGX_TYPES:
        raise _bad("member 5 (SGX type) must be ENUMERATED 0, 1 or 2")
    instance = octets(6, 16) if 6 in members else None
    flags: dict[int, bool] = {}
    if 7 in members:
        ctag, cval = members[7]
        if ctag != TAG_SEQUENCE:
            raise _bad("member 7 (configuration) must be a SEQUENCE")
        for foid, ftag, fval in _pairs(cval, 0, len(cval), "configuration member"):
            if ftag != TAG_BOOLEAN:
                raise _bad("configuration member is not {OID, BOOLEAN}")
            farc = _arc(foid, _CONFIG_OID, 1, 3)
            if farc in flags or len(fval) != 1:
                raise _bad("invalid configuration member")
            flags[farc] = fval != b"\x00"
    return PckExtensions(
        tcb_components=comps,
        pcesvn=pcesvn,
        cpusvn=cpusvn,
        pce_id=octets(3, 2),
        fmspc=octets(4, 6),
        sgx_type=SGX_TYPES[_int(evalue)],
        platform_instance_id=instance,
        dynamic_platform=flags.get(1),
        cached_keys=flags.get(2),
        smt_enabled=flags.get(3),
    )


def _parse_tcb(member: tuple[int, bytes]) -> tuple[tuple[int, ...], int, bytes]:
    tag, value = member
    if tag != TAG_SEQUENCE:
        raise _bad("member 2 (TCB) must be a SEQUENCE")
    found: dict[int, tuple[int, bytes]] = {}
    for oid, vtag, v in _pairs(value, 0, len(value), "TCB member"):
        arc = _arc(oid, _TCB_OID, 1, 18)
        if arc in found:
            raise _bad("duplicate TCB member")
        found[arc] = (vtag, v)
    if len(found) != 18:
        raise _bad(f"TCB must have 18 members, has {len(found)}")
    comps = []
    for n in range(1, 17):
        t, v = found[n]
        svn = _int(v) if t == TAG_INTEGER else -1
        if not 0 <= svn <= 255:
            raise _bad(f"TCB component {n} must be an INTEGER 0..255")
        comps.append(svn)
    t, v = found[17]
    pcesvn = _int(v) if t == TAG_INTEGER else -1
    if not 0 <= pcesvn <= 0xFFFF:
        raise _bad("PCESVN must be an INTEGER 0..65535")
    t, v = found[18]
    if t != TAG_OCTET_STRING or len(v) != 16:
        raise _bad("CPUSVN must be an OCTET STRING of 16 bytes")
    return tuple(comps), pcesvn, v
