"""The TPM 2.0 commands the SDK sends (TPM 2.0 Library Part 3), each a method of :class:`Tpm` that marshals the
command (:mod:`.wire`), sends it over a :mod:`.transport` and reads the response strictly.

Attestation (the Azure CVM provider): TPM2_GetCapability (TPM_PT_NV_BUFFER_MAX), TPM2_NV_ReadPublic, TPM2_NV_Read
(chunked by the NV buffer size), TPM2_NV_Write, TPM2_NV_DefineSpace (the user-data index when the guest has not
defined it yet), TPM2_NV_UndefineSpace, TPM2_ReadPublic, TPM2_Quote and TPM2_PCR_Read (at most 8 digests per call
on common TPMs, so it loops until all 24 are read with an unchanged pcrUpdateCounter). Provisioning, for the
simulated paravisor and tests: TPM2_CreatePrimary, TPM2_EvictControl, TPM2_FlushContext and TPM2_PCR_Extend.

Authorization is a password session (TPM_RS_PW) with the empty password throughout: Azure's vTPM AK, the owner
hierarchy and the HCL indexes have no authValue (azure-cvm.md §2; kinvolk/azure-cvm-tooling and trustee's
attesters read and write them the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from verifier.client.tpm.transport import Transport
from verifier.client.tpm.wire import (
    TPM_CAP_TPM_PROPERTIES,
    TPM_PT_NV_BUFFER_MAX,
    TPM_RH_OWNER,
    Alg,
    Cc,
    Reader,
    Response,
    St,
    TpmMalformed,
    command,
    parse_response,
    password_auth,
    pcr_selection,
    tpm2b,
    u16,
    u32,
)

ALL_PCRS: Final = tuple(range(24))
#: NV buffer size assumed when the TPM does not report TPM_PT_NV_BUFFER_MAX (1024 is the common value).
DEFAULT_NV_BUFFER: Final = 1024
#: An AK (Part 2 §8.3 TPMA_OBJECT): fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA |
#: restricted | sign.
AK_ATTRIBUTES: Final = 0x00000002 | 0x00000010 | 0x00000020 | 0x00000040 | 0x00000400 | 0x00010000 | 0x00040000
#: TPMA_NV (Part 2 §13.4): OWNERWRITE | AUTHWRITE | OWNERREAD | AUTHREAD | NO_DA, an ordinary index (TPM_NT 0).
NV_OWNER_ATTRIBUTES: Final = 0x00000002 | 0x00000004 | 0x00020000 | 0x00040000 | 0x02000000
_PCR_READ_ATTEMPTS: Final = 3


@dataclass(frozen=True, slots=True)
class NvPublic:
    """TPMS_NV_PUBLIC (Part 2 §13.5)."""

    index: int
    name_alg: int
    attributes: int
    auth_policy: bytes
    size: int


@dataclass(frozen=True, slots=True)
class RsaPublic:
    """The parts of an RSA TPMT_PUBLIC (Part 2 §12.2.4) the SDK uses."""

    object_attributes: int
    scheme: int
    scheme_hash: int
    key_bits: int
    exponent: int
    modulus: bytes

    @property
    def e(self) -> int:
        return self.exponent or 65537  # 0 means the default exponent (Part 2 §12.2.3.5)


@dataclass(frozen=True, slots=True)
class QuoteResult:
    """TPM2_Quote's output: the TPMS_ATTEST bytes and the RSASSA signature (bare, 256 bytes for RSA-2048)."""

    attest: bytes
    signature: bytes


