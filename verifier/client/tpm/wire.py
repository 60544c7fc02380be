"""TPM 2.0 command marshalling and strict response unmarshalling (TPM 2.0 Library Part 1 §18, Part 2, Part 3).

Why a marshaller of our own rather than ``tpm2-pytss``: the SDK needs about ten commands, all with password
sessions, and tpm2-pytss wraps the tpm2-tss C libraries through a cffi build (libtss2-esys, -mu, -tctildr and a
TCTI per transport), a heavy native dependency for an enclave image, whose own marshalling we would still have to
trust. Here every byte is written and read in Python: big-endian integers and ``TPM2B`` (u16 size + bytes),
command and response headers, and a bounds-checked :class:`Reader` that refuses a short, long or inconsistent
response (:class:`TpmMalformed`). A response code other than TPM_RC_SUCCESS is :class:`TpmResponseError`, naming
the command and the code (format-one and format-zero codes decoded to their TPM_RC_* names).

Command (Part 1 §18.2, big-endian)::

    tag u16 (0x8001 no sessions, 0x8002 sessions) | commandSize u32 | commandCode u32 | handles (u32 each)
    [authorizationSize u32 | authorization areas]  | parameters

Response::

    tag u16 | responseSize u32 | responseCode u32 | handles | [parameterSize u32] | parameters | [auth areas]

A password authorization (TPM_RS_PW, Part 1 §19.8.4) is ``40 00 00 09 | 00 00 (no nonce) | attributes u8 |
TPM2B password``; its response area is ``00 00 | attributes | 00 00``. Does no I/O (:mod:`.transport` does).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final


class TpmError(Exception):
    """Base of what the TPM layer raises; ``code`` is stable."""

    code: ClassVar[str] = "tpm.error"


class TpmTransportError(TpmError):
    """The TPM could not be reached or the transport broke mid-command."""

    code = "tpm.transport"


class TpmUnavailable(TpmTransportError):
    """No TPM at that device path or address."""

    code = "tpm.unavailable"


class TpmMalformed(TpmError):
    """A response that is not what the command's response structure says it must be."""

    code = "tpm.malformed_response"


class TpmResponseError(TpmError):
    """The TPM answered a command with a response code other than TPM_RC_SUCCESS."""

    code = "tpm.response_code"

    def __init__(self, command: str, rc: int) -> None:
        self.command = command
        self.rc = rc
        self.rc_name = describe_rc(rc)
        super().__init__(f"{command} failed: {self.rc_name} (rc {rc:#010x})")


class St(IntEnum):
    """TPM_ST (Part 2 §6.9)."""

    NO_SESSIONS = 0x8001
    SESSIONS = 0x8002


class Cc(IntEnum):
    """TPM_CC of the commands spoken here (Part 2 §6.5.2)."""

    EvictControl = 0x00000120
    NV_UndefineSpace = 0x00000122
    NV_DefineSpace = 0x0000012A
    CreatePrimary = 0x00000131
    NV_Write = 0x00000137
    NV_Read = 0x0000014E
    Quote = 0x00000158
    FlushContext = 0x00000165
    NV_ReadPublic = 0x00000169
    ReadPublic = 0x00000173
    GetCapability = 0x0000017A
    PCR_Read = 0x0000017E
    PCR_Extend = 0x00000182


class Alg(IntEnum):
    """TPM_ALG_ID (Part 2 §6.3), those used here."""

    RSA = 0x0001
    SHA256 = 0x000B
    NULL = 0x0010
    RSASSA = 0x0014


#: Permanent handles (Part 2 §7.4).
TPM_RH_OWNER: Final = 0x40000001
TPM_RS_PW: Final = 0x40000009
TPM_RH_ENDORSEMENT: Final = 0x4000000B
#: TPM_CAP_TPM_PROPERTIES and the fixed properties read (Part 2 §6.12, §6.13).
TPM_CAP_TPM_PROPERTIES: Final = 0x00000006
TPM_PT_NV_INDEX_MAX: Final = 0x00000117
TPM_PT_NV_BUFFER_MAX: Final = 0x0000012C
TPM_GENERATED_VALUE: Final = 0xFF544347
HEADER = struct.Struct(">HII")  # tag, size, code: 10 bytes
#: Largest response accepted (TPM_PT_MAX_RESPONSE_SIZE is 4096 on common TPMs).
MAX_RESPONSE_BYTES: Final = 8192
SHA256_SIZE: Final = 32


# -- writing ---------------------------------------------------------------------------------------------------------


def u8(value: int) -> bytes:
    return struct.pack(">B", value)


def u16(value: int) -> bytes:
    return struct.pack(">H", value)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def tpm2b(data: bytes) -> bytes:
    """A TPM2B: u16 size, then the bytes."""
    if len(data) > 0xFFFF:
        raise ValueError("a TPM2B holds at most 65535 bytes")
    return u16(len(data)) + data


