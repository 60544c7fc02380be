"""The simulated Intel DCAP PKI: byte-exact quotes, genuine signatures, and defects that really are defects.

Checked independently of Keyward's verifier: with ``cryptography`` directly, with the quote parser, against a
real Intel PCK extension, and (second opinion) with dcap-qvl 0.7.0 under the simulated root.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.errors import Code, EvidenceMalformed
from verifier.evidence.dcap import Quote, parse_quote
from verifier.evidence.sgx import SgxReportBody
from verifier.evidence.tdx import TdReportBody
from verifier.simulation.intel_pki import (
    SGX_EXTENSION_OID,
    SIM_FMSPC,
    SIM_NOW,
    SIM_PCE_ID,
    CollateralOptions,
    Defect,
    Evidence,
    IntelPki,
    PckPlatform,
    QuoteOptions,
    applicable_defects,
    default_pki,
    defect_applies,
    expected_code,
    sgx_extension_der,
)
from verifier.simulation.intel_quote_builder import (
    TdReport,
    patch_u16,
    patch_u32,
    public_key_from_raw,
    verify_raw,
)
from verifier.trust.store import INTEL_SGX_ROOT

VARIANTS = [
    pytest.param(QuoteOptions(tee="sgx", version=3), id="sgx-v3"),
    pytest.param(QuoteOptions(tee="tdx", version=4), id="tdx-v4"),
    pytest.param(QuoteOptions(tee="sgx", version=5), id="sgx-v5-body1"),
    pytest.param(QuoteOptions(tee="tdx", version=5, body_type=2), id="tdx-v5-body2"),
    pytest.param(QuoteOptions(tee="tdx", version=5, body_type=3), id="tdx-v5-body3"),
    pytest.param(QuoteOptions(tee="tdx", version=5, body_type=4), id="tdx-v5-body4"),
    pytest.param(QuoteOptions(tee="tdx", version=4, pck_ca="processor"), id="tdx-v4-processor-ca"),
]
BASES = {
    "sgx-v3": QuoteOptions(tee="sgx", version=3),
    "tdx-v4": QuoteOptions(tee="tdx", version=4),
    "tdx-v5-body3": QuoteOptions(tee="tdx", version=5, body_type=3),
    "sgx-v3-processor": QuoteOptions(tee="sgx", version=3, pck_ca="processor"),
}
BODY_SIZES = {1: 384, 2: 584, 3: 648, 4: 885}

#: A real Intel PCK certificate's SGX extension (Phala dcap-qvl TDX vector), with the PPID and the Platform
#: Instance ID replaced by zeros: our hand-built DER must equal Intel's byte for byte.
REAL_PCK_EXTENSION_ZEROED_IDS = bytes.fromhex(
    "30820226301e060a2a864886f84d010d010104100000000000000000000000000000000030820163060a2a864886f84d010d"
    "0102308201533010060b2a864886f84d010d0102010201033010060b2a864886f84d010d0102020201033010060b2a864886"
    "f84d010d0102030201023010060b2a864886f84d010d0102040201023010060b2a864886f84d010d010205020104301006"
    "0b2a864886f84d010d0102060201013010060b2a864886f84d010d0102070201003010060b2a864886f84d010d01020802"
    "01053010060b2a864886f84d010d0102090201003010060b2a864886f84d010d01020a0201003010060b2a864886f84d01"
    "0d01020b0201003010060b2a864886f84d010d01020c0201003010060b2a864886f84d010d01020d0201003010060b2a86"
    "4886f84d010d01020e0201003010060b2a864886f84d010d01020f0201003010060b2a864886f84d010d01021002010030"
    "10060b2a864886f84d010d01021102010b301f060b2a864886f84d010d0102120410030302020401000500000000000000"
    "003010060a2a864886f84d010d0103040200003014060a2a864886f84d010d01040406b0c06f000000300f060a2a864886"
    "f84d010d01050a0101301e060a2a864886f84d010d0106041000000000000000000000000000000000304406"
    "0a2a864886f84d010d010730363010060b2a864886f84d010d0107010101ff3010060b2a864886f84d010d0107020101ff"
    "3010060b2a864886f84d010d0107030101ff"
)


@pytest.fixture(scope="module")
def pki() -> IntelPki:
    return default_pki()


# ----------------------------------------------------------------------------------------------------------
# An independent view of a piece of evidence (cryptography + json + the quote parser only)


def _signed_by(cert: x509.Certificate, key: ec.EllipticCurvePublicKey) -> bool:
    hash_alg = cert.signature_hash_algorithm
    if hash_alg is None:
        return False
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
    except InvalidSignature:
        return False
    return True


def _p256(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class View:
    ev: Evidence
    quote: Quote
    leaf: x509.Certificate
    ca: x509.Certificate
    root: x509.Certificate
    root_crl: x509.CertificateRevocationList
    pck_crl: x509.CertificateRevocationList
    tcb_info: dict[str, Any]
    qe_identity: dict[str, Any]
    tcb_chain: list[x509.Certificate]
    qe_chain: list[x509.Certificate]

    @property
    def tdx(self) -> bool:
        return self.ev.options.tee == "tdx"

    @property
    def td(self) -> TdReportBody:
        return self.quote.td_body

    @property
    def qe(self) -> SgxReportBody:
        return self.quote.signature_data.certification.qe_report

    def tcb_ok(self) -> bool:
        return bool(self.tcb_info["id"] == ("TDX" if self.tdx else "SGX"))

    def qe_ok(self) -> bool:
        return bool(self.qe_identity["id"] == ("TD_QE" if self.tdx else "QE"))

    def platform_level(self) -> dict[str, Any] | None:
        comps, pcesvn = self.ev.platform.tcb_components, self.ev.platform.pcesvn
        for level in self.tcb_info["tcbLevels"]:
            svns = [c["svn"] for c in level["tcb"]["sgxtcbcomponents"]]
            if (
                len(svns) == 16
                and pcesvn >= level["tcb"]["pcesvn"]
                and all(a >= b for a, b in zip(comps, svns, strict=True))
            ):
                return dict(level)
        return None

    def qe_level(self) -> dict[str, Any] | None:
        return next((lv for lv in self.qe_identity["tcbLevels"] if lv["tcb"]["isvsvn"] <= self.qe.isvsvn), None)

    def module(self) -> dict[str, Any] | None:
        want = f"TDX_{self.td.tee_tcb_svn[1]:02X}"
        return next((m for m in self.tcb_info.get("tdxModuleIdentities", []) if m["id"] == want), None)


def view(ev: Evidence) -> View:
    q = parse_quote(ev.quote)
    chain = x509.load_pem_x509_certificates(q.signature_data.certification.pck_chain_pem.rstrip(b"\0"))
    c = ev.collateral
    return View(
        ev,
        q,
        chain[0],
        chain[1],
        chain[2],
        x509.load_der_x509_crl(bytes.fromhex(c["root_ca_crl"])),
        x509.load_der_x509_crl(bytes.fromhex(c["pck_crl"])),
        json.loads(c["tcb_info"]),
        json.loads(c["qe_identity"]),
        x509.load_pem_x509_certificates(c["tcb_info_issuer_chain"].encode()),
        x509.load_pem_x509_certificates(c["qe_identity_issuer_chain"].encode()),
    )


def _revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def _has(crl: x509.CertificateRevocationList, ext: type[x509.ExtensionType]) -> bool:
    try:
        crl.extensions.get_extension_for_class(ext)
    except x509.ExtensionNotFound:
        return False
    return True


def _doc_sig_ok(v: View, name: str, chain: list[x509.Certificate]) -> bool:
    return verify_raw(
        _p256(chain[0]), bytes.fromhex(v.ev.collateral[f"{name}_signature"]), v.ev.collateral[name].encode()
    )


def _is_genuine_root(cert: x509.Certificate) -> bool:
    return cert.public_bytes(Encoding.DER) == default_pki().root.public_bytes(Encoding.DER)


def _genuine_ca(v: View) -> x509.Certificate:
    return default_pki().cas[v.ev.options.pck_ca]


_RESERVED_TD_ATTRS = 0b1110 | sum(1 << b for b in (*range(7, 16), *range(23, 27), *range(32, 62)))
_STATUSES = {
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
}

#: Per defect: a predicate that is True iff that defect is visible in the evidence. Written against the raw
#: bytes and JSON, not against the builder's options, so a knob that silently does nothing fails its test.
SYMPTOMS: dict[Defect, Callable[[View], bool]] = {
    Defect.WRONG_ROOT: lambda v: not _is_genuine_root(v.root) and v.root.subject == default_pki().root.subject,
    Defect.PCK_BAD_SIGNATURE: lambda v: v.leaf.issuer == v.ca.subject and not _signed_by(v.leaf, _p256(v.ca)),
    Defect.INTERMEDIATE_BAD_SIGNATURE: lambda v: not _signed_by(v.ca, _p256(v.root)),
    Defect.PCK_EXPIRED: lambda v: v.leaf.not_valid_after_utc < SIM_NOW,
    Defect.PCK_NOT_YET_VALID: lambda v: v.leaf.not_valid_before_utc > SIM_NOW,
    Defect.PCK_REVOKED: lambda v: _revoked(v.pck_crl, v.leaf),
    Defect.INTERMEDIATE_REVOKED: lambda v: _revoked(v.root_crl, v.ca),
    Defect.PCK_CRL_EXPIRED: lambda v: v.pck_crl.next_update_utc is not None and v.pck_crl.next_update_utc < SIM_NOW,
    Defect.PCK_CRL_NOT_YET_VALID: lambda v: v.pck_crl.last_update_utc > SIM_NOW,
    Defect.PCK_CRL_WRONG_ISSUER: lambda v: v.pck_crl.issuer != v.ca.subject,
    Defect.PCK_CRL_BAD_SIGNATURE: lambda v: (
        v.pck_crl.issuer == v.ca.subject and not v.pck_crl.is_signature_valid(_p256(_genuine_ca(v)))
    ),
    Defect.PCK_CRL_NO_CRL_NUMBER: lambda v: not _has(v.pck_crl, x509.CRLNumber),
    Defect.PCK_CRL_NO_AKI: lambda v: not _has(v.pck_crl, x509.AuthorityKeyIdentifier),
    Defect.ROOT_CRL_EXPIRED: lambda v: v.root_crl.next_update_utc is not None and v.root_crl.next_update_utc < SIM_NOW,
    Defect.ROOT_CRL_NOT_YET_VALID: lambda v: v.root_crl.last_update_utc > SIM_NOW,
    Defect.ROOT_CRL_BAD_SIGNATURE: lambda v: not v.root_crl.is_signature_valid(_p256(default_pki().root)),
    Defect.ROOT_CRL_NO_CRL_NUMBER: lambda v: not _has(v.root_crl, x509.CRLNumber),
    Defect.TCB_INFO_BAD_SIGNATURE: lambda v: not _doc_sig_ok(v, "tcb_info", v.tcb_chain),
    Defect.TCB_INFO_EXPIRED: lambda v: _time(v.tcb_info["nextUpdate"]) < SIM_NOW,
    Defect.TCB_INFO_NOT_YET_VALID: lambda v: _time(v.tcb_info["issueDate"]) > SIM_NOW,
    Defect.TCB_INFO_WRONG_TEE: lambda v: not v.tcb_ok(),
    Defect.FMSPC_MISMATCH: lambda v: v.tcb_info["fmspc"] != SIM_FMSPC.hex().upper(),
    Defect.PCE_ID_MISMATCH: lambda v: v.tcb_info["pceId"] != SIM_PCE_ID.hex().upper(),
    Defect.TCB_INFO_SIGNING_WRONG_ROOT: lambda v: not _is_genuine_root(v.tcb_chain[-1]),
    Defect.TCB_INFO_SIGNING_BAD_SIGNATURE: lambda v: (
        _is_genuine_root(v.tcb_chain[-1]) and not _signed_by(v.tcb_chain[0], _p256(v.tcb_chain[-1]))
    ),
    Defect.TCB_SIGNING_REVOKED: lambda v: _revoked(v.root_crl, v.tcb_chain[0]),
    Defect.QE_IDENTITY_BAD_SIGNATURE: lambda v: not _doc_sig_ok(v, "qe_identity", v.qe_chain),
    Defect.QE_IDENTITY_EXPIRED: lambda v: _time(v.qe_identity["nextUpdate"]) < SIM_NOW,
    Defect.QE_IDENTITY_NOT_YET_VALID: lambda v: _time(v.qe_identity["issueDate"]) > SIM_NOW,
    Defect.QE_IDENTITY_WRONG_TEE: lambda v: not v.qe_ok(),
    Defect.QE_IDENTITY_SIGNING_WRONG_ROOT: lambda v: not _is_genuine_root(v.qe_chain[-1]),
    Defect.QE_MRSIGNER_MISMATCH: lambda v: v.qe_ok() and v.qe.mrsigner.hex().upper() != v.qe_identity["mrsigner"],
    Defect.QE_ISVPRODID_MISMATCH: lambda v: v.qe_ok() and v.qe.isvprodid != v.qe_identity["isvprodid"],
    Defect.QE_ATTRIBUTES_MISMATCH: lambda v: (
        v.qe_ok()
        and bytes(a & m for a, m in zip(v.qe.attributes, bytes.fromhex(v.qe_identity["attributesMask"]), strict=True))
        != bytes.fromhex(v.qe_identity["attributes"])
    ),
    Defect.QE_MISCSELECT_MISMATCH: lambda v: (
        v.qe_ok() and v.qe.miscselect_bytes != bytes.fromhex(v.qe_identity["miscselect"])
    ),
    Defect.QE_TCB_NOT_SUPPORTED: lambda v: v.qe_ok() and v.qe_level() is None,
    Defect.QE_TCB_REVOKED: lambda v: v.qe_ok() and (v.qe_level() or {}).get("tcbStatus") == "Revoked",
    Defect.QE_REPORT_BAD_SIGNATURE: lambda v: (
        not verify_raw(_p256(v.leaf), v.quote.signature_data.certification.qe_report_signature, v.qe.raw)
    ),
    Defect.AK_BINDING_WRONG: lambda v: (
        v.qe.reportdata[:32]
        != hashlib.sha256(
            v.quote.signature_data.attestation_key + v.quote.signature_data.certification.qe_auth_data
        ).digest()
    ),
    Defect.QE_REPORTDATA_TAIL_NONZERO: lambda v: any(v.qe.reportdata[32:]),
    Defect.QUOTE_BAD_SIGNATURE: lambda v: (
        not verify_raw(
            public_key_from_raw(v.quote.signature_data.attestation_key),
            v.quote.signature_data.signature,
            v.quote.signed,
        )
    ),
    Defect.TCB_NOT_SUPPORTED: lambda v: (
        v.tcb_ok()
        and all(len(lv["tcb"]["sgxtcbcomponents"]) == 16 for lv in v.tcb_info["tcbLevels"])
        and v.platform_level() is None
    ),
    Defect.TCB_STATUS_REVOKED: lambda v: v.tcb_ok() and (v.platform_level() or {}).get("tcbStatus") == "Revoked",
    Defect.TCB_STATUS_UNRECOGNIZED: lambda v: any(lv["tcbStatus"] not in _STATUSES for lv in v.tcb_info["tcbLevels"]),
    Defect.TCB_LEVEL_SHORT_COMPONENTS: lambda v: any(
        len(lv["tcb"]["sgxtcbcomponents"]) != 16 for lv in v.tcb_info["tcbLevels"]
    ),
    Defect.TDX_MODULE_IDENTITY_MISSING: lambda v: v.tdx and v.tcb_ok() and v.module() is None,
    Defect.MRSIGNERSEAM_MISMATCH: lambda v: v.tdx and v.td.mrsignerseam != bytes(48),
    Defect.SEAMATTRIBUTES_NONZERO: lambda v: v.tdx and any(v.td.seamattributes),
    Defect.TDX_TCB_NOT_SUPPORTED: lambda v: (
        v.tdx
        and v.tcb_ok()
        and all(v.td.tee_tcb_svn[2] < lv["tcb"]["tdxtcbcomponents"][2]["svn"] for lv in v.tcb_info["tcbLevels"])
    ),
    Defect.TDX_MODULE_TCB_NOT_SUPPORTED: lambda v: (
        v.tdx
        and v.module() is not None
        and all(v.td.tee_tcb_svn[0] < lv["tcb"]["isvsvn"] for lv in (v.module() or {})["tcbLevels"])
    ),
    Defect.DEBUG: lambda v: v.quote.body.debug,
    Defect.TD_SEPT_VE_DISABLE_OFF: lambda v: v.tdx and not v.td.tdattributes_int & (1 << 28),
    Defect.TD_MIGRATABLE: lambda v: v.tdx and bool(v.td.tdattributes_int & (1 << 29)),
    Defect.TD_RESERVED_ATTRIBUTES: lambda v: v.tdx and bool(v.td.tdattributes_int & _RESERVED_TD_ATTRS),
    Defect.MRSERVICETD_NONZERO: lambda v: v.tdx and any(v.td.mrservicetd or b""),
}


def symptoms(ev: Evidence) -> set[Defect]:
    v = view(ev)
    return {d for d, seen in SYMPTOMS.items() if seen(v)}


# ----------------------------------------------------------------------------------------------------------
# Genuine evidence


@pytest.mark.parametrize("opts", VARIANTS)
def test_intel_pki_genuine_quote_parses_and_every_signature_verifies(pki: IntelPki, opts: QuoteOptions) -> None:
    ev = pki.build(opts)
    q = parse_quote(ev.quote)
    sig = q.signature_data
    cert = sig.certification
    body_type = opts.resolved_body_type()

    assert (q.header.version, q.body_type, q.is_tdx) == (opts.version, body_type, opts.tee == "tdx")
    assert q.trailing_bytes == 0
    assert len(q.signed) == (48 if opts.version != 5 else 54) + BODY_SIZES[body_type]
    # 10. Quote signature by the attestation key over [0, end of body).
    assert sig.attestation_key == ev.attestation_key
    assert verify_raw(public_key_from_raw(sig.attestation_key), sig.signature, q.signed)
    # 2. Chain: leaf <- CA <- pinned root, NUL-terminated PEM, CNs Intel-shaped.
    assert cert.pck_chain_pem.endswith(b"-----END CERTIFICATE-----\n\x00")
    leaf, ca, root = x509.load_pem_x509_certificates(cert.pck_chain_pem.rstrip(b"\0"))
    root.verify_directly_issued_by(root)
    ca.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(ca)
    assert root.public_bytes(Encoding.DER) == ev.trust_store.root(INTEL_SGX_ROOT).der
    assert ev.trust_store.simulated
    assert "SGX PCK Certificate" in leaf.subject.rfc4514_string()
    assert f"SGX PCK {opts.pck_ca.capitalize()} CA" in ca.subject.rfc4514_string()
    assert all(c.not_valid_before_utc <= ev.now <= c.not_valid_after_utc for c in (leaf, ca, root))
    # 6-7. QE report signed by the PCK key, binding the attestation key; REPORTDATA tail zero.
    assert verify_raw(_p256(leaf), cert.qe_report_signature, cert.qe_report.raw)
    assert cert.qe_report.reportdata == hashlib.sha256(sig.attestation_key + cert.qe_auth_data).digest() + bytes(32)
    assert len(cert.qe_auth_data) == 32
    # The PCK extension is exactly what the platform says, and the header SVNs match it for v3.
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    assert not ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert ext.value.value == sgx_extension_der(ev.platform)
    assert (ev.platform.platform_instance_id is None) == (opts.pck_ca == "processor")
    if opts.version == 3:
        assert (q.header.qe_svn, q.header.pce_svn) == (cert.qe_report.isvsvn, ev.platform.pcesvn)
    assert symptoms(ev) == set()


@pytest.mark.parametrize("opts", VARIANTS)
def test_intel_pki_genuine_collateral_signatures_crls_and_windows(pki: IntelPki, opts: QuoteOptions) -> None:
    ev = pki.build(opts)
    v = view(ev)
    c = ev.collateral
    assert set(c) == {
        "pck_crl_issuer_chain",
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain",
        "tcb_info",
        "tcb_info_signature",
        "qe_identity_issuer_chain",
        "qe_identity",
        "qe_identity_signature",
    }
    assert json.loads(ev.collateral_json) == dict(c)
    # TCB Info / QE Identity: compact JSON, signed over the exact bytes (128 hex r||s) by TCB Signing <- root.
    for name, chain in (("tcb_info", v.tcb_chain), ("qe_identity", v.qe_chain)):
        assert json.dumps(json.loads(c[name]), separators=(",", ":")) == c[name]
        assert len(c[f"{name}_signature"]) == 128
        assert _doc_sig_ok(v, name, chain)
        signer, root = chain
        assert "SGX TCB Signing" in signer.subject.rfc4514_string()
        signer.verify_directly_issued_by(root)
        assert _is_genuine_root(root)
    assert v.tcb_info["id"] == ("TDX" if opts.tee == "tdx" else "SGX")
    assert v.qe_identity["id"] == ("TD_QE" if opts.tee == "tdx" else "QE")
    assert (v.tcb_info["fmspc"], v.tcb_info["pceId"]) == (SIM_FMSPC.hex().upper(), SIM_PCE_ID.hex().upper())
    for doc in (v.tcb_info, v.qe_identity):
        assert _time(doc["issueDate"]) <= ev.now <= _time(doc["nextUpdate"])
    # CRLs: signed by their issuers, CRL Number + AKI (= issuer SKI), valid at now, nothing revoked.
    pck_chain = x509.load_pem_x509_certificates(c["pck_crl_issuer_chain"].encode())
    assert [x.subject for x in pck_chain] == [v.ca.subject, v.root.subject]
    for crl, issuer in ((v.root_crl, v.root), (v.pck_crl, v.ca)):
        assert crl.issuer == issuer.subject
        assert crl.is_signature_valid(_p256(issuer))
        assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == (
            issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        )
        assert _has(crl, x509.CRLNumber)
        assert crl.next_update_utc is not None
        assert crl.last_update_utc <= ev.now <= crl.next_update_utc
        assert len(crl) == 0
    # The quote's TCB matches the top (UpToDate) level; TD_QE/QE ISVSVN the top QE level.
    assert (v.platform_level() or {}).get("tcbStatus") == "UpToDate"
    assert (v.qe_level() or {}).get("tcbStatus") == "UpToDate"
    if opts.tee == "tdx":
        module = v.module()
        assert module is not None
        assert module["id"] == "TDX_01"
        assert v.td.tee_tcb_svn[0] >= module["tcbLevels"][0]["tcb"]["isvsvn"]
        assert v.td.tee_tcb_svn[2] >= v.tcb_info["tcbLevels"][0]["tcb"]["tdxtcbcomponents"][2]["svn"]
        assert v.td.tdattributes_int == 1 << 28


def test_intel_pki_pcs_responses_carry_the_same_signed_bytes(pki: IntelPki) -> None:
    ev = pki.build(QuoteOptions(tee="tdx", version=4))
    pcs, c = ev.pcs, ev.collateral
    assert pcs.tcb_info_body == b'{"tcbInfo":' + c["tcb_info"].encode() + b',"signature":"' + (
        c["tcb_info_signature"].encode() + b'"}'
    )
    assert pcs.qe_identity_body == b'{"enclaveIdentity":' + c["qe_identity"].encode() + b',"signature":"' + (
        c["qe_identity_signature"].encode() + b'"}'
    )
    assert urllib.parse.unquote(pcs.tcb_info_issuer_chain) == c["tcb_info_issuer_chain"]
    assert urllib.parse.unquote(pcs.qe_identity_issuer_chain) == c["qe_identity_issuer_chain"]
    assert urllib.parse.unquote(pcs.pck_crl_issuer_chain) == c["pck_crl_issuer_chain"]
    assert "\n" not in pcs.tcb_info_issuer_chain
    assert "BEGIN%20CERTIFICATE" in pcs.tcb_info_issuer_chain
    assert (pcs.pck_crl.hex(), pcs.root_ca_crl.hex()) == (c["pck_crl"], c["root_ca_crl"])
    assert pcs.ca == "platform"
    assert set(pcs.kwargs()) == {
        "tcb_info_body",
        "tcb_info_issuer_chain",
        "qe_identity_body",
        "qe_identity_issuer_chain",
        "pck_crl",
        "root_ca_crl",
        "pck_crl_issuer_chain",
    }


def test_intel_pki_sgx_extension_der_matches_a_real_intel_pck() -> None:
    platform = PckPlatform(
        tcb_components=(3, 3, 2, 2, 4, 1, 0, 5, *([0] * 8)),
        pcesvn=11,
        fmspc=bytes.fromhex("B0C06F000000"),
        ppid=bytes(16),
        platform_instance_id=bytes(16),
        configuration=(True, True, True),
    )
    assert sgx_extension_der(platform) == REAL_PCK_EXTENSION_ZEROED_IDS


def test_intel_pki_is_deterministic_and_cached() -> None:
    assert default_pki() is default_pki()
    opts = QuoteOptions(tee="tdx", version=5, body_type=4)
    a, b = IntelPki().build(opts), IntelPki().build(opts)
    assert (a.quote, a.collateral_json) == (b.quote, b.collateral_json)
    other = IntelPki(seed="another seed").build(opts)
    assert other.quote != a.quote


def test_intel_pki_report_fields_are_settable(pki: IntelPki) -> None:
    td = TdReport(
        mrtd=b"\x11" * 48,
        rtmr3=b"\x22" * 48,
        reportdata=b"\x33" * 64,
        mrconfigid=b"\x44" * 48,
        tee_tcb_svn2=bytes([4, 1, 3, *bytes(13)]),
        td_id=b"\x55" * 32,
    )
    body = parse_quote(pki.build(QuoteOptions(tee="tdx", version=5, body_type=4, td=td)).quote).td_body
    assert (body.mrtd, body.rtmr3, body.reportdata, body.mrconfigid) == (
        td.mrtd,
        td.rtmr3,
        td.reportdata,
        td.mrconfigid,
    )
    assert body.extras is not None
    assert body.extras.td_id == td.td_id
    assert body.extras.init_tee_tcb_svn == td.tee_tcb_svn


def test_intel_pki_status_variations_are_visible(pki: IntelPki) -> None:
    old = view(pki.build(QuoteOptions(platform_tcb="out_of_date")))
    assert (old.platform_level() or {}).get("tcbStatus") == "OutOfDate"
    qe_old = view(pki.build(QuoteOptions(tee="sgx", version=3, qe_isvsvn=6)))
    assert (qe_old.qe_level() or {}).get("tcbStatus") == "OutOfDate"
    sw = view(
        pki.build(
            collateral=CollateralOptions(top_tcb_status="SWHardeningNeeded", top_tcb_advisory_ids=("INTEL-SA-00999",))
        )
    )
    assert sw.tcb_info["tcbLevels"][0]["tcbStatus"] == "SWHardeningNeeded"
    assert sw.tcb_info["tcbLevels"][0]["advisoryIDs"] == ["INTEL-SA-00999"]
    revoked = view(
        pki.build(collateral=CollateralOptions(pck_crl_revoked_serials=(12345,), root_crl_revoked_serials=(678,)))
    )
    assert revoked.pck_crl.get_revoked_certificate_by_serial_number(12345) is not None
    assert revoked.root_crl.get_revoked_certificate_by_serial_number(678) is not None
    assert revoked.pck_crl.is_signature_valid(_p256(revoked.ca))


@pytest.mark.parametrize(
    ("opts", "defect"),
    [
        pytest.param(QuoteOptions(tee="sgx", version=4), None, id="sgx-v4"),
        pytest.param(QuoteOptions(tee="tdx", version=3), None, id="tdx-v3"),
        pytest.param(QuoteOptions(tee="tdx", version=5, body_type=1), None, id="tdx-body1"),
        pytest.param(QuoteOptions(tee="sgx", version=5, body_type=2), None, id="sgx-body2"),
        pytest.param(QuoteOptions(tee="tdx", version=4, body_type=3), None, id="v4-body3"),
        pytest.param(QuoteOptions(tee="sgx", version=3), Defect.MRSIGNERSEAM_MISMATCH, id="tdx-defect-on-sgx"),
        pytest.param(QuoteOptions(tee="tdx", version=4), Defect.MRSERVICETD_NONZERO, id="td15-defect-on-td10"),
    ],
)
def test_intel_pki_rejects_impossible_options(pki: IntelPki, opts: QuoteOptions, defect: Defect | None) -> None:
    with pytest.raises(ValueError, match=r"not valid|no quote version|does not apply"):
        pki.build(opts, defect=defect)


# ----------------------------------------------------------------------------------------------------------
# Defects: each knob changes the evidence, shows exactly its own symptom, and nothing structural breaks


def test_intel_pki_every_defect_has_a_symptom_and_a_code() -> None:
    assert set(SYMPTOMS) == set(Defect)
    for d in Defect:
        assert isinstance(expected_code(d, "tdx"), Code)
        assert isinstance(expected_code(d, "sgx"), Code)
    assert expected_code(Defect.DEBUG, "sgx") is Code.INTEL_POLICY_SGX_DEBUG
    assert expected_code(Defect.DEBUG, "tdx") is Code.INTEL_POLICY_TD_DEBUG
    assert len(applicable_defects(BASES["tdx-v5-body3"])) == len(Defect)
    assert not defect_applies(Defect.SEAMATTRIBUTES_NONZERO, BASES["sgx-v3"])


def _defect_cases(*bases: str) -> list[Any]:
    return [pytest.param(base, d, id=f"{base}-{d.value}") for base in bases for d in applicable_defects(BASES[base])]


@pytest.mark.parametrize(("base", "defect"), _defect_cases(*BASES))
def test_intel_pki_defect_shows_exactly_its_symptom(pki: IntelPki, base: str, defect: Defect) -> None:
    opts = BASES[base]
    genuine, bad = pki.build(opts), pki.build(opts, defect=defect)
    assert (bad.quote, bad.collateral_json) != (genuine.quote, genuine.collateral_json)
    assert bad.trust_store.root(INTEL_SGX_ROOT).der == genuine.trust_store.root(INTEL_SGX_ROOT).der
    assert bad.defect is defect
    assert symptoms(bad) == {defect}  # parses (defects are semantic) and shows only this defect


# ----------------------------------------------------------------------------------------------------------
# Structural defects derived from the section offsets


@pytest.mark.parametrize("opts", VARIANTS)
def test_intel_pki_layout_matches_the_parser(pki: IntelPki, opts: QuoteOptions) -> None:
    ev = pki.build(opts)
    lay, raw = ev.layout, ev.quote
    q = parse_quote(raw)
    cert = q.signature_data.certification
    assert raw[: lay.signed_end] == q.signed
    assert lay.sig_data_end == len(raw)
    assert raw[lay.attestation_key_offset : lay.attestation_key_offset + 64] == q.signature_data.attestation_key
    assert raw[lay.qe_report_offset : lay.qe_report_signature_offset] == cert.qe_report.raw
    assert raw[lay.qe_auth_data_offset : lay.pck_cert_type_offset] == cert.qe_auth_data
    assert raw[lay.pck_chain_offset : lay.pck_chain_end] == cert.pck_chain_pem
    assert (lay.outer_cert_type_offset is None) == (opts.version == 3)
    assert (lay.v5_body_size_offset is None) == (opts.version != 5)


def _code(data: bytes) -> Code:
    with pytest.raises(EvidenceMalformed) as exc:
        parse_quote(data)
    return exc.value.code


@pytest.mark.parametrize("opts", VARIANTS)
def test_intel_pki_structural_defects_from_layout(pki: IntelPki, opts: QuoteOptions) -> None:
    ev = pki.build(opts)
    lay, raw = ev.layout, ev.quote
    assert _code(raw[: lay.body_end]) is Code.INTEL_QUOTE_TRUNCATED
    assert _code(raw[: lay.header_end - 1]) is Code.INTEL_QUOTE_TRUNCATED
    assert _code(patch_u16(raw, 0, 6)) is Code.INTEL_QUOTE_UNSUPPORTED_VERSION
    assert _code(patch_u32(raw, lay.sig_len_offset, len(raw))) is Code.INTEL_QUOTE_TRUNCATED
    assert _code(patch_u16(raw, lay.qe_auth_size_offset, 4000)) is Code.INTEL_QUOTE_LENGTH_INVALID
    assert _code(patch_u32(raw, lay.pck_cert_size_offset, 1 << 20)) is Code.INTEL_QUOTE_LENGTH_INVALID
    assert _code(patch_u16(raw, lay.pck_cert_type_offset, 4)) is Code.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED
    if lay.outer_cert_type_offset is not None and lay.outer_cert_size_offset is not None:
        assert _code(patch_u16(raw, lay.outer_cert_type_offset, 5)) is Code.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED
        assert _code(patch_u32(raw, lay.outer_cert_size_offset, 1 << 16)) is Code.INTEL_QUOTE_LENGTH_INVALID
    if lay.v5_body_size_offset is not None:
        size = BODY_SIZES[opts.resolved_body_type()]
        assert _code(patch_u32(raw, lay.v5_body_size_offset, size + 1)) is Code.INTEL_QUOTE_BODY_SIZE_INVALID
    assert parse_quote(raw + bytes(100)).trailing_bytes == 100


# ----------------------------------------------------------------------------------------------------------
# Second opinion: dcap-qvl 0.7.0 (Phala) verifies genuine evidence under the simulated root, rejects defects

#: Checks dcap-qvl 0.7.0 does not make (intel-dcap.md §4 requires them); with one of these defects the rest of
#: the evidence must still verify under dcap-qvl, which shows each defect is isolated.
DCAP_QVL_LENIENT = {
    Defect.PCK_CRL_NOT_YET_VALID,
    Defect.PCK_CRL_NO_CRL_NUMBER,
    Defect.PCK_CRL_NO_AKI,
    Defect.ROOT_CRL_NOT_YET_VALID,
    Defect.ROOT_CRL_NO_CRL_NUMBER,
    Defect.PCE_ID_MISMATCH,
    Defect.QE_REPORTDATA_TAIL_NONZERO,
}


def _qvl(pki: IntelPki, ev: Evidence) -> str:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    collateral = dcap_qvl.QuoteCollateralV3.from_json(ev.collateral_json)
    report = dcap_qvl.verify_with_root_ca(ev.quote, collateral, pki.root.public_bytes(Encoding.DER), ev.now_secs)
    return str(report.status)


@pytest.mark.parametrize("opts", [p for p in VARIANTS if p.id != "sgx-v5-body1"])  # dcap-qvl: SGX is v3 only
def test_intel_pki_genuine_evidence_verifies_under_dcap_qvl(pki: IntelPki, opts: QuoteOptions) -> None:
    assert _qvl(pki, pki.build(opts)) == "UpToDate"


@pytest.mark.parametrize(("base", "defect"), _defect_cases("sgx-v3", "tdx-v5-body3"))
def test_intel_pki_defect_verdict_under_dcap_qvl(pki: IntelPki, base: str, defect: Defect) -> None:
    ev = pki.build(BASES[base], defect=defect)
    if defect in DCAP_QVL_LENIENT:
        assert _qvl(pki, ev) == "UpToDate"
    else:
        with pytest.raises(ValueError, match="Verification failed"):
            _qvl(pki, ev)


@pytest.mark.parametrize(
    "opts",
    [QuoteOptions(), QuoteOptions(version=5), QuoteOptions(tee="sgx", version=3)],
    ids=["tdx-v4", "tdx-v5", "sgx-v3"],
)
def test_intel_pki_rebind_gives_a_genuine_quote_with_the_new_reportdata(opts: QuoteOptions) -> None:
    from verifier.platforms.intel_dcap import verify_quote
    from verifier.trust.intel_collateral import parse_collateral_json

    pki = default_pki()
    ev = pki.build(opts)
    reportdata = bytes(range(64))
    quote = parse_quote(pki.rebind(ev, reportdata))
    assert quote.body.reportdata == reportdata
    verify_quote(quote, parse_collateral_json(ev.collateral_json), ev.trust_store, ev.now)  # raises if not genuine


def test_intel_pki_rebind_refuses_defective_evidence() -> None:
    pki = default_pki()
    with pytest.raises(ValueError, match="genuine"):
        pki.rebind(pki.build(defect=Defect.QUOTE_BAD_SIGNATURE), bytes(64))