def parse_rsa_public(r: Reader) -> RsaPublic:
    """TPMT_PUBLIC of an RSA key, read to its end (anything else is TpmMalformed)."""
    kind, _name_alg, attributes = r.u16("type"), r.u16("nameAlg"), r.u32("objectAttributes")
    if kind != Alg.RSA:
        raise TpmMalformed(f"{r.what}: the key is not RSA (type {kind:#06x})")
    r.tpm2b("authPolicy", max_size=64)
    if r.u16("symmetric.algorithm") != Alg.NULL:
        r.u16("symmetric.keyBits")
        r.u16("symmetric.mode")
    scheme = r.u16("scheme")
    scheme_hash = r.u16("scheme.hashAlg") if scheme != Alg.NULL else Alg.NULL
    key_bits, exponent = r.u16("keyBits"), r.u32("exponent")
    modulus = r.tpm2b("unique.rsa", max_size=512)
    r.end()
    if len(modulus) * 8 != key_bits:
        raise TpmMalformed(f"{r.what}: a {len(modulus)}-byte modulus for a {key_bits}-bit key")
    return RsaPublic(attributes, scheme, scheme_hash, key_bits, exponent, modulus)


def rsa_ak_template(key_bits: int = 2048) -> bytes:
    """TPMT_PUBLIC of a restricted RSASSA/SHA-256 signing key (an AK), empty unique (Part 2 §12.2.4)."""
    return (
        u16(Alg.RSA)
        + u16(Alg.SHA256)
        + u32(AK_ATTRIBUTES)
        + tpm2b(b"")  # authPolicy
        + u16(Alg.NULL)  # symmetric
        + u16(Alg.RSASSA)
        + u16(Alg.SHA256)  # scheme
        + u16(key_bits)
        + u32(0)  # exponent: default 65537
        + tpm2b(b"")  # unique
    )


