"""Simulated Azure confidential VM evidence (az-snp-vtpm / az-tdx-vtpm JSON) for tests. SIMULATION ONLY.

An HCL report around a hardware report from the simulated AMD or Intel PKI (:mod:`verifier.simulation.amd_pki`,
:mod:`verifier.simulation.intel_pki`) whose REPORT_DATA binds runtime claims carrying a fresh vTPM AK, a TPM quote
signed by that AK over the nonce and 24 PCRs, and an AK certificate under a simulated Azure vTPM root (two-level:
root -> "Sim Virtual TPM CA" -> AK). :meth:`AzureCvmBuilder.build` makes it genuine, or with exactly one
:class:`AzureDefect` (each names the code verification must answer, :data:`EXPECTED_CODE`), applied *before* the
parts that sign over it are signed, so each defect is the only thing wrong.

The trust store of the result (``simulated=True``) pins the simulated AMD and Intel roots and the simulated Azure
vTPM root under the genuine keys' names; it is never the genuine store. RSA keys are generated once per process
(not deterministic: tests compare codes, never bytes).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from verifier.errors import Code
from verifier.simulation.amd_options import ReportOptions
from verifier.simulation.amd_pki import SIM_NOW, default_amd_pki
from verifier.simulation.intel_options import QuoteOptions
from verifier.simulation.intel_pki import default_pki
from verifier.simulation.intel_quote_builder import TdReport
from verifier.trust.store import AZURE_VTPM_ROOT, TrustStore, trust_store_from_certificates

Kind = Literal["snp", "tdx"]
_AIK_EKU: Final = x509.ObjectIdentifier("2.23.133.8.3")
#: The nonce a genuine build quotes (48 bytes, as Trustee's KBS digest).
SIM_NONCE: Final = hashlib.sha384(b"keyward-simulated-azure-nonce").digest()


class AzureDefect(StrEnum):
    """One thing wrong with otherwise genuine evidence."""

    CLAIMS_TAMPERED = "claims_tampered"  # claims changed after REPORT_DATA was signed
    REPORT_DATA_TAIL = "report_data_tail"  # REPORT_DATA[32:64] not zero (signed that way)
    HASH_TYPE_SHA384 = "hash_type_sha384"  # header says SHA-384 and REPORT_DATA holds SHA-384(claims)[:32]
    HCL_VERSION = "hcl_version"
    HCL_REQUEST_TYPE = "hcl_request_type"
    HCL_STATUS = "hcl_status"
    HCL_REPORT_SIZE = "hcl_report_size"  # an unsigned header lie
    HCL_DATA_SIZE = "hcl_data_size"  # an unsigned IGVM request data lie
    HCL_REPORT_TYPE = "hcl_report_type"  # the other hardware's report type
    HCL_PADDING = "hcl_padding"
    HCL_TRUNCATED = "hcl_truncated"
    CLAIMS_DUPLICATE_KEY = "claims_duplicate_key"
    CLAIMS_NO_AK = "claims_no_ak"
    CLAIMS_WEAK_AK = "claims_weak_ak"  # HCLAkPub RSA-1024 (and the quote signed by it)
    HARDWARE_SIGNATURE = "hardware_signature"  # a signed SNP report byte flipped / TD quote byte flipped
    AK_SWAP = "ak_swap"  # the quote signed by another key than HCLAkPub
    QUOTE_PSS = "quote_pss"  # the quote signed with RSASSA-PSS
    NONCE = "nonce"  # the quote's extraData is another nonce
    USER_DATA = "user_data"  # evidence v2 whose HCL user-data is not the nonce
    PCR_VALUE = "pcr_value"  # a PCR value sent is not the one quoted
    PCR_DIGEST = "pcr_digest"  # the (signed) pcrDigest is not over the PCRs
    PCR_VALUES_SHORT = "pcr_values_short"  # 23 PCR values
    QUOTE_TRUNCATED = "quote_truncated"
    QUOTE_TRAILING = "quote_trailing"
    QUOTE_TYPE = "quote_type"  # a TPMS_ATTEST of a certify, not a quote
    SIGNATURE_SHORT = "signature_short"
    TD_QUOTE_MISMATCH = "td_quote_mismatch"  # the TD quote's MRTD is not the HCL TD report's
    AK_CERT_KEY = "ak_cert_key"  # an AK certificate for another key
    AK_CERT_EXPIRED = "ak_cert_expired"
    AK_CERT_NO_EKU = "ak_cert_no_eku"
    AK_CERT_ROGUE_ROOT = "ak_cert_rogue_root"  # a same-named CA under another root
    AK_CERT_NV_PADDING = "ak_cert_nv_padding"  # the NV image's padding not zero
    AK_CERT_NO_INTERMEDIATE = "ak_cert_no_intermediate"


#: The code verification answers for each defect.
EXPECTED_CODE: Final[dict[AzureDefect, Code]] = {
    AzureDefect.CLAIMS_TAMPERED: Code.AZURE_HCL_RUNTIME_CLAIMS_HASH_MISMATCH,
    AzureDefect.REPORT_DATA_TAIL: Code.AZURE_HCL_RUNTIME_CLAIMS_HASH_MISMATCH,
    AzureDefect.HASH_TYPE_SHA384: Code.AZURE_HCL_UNSUPPORTED_HASH_TYPE,
    AzureDefect.HCL_VERSION: Code.AZURE_HCL_UNSUPPORTED_VERSION,
    AzureDefect.HCL_REQUEST_TYPE: Code.AZURE_HCL_REQUEST_TYPE_INVALID,
    AzureDefect.HCL_STATUS: Code.AZURE_HCL_RESERVED_NONZERO,
    AzureDefect.HCL_REPORT_SIZE: Code.AZURE_HCL_HEADER_INCONSISTENT,
    AzureDefect.HCL_DATA_SIZE: Code.AZURE_HCL_HEADER_INCONSISTENT,
    AzureDefect.HCL_REPORT_TYPE: Code.AZURE_HCL_REPORT_TYPE_MISMATCH,
    AzureDefect.HCL_PADDING: Code.AZURE_HCL_PADDING_NONZERO,
    AzureDefect.HCL_TRUNCATED: Code.AZURE_HCL_TRUNCATED,
    AzureDefect.CLAIMS_DUPLICATE_KEY: Code.AZURE_CLAIMS_MALFORMED,
    AzureDefect.CLAIMS_NO_AK: Code.AZURE_CLAIMS_AK_MISSING,
    AzureDefect.CLAIMS_WEAK_AK: Code.AZURE_CLAIMS_AK_INVALID,
    AzureDefect.HARDWARE_SIGNATURE: Code.SNP_SIGNATURE_INVALID,  # TDX: Code.INTEL_QUOTE_SIGNATURE_INVALID
    AzureDefect.AK_SWAP: Code.AZURE_TPM_QUOTE_SIGNATURE_INVALID,
    AzureDefect.QUOTE_PSS: Code.AZURE_TPM_QUOTE_SIGNATURE_INVALID,
    AzureDefect.NONCE: Code.AZURE_TPM_NONCE_MISMATCH,
    AzureDefect.USER_DATA: Code.AZURE_CLAIMS_USER_DATA_MISMATCH,
    AzureDefect.PCR_VALUE: Code.AZURE_TPM_PCR_DIGEST_MISMATCH,
    AzureDefect.PCR_DIGEST: Code.AZURE_TPM_PCR_DIGEST_MISMATCH,
    AzureDefect.PCR_VALUES_SHORT: Code.AZURE_TPM_PCR_VALUES_MALFORMED,
    AzureDefect.QUOTE_TRUNCATED: Code.AZURE_TPM_TRUNCATED,
    AzureDefect.QUOTE_TRAILING: Code.AZURE_TPM_TRAILING_DATA,
    AzureDefect.QUOTE_TYPE: Code.AZURE_TPM_TYPE_INVALID,
    AzureDefect.SIGNATURE_SHORT: Code.AZURE_TPM_SIGNATURE_MALFORMED,
    AzureDefect.TD_QUOTE_MISMATCH: Code.AZURE_HCL_TD_QUOTE_MISMATCH,
    AzureDefect.AK_CERT_KEY: Code.AZURE_AK_CERT_KEY_MISMATCH,
    AzureDefect.AK_CERT_EXPIRED: Code.AZURE_AK_CERT_EXPIRED,
    AzureDefect.AK_CERT_NO_EKU: Code.AZURE_AK_CERT_UNTRUSTED,
    AzureDefect.AK_CERT_ROGUE_ROOT: Code.AZURE_AK_CERT_SIGNATURE_INVALID,
    AzureDefect.AK_CERT_NV_PADDING: Code.AZURE_AK_CERT_MALFORMED,
    AzureDefect.AK_CERT_NO_INTERMEDIATE: Code.AZURE_AK_CERT_UNTRUSTED,
}
#: Defects that need the TDX flavour.
TDX_ONLY: Final = frozenset({AzureDefect.TD_QUOTE_MISMATCH})


def expected_code(defect: AzureDefect, kind: Kind) -> Code:
    if defect is AzureDefect.HARDWARE_SIGNATURE and kind == "tdx":
        return Code.INTEL_QUOTE_SIGNATURE_INVALID
    return EXPECTED_CODE[defect]


@dataclass(frozen=True, slots=True)
class AzureCvmEvidence:
    """A simulated evidence JSON, the nonce its quote was made for, the time and trust store to verify with."""

    kind: Kind
    evidence_json: bytes
    nonce: bytes
    now: datetime
    trust_store: TrustStore
    #: TDX: the simulated Intel collateral (QuoteCollateralV3 JSON).
    collateral_json: str | None
    defect: AzureDefect | None


@functools.cache
def _rsa(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A key per label, generated once per process (``label`` only tells keys apart)."""
    del label
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _b64url(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: rsa.RSAPublicKey,
    issuer: str,
    signer: rsa.RSAPrivateKey,
    *,
    ca: bool,
    eku: bool = True,
    not_after: datetime | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(SIM_NOW - timedelta(days=30))
        .not_valid_after(not_after or SIM_NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, _AIK_EKU]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


_ROOT_CN: Final = "Sim Azure Virtual TPM Root Certificate Authority"
_CA_CN: Final = "Sim Virtual TPM CA"


@functools.cache
def _root() -> x509.Certificate:
    return _cert(_ROOT_CN, _rsa("root").public_key(), _ROOT_CN, _rsa("root"), ca=True)


@functools.cache
def _ca(signer_label: str = "root") -> x509.Certificate:
    return _cert(_CA_CN, _rsa("ca").public_key(), _ROOT_CN, _rsa(signer_label), ca=True)


@functools.cache
def _trust_store() -> TrustStore:
    roots = {k: r.certificate for k, r in default_amd_pki().trust_store.roots.items()}
    roots |= {k: r.certificate for k, r in default_pki().trust_store.roots.items()}
    roots[AZURE_VTPM_ROOT] = _root()
    return trust_store_from_certificates(roots, simulated=True)


def _claims(
    ak: rsa.RSAPublicKey,
    user_data: bytes,
    defect: AzureDefect | None,
    config: Mapping[str, object],
    *,
    with_ek: bool = True,
) -> bytes:
    numbers = ak.public_numbers()
    ak_jwk = {"kid": "HCLAkPub", "key_ops": ["sign"], "kty": "RSA", "e": _b64url(numbers.e), "n": _b64url(numbers.n)}
    ek = _rsa("ek").public_key().public_numbers()
    ek_jwk = {"kid": "HCLEkPub", "key_ops": ["encrypt"], "kty": "RSA", "e": _b64url(ek.e), "n": _b64url(ek.n)}
    keys = [ek_jwk] if defect is AzureDefect.CLAIMS_NO_AK else [ak_jwk, ek_jwk]
    if not with_ek:
        keys = [k for k in keys if k["kid"] != "HCLEkPub"]
    doc = {
        "keys": keys,
        "vm-configuration": {
            "console-enabled": True,
            "secure-boot": True,
            "tpm-enabled": True,
            "vmUniqueId": "00000000-0000-4000-8000-000000000001",
            **config,
        },
        "user-data": user_data.hex().upper(),
    }
    text = json.dumps(doc, separators=(",", ":"))
    if defect is AzureDefect.CLAIMS_DUPLICATE_KEY:
        text = text[:-1] + ',"user-data":"' + user_data.hex().upper() + '"}'
    return text.encode()


def _td_report_struct(td: TdReport) -> bytes:
    """A TDREPORT_STRUCT (1024 bytes) with ``td``'s fields at their offsets (the MAC left zero)."""
    raw = bytearray(1024)
    raw[0] = 0x81

    def put(offset: int, value: bytes) -> None:
        raw[offset : offset + len(value)] = value

    put(0x080, td.reportdata)
    put(0x100, b"\xff\x01\x03" + bytes(5))
    put(0x108, td.tee_tcb_svn)
    put(0x118, td.mrseam)
    put(0x148, td.mrsignerseam)
    put(0x178, td.seamattributes)
    put(0x180, td.tee_tcb_svn2 if td.tee_tcb_svn2 is not None else td.tee_tcb_svn)
    put(0x200, td.tdattributes)
    put(0x208, td.xfam)
    put(0x210, td.mrtd)
    put(0x240, td.mrconfigid)
    put(0x270, td.mrowner)
    put(0x2A0, td.mrownerconfig)
    for i, rtmr in enumerate((td.rtmr0, td.rtmr1, td.rtmr2, td.rtmr3)):
        put(0x2D0 + 0x30 * i, rtmr)
    return bytes(raw)


def _hcl(kind: Kind, slot: bytes, claims: bytes, defect: AzureDefect | None, nv_size: int = 2600) -> bytes:
    slot = slot.ljust(1184, b"\x00")
    version = 3 if defect is AzureDefect.HCL_VERSION else 2
    request_type = 1 if defect is AzureDefect.HCL_REQUEST_TYPE else 2
    status = 1 if defect is AzureDefect.HCL_STATUS else 0
    report_size = 0x4D4 + len(claims) + (8 if defect is AzureDefect.HCL_REPORT_SIZE else 0)
    data_size = 20 + len(claims) + (4 if defect is AzureDefect.HCL_DATA_SIZE else 0)
    report_type = {"snp": 2, "tdx": 4}[kind]
    if defect is AzureDefect.HCL_REPORT_TYPE:
        report_type = 6 - report_type
    hash_type = 2 if defect is AzureDefect.HASH_TYPE_SHA384 else 1
    header = struct.pack("<4sIIII12s", b"HCLA", version, report_size, request_type, status, bytes(12))
    igvm = struct.pack("<IIIII", data_size, 1, report_type, hash_type, len(claims))
    body = (header + slot + igvm + claims).ljust(nv_size, b"\x00")
    if defect is AzureDefect.HCL_PADDING:
        body = body[:-1] + b"\x01"
    if defect is AzureDefect.HCL_TRUNCATED:
        body = body[: 0x4D4 + len(claims) // 2]
    return body


def _attest(extra: bytes, pcrs: list[bytes], defect: AzureDefect | None) -> bytes:
    digest = hashlib.sha256(b"".join(pcrs)).digest()
    if defect is AzureDefect.PCR_DIGEST:
        digest = hashlib.sha256(digest).digest()
    kind = 0x8017 if defect is AzureDefect.QUOTE_TYPE else 0x8018
    signer = b"\x00\x0b" + hashlib.sha256(b"sim-qualified-signer").digest()
    body = (
        struct.pack(">IH", 0xFF544347, kind)
        + struct.pack(">H", len(signer))
        + signer
        + struct.pack(">H", len(extra))
        + extra
        + struct.pack(">QIIBQ", 123456, 3, 0, 1, 0x2020031200120003)
        + struct.pack(">IHB", 1, 0x000B, 3)
        + b"\xff\xff\xff"
        + struct.pack(">H", 32)
        + digest
    )
    if defect is AzureDefect.QUOTE_TRUNCATED:
        return body[:-1]
    if defect is AzureDefect.QUOTE_TRAILING:
        return body + b"\x00"
    return body


def simulated_azure_vtpm_root() -> x509.Certificate:
    """The simulated Azure vTPM root (development trust stores pin it as :data:`AZURE_VTPM_ROOT`)."""
    return _root()


@dataclass(frozen=True, slots=True)
class ParavisorReport:
    """What a simulated paravisor produces for one AK and user-data: the HCL report (NV 0x01400001 image) and
    what the hardware report needs beside it (SNP: the VCEK and the AMD CRL; TDX: the TD quote and its Intel
    collateral)."""

    kind: Kind
    hcl_report: bytes
    vcek_der: bytes | None
    crl_der: bytes | None
    td_quote: bytes | None
    collateral_json: str | None


def paravisor_hcl_report(
    ak: rsa.RSAPublicKey, user_data: bytes, *, kind: Kind = "snp", nv_size: int = 2048
) -> ParavisorReport:
    """The HCL report a simulated paravisor writes to NV 0x01400001 for the vTPM AK ``ak`` (read from the TPM)
    and the 64 ``user_data`` bytes last written to NV 0x01400002: runtime claims with ``HCLAkPub`` = ``ak`` and
    ``user-data``, bound by REPORT_DATA = SHA-256(claims) || zeros of a hardware report from the simulated AMD
    (Genoa) or Intel PKI. The claims carry no ``HCLEkPub`` (like the 2023 format) so that the report fits a
    2048-byte NV index, the most swtpm (libtpms) allows."""
    if len(user_data) != 64:
        raise ValueError("user_data is 64 bytes")
    claims = _claims(ak, user_data, None, {}, with_ek=False)
    if 0x4D4 + len(claims) > nv_size:
        raise ValueError(f"the runtime claims do not fit an NV index of {nv_size} bytes")
    report_data = hashlib.sha256(claims).digest() + bytes(32)
    if kind == "snp":
        amd = default_amd_pki().build(ReportOptions(product="genoa", report_data=report_data))
        hcl = _hcl(kind, amd.report, claims, None, nv_size)
        return ParavisorReport(kind, hcl, amd.leaf_der, amd.crl_der, None, None)
    td = TdReport(reportdata=report_data)
    intel = default_pki().build(QuoteOptions(tee="tdx", td=td))
    hcl = _hcl(kind, _td_report_struct(td), claims, None, nv_size)
    return ParavisorReport(kind, hcl, None, None, intel.quote, intel.collateral_json)


class AzureCvmBuilder:
    """Builds simulated Azure CVM evidence; one instance serves a test session."""

    def build(
        self,
        kind: Kind = "snp",
        defect: AzureDefect | None = None,
        *,
        version: int = 2,
        vm_configuration: Mapping[str, object] | None = None,
        with_pcr_values: bool = True,
        nonce: bytes = SIM_NONCE,
    ) -> AzureCvmEvidence:
        """Genuine evidence of ``kind``, or with exactly ``defect``; ``vm_configuration`` overrides claims members
        (signed: not a defect); ``with_pcr_values=False`` sends the quote without its PCR values; ``nonce`` (at
        most 64 bytes) is what the quote and, for version 2, the HCL user-data carry."""
        if defect in TDX_ONLY and kind != "tdx":
            raise ValueError(f"defect {defect} needs kind 'tdx'")
        user_data = (hashlib.sha512(b"other").digest() if defect is AzureDefect.USER_DATA else nonce).ljust(64, b"\0")
        weak = defect is AzureDefect.CLAIMS_WEAK_AK
        ak = _rsa("ak-1024", 1024) if weak else _rsa("ak")
        claims = _claims(ak.public_key(), user_data, defect, vm_configuration or {})
        hasher = hashlib.sha384 if defect is AzureDefect.HASH_TYPE_SHA384 else hashlib.sha256
        report_data = hasher(claims).digest()[:32] + (b"\x01" if defect is AzureDefect.REPORT_DATA_TAIL else b"\0") * 32
        if defect is AzureDefect.CLAIMS_TAMPERED:
            claims = claims.replace(b'"console-enabled":true', b'"console-enabled":false')
        collateral: str | None = None
        if kind == "snp":
            amd = default_amd_pki().build(ReportOptions(product="genoa", report_data=report_data))
            slot = amd.report
            if defect is AzureDefect.HARDWARE_SIGNATURE:
                slot = slot[:0x90] + bytes([slot[0x90] ^ 1]) + slot[0x91:]  # MEASUREMENT[0]
            hardware = {"vcek": base64.urlsafe_b64encode(amd.leaf_der).decode()}
        else:
            td = TdReport(reportdata=report_data)
            intel = default_pki().build(QuoteOptions(tee="tdx", td=td))
            quote = intel.quote
            if defect is AzureDefect.HARDWARE_SIGNATURE:
                quote = quote[: 48 + 136] + bytes([quote[48 + 136] ^ 1]) + quote[48 + 137 :]  # MRTD[0]
            if defect is AzureDefect.TD_QUOTE_MISMATCH:
                td = replace(td, mrtd=hashlib.sha384(b"another TD").digest())
            slot = _td_report_struct(td)
            collateral = intel.collateral_json
            hardware = {"td_quote": base64.urlsafe_b64encode(quote).decode()}
        hcl = _hcl(kind, slot, claims, defect)
        pcrs = [hashlib.sha256(f"pcr{i}".encode()).digest() for i in range(24)]
        extra = hashlib.sha384(b"another nonce").digest() if defect is AzureDefect.NONCE else nonce
        attest = _attest(extra, pcrs, defect)
        signer = _rsa("ak-other") if defect is AzureDefect.AK_SWAP else ak
        pad = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            if defect is AzureDefect.QUOTE_PSS
            else padding.PKCS1v15()
        )
        signature = signer.sign(attest, pad, hashes.SHA256())
        if defect is AzureDefect.SIGNATURE_SHORT:
            signature = signature[1:]
        sent_pcrs = list(pcrs)
        if defect is AzureDefect.PCR_VALUE:
            sent_pcrs[7] = hashlib.sha256(b"another boot").digest()
        if defect is AzureDefect.PCR_VALUES_SHORT:
            sent_pcrs = sent_pcrs[:23]
        if not with_pcr_values:
            sent_pcrs = []
        doc = {
            "version": version,
            "tpm_quote": {"signature": signature.hex(), "message": attest.hex(), "pcrs": [p.hex() for p in sent_pcrs]},
            "hcl_report": base64.urlsafe_b64encode(hcl).decode(),
            **hardware,
            **self._ak_cert(ak, defect),
        }
        return AzureCvmEvidence(kind, json.dumps(doc).encode(), nonce, SIM_NOW, _trust_store(), collateral, defect)

    @staticmethod
    def _ak_cert(ak: rsa.RSAPrivateKey, defect: AzureDefect | None) -> dict[str, object]:
        key = _rsa("ak-other").public_key() if defect is AzureDefect.AK_CERT_KEY else ak.public_key()
        ca = _ca("rogue") if defect is AzureDefect.AK_CERT_ROGUE_ROOT else _ca()
        leaf = _cert(
            "0123456789ab.ConfidentialVM.Sim.Azure",
            key,
            _CA_CN,
            _rsa("ca"),
            ca=False,
            eku=defect is not AzureDefect.AK_CERT_NO_EKU,
            not_after=SIM_NOW - timedelta(days=1) if defect is AzureDefect.AK_CERT_EXPIRED else None,
        )
        nv = leaf.public_bytes(Encoding.DER).ljust(4096, b"\0")
        if defect is AzureDefect.AK_CERT_NV_PADDING:
            nv = nv[:-1] + b"\x01"
        intermediates = [] if defect is AzureDefect.AK_CERT_NO_INTERMEDIATE else [ca.public_bytes(Encoding.DER)]
        return {
            "ak_cert": base64.urlsafe_b64encode(nv).decode(),
            "ak_intermediates": [base64.urlsafe_b64encode(c).decode() for c in intermediates],
        }


__all__ = [
    "EXPECTED_CODE",
    "SIM_NONCE",
    "AzureCvmBuilder",
    "AzureCvmEvidence",
    "AzureDefect",
    "ParavisorReport",
    "expected_code",
    "paravisor_hcl_report",
    "simulated_azure_vtpm_root",
]
