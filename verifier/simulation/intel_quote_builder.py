"""Byte-exact builders for SIMULATED Intel DCAP quotes: SGX v3, TDX v4, and v5 with body types 1-4.

SIMULATION ONLY. Everything this module produces is simulated: the quotes are signed by keys generated here,
never by Intel hardware. Evidence built with it is trusted only when a developer explicitly enables the
simulated Intel root (development settings); a production trust store never accepts it.

What it does: packs report bodies (:class:`SgxReport`, :class:`TdReport`) and assembles a quote (header,
body, signature data with the QE report certification data and the PCK chain) per intel-dcap.md §1, signing
with the keys the caller passes. It also locates the sections of a quote (:func:`quote_layout`) and patches
integers in place, so tests can derive structural defects (truncation, oversize lengths, unknown versions)
from a good quote. What it does not do: certificates, CRLs or collateral (that is
:mod:`verifier.simulation.intel_pki`), and it never checks that the QE report matches anything.

Layouts are declared independently of the parsers in :mod:`verifier.evidence` on purpose, so a layout bug in
either shows up as a parse failure in the tests instead of cancelling out.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature


def _sized(layout: str, size: int) -> struct.Struct:
    s = struct.Struct(layout)
    if s.size != size:  # the spec size is the contract; fail at import, never at build time
        raise RuntimeError(f"layout {layout!r} is {s.size} bytes, spec says {size}")
    return s


#: Header (§1.1): version, att key type, tee type, QE SVN, PCE SVN, QE vendor ID, user data.
HEADER: Final = _sized("<HHIHH16s20s", 48)
#: SGX REPORT body (§1.2), also the QE report.
SGX_REPORT: Final = _sized("<16sI12s16s16s32s32s32s32s64sHHH42s16s64s", 384)
#: TD report 1.0 (§1.2): TEE_TCB_SVN .. REPORTDATA.
TD_REPORT10: Final = _sized("<16s48s48s8s8s8s48s48s48s48s48s48s48s48s64s", 584)
#: TD 1.5 additions at body offset 584: TEE_TCB_SVN2, MRSERVICETD.
TD15_EXTRA: Final = _sized("<16s48s", 64)
#: Body type 4 additions at body offset 648 (VMID .. CUR_SERVICE_TD_ATTRIBUTES).
TD15_EX_EXTRA: Final = _sized("<B32s48s48s8s16s16s12s48s8s", 237)
V5_DESCRIPTOR: Final = _sized("<HI", 6)  # body_type, body_size at quote offset 48
CERT_DATA_HEADER: Final = _sized("<HI", 6)  # certification data type, size
U16: Final = _sized("<H", 2)
U32: Final = _sized("<I", 4)

HEADER_SIZE: Final = 48
TEE_SGX: Final = 0x00000000
TEE_TDX: Final = 0x00000081
ATT_KEY_ECDSA_P256: Final = 2
INTEL_QE_VENDOR_ID: Final = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
CERT_TYPE_PCK_CHAIN: Final = 5
CERT_TYPE_QE_REPORT: Final = 6
BODY_SIZES: Final = {1: 384, 2: 584, 3: 648, 4: 885}

#: Simulated TDX module: SVN 4, major version 1 (identity "TDX_01"), late microcode SVN 3. The TDX TCB Info of
#: :mod:`verifier.simulation.intel_pki` is built from these so a default TD evaluates to UpToDate.
SIM_TDX_MODULE_SVN: Final = 4
SIM_TDX_MODULE_MAJOR: Final = 1
SIM_TDX_LATE_MICROCODE_SVN: Final = 3
SIM_TEE_TCB_SVN: Final = bytes([SIM_TDX_MODULE_SVN, SIM_TDX_MODULE_MAJOR, SIM_TDX_LATE_MICROCODE_SVN, *bytes(13)])

TD_ATTR_DEBUG: Final = 1 << 0
TD_ATTR_SEPT_VE_DISABLE: Final = 1 << 28
TD_ATTR_MIGRATABLE: Final = 1 << 29
SGX_ATTR_DEBUG: Final = 0x02  # ATTRIBUTES byte 0


def _h256(label: str) -> bytes:
    return hashlib.sha256(b"keyward-simulated:" + label.encode()).digest()


def _h384(label: str) -> bytes:
    return hashlib.sha384(b"keyward-simulated:" + label.encode()).digest()


def _fixed(name: str, value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return value


@dataclass(frozen=True, slots=True)
class SgxReport:
    """An SGX REPORT body (enclave report or QE report). Defaults: a production (non-debug) 64-bit enclave.

    ``cpusvn=None`` means "the simulated platform's CPUSVN" (filled in by the PKI builder; zeros if packed
    as is).
    """

    cpusvn: bytes | None = None
    miscselect: int = 0
    isvextprodid: bytes = bytes(16)
    attributes: bytes = bytes.fromhex("0500000000000000e700000000000000")  # INIT|MODE64BIT, XFRM 0xe7
    mrenclave: bytes = _h256("enclave.mrenclave")
    mrsigner: bytes = _h256("enclave.mrsigner")
    configid: bytes = bytes(64)
    isvprodid: int = 0
    isvsvn: int = 0
    configsvn: int = 0
    isvfamilyid: bytes = bytes(16)
    reportdata: bytes = bytes(64)

    def pack(self) -> bytes:
        return SGX_REPORT.pack(
            _fixed("cpusvn", self.cpusvn if self.cpusvn is not None else bytes(16), 16),
            self.miscselect,
            bytes(12),
            _fixed("isvextprodid", self.isvextprodid, 16),
            _fixed("attributes", self.attributes, 16),
            _fixed("mrenclave", self.mrenclave, 32),
            bytes(32),
            _fixed("mrsigner", self.mrsigner, 32),
            bytes(32),
            _fixed("configid", self.configid, 64),
            self.isvprodid,
            self.isvsvn,
            self.configsvn,
            bytes(42),
            _fixed("isvfamilyid", self.isvfamilyid, 16),
            _fixed("reportdata", self.reportdata, 64),
        )

    @property
    def debug(self) -> bool:
        return bool(self.attributes[0] & SGX_ATTR_DEBUG)


@dataclass(frozen=True, slots=True)
class TdReport:
    """A TD report body (types 2/3/4). Defaults: a production TD (SEPT_VE_DISABLE set), simulated module.

    ``tee_tcb_svn2=None`` and ``init_tee_tcb_svn=None`` mean "same as ``tee_tcb_svn``". The TD 1.5 and type-4
    fields are used only for body types 3 and 4.
    """

    tee_tcb_svn: bytes = SIM_TEE_TCB_SVN
    mrseam: bytes = _h384("tdx.mrseam")
    mrsignerseam: bytes = bytes(48)  # zero for the Intel TDX module
    seamattributes: bytes = bytes(8)
    tdattributes: bytes = TD_ATTR_SEPT_VE_DISABLE.to_bytes(8, "little")
    xfam: bytes = bytes.fromhex("e702060000000000")
    mrtd: bytes = _h384("td.mrtd")
    mrconfigid: bytes = bytes(48)
    mrowner: bytes = bytes(48)
    mrownerconfig: bytes = bytes(48)
    rtmr0: bytes = _h384("td.rtmr0")
    rtmr1: bytes = _h384("td.rtmr1")
    rtmr2: bytes = _h384("td.rtmr2")
    rtmr3: bytes = bytes(48)
    reportdata: bytes = bytes(64)
    tee_tcb_svn2: bytes | None = None
    mrservicetd: bytes = bytes(48)
    vmid: int = 0
    td_id: bytes = bytes(32)
    dev_info: bytes = bytes(48)
    init_service_td_hash: bytes = bytes(48)
    init_service_td_attributes: bytes = bytes(8)
    init_cpu_svn: bytes = bytes(16)
    init_tee_tcb_svn: bytes | None = None
    init_tee_fmspc: bytes = bytes(12)
    cur_service_td_hash: bytes = bytes(48)
    cur_service_td_attributes: bytes = bytes(8)

    @property
    def tdattributes_int(self) -> int:
        return int.from_bytes(self.tdattributes, "little")

    def with_tdattributes(self, value: int) -> TdReport:
        return replace(self, tdattributes=value.to_bytes(8, "little"))

    def pack(self, body_type: int) -> bytes:
        if body_type not in (2, 3, 4):
            raise ValueError(f"TD report body type must be 2, 3 or 4, got {body_type}")
        out = TD_REPORT10.pack(
            _fixed("tee_tcb_svn", self.tee_tcb_svn, 16),
            _fixed("mrseam", self.mrseam, 48),
            _fixed("mrsignerseam", self.mrsignerseam, 48),
            _fixed("seamattributes", self.seamattributes, 8),
            _fixed("tdattributes", self.tdattributes, 8),
            _fixed("xfam", self.xfam, 8),
            _fixed("mrtd", self.mrtd, 48),
            _fixed("mrconfigid", self.mrconfigid, 48),
            _fixed("mrowner", self.mrowner, 48),
            _fixed("mrownerconfig", self.mrownerconfig, 48),
            _fixed("rtmr0", self.rtmr0, 48),
            _fixed("rtmr1", self.rtmr1, 48),
            _fixed("rtmr2", self.rtmr2, 48),
            _fixed("rtmr3", self.rtmr3, 48),
            _fixed("reportdata", self.reportdata, 64),
        )
        if body_type >= 3:
            svn2 = self.tee_tcb_svn if self.tee_tcb_svn2 is None else self.tee_tcb_svn2
            out += TD15_EXTRA.pack(_fixed("tee_tcb_svn2", svn2, 16), _fixed("mrservicetd", self.mrservicetd, 48))
        if body_type == 4:
            init_svn = self.tee_tcb_svn if self.init_tee_tcb_svn is None else self.init_tee_tcb_svn
            out += TD15_EX_EXTRA.pack(
                self.vmid,
                _fixed("td_id", self.td_id, 32),
                _fixed("dev_info", self.dev_info, 48),
                _fixed("init_service_td_hash", self.init_service_td_hash, 48),
                _fixed("init_service_td_attributes", self.init_service_td_attributes, 8),
                _fixed("init_cpu_svn", self.init_cpu_svn, 16),
                _fixed("init_tee_tcb_svn", init_svn, 16),
                _fixed("init_tee_fmspc", self.init_tee_fmspc, 12),
                _fixed("cur_service_td_hash", self.cur_service_td_hash, 48),
                _fixed("cur_service_td_attributes", self.cur_service_td_attributes, 8),
            )
        return out


# ----------------------------------------------------------------------------------------------------------
# Raw P-256 helpers (DCAP uses raw r||s signatures and raw x||y keys)


def raw_public_key(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The 64-byte ``x||y`` form of a P-256 key, as quotes carry it."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    n = pub.public_numbers()
    return n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")


def public_key_from_raw(xy: bytes) -> ec.EllipticCurvePublicKey:
    point = b"\x04" + _fixed("public key", xy, 64)
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256-SHA256 (RFC 6979 deterministic nonce) as 64 raw bytes ``r||s``."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_raw(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """True iff ``signature`` (raw ``r||s``) is a valid ECDSA-P256-SHA256 signature of ``data``."""
    if len(signature) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# Quote assembly


@dataclass(frozen=True, slots=True)
class QeCertificationData:
    """What goes after the attestation key: QE report, its signature, auth data and the PEM PCK chain."""

    qe_report: bytes  # 384 bytes
    qe_report_signature: bytes  # 64 bytes, by the PCK leaf key
    qe_auth_data: bytes
    pck_chain_pem: bytes  # leaf + intermediate + root, NUL-terminated like real quotes

    def pack(self) -> bytes:
        inner = CERT_DATA_HEADER.pack(CERT_TYPE_PCK_CHAIN, len(self.pck_chain_pem)) + self.pck_chain_pem
        return (
            _fixed("qe_report", self.qe_report, 384)
            + _fixed("qe_report_signature", self.qe_report_signature, 64)
            + U16.pack(len(self.qe_auth_data))
            + self.qe_auth_data
            + inner
        )


def assemble_quote(
    *,
    version: int,
    tee_type: int,
    body: bytes,
    body_type: int,
    attestation_key: ec.EllipticCurvePrivateKey,
    certification: QeCertificationData,
    qe_svn: int = 0,
    pce_svn: int = 0,
    user_data: bytes = bytes(20),
    quote_signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """Assemble and sign a quote. ``quote_signing_key`` defaults to ``attestation_key`` (a genuine quote).

    v3: header | SGX body | u32 len | sig | AK | QE report cert data (outer type 5 chain).
    v4: header | TD body | u32 len | sig | AK | type 6 { ... type 5 chain }.
    v5: header | u16 body_type | u32 body_size | body | u32 len | sig | AK | type 6 { ... }.
    """
    if BODY_SIZES.get(body_type) != len(body):
        raise ValueError(f"body of {len(body)} bytes does not fit body type {body_type}")
    header = HEADER.pack(
        version, ATT_KEY_ECDSA_P256, tee_type, qe_svn, pce_svn, INTEL_QE_VENDOR_ID, _fixed("user_data", user_data, 20)
    )
    signed = header + (V5_DESCRIPTOR.pack(body_type, len(body)) if version == 5 else b"") + body
    qe_block = certification.pack()
    if version != 3:
        qe_block = CERT_DATA_HEADER.pack(CERT_TYPE_QE_REPORT, len(qe_block)) + qe_block
    signature = sign_raw(quote_signing_key or attestation_key, signed)
    sig_data = signature + raw_public_key(attestation_key) + qe_block
    return signed + U32.pack(len(sig_data)) + sig_data


# ----------------------------------------------------------------------------------------------------------
# Section offsets of a built quote, for structural defects


@dataclass(frozen=True, slots=True)
class QuoteLayout:
    """Absolute byte offsets of every section of a (well-formed) quote. ``*_end`` offsets are exclusive.

    ``signed_end`` is where the quote signature's coverage ends (= end of body). ``outer_cert_*`` are None for
    v3 (whose outer certification data *is* the PCK chain); ``v5_*`` are None for v3/v4.
    """

    version: int
    header_end: int
    v5_body_type_offset: int | None
    v5_body_size_offset: int | None
    body_offset: int
    body_end: int
    signed_end: int
    sig_len_offset: int
    sig_data_offset: int
    sig_data_end: int
    quote_signature_offset: int
    attestation_key_offset: int
    outer_cert_type_offset: int | None
    outer_cert_size_offset: int | None
    qe_report_offset: int
    qe_report_signature_offset: int
    qe_auth_size_offset: int
    qe_auth_data_offset: int
    pck_cert_type_offset: int
    pck_cert_size_offset: int
    pck_chain_offset: int
    pck_chain_end: int

    @property
    def td_body_offset(self) -> int:
        """Add a TD report field offset (intel-dcap.md §1.2) to this to get its quote offset."""
        return self.body_offset


def quote_layout(quote: bytes) -> QuoteLayout:
    """Locate the sections of a well-formed quote by walking its length fields (ValueError if it is not)."""
    (version,) = U16.unpack_from(quote, 0)
    if version not in (3, 4, 5):
        raise ValueError(f"not a quote this module builds (version {version})")
    bt_off = bs_off = None
    if version == 5:
        bt_off, bs_off = HEADER_SIZE, HEADER_SIZE + 2
        body_off = HEADER_SIZE + V5_DESCRIPTOR.size
        (body_size,) = U32.unpack_from(quote, bs_off)
    else:
        body_off, body_size = HEADER_SIZE, BODY_SIZES[1 if version == 3 else 2]
    body_end = body_off + body_size
    (sig_len,) = U32.unpack_from(quote, body_end)
    sd = body_end + 4
    off = sd + 128
    oct_off = ocs_off = None
    if version != 3:
        oct_off, ocs_off = off, off + 2
        off += CERT_DATA_HEADER.size
    qe_report = off
    auth_size_off = qe_report + 384 + 64
    (auth_len,) = U16.unpack_from(quote, auth_size_off)
    pck_type_off = auth_size_off + 2 + auth_len
    (_, chain_len) = CERT_DATA_HEADER.unpack_from(quote, pck_type_off)
    chain_off = pck_type_off + CERT_DATA_HEADER.size
    if chain_off + chain_len != sd + sig_len or sd + sig_len > len(quote):
        raise ValueError("quote length fields are inconsistent")
    return QuoteLayout(
        version=version,
        header_end=HEADER_SIZE,
        v5_body_type_offset=bt_off,
        v5_body_size_offset=bs_off,
        body_offset=body_off,
        body_end=body_end,
        signed_end=body_end,
        sig_len_offset=body_end,
        sig_data_offset=sd,
        sig_data_end=sd + sig_len,
        quote_signature_offset=sd,
        attestation_key_offset=sd + 64,
        outer_cert_type_offset=oct_off,
        outer_cert_size_offset=ocs_off,
        qe_report_offset=qe_report,
        qe_report_signature_offset=qe_report + 384,
        qe_auth_size_offset=auth_size_off,
        qe_auth_data_offset=auth_size_off + 2,
        pck_cert_type_offset=pck_type_off,
        pck_cert_size_offset=pck_type_off + 2,
        pck_chain_offset=chain_off,
        pck_chain_end=chain_off + chain_len,
    )


def patch_u16(quote: bytes, offset: int, value: int) -> bytes:
    """A copy of ``quote`` with the little-endian u16 at ``offset`` replaced (no re-signing)."""
    return quote[:offset] + U16.pack(value) + quote[offset + 2 :]


def patch_u32(quote: bytes, offset: int, value: int) -> bytes:
    """A copy of ``quote`` with the little-endian u32 at ``offset`` replaced (no re-signing)."""
    return quote[:offset] + U32.pack(value) + quote[offset + 4 :]


def patch_bytes(quote: bytes, offset: int, data: bytes) -> bytes:
    """A copy of ``quote`` with ``data`` written at ``offset`` (no re-signing)."""
    if offset + len(data) > len(quote):
        raise ValueError("patch runs past the end of the quote")
    return quote[:offset] + data + quote[offset + len(data) :]