def pcr_selection(pcrs: tuple[int, ...], hash_alg: Alg = Alg.SHA256) -> bytes:
    """TPML_PCR_SELECTION of one bank: count 1, hash, sizeofSelect 3, bitmap (bit i of byte i/8 = PCR i)."""
    bitmap = bytearray(3)
    for i in pcrs:
        if not 0 <= i < 24:
            raise ValueError("PCR indexes are 0-23")
        bitmap[i // 8] |= 1 << (i % 8)
    return u32(1) + u16(hash_alg) + u8(3) + bytes(bitmap)


def password_auth(password: bytes = b"") -> bytes:
    """One TPMS_AUTH_COMMAND for TPM_RS_PW: no nonce, continueSession set, the password as hmac."""
    return u32(TPM_RS_PW) + tpm2b(b"") + u8(0x01) + tpm2b(password)


def command(code: Cc, handles: tuple[int, ...] = (), params: bytes = b"", auths: tuple[bytes, ...] = ()) -> bytes:
    """A complete command: header, handles, the authorization areas (tag SESSIONS when there are any), params."""
    body = b"".join(u32(h) for h in handles)
    if auths:
        area = b"".join(auths)
        body += u32(len(area)) + area
    body += params
    tag = St.SESSIONS if auths else St.NO_SESSIONS
    return HEADER.pack(tag, HEADER.size + len(body), code) + body


# -- reading ---------------------------------------------------------------------------------------------------------


class Reader:
    """Bounds-checked big-endian reads over one response; every read past the end is :class:`TpmMalformed`."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.at = 0
        self.what = what

    def take(self, size: int, field: str) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise TpmMalformed(
                f"{self.what}: response ends inside {field} (needs {self.at + size}, has {len(self.data)})"
            )
        out = self.data[self.at : self.at + size]
        self.at += size
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "big")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "big")

    def u64(self, field: str) -> int:
        return int.from_bytes(self.take(8, field), "big")

    def tpm2b(self, field: str, max_size: int = 0xFFFF) -> bytes:
        size = self.u16(f"{field}.size")
        if size > max_size:
            raise TpmMalformed(f"{self.what}: {field} is {size} bytes, more than {max_size}")
        return self.take(size, field)

    def sub(self, size: int, field: str) -> Reader:
        """A reader over the next ``size`` bytes (a sized structure), which must then be read to its end."""
        return Reader(self.take(size, field), f"{self.what} {field}")

    def end(self) -> None:
        if self.at != len(self.data):
            raise TpmMalformed(f"{self.what}: {len(self.data) - self.at} bytes after the last field")


@dataclass(frozen=True, slots=True)
class Response:
    """A successful response split into its handles and its parameter area (auth areas checked and dropped)."""

    handles: tuple[int, ...]
    params: Reader


def parse_response(
    command_name: str, data: bytes, *, handles: int = 0, sessions: int = 0, sent_tag: St = St.NO_SESSIONS
) -> Response:
    """Check the header (size exact, tag matching the command's), raise the response code, split handles,
    parameters and ``sessions`` password response areas. The caller reads the parameters and calls ``end()``."""
    if len(data) > MAX_RESPONSE_BYTES:
        raise TpmMalformed(f"{command_name}: response of {len(data)} bytes is over {MAX_RESPONSE_BYTES}")
    r = Reader(data, command_name)
    tag, size, rc = r.u16("tag"), r.u32("responseSize"), r.u32("responseCode")
    if size != len(data):
        raise TpmMalformed(f"{command_name}: responseSize {size} but {len(data)} bytes arrived")
    if rc != 0:
        if tag != St.NO_SESSIONS or size != HEADER.size:
            raise TpmMalformed(f"{command_name}: an error response must be a bare 10-byte header")
        raise TpmResponseError(command_name, rc)
    if tag != sent_tag:
        raise TpmMalformed(f"{command_name}: response tag {tag:#06x}, command tag {sent_tag:#06x}")
    out = tuple(r.u32(f"handle {i}") for i in range(handles))
    if sent_tag == St.NO_SESSIONS:
        return Response(out, Reader(r.take(len(data) - r.at, "parameters"), command_name))
    params = r.sub(r.u32("parameterSize"), "parameters")
    for i in range(sessions):
        r.tpm2b(f"session {i} nonce", max_size=64)
        r.u8(f"session {i} attributes")
        if r.tpm2b(f"session {i} hmac", max_size=64):
            raise TpmMalformed(f"{command_name}: a password session answered with an HMAC")
    r.end()
    return Response(out, Reader(params.data, command_name))


# -- response codes (Part 2 §6.6) ------------------------------------------------------------------------------------

RC_VER1: Final = 0x100
RC_FMT1: Final = 0x080
RC_WARN: Final = 0x900
_FMT1_NAMES: Final = {
    0x01: "ASYMMETRIC",
    0x02: "ATTRIBUTES",
    0x03: "HASH",
    0x04: "VALUE",
    0x05: "HIERARCHY",
    0x07: "KEY_SIZE",
    0x08: "MGF",
    0x09: "MODE",
    0x0A: "TYPE",
    0x0B: "HANDLE",
    0x0C: "KDF",
    0x0D: "RANGE",
    0x0E: "AUTH_FAIL",
    0x0F: "NONCE",
    0x10: "PP",
    0x12: "SCHEME",
    0x15: "SIZE",
    0x16: "SYMMETRIC",
    0x17: "TAG",
    0x18: "SELECTOR",
    0x1A: "INSUFFICIENT",
    0x1B: "SIGNATURE",
    0x1C: "KEY",
    0x1D: "POLICY_FAIL",
    0x1F: "INTEGRITY",
    0x20: "TICKET",
    0x21: "RESERVED_BITS",
    0x22: "BAD_AUTH",
    0x23: "EXPIRED",
    0x24: "POLICY_CC",
    0x25: "BINDING",
    0x26: "CURVE",
    0x27: "ECC_POINT",
}
_FMT0_NAMES: Final = {
    0x100: "INITIALIZE",
    0x101: "FAILURE",
    0x103: "SEQUENCE",
    0x10B: "PRIVATE",
    0x119: "HMAC",
    0x120: "DISABLED",
    0x121: "EXCLUSIVE",
    0x124: "AUTH_TYPE",
    0x125: "AUTH_MISSING",
    0x126: "POLICY",
    0x127: "PCR",
    0x128: "PCR_CHANGED",
    0x12D: "UPGRADE",
    0x12E: "TOO_MANY_CONTEXTS",
    0x12F: "AUTH_UNAVAILABLE",
    0x130: "REBOOT",
    0x131: "UNBALANCED",
    0x142: "COMMAND_SIZE",
    0x143: "COMMAND_CODE",
    0x144: "AUTHSIZE",
    0x145: "AUTH_CONTEXT",
    0x146: "NV_RANGE",
    0x147: "NV_SIZE",
    0x148: "NV_LOCKED",
    0x149: "NV_AUTHORIZATION",
    0x14A: "NV_UNINITIALIZED",
    0x14B: "NV_SPACE",
    0x14C: "NV_DEFINED",
    0x150: "BAD_CONTEXT",
    0x151: "CPHASH",
    0x152: "PARENT",
    0x153: "NEEDS_TEST",
    0x154: "NO_RESULT",
    0x155: "SENSITIVE",
    0x901: "CONTEXT_GAP",
    0x902: "OBJECT_MEMORY",
    0x903: "SESSION_MEMORY",
    0x904: "MEMORY",
    0x905: "SESSION_HANDLES",
    0x906: "OBJECT_HANDLES",
    0x907: "LOCALITY",
    0x908: "YIELDED",
    0x909: "CANCELED",
    0x90A: "TESTING",
    0x920: "NV_RATE",
    0x921: "LOCKOUT",
    0x922: "RETRY",
    0x923: "NV_UNAVAILABLE",
    **{0x910 + i: f"REFERENCE_H{i}" for i in range(7)},
    **{0x918 + i: f"REFERENCE_S{i}" for i in range(7)},
}


def describe_rc(rc: int) -> str:
    """A short name for a response code: ``TPM_RC_HANDLE (handle 2)``, ``TPM_RC_NV_DEFINED``; codes from another
    layer (a resource manager, TPM 1.2, a vendor) as ``layer N code 0x...``."""
    layer = rc >> 16
    if layer:
        return f"layer {layer} code {rc & 0xFFFF:#06x}"
    if rc & RC_FMT1:
        name = _FMT1_NAMES.get(rc & 0x3F, f"format-one {rc & 0x3F:#04x}")
        if rc & 0x40:
            where = f"parameter {(rc >> 8) & 0xF}"
        elif rc & 0x800:
            where = f"session {(rc >> 8) & 0x7}"
        else:
            where = f"handle {(rc >> 8) & 0x7}"
        return f"TPM_RC_{name} ({where})" if (rc >> 8) & 0xF else f"TPM_RC_{name}"
    if rc & RC_VER1:
        if rc & 0x400:
            return f"vendor code {rc & 0x7F:#04x}"
        name0 = _FMT0_NAMES.get(rc & 0xFFF)
        return f"TPM_RC_{name0}" if name0 else f"format-zero {rc & 0xFFF:#05x}"
    return f"TPM 1.2 code {rc:#06x}"
