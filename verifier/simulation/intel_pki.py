"""A SIMULATED Intel DCAP PKI: test root, PCK chain, CRLs, TCB Info, QE Identity and quotes, byte-exact.

SIMULATION ONLY. Nothing here is Intel's: every key is derived from a fixed seed in this module, and
every certificate, CRL, collateral document and quote it produces is simulated. Its root ("Keyward Simulated
SGX Root CA") is never trusted unless a developer explicitly enables simulated roots for development;
evidence built here must be verified under :attr:`Evidence.trust_store`, which is marked ``simulated=True``.

What it does: mirrors Intel's PKI shape (intel-dcap.md §2-3): a self-signed root, PCK Platform and Processor
CAs, a PCK leaf carrying the SGX extension (OID 1.2.840.113741.1.13.1, DER built by hand below), a TCB Signing
cert, the Root CA CRL and PCK CRLs (CRL Number + AKI), TCB Info v3 ("SGX"/"TDX") and QE Identity v2
("QE"/"TD_QE") signed over their exact compact JSON bytes, and quotes via
:mod:`verifier.simulation.intel_quote_builder` (options and the defect catalogue:
:mod:`verifier.simulation.intel_options`, re-exported here). One :class:`Defect` at a time can be injected;
each one makes the evidence fail exactly one check of an exact verifier (suggested code: :func:`expected_code`).

Usage::

    pki = default_pki()                                   # cached per process; keys are deterministic
    ev = pki.build(QuoteOptions(tee="tdx", version=4))    # genuine: evaluates to UpToDate at ev.now
    bad = pki.build(QuoteOptions(tee="sgx", version=3), defect=Defect.PCK_REVOKED)
    ev.quote, ev.collateral_json, ev.now, ev.trust_store, ev.pcs, ev.layout

Everything is deterministic (derived keys, RFC 6979 signatures): the same options give the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.simulation.der import der_bool, der_enum, der_int, der_octets, der_oid, der_seq
from verifier.simulation.intel_options import (
    CaKind,
    CollateralOptions,
    Defect,
    PlatformTcb,
    QuoteOptions,
    Tee,
    applicable_defects,
    defect_applies,
    expected_code,
)
from verifier.simulation.intel_quote_builder import (
    SGX_ATTR_DEBUG,
    SIM_TDX_LATE_MICROCODE_SVN,
    SIM_TDX_MODULE_MAJOR,
    SIM_TDX_MODULE_SVN,
    TD_ATTR_DEBUG,
    TD_ATTR_MIGRATABLE,
    TD_ATTR_SEPT_VE_DISABLE,
    TEE_SGX,
    TEE_TDX,
    QeCertificationData,
    QuoteLayout,
    SgxReport,
    TdReport,
    assemble_quote,
    quote_layout,
    raw_public_key,
    sign_raw,
)
from verifier.trust.intel_collateral import Collateral, collateral_from_pcs
from verifier.trust.store import INTEL_SGX_ROOT, TrustStore, trust_store_from_certificates

#: The verification time every simulated item is valid around.
SIM_NOW: Final = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
#: REPORTDATA offsets in the TD report body (intel-dcap.md §1.2) and the SGX report body (§1.1).
TD_REPORTDATA_OFFSET: Final = 520
SGX_REPORTDATA_OFFSET: Final = 320
SIM_FMSPC: Final = bytes.fromhex("90C06F000000")
SIM_PCE_ID: Final = bytes.fromhex("0000")
SGX_EXTENSION_OID: Final = "1.2.840.113741.1.13.1"
ROOT_CN: Final = "Keyward Simulated SGX Root CA"
CA_CN: Final[Mapping[str, str]] = {
    "platform": "Keyward Simulated SGX PCK Platform CA",
    "processor": "Keyward Simulated SGX PCK Processor CA",
}
PCK_CN: Final = "Keyward Simulated SGX PCK Certificate"
TCB_SIGNING_CN: Final = "Keyward Simulated SGX TCB Signing"
_ORG: Final = "Keyward Simulation (not Intel)"
_ROOT_CRL_URL: Final = "https://sim.keyward.invalid/IntelSGXRootCA.der"
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_DAY: Final = timedelta(days=1)


T = TypeVar("T")


def _pick(d: Defect | None, choices: Mapping[Defect, T], default: T) -> T:
    """``choices[d]`` when the active defect has an entry, else ``default``."""
    return default if d is None else choices.get(d, default)


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------------------------
# The simulated platform: what the PCK certifies, the TCB levels and the QE identities that match it

_UP_SGX: Final = (3, 3, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
_OLD_SGX: Final = (2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
_BELOW_ALL_SGX: Final = (1, 1, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
_UP_TDX: Final = (SIM_TDX_MODULE_SVN, SIM_TDX_MODULE_MAJOR, SIM_TDX_LATE_MICROCODE_SVN) + (0,) * 13
_OLD_TDX: Final = (2, SIM_TDX_MODULE_MAJOR, 2) + (0,) * 13
_PCESVN: Final = 11
_PLATFORM_TCB: Final[Mapping[str, tuple[tuple[int, ...], int]]] = {
    "up_to_date": (_UP_SGX, _PCESVN),
    "out_of_date": (_OLD_SGX, _PCESVN),
}


@dataclass(frozen=True, slots=True)
class _Level:
    sgx: tuple[int, ...]
    pcesvn: int
    tdx: tuple[int, ...]
    date: str
    status: str
    advisories: tuple[str, ...] = ()


#: Platform TCB levels, descending (intel-dcap.md §5). The default PCK matches the first one.
PLATFORM_LEVELS: Final = (
    _Level(_UP_SGX, _PCESVN, _UP_TDX, "2025-11-12T00:00:00Z", "UpToDate"),
    _Level(_OLD_SGX, _PCESVN, _OLD_TDX, "2025-05-14T00:00:00Z", "OutOfDate", ("INTEL-SA-00615",)),
    _Level(_OLD_SGX, 5, _OLD_TDX, "2024-03-13T00:00:00Z", "OutOfDate", ("INTEL-SA-00477", "INTEL-SA-00615")),
)
#: TDX module identities: (id, [(isvsvn, tcbDate, status)] descending). The default TD runs "TDX_01" SVN 4.
MODULE_IDENTITIES: Final = (
    ("TDX_03", ((3, "2025-11-12T00:00:00Z", "UpToDate"),)),
    ("TDX_01", ((SIM_TDX_MODULE_SVN, "2025-11-12T00:00:00Z", "UpToDate"), (2, "2024-03-13T00:00:00Z", "OutOfDate"))),
)
_TDX_COMPONENT_NAMES: Final = (
    ("OS/VMM", "TDX Module"),
    ("OS/VMM", "TDX Module"),
    ("OS/VMM", "TDX Late Microcode Update"),
)


@dataclass(frozen=True, slots=True)
class QeProfile:
    """A simulated quoting enclave and the QE Identity issued for it (Intel's published MRSIGNER/prodid)."""

    identity_id: str
    mrsigner: bytes
    isvprodid: int
    mrenclave: bytes
    levels: tuple[tuple[int, str, str, tuple[str, ...]], ...]  # (isvsvn, tcbDate, status, advisories), desc
    report_attributes: bytes = bytes.fromhex("1500000000000000e700000000000000")
    identity_attributes: bytes = bytes.fromhex("11000000000000000000000000000000")
    attributes_mask: bytes = bytes.fromhex("FBFFFFFFFFFFFFFF0000000000000000")


QE_PROFILES: Final[Mapping[str, QeProfile]] = {
    "sgx": QeProfile(
        "QE",
        bytes.fromhex("8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF"),
        1,
        hashlib.sha256(b"keyward-simulated:qe").digest(),
        ((8, "2025-11-12T00:00:00Z", "UpToDate", ()), (6, "2021-11-10T00:00:00Z", "OutOfDate", ("INTEL-SA-00615",))),
    ),
    "tdx": QeProfile(
        "TD_QE",
        bytes.fromhex("DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5"),
        2,
        hashlib.sha256(b"keyward-simulated:td_qe").digest(),
        ((4, "2025-11-12T00:00:00Z", "UpToDate", ()), (2, "2023-08-09T00:00:00Z", "OutOfDate", ("INTEL-SA-00837",))),
    ),
}


_PLATFORM_INSTANCE_ID: Final = hashlib.sha256(b"keyward-simulated:piid").digest()[:16]
_CONFIGURATION: Final = (False, True, True)  # dynamicPlatform, cachedKeys, SMTEnabled


@dataclass(frozen=True, slots=True)
class PckPlatform:
    """The values the PCK leaf's SGX extension certifies (intel-dcap.md §2)."""

    tcb_components: tuple[int, ...] = _UP_SGX
    pcesvn: int = _PCESVN
    fmspc: bytes = SIM_FMSPC
    pce_id: bytes = SIM_PCE_ID
    ppid: bytes = hashlib.sha256(b"keyward-simulated:ppid").digest()[:16]
    sgx_type: int = 1  # Scalable
    platform_instance_id: bytes | None = _PLATFORM_INSTANCE_ID  # Platform-CA PCKs only
    configuration: tuple[bool, bool, bool] | None = _CONFIGURATION  # Platform-CA PCKs only

    @property
    def cpusvn(self) -> bytes:
        return bytes(self.tcb_components)


def sgx_extension_der(p: PckPlatform) -> bytes:
    """DER of the SGX extension value: SEQUENCE OF SEQUENCE {OID, value}, in Intel's member order."""
    if len(p.tcb_components) != 16 or len(p.ppid) != 16 or len(p.pce_id) != 2 or len(p.fmspc) != 6:
        raise ValueError("PCK platform values have the wrong sizes")

    def member(arc: str, value: bytes) -> bytes:
        return der_seq(der_oid(f"{SGX_EXTENSION_OID}.{arc}"), value)

    tcb = [member(f"2.{i + 1}", der_int(svn)) for i, svn in enumerate(p.tcb_components)]
    tcb += [member("2.17", der_int(p.pcesvn)), member("2.18", der_octets(p.cpusvn))]
    items = [
        member("1", der_octets(p.ppid)),
        member("2", der_seq(*tcb)),
        member("3", der_octets(p.pce_id)),
        member("4", der_octets(p.fmspc)),
        member("5", der_enum(p.sgx_type)),
    ]
    if p.platform_instance_id is not None:
        items.append(member("6", der_octets(p.platform_instance_id)))
    if p.configuration is not None:
        items.append(member("7", der_seq(*(member(f"7.{i + 1}", der_bool(v)) for i, v in enumerate(p.configuration)))))
    return der_seq(*items)


_GENUINE: Final = QuoteOptions()  # build()'s defaults (frozen)
_GENUINE_COLLATERAL: Final = CollateralOptions()


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class PcsResponses:
    """The same collateral as Intel PCS serves it. Field names match
    :func:`verifier.trust.intel_collateral.collateral_from_pcs`'s keywords (see :meth:`kwargs`)."""

    tcb_info_body: bytes  # {"tcbInfo":<exact signed bytes>,"signature":"<hex>"}
    tcb_info_issuer_chain: str  # TCB-Info-Issuer-Chain header value: URL-encoded PEM, signer first, root last
    qe_identity_body: bytes  # {"enclaveIdentity":...,"signature":...}
    qe_identity_issuer_chain: str  # SGX-Enclave-Identity-Issuer-Chain header value
    pck_crl: bytes  # DER (…/pckcrl?ca=<ca>&encoding=der)
    pck_crl_issuer_chain: str  # SGX-PCK-CRL-Issuer-Chain header value
    root_ca_crl: bytes  # DER
    ca: CaKind

    def kwargs(self) -> dict[str, bytes | str]:
        names = (
            "tcb_info_body",
            "tcb_info_issuer_chain",
            "qe_identity_body",
            "qe_identity_issuer_chain",
            "pck_crl",
            "root_ca_crl",
            "pck_crl_issuer_chain",
        )
        return {n: getattr(self, n) for n in names}

    def to_collateral(self) -> Collateral:
        """The same collateral through the raw-PCS input path (:func:`collateral_from_pcs`)."""
        return collateral_from_pcs(
            tcb_info_body=self.tcb_info_body,
            tcb_info_issuer_chain=self.tcb_info_issuer_chain,
            qe_identity_body=self.qe_identity_body,
            qe_identity_issuer_chain=self.qe_identity_issuer_chain,
            pck_crl=self.pck_crl,
            root_ca_crl=self.root_ca_crl,
            pck_crl_issuer_chain=self.pck_crl_issuer_chain,
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """A simulated quote with its collateral, the time it is valid at and the (simulated) trust store."""

    quote: bytes
    collateral: Mapping[str, str]  # dcap-qvl QuoteCollateralV3 shape
    pcs: PcsResponses
    now: datetime
    trust_store: TrustStore  # always pins the *genuine* simulated root, whatever the defect
    layout: QuoteLayout
    options: QuoteOptions
    defect: Defect | None
    attestation_key: bytes  # raw x||y
    pck_chain: tuple[x509.Certificate, ...]  # leaf, CA, root as embedded in the quote
    platform: PckPlatform
    tcb_info_signer: x509.Certificate
    qe_identity_signer: x509.Certificate
    collateral_json: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "collateral_json", json.dumps(dict(self.collateral)))

    @property
    def now_secs(self) -> int:
        return int(self.now.timestamp())


# ----------------------------------------------------------------------------------------------------------
# The PKI


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def _in_window(start: timedelta, end: timedelta) -> tuple[datetime, datetime]:
    return SIM_NOW + start, SIM_NOW + end


_Chain = tuple[x509.Certificate, ...]
_GOOD_DOC: Final = _in_window(-10 * _DAY, 20 * _DAY)
_EXPIRED_DOC: Final = _in_window(-40 * _DAY, -_DAY)
_FUTURE_DOC: Final = _in_window(_DAY, 31 * _DAY)


class IntelPki:
    """A simulated Intel SGX PKI with deterministic keys (see module docstring). Use :func:`default_pki`."""

    def __init__(self, seed: str = "keyward-simulated-intel-pki/1") -> None:
        self._seed = seed
        self.rogue_key = self.key("rogue")  # signs everything a defect needs signed "by someone else"
        self.root_key, self.alt_root_key = self.key("root"), self.key("alt-root")
        self.root = self._root(self.root_key)
        self.alt_root = self._root(self.alt_root_key)  # same name and serial as ``root``, another key
        self.ca_keys: dict[str, ec.EllipticCurvePrivateKey] = {k: self.key(f"{k}-ca") for k in CA_CN}
        self.cas = {k: self._ca(k, self.ca_keys[k], self.root, self.root_key) for k in CA_CN}
        self.tcb_signing_key = self.key("tcb-signing")
        self.tcb_signing = self._signer(self.tcb_signing_key, self.root, self.root_key)
        self.pck_key = self.key("pck-leaf")
        self.attestation_key = self.key("attestation-key")
        self.trust_store = trust_store_from_certificates({INTEL_SGX_ROOT: self.root}, simulated=True)

    # -- keys and certificates ---------------------------------------------------------------------------

    def key(self, label: str) -> ec.EllipticCurvePrivateKey:
        """A P-256 key derived from the seed and ``label`` (fast and reproducible; test use only)."""
        digest = hashlib.sha256(f"{self._seed}/key/{label}".encode()).digest()
        return ec.derive_private_key(int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())

    def _serial(self, label: str) -> int:
        digest = hashlib.sha256(f"{self._seed}/serial/{label}".encode()).digest()
        return int.from_bytes(digest[:19], "big") | (1 << 151)  # 19-20 byte positive serials, like Intel's

    def _issue(
        self,
        cn: str,
        subject_key: ec.EllipticCurvePrivateKey,
        issuer: x509.Certificate | None,
        signer: ec.EllipticCurvePrivateKey,
        *,
        role: str,
        serial_label: str,
        validity: tuple[datetime, datetime],
        extra: Iterable[x509.ExtensionType] = (),
        crl_url: str = _ROOT_CRL_URL,
    ) -> x509.Certificate:
        """Issue ``cn`` for ``subject_key`` under ``issuer``'s name and SKI (None: self-issued), signed by
        ``signer``. Extensions follow Intel's certificates: AKI, CRL DP, SKI, critical KU and BC."""
        public = subject_key.public_key()
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        aki = ski.digest if issuer is None else _ski(issuer)
        ca = role in ("root", "ca")
        path_len = (1 if role == "root" else 0) if ca else None
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn) if issuer is None else issuer.subject)
            .public_key(public)
            .serial_number(self._serial(serial_label))
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
                ),
                critical=False,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=not ca,
                    content_commitment=not ca,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=ca,
                    crl_sign=ca,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
        )
        for ext in extra:
            b = b.add_extension(ext, critical=False)
        return b.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)

    def _root(self, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        return self._issue(
            ROOT_CN,
            key,
            None,
            key,
            role="root",
            serial_label="root",
            validity=(datetime(2025, 1, 1, tzinfo=UTC), datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)),
        )

    def _ca(
        self, kind: str, key: ec.EllipticCurvePrivateKey, root: x509.Certificate, signer: ec.EllipticCurvePrivateKey
    ) -> x509.Certificate:
        return self._issue(
            CA_CN[kind],
            key,
            root,
            signer,
            role="ca",
            serial_label=f"{kind}-ca",
            validity=(datetime(2025, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC)),
        )

    def _signer(
        self, key: ec.EllipticCurvePrivateKey, root: x509.Certificate, signer: ec.EllipticCurvePrivateKey
    ) -> x509.Certificate:
        return self._issue(
            TCB_SIGNING_CN,
            key,
            root,
            signer,
            role="leaf",
            serial_label="tcb-signing",
            validity=(datetime(2025, 5, 6, tzinfo=UTC), datetime(2032, 5, 6, tzinfo=UTC)),
        )

    def pck_leaf(
        self,
        platform: PckPlatform,
        ca: x509.Certificate,
        signer: ec.EllipticCurvePrivateKey,
        key: ec.EllipticCurvePrivateKey | None = None,
        validity: tuple[datetime, datetime] | None = None,
    ) -> x509.Certificate:
        """Issue a PCK leaf certifying ``platform`` under ``ca``'s name, signed by ``signer``."""
        kind = "platform" if "Platform" in ca.subject.rfc4514_string() else "processor"
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), sgx_extension_der(platform))
        return self._issue(
            PCK_CN,
            key or self.pck_key,
            ca,
            signer,
            role="leaf",
            serial_label="pck-leaf",
            validity=validity or (datetime(2025, 6, 1, tzinfo=UTC), datetime(2032, 6, 1, tzinfo=UTC)),
            extra=[ext],
            crl_url=f"https://sim.keyward.invalid/sgx/certification/v4/pckcrl?ca={kind}&encoding=der",
        )

    def crl(
        self,
        issuer: x509.Certificate,
        signer: ec.EllipticCurvePrivateKey,
        window: tuple[datetime, datetime],
        revoked: Iterable[int] = (),
        *,
        number: int | None = 1,
        aki: bool = True,
    ) -> x509.CertificateRevocationList:
        """A CRL under ``issuer``'s name (AKI = its SKI) signed by ``signer``, valid over ``window``."""
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(window[0])
            .next_update(window[1])
        )
        for serial in sorted(set(revoked)):
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(window[0] - _DAY).build()
            )
        if number is not None:
            b = b.add_extension(x509.CRLNumber(number), critical=False)
        if aki:
            b = b.add_extension(x509.AuthorityKeyIdentifier(_ski(issuer), None, None), critical=False)
        return b.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)

    # -- collateral documents ----------------------------------------------------------------------------

    @staticmethod
    def tcb_info_json(
        *,
        tdx: bool,
        window: tuple[datetime, datetime],
        c: CollateralOptions,
        fmspc: bytes = SIM_FMSPC,
        pce_id: bytes = SIM_PCE_ID,
        top_status: str | None = None,
        short_top_level: bool = False,
        drop_module: str | None = None,
    ) -> str:
        """TCB Info v3 as compact JSON (the exact bytes that get signed)."""
        levels = []
        for i, lv in enumerate(PLATFORM_LEVELS):
            sgx = [{"svn": v} for v in lv.sgx[: 15 if short_top_level and i == 0 else 16]]
            tcb: dict[str, object] = {"sgxtcbcomponents": sgx, "pcesvn": lv.pcesvn}
            if tdx:
                tcb["tdxtcbcomponents"] = [
                    {"svn": v, "category": _TDX_COMPONENT_NAMES[j][0], "type": _TDX_COMPONENT_NAMES[j][1]}
                    if j < 3
                    else {"svn": v}
                    for j, v in enumerate(lv.tdx)
                ]
            status = (top_status or c.top_tcb_status) if i == 0 else lv.status
            advisories = c.top_tcb_advisory_ids if i == 0 else lv.advisories
            level: dict[str, object] = {"tcb": tcb, "tcbDate": lv.date, "tcbStatus": status}
            if advisories:
                level["advisoryIDs"] = list(advisories)
            levels.append(level)
        doc: dict[str, object] = {
            "id": "TDX" if tdx else "SGX",
            "version": 3,
            "issueDate": _ts(window[0]),
            "nextUpdate": _ts(window[1]),
            "fmspc": fmspc.hex().upper(),
            "pceId": pce_id.hex().upper(),
            "tcbType": 0,
            "tcbEvaluationDataNumber": c.tcb_evaluation_data_number,
        }
        if tdx:
            module = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "FF" * 8}
            doc["tdxModule"] = module
            doc["tdxModuleIdentities"] = [
                {
                    "id": ident,
                    **module,
                    "tcbLevels": [{"tcb": {"isvsvn": svn}, "tcbDate": date, "tcbStatus": st} for svn, date, st in lvls],
                }
                for ident, lvls in MODULE_IDENTITIES
                if ident != drop_module
            ]
        doc["tcbLevels"] = levels
        return json.dumps(doc, separators=(",", ":"))

    @staticmethod
    def qe_identity_json(
        profile: QeProfile, *, window: tuple[datetime, datetime], c: CollateralOptions, top_status: str | None = None
    ) -> str:
        """QE Identity v2 as compact JSON (the exact bytes that get signed)."""
        levels = []
        for i, (svn, date, status, advisories) in enumerate(profile.levels):
            level: dict[str, object] = {
                "tcb": {"isvsvn": svn},
                "tcbDate": date,
                "tcbStatus": top_status if i == 0 and top_status else status,
            }
            if advisories:
                level["advisoryIDs"] = list(advisories)
            levels.append(level)
        eval_number = (
            c.tcb_evaluation_data_number if c.qe_tcb_evaluation_data_number is None else c.qe_tcb_evaluation_data_number
        )
        doc = {
            "id": profile.identity_id,
            "version": 2,
            "issueDate": _ts(window[0]),
            "nextUpdate": _ts(window[1]),
            "tcbEvaluationDataNumber": eval_number,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": profile.identity_attributes.hex().upper(),
            "attributesMask": profile.attributes_mask.hex().upper(),
            "mrsigner": profile.mrsigner.hex().upper(),
            "isvprodid": profile.isvprodid,
            "tcbLevels": levels,
        }
        return json.dumps(doc, separators=(",", ":"))

    # -- the one entry point -----------------------------------------------------------------------------

    def build(
        self,
        quote: QuoteOptions = _GENUINE,
        collateral: CollateralOptions = _GENUINE_COLLATERAL,
        defect: Defect | None = None,
    ) -> Evidence:
        """Build a quote and its collateral, genuine unless ``defect`` is given. Raises ValueError for invalid
        options or a defect that does not apply (see :func:`defect_applies`)."""
        body_type = quote.resolved_body_type()
        if defect is not None and not defect_applies(defect, quote):
            raise ValueError(f"defect {defect.value!r} does not apply to {quote.tee} quote v{quote.version}")
        platform, leaf_key, chain = self._pck_chain(quote, defect)
        quote_bytes = self._quote(quote, body_type, platform, leaf_key, chain, defect)
        coll, pcs, tcb_chain, qe_chain = self._collateral(quote, collateral, platform, chain, defect)
        return Evidence(
            quote=quote_bytes,
            collateral=coll,
            pcs=pcs,
            now=SIM_NOW,
            trust_store=self.trust_store,
            layout=quote_layout(quote_bytes),
            options=quote,
            defect=defect,
            attestation_key=raw_public_key(self.attestation_key),
            pck_chain=chain,
            platform=platform,
            tcb_info_signer=tcb_chain[0],
            qe_identity_signer=qe_chain[0],
        )

    def rebind(self, ev: Evidence, reportdata: bytes) -> bytes:
        """``ev.quote`` with REPORTDATA replaced and the quote signature made again by the attestation key: the
        genuine quote a TD would produce for a new binding, in ~0.1 ms instead of a whole build (load generators).
        Only for genuine evidence of this PKI (the quote signature is all that covers REPORTDATA)."""
        if ev.defect is not None or len(reportdata) != 64:
            raise ValueError("rebind needs genuine evidence and 64 bytes of REPORTDATA")
        offset = ev.layout.body_offset + (TD_REPORTDATA_OFFSET if ev.options.tee == "tdx" else SGX_REPORTDATA_OFFSET)
        quote = bytearray(ev.quote)
        quote[offset : offset + 64] = reportdata
        sig = ev.layout.quote_signature_offset
        quote[sig : sig + 64] = sign_raw(self.attestation_key, bytes(quote[: ev.layout.signed_end]))
        return bytes(quote)

    def _pck_chain(
        self, quote: QuoteOptions, d: Defect | None
    ) -> tuple[PckPlatform, ec.EllipticCurvePrivateKey, tuple[x509.Certificate, x509.Certificate, x509.Certificate]]:
        """1. The platform the PCK certifies and the chain embedded in the quote (§2, §4 step 2)."""
        comps, pcesvn = _PLATFORM_TCB[quote.platform_tcb]
        if d is Defect.TCB_NOT_SUPPORTED:
            comps = _BELOW_ALL_SGX
        processor = quote.pck_ca == "processor"
        platform = PckPlatform(
            tcb_components=comps,
            pcesvn=pcesvn,
            sgx_type=0 if processor else 1,
            platform_instance_id=None if processor else _PLATFORM_INSTANCE_ID,
            configuration=None if processor else _CONFIGURATION,
        )
        ca_key, ca, root, leaf_key = self.ca_keys[quote.pck_ca], self.cas[quote.pck_ca], self.root, self.pck_key
        if d is Defect.WRONG_ROOT:  # a forger's whole chain: own root, CA and leaf keys, Intel-like names
            root, ca_key, leaf_key = self.alt_root, self.key(f"alt-{quote.pck_ca}-ca"), self.key("alt-pck-leaf")
            ca = self._ca(quote.pck_ca, ca_key, self.alt_root, self.alt_root_key)
        elif d is Defect.INTERMEDIATE_BAD_SIGNATURE:
            ca = self._ca(quote.pck_ca, ca_key, self.root, self.rogue_key)
        validity = _pick(
            d,
            {
                Defect.PCK_EXPIRED: (datetime(2019, 1, 1, tzinfo=UTC), SIM_NOW - _DAY),
                Defect.PCK_NOT_YET_VALID: (SIM_NOW + _DAY, datetime(2033, 1, 1, tzinfo=UTC)),
            },
            None,
        )
        signer = self.rogue_key if d is Defect.PCK_BAD_SIGNATURE else ca_key
        return platform, leaf_key, (self.pck_leaf(platform, ca, signer, leaf_key, validity), ca, root)

    def _quote(
        self,
        quote: QuoteOptions,
        body_type: int,
        platform: PckPlatform,
        leaf_key: ec.EllipticCurvePrivateKey,
        chain: tuple[x509.Certificate, ...],
        d: Defect | None,
    ) -> bytes:
        """2. The quote: report body, QE report bound to the attestation key, signatures (§1, §4 steps 6-10)."""
        qe = QE_PROFILES[quote.tee]
        qe_isvsvn = qe.levels[0][0] if quote.qe_isvsvn is None else quote.qe_isvsvn
        if d is Defect.QE_TCB_NOT_SUPPORTED:
            qe_isvsvn = qe.levels[-1][0] - 1
        binding = hashlib.sha256(raw_public_key(self.attestation_key) + quote.qe_auth_data).digest()
        if d is Defect.AK_BINDING_WRONG:
            binding = bytes([binding[0] ^ 0x01]) + binding[1:]
        tail = b"\x01" + bytes(31) if d is Defect.QE_REPORTDATA_TAIL_NONZERO else bytes(32)
        qe_report = SgxReport(
            cpusvn=platform.cpusvn,
            attributes=qe.report_attributes,
            mrenclave=qe.mrenclave,
            mrsigner=qe.mrsigner,
            isvprodid=qe.isvprodid,
            isvsvn=qe_isvsvn,
            reportdata=binding + tail,
        )
        if d is Defect.QE_MISCSELECT_MISMATCH:
            qe_report = replace(qe_report, miscselect=1)
        if d is Defect.QE_ATTRIBUTES_MISMATCH:  # a debug QE: DEBUG is inside attributesMask
            qe_report = replace(
                qe_report, attributes=bytes([qe.report_attributes[0] | SGX_ATTR_DEBUG]) + qe.report_attributes[1:]
            )
        if d is Defect.QE_MRSIGNER_MISMATCH:
            qe_report = replace(qe_report, mrsigner=hashlib.sha256(qe.mrsigner).digest())
        if d is Defect.QE_ISVPRODID_MISMATCH:
            qe_report = replace(qe_report, isvprodid=qe.isvprodid + 10)
        qe_bytes = qe_report.pack()
        cert_data = QeCertificationData(
            qe_bytes,
            sign_raw(self.rogue_key if d is Defect.QE_REPORT_BAD_SIGNATURE else leaf_key, qe_bytes),
            quote.qe_auth_data,
            _pem(*chain).encode() + b"\x00",
        )
        tdx = quote.tee == "tdx"
        body = self._td_body(quote.td, d).pack(body_type) if tdx else self._sgx_body(quote.sgx, platform, d).pack()
        return assemble_quote(
            version=quote.version,
            tee_type=TEE_TDX if tdx else TEE_SGX,
            body=body,
            body_type=body_type,
            attestation_key=self.attestation_key,
            certification=cert_data,
            qe_svn=qe_isvsvn if quote.version == 3 else 0,
            pce_svn=platform.pcesvn if quote.version == 3 else 0,
            user_data=quote.qe_id + bytes(4),
            quote_signing_key=self.rogue_key if d is Defect.QUOTE_BAD_SIGNATURE else None,
        )

    def _collateral(
        self,
        quote: QuoteOptions,
        c: CollateralOptions,
        platform: PckPlatform,
        chain: tuple[x509.Certificate, ...],
        d: Defect | None,
    ) -> tuple[dict[str, str], PcsResponses, _Chain, _Chain]:
        """3. TCB Info, QE Identity, their issuer chains, the Root CA CRL and the PCK CRL (§3)."""
        tdx = quote.tee == "tdx"
        tcb_info = self.tcb_info_json(
            tdx=tdx != (d is Defect.TCB_INFO_WRONG_TEE),
            c=c,
            window=_pick(
                d, {Defect.TCB_INFO_EXPIRED: _EXPIRED_DOC, Defect.TCB_INFO_NOT_YET_VALID: _FUTURE_DOC}, _GOOD_DOC
            ),
            fmspc=bytes.fromhex("5EC0DE000001") if d is Defect.FMSPC_MISMATCH else platform.fmspc,
            pce_id=b"\x00\x01" if d is Defect.PCE_ID_MISMATCH else platform.pce_id,
            top_status=_pick(d, {Defect.TCB_STATUS_REVOKED: "Revoked", Defect.TCB_STATUS_UNRECOGNIZED: "Bogus"}, None),
            short_top_level=d is Defect.TCB_LEVEL_SHORT_COMPONENTS,
            drop_module=f"TDX_{quote.td.tee_tcb_svn[1]:02X}" if d is Defect.TDX_MODULE_IDENTITY_MISSING else None,
        )
        qe_identity = self.qe_identity_json(
            QE_PROFILES[quote.tee if d is not Defect.QE_IDENTITY_WRONG_TEE else ("sgx" if tdx else "tdx")],
            window=_pick(
                d, {Defect.QE_IDENTITY_EXPIRED: _EXPIRED_DOC, Defect.QE_IDENTITY_NOT_YET_VALID: _FUTURE_DOC}, _GOOD_DOC
            ),
            c=c,
            top_status="Revoked" if d is Defect.QE_TCB_REVOKED else None,
        )
        tcb_signer, tcb_chain = self._doc_signer(d, Defect.TCB_INFO_SIGNING_WRONG_ROOT, Defect.TCB_INFO_BAD_SIGNATURE)
        if d is Defect.TCB_INFO_SIGNING_BAD_SIGNATURE:
            tcb_chain = (self._signer(self.tcb_signing_key, self.root, self.rogue_key), self.root)
        qe_signer, qe_chain = self._doc_signer(
            d, Defect.QE_IDENTITY_SIGNING_WRONG_ROOT, Defect.QE_IDENTITY_BAD_SIGNATURE
        )
        tcb_sig = sign_raw(tcb_signer, tcb_info.encode()).hex()
        qe_sig = sign_raw(qe_signer, qe_identity.encode()).hex()

        root_revoked = set(c.root_crl_revoked_serials)
        if d is Defect.INTERMEDIATE_REVOKED:
            root_revoked.add(chain[1].serial_number)
        if d is Defect.TCB_SIGNING_REVOKED:
            root_revoked.add(self.tcb_signing.serial_number)
        root_crl = self.crl(
            self.root,
            self.rogue_key if d is Defect.ROOT_CRL_BAD_SIGNATURE else self.root_key,
            _pick(
                d,
                {
                    Defect.ROOT_CRL_EXPIRED: _in_window(-400 * _DAY, -_DAY),
                    Defect.ROOT_CRL_NOT_YET_VALID: _in_window(_DAY, 366 * _DAY),
                },
                _in_window(-30 * _DAY, 335 * _DAY),
            ),
            root_revoked,
            number=None if d is Defect.ROOT_CRL_NO_CRL_NUMBER else 1,
        )
        crl_ca: CaKind = quote.pck_ca
        if d is Defect.PCK_CRL_WRONG_ISSUER:
            crl_ca = "processor" if quote.pck_ca == "platform" else "platform"
        pck_revoked = set(c.pck_crl_revoked_serials)
        if d is Defect.PCK_REVOKED:
            pck_revoked.add(chain[0].serial_number)
        pck_crl = self.crl(
            self.cas[crl_ca],
            self.rogue_key if d is Defect.PCK_CRL_BAD_SIGNATURE else self.ca_keys[crl_ca],
            _pick(
                d,
                {
                    Defect.PCK_CRL_EXPIRED: _in_window(-31 * _DAY, -_DAY),
                    Defect.PCK_CRL_NOT_YET_VALID: _in_window(_DAY, 31 * _DAY),
                },
                _in_window(-5 * _DAY, 25 * _DAY),
            ),
            pck_revoked,
            number=None if d is Defect.PCK_CRL_NO_CRL_NUMBER else 1,
            aki=d is not Defect.PCK_CRL_NO_AKI,
        )

        root_der, pck_der = root_crl.public_bytes(Encoding.DER), pck_crl.public_bytes(Encoding.DER)
        pck_crl_chain, tcb_pem, qe_pem = _pem(self.cas[crl_ca], self.root), _pem(*tcb_chain), _pem(*qe_chain)
        coll = {
            "pck_crl_issuer_chain": pck_crl_chain,
            "root_ca_crl": root_der.hex(),
            "pck_crl": pck_der.hex(),
            "tcb_info_issuer_chain": tcb_pem,
            "tcb_info": tcb_info,
            "tcb_info_signature": tcb_sig,
            "qe_identity_issuer_chain": qe_pem,
            "qe_identity": qe_identity,
            "qe_identity_signature": qe_sig,
        }
        pcs = PcsResponses(
            tcb_info_body=f'{{"tcbInfo":{tcb_info},"signature":"{tcb_sig}"}}'.encode(),
            tcb_info_issuer_chain=urllib.parse.quote(tcb_pem),
            qe_identity_body=f'{{"enclaveIdentity":{qe_identity},"signature":"{qe_sig}"}}'.encode(),
            qe_identity_issuer_chain=urllib.parse.quote(qe_pem),
            pck_crl=pck_der,
            pck_crl_issuer_chain=urllib.parse.quote(pck_crl_chain),
            root_ca_crl=root_der,
            ca=crl_ca,
        )
        return coll, pcs, tcb_chain, qe_chain

    def _doc_signer(
        self, d: Defect | None, wrong_root: Defect, bad_signature: Defect
    ) -> tuple[ec.EllipticCurvePrivateKey, tuple[x509.Certificate, x509.Certificate]]:
        """Key that signs a TCB Info / QE Identity and the issuer chain that goes with it."""
        if d is wrong_root:  # a forger's own signing cert and root, both with Intel-like names
            key = self.key("alt-tcb-signing")
            return key, (self._signer(key, self.alt_root, self.alt_root_key), self.alt_root)
        return (self.rogue_key if d is bad_signature else self.tcb_signing_key), (self.tcb_signing, self.root)

    @staticmethod
    def _sgx_body(sgx: SgxReport, platform: PckPlatform, d: Defect | None) -> SgxReport:
        if sgx.cpusvn is None:
            sgx = replace(sgx, cpusvn=platform.cpusvn)
        if d is Defect.DEBUG:
            sgx = replace(sgx, attributes=bytes([sgx.attributes[0] | SGX_ATTR_DEBUG]) + sgx.attributes[1:])
        return sgx

    @staticmethod
    def _td_body(td: TdReport, d: Defect | None) -> TdReport:
        svn = bytearray(td.tee_tcb_svn)
        if d is Defect.TDX_TCB_NOT_SUPPORTED:
            svn[2] = min(lv.tdx[2] for lv in PLATFORM_LEVELS) - 1
        if d is Defect.TDX_MODULE_TCB_NOT_SUPPORTED:
            svn[0] = min(lvl[0] for _, lvls in MODULE_IDENTITIES for lvl in lvls) - 1
        td = replace(td, tee_tcb_svn=bytes(svn))
        attrs = td.tdattributes_int
        attrs |= _pick(
            d,
            {
                Defect.DEBUG: TD_ATTR_DEBUG,
                Defect.TD_MIGRATABLE: TD_ATTR_MIGRATABLE,
                Defect.TD_RESERVED_ATTRIBUTES: 1 << 40,
            },
            0,
        )
        if d is Defect.TD_SEPT_VE_DISABLE_OFF:
            attrs &= ~TD_ATTR_SEPT_VE_DISABLE
        td = td.with_tdattributes(attrs)
        if d is Defect.MRSIGNERSEAM_MISMATCH:
            td = replace(td, mrsignerseam=hashlib.sha384(b"keyward-simulated:rogue-seam-signer").digest())
        if d is Defect.SEAMATTRIBUTES_NONZERO:
            td = replace(td, seamattributes=b"\x01" + bytes(7))
        if d is Defect.MRSERVICETD_NONZERO:
            td = replace(td, mrservicetd=hashlib.sha384(b"keyward-simulated:service-td").digest())
        return td


@functools.cache
def default_pki() -> IntelPki:
    """The process-wide simulated PKI (deterministic, built once: ~10 ms)."""
    return IntelPki()


__all__ = [
    "CA_CN",
    "PCK_CN",
    "QE_PROFILES",
    "ROOT_CN",
    "SGX_EXTENSION_OID",
    "SIM_FMSPC",
    "SIM_NOW",
    "SIM_PCE_ID",
    "TCB_SIGNING_CN",
    "CaKind",
    "CollateralOptions",
    "Defect",
    "Evidence",
    "IntelPki",
    "PckPlatform",
    "PcsResponses",
    "PlatformTcb",
    "QeProfile",
    "QuoteOptions",
    "Tee",
    "applicable_defects",
    "default_pki",
    "defect_applies",
    "expected_code",
    "sgx_extension_der",
]