class Tpm:
    """One TPM over one transport. Methods raise :class:`~.wire.TpmError` subclasses, never OS errors."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Tpm:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(
        self,
        code: Cc,
        handles: tuple[int, ...] = (),
        params: bytes = b"",
        *,
        auths: int = 0,
        out_handles: int = 0,
    ) -> Response:
        sent = command(code, handles, params, tuple(password_auth() for _ in range(auths)))
        data = self.transport.transmit(sent)
        tag = St.SESSIONS if auths else St.NO_SESSIONS
        return parse_response(f"TPM2_{code.name}", data, handles=out_handles, sessions=auths, sent_tag=tag)

    # -- reading ---------------------------------------------------------------------------------------------------

    def get_tpm_property(self, prop: int) -> int | None:
        """TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, prop, 1): the property's value, None if not reported."""
        r = self._call(Cc.GetCapability, params=u32(TPM_CAP_TPM_PROPERTIES) + u32(prop) + u32(1)).params
        r.u8("moreData")
        if (cap := r.u32("capability")) != TPM_CAP_TPM_PROPERTIES:
            raise TpmMalformed(f"TPM2_GetCapability: capability {cap:#x} answered for TPM properties")
        count = r.u32("count")
        if count > 1:
            raise TpmMalformed(f"TPM2_GetCapability: {count} properties for 1 asked")
        pairs = [(r.u32("property"), r.u32("value")) for _ in range(count)]
        r.end()
        return pairs[0][1] if pairs and pairs[0][0] == prop else None

    def nv_read_public(self, index: int) -> NvPublic:
        r = self._call(Cc.NV_ReadPublic, (index,)).params
        pub = r.sub(r.u16("nvPublic.size"), "nvPublic")
        nv = NvPublic(
            pub.u32("nvIndex"),
            pub.u16("nameAlg"),
            pub.u32("attributes"),
            pub.tpm2b("authPolicy", 64),
            pub.u16("dataSize"),
        )
        pub.end()
        r.tpm2b("nvName", max_size=66)
        r.end()
        if nv.index != index:
            raise TpmMalformed(f"TPM2_NV_ReadPublic: asked for {index:#010x}, answered {nv.index:#010x}")
        return nv

    def nv_buffer_max(self) -> int:
        value = self.get_tpm_property(TPM_PT_NV_BUFFER_MAX)
        return value if value else DEFAULT_NV_BUFFER

    def nv_read(self, index: int, *, auth_handle: int = TPM_RH_OWNER, size: int | None = None) -> bytes:
        """The whole index (or its first ``size`` bytes), read in chunks of the TPM's NV buffer size."""
        total = self.nv_read_public(index).size if size is None else size
        chunk = self.nv_buffer_max()
        out = bytearray()
        while len(out) < total:
            want = min(chunk, total - len(out))
            r = self._call(Cc.NV_Read, (auth_handle, index), u16(want) + u16(len(out)), auths=1).params
            data = r.tpm2b("data")
            r.end()
            if len(data) != want:
                raise TpmMalformed(f"TPM2_NV_Read: asked {want} bytes at {len(out)}, got {len(data)}")
            out += data
        return bytes(out)

    def read_public(self, handle: int) -> RsaPublic:
        """TPM2_ReadPublic of an RSA object (the AK)."""
        r = self._call(Cc.ReadPublic, (handle,)).params
        public = parse_rsa_public(r.sub(r.u16("outPublic.size"), "outPublic"))
        r.tpm2b("name", max_size=66)
        r.tpm2b("qualifiedName", max_size=66)
        r.end()
        return public

    def quote(self, ak_handle: int, qualifying_data: bytes, pcrs: tuple[int, ...] = ALL_PCRS) -> QuoteResult:
        """TPM2_Quote over ``pcrs`` of the SHA-256 bank, signed RSASSA/SHA-256 by the AK (its own scheme)."""
        if len(qualifying_data) > 64:
            raise ValueError("qualifyingData is at most 64 bytes")
        params = tpm2b(qualifying_data) + u16(Alg.NULL) + pcr_selection(pcrs)
        r = self._call(Cc.Quote, (ak_handle,), params, auths=1).params
        attest = r.tpm2b("quoted", max_size=1024)
        sig_alg, hash_alg = r.u16("signature.sigAlg"), r.u16("signature.hash")
        if (sig_alg, hash_alg) != (Alg.RSASSA, Alg.SHA256):
            raise TpmMalformed(f"TPM2_Quote: signature {sig_alg:#06x}/{hash_alg:#06x}, not RSASSA/SHA-256")
        signature = r.tpm2b("signature.sig", max_size=512)
        r.end()
        return QuoteResult(attest, signature)

    def pcr_read(self, pcrs: tuple[int, ...] = ALL_PCRS) -> dict[int, bytes]:
        """The SHA-256 bank's values of ``pcrs``, read in as many calls as the TPM needs, all under one
        pcrUpdateCounter (retried when an extend lands between calls)."""
        for _ in range(_PCR_READ_ATTEMPTS):
            values: dict[int, bytes] = {}
            counter: int | None = None
            while len(values) < len(pcrs):
                remaining = tuple(i for i in pcrs if i not in values)
                got, now = self._pcr_read_once(remaining)
                if counter is not None and now != counter:
                    break
                counter = now
                values.update(got)
            else:
                return {i: values[i] for i in pcrs}
        raise TpmMalformed(f"TPM2_PCR_Read: the PCRs kept changing over {_PCR_READ_ATTEMPTS} attempts")

    def _pcr_read_once(self, pcrs: tuple[int, ...]) -> tuple[dict[int, bytes], int]:
        r = self._call(Cc.PCR_Read, params=pcr_selection(pcrs)).params
        counter = r.u32("pcrUpdateCounter")
        banks = r.u32("pcrSelectionOut.count")
        selected: list[int] = []
        for _ in range(banks):
            alg, size = r.u16("pcrSelectionOut.hash"), r.u8("pcrSelectionOut.sizeofSelect")
            bitmap = r.take(size, "pcrSelectionOut.pcrSelect")
            bits = [i for i in range(8 * size) if bitmap[i // 8] >> (i % 8) & 1]
            if bits and alg != Alg.SHA256:
                raise TpmMalformed(f"TPM2_PCR_Read: values of bank {alg:#06x} for a SHA-256 request")
            selected += bits
        count = r.u32("pcrValues.count")
        digests = [r.tpm2b(f"pcrValues[{i}]", max_size=64) for i in range(count)]
        r.end()
        if count != len(selected) or not selected or not set(selected) <= set(pcrs):
            raise TpmMalformed(f"TPM2_PCR_Read: {count} values for selection {selected}, asked {list(pcrs)}")
        if any(len(d) != 32 for d in digests):
            raise TpmMalformed("TPM2_PCR_Read: a SHA-256 PCR value is not 32 bytes")
        return dict(zip(selected, digests, strict=True)), counter

    # -- writing ---------------------------------------------------------------------------------------------------

    def nv_define_space(
        self, index: int, size: int, *, attributes: int = NV_OWNER_ATTRIBUTES, auth_handle: int = TPM_RH_OWNER
    ) -> None:
        """TPM2_NV_DefineSpace of an ordinary index with no authValue and no policy, SHA-256 names."""
        public = u32(index) + u16(Alg.SHA256) + u32(attributes) + tpm2b(b"") + u16(size)
        self._call(Cc.NV_DefineSpace, (auth_handle,), tpm2b(b"") + tpm2b(public), auths=1).params.end()

    def nv_undefine_space(self, index: int, *, auth_handle: int = TPM_RH_OWNER) -> None:
        """TPM2_NV_UndefineSpace (an index defined by the owner)."""
        self._call(Cc.NV_UndefineSpace, (auth_handle, index), auths=1).params.end()

    def nv_write(self, index: int, data: bytes, *, offset: int = 0, auth_handle: int = TPM_RH_OWNER) -> None:
        """TPM2_NV_Write of ``data`` at ``offset``, in chunks of the TPM's NV buffer size."""
        chunk = self.nv_buffer_max()
        for at in range(0, len(data), chunk):
            part = data[at : at + chunk]
            self._call(Cc.NV_Write, (auth_handle, index), tpm2b(part) + u16(offset + at), auths=1).params.end()

    def create_primary(self, hierarchy: int, template: bytes) -> tuple[int, RsaPublic]:
        """TPM2_CreatePrimary under ``hierarchy`` from ``template`` (TPMT_PUBLIC): the transient handle and the
        key's public part."""
        sensitive = tpm2b(tpm2b(b"") + tpm2b(b""))  # TPM2B_SENSITIVE_CREATE: no userAuth, no data
        params = sensitive + tpm2b(template) + tpm2b(b"") + u32(0)  # outsideInfo, creationPCR: none
        response = self._call(Cc.CreatePrimary, (hierarchy,), params, auths=1, out_handles=1)
        r = response.params
        public = parse_rsa_public(r.sub(r.u16("outPublic.size"), "outPublic"))
        r.tpm2b("creationData", max_size=2048)
        r.tpm2b("creationHash", max_size=64)
        r.u16("creationTicket.tag")
        r.u32("creationTicket.hierarchy")
        r.tpm2b("creationTicket.digest", max_size=64)
        r.tpm2b("name", max_size=66)
        r.end()
        return response.handles[0], public

    def evict_control(self, object_handle: int, persistent_handle: int, *, auth_handle: int = TPM_RH_OWNER) -> None:
        """TPM2_EvictControl: make a transient object persistent at ``persistent_handle``."""
        self._call(Cc.EvictControl, (auth_handle, object_handle), u32(persistent_handle), auths=1).params.end()

    def flush_context(self, handle: int) -> None:
        self._call(Cc.FlushContext, params=u32(handle)).params.end()

    def pcr_extend(self, pcr: int, digest: bytes) -> None:
        """TPM2_PCR_Extend of the SHA-256 bank of ``pcr`` with one digest."""
        if len(digest) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        params = u32(1) + u16(Alg.SHA256) + digest
        self._call(Cc.PCR_Extend, (pcr,), params, auths=1).params.end()


__all__ = [
    "AK_ATTRIBUTES",
    "ALL_PCRS",
    "NV_OWNER_ATTRIBUTES",
    "NvPublic",
    "QuoteResult",
    "RsaPublic",
    "Tpm",
    "parse_rsa_public",
    "rsa_ak_template",
]
