"""A SIMULATED NVIDIA PKI: device identity chains, RIM signing chains, OCSP responders, and complete evidence
(report, NVML/NSCQ chain text, RIMs, OCSP responses), byte-exact, for Hopper (GH100) and Blackwell (GB100) GPUs and
NVSwitches (LS10); a protected-PCIe HGX board of 8 GPUs + 4 switches is in :mod:`verifier.simulation.nvidia_hgx`.

SIMULATION ONLY. Nothing here is NVIDIA's: every key is derived from a fixed seed in this module. The certificates
use NVIDIA's names, name encodings, validity shapes and extensions (nvidia-gpu.md §3-§4, compared with the real
H100 chain of vector N1 and the real RIM chains) so that name handling is exercised, but the two roots are ours:
they never enter ``vendor_roots/`` and are trusted only under :attr:`NvidiaPki.trust_store` (``simulated=True``),
which development uses only with simulated roots explicitly enabled.

What it mirrors:

* device chain (§3): ``NVIDIA Device Identity CA`` -> ``NVIDIA GH100 Identity`` -> ``NVIDIA GH100 Provisioner ICA
  1`` -> per-GPU ``GH100 A01 GSP BROM`` -> per-boot ``GH100 A01 GSP FMC LF``, all P-384 ecdsa-with-SHA384; the leaf
  carries the Hopper FWID extension 2.23.133.5.4.1 ``SEQUENCE { INTEGER 1, SPKI of the BROM key, SEQUENCE { sha384,
  OCTET STRING fwid } }`` and the SAN otherName 1.3.6.1.4.1.412.274.1 ``NVIDIA:GH100:<hex>``; the BROM serial is
  0x41 ‖ the GPU's PDI (the value switches list). NVSwitch (:data:`LS10`): ``LS_10 A01 FSP FMC LF`` -> ``LS_10 A01
  FSP BROM`` (serial 0x50 ‖ DEVICE_PDI) -> ``NVIDIA LS_10 Provisioner ICA 1`` -> the same GH100 Identity. Blackwell
  (:data:`BLACKWELL`): ``GB100 A01 GSP FMC LF`` (FWID in the TcbInfo-like 2.23.133.5.4.1.1) -> ``GB100 A01 GSP
  BROM`` -> ``NVIDIA GB100 Provisioner ICA 00000`` -> ``NVIDIA GB100 Identity``;
* RIM chain (§4): ``NVIDIA CoRIM signing Root CA`` -> ``NVIDIA Reference Value GH100 CA`` -> ``NVIDIA Reference
  Value L3 GH100 001`` -> ``HCC RIM L4 Signer`` (one per RIM role, two-year validity); for LS10 ``NVIDIA Reference
  Value LS10 CA`` -> ``… L3 LS10 001`` -> ``NVIDIA Reference Value L4 LS10``; for GB100 ``… GB1XX CA 001`` -> ``… L3
  GB100-CC 001`` -> ``RIM L4 Signer``;
* delegated OCSP responders, one per issuing CA (EKU OCSPSigning), answering with CertID SHA-384 (§3);
* reports via :mod:`verifier.simulation.nvidia_report_builder`, RIMs via :mod:`verifier.simulation.nvidia_rim_signer`;
  options and the defect catalogue in :mod:`verifier.simulation.nvidia_options` (re-exported here).

Usage::

    pki = default_nvidia_pki()
    ev = pki.build(GpuOptions(device_index=1, nonce=n))
    bad = pki.build(defect=Defect.OCSP_STALE)
    ev.report, ev.chain_pem, ev.rims, ev.ocsp, ev.now, ev.trust_store, ev.evidence_item(carry_collateral=True)
    b200 = pki.build(blackwell_options(nonce=n))
    switch = pki.build_switch(SwitchOptions(device_index=2, nonce=n))

Everything is deterministic (derived keys, RFC 6979 signatures everywhere, OCSP producedAt = thisUpdate instead of
the wall clock): the same options give the same bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from verifier.simulation.amd_options import sim_bytes
from verifier.simulation.der import der_int, der_octets, der_oid, der_seq, read_element, tlv
from verifier.simulation.nvidia_options import (
    BLACKWELL_CHANGED_INDEX,
    DEFAULT_CHANGED_INDEX,
    EXPECTED_CODES,
    FEATURE_MPT,
    FEATURE_PPCIE,
    FEATURE_SPT,
    NOT_FOR_SWITCHES,
    PARSER_DEFECTS,
    Architecture,
    Defect,
    GpuOptions,
    SwitchOptions,
    blackwell_options,
    defect_applies,
    expected_code,
    switch_port_slots,
)
from verifier.simulation.nvidia_report_builder import (
    GPU_BLOCKS,
    SWITCH_GPUS,
    OpaqueTlv,
    blackwell_opaque,
    hopper_opaque,
    sign_report,
    signed_part,
    switch_opaque,
)
from verifier.simulation.nvidia_rim_signer import (
    BLACKWELL_DRIVER_ACTIVE,
    BLACKWELL_VBIOS_ACTIVE,
    HOPPER_DRIVER_ACTIVE,
    HOPPER_VBIOS_ACTIVE,
    LS10_BIOS_ACTIVE,
    RimDocument,
    RimEntry,
    cc_driver_rim_id,
    driver_rim_id,
    sign_rim,
    switch_bios_rim_id,
    unsigned_rim_xml,
    vbios_rim_id,
)
from verifier.trust.store import NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT, TrustStore, trust_store_from_certificates

#: The verification time every simulated item is valid around (the same as the Intel and AMD simulations).
SIM_NOW: Final = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
DEFAULT_SEED: Final = "keyward-simulated-nvidia-pki/1"
FWID_OID: Final = "2.23.133.5.4.1"
#: Blackwell's FWID extension: a DICE TcbInfo-like SEQUENCE (nvidia-gpu.md §3).
TCB_INFO_FWID_OID: Final = "2.23.133.5.4.1.1"
SAN_OTHER_NAME_OID: Final = "1.3.6.1.4.1.412.274.1"
SHA384_OID: Final = "2.16.840.1.101.3.4.2.2"
#: The OID NVIDIA's responder certificates list in EKU next to OCSPSigning (id-pkix-ocsp-nocheck).
OCSP_NOCHECK_OID: Final = x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")
CHIP: Final = "GH100"
LEAF_CN: Final = "GH100 A01 GSP FMC LF"
BROM_CN: Final = "GH100 A01 GSP BROM"
ICA_CN: Final = "NVIDIA GH100 Provisioner ICA 1"
IDENTITY_CN: Final = "NVIDIA GH100 Identity"
DEVICE_ROOT_CN: Final = "NVIDIA Device Identity CA"
RIM_ROOT_CN: Final = "NVIDIA CoRIM signing Root CA"
RIM_CA_CN: Final = "NVIDIA Reference Value GH100 CA"
RIM_L3_CN: Final = "NVIDIA Reference Value L3 GH100 001"
RIM_SIGNER_CN: Final = "HCC RIM L4 Signer"
#: A driver version no default evidence uses (Defect.DRIVER_VERSION_CHANGED).
OTHER_DRIVER_VERSION: Final = "550.127.05"
# Deliberately not nvidia.com: nothing should ever fetch anything for a simulated certificate.
_URL: Final = "http://sim.keyward.invalid/nvidia"
_P384_ORDER: Final = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16
)
_FOREVER: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_DAY: Final = timedelta(days=1)
_ORG: Final = "NVIDIA Corporation"

OcspStatus = Literal["good", "revoked", "hold", "unknown"]
RimRole = Literal["driver", "vbios", "bios"]
Window = tuple[datetime, datetime]


def _utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeviceFamily:
    """The names and shapes of one device chain (nvidia-gpu.md §3). ``label`` prefixes the key labels (the Hopper
    labels are ``gh100-ica1``, ``gh100-brom/<i>``, ``gh100-ak/<i>/<boot>``); ``identity`` picks the Identity CA
    (``gh100``: NVIDIA GH100 Identity, which also issues the LS_10 Provisioner ICA; ``gb100``: NVIDIA GB100
    Identity); ``brom_prefix`` is the first byte of the 9-byte BROM serial, whose other 8 bytes are the device's
    PDI (0x41 GPUs, 0x50 NVSwitches, as on the real M1/M2 sets)."""

    chip: str  # in the leaf's SAN: NVIDIA:<chip>:<hex>
    label: str
    leaf_cn: str
    brom_cn: str
    ica_cn: str
    ica_crl: str
    ica_start: datetime
    device_start: datetime  # BROM and leaf notBefore
    identity: Literal["gh100", "gb100"]
    brom_prefix: int
    brom_aia: bool  # Blackwell BROMs carry AIA OCSP
    tcb_info_fwid: bool  # Blackwell: FWID in the DICE TcbInfo-like extension 2.23.133.5.4.1.1


HOPPER: Final = DeviceFamily(
    chip="GH100",
    label="gh100",
    leaf_cn="GH100 A01 GSP FMC LF",
    brom_cn="GH100 A01 GSP BROM",
    ica_cn="NVIDIA GH100 Provisioner ICA 1",
    ica_crl="crl/l2-gh100.crl",
    ica_start=datetime(2022, 3, 1, tzinfo=UTC),
    device_start=datetime(2020, 10, 17, tzinfo=UTC),
    identity="gh100",
    brom_prefix=0x41,
    brom_aia=False,
    tcb_info_fwid=False,
)
#: NVSwitch LS10: its ICA hangs under the GH100 Identity and lists the GH100 CRL, like the real S1 chain.
LS10: Final = DeviceFamily(
    chip="LS_10",
    label="ls10",
    leaf_cn="LS_10 A01 FSP FMC LF",
    brom_cn="LS_10 A01 FSP BROM",
    ica_cn="NVIDIA LS_10 Provisioner ICA 1",
    ica_crl="crl/l2-gh100.crl",
    ica_start=datetime(2022, 3, 1, tzinfo=UTC),
    device_start=datetime(2020, 10, 17, tzinfo=UTC),
    identity="gh100",
    brom_prefix=0x50,
    brom_aia=False,
    tcb_info_fwid=False,
)
BLACKWELL: Final = DeviceFamily(
    chip="GB100",
    label="gb100",
    leaf_cn="GB100 A01 GSP FMC LF",
    brom_cn="GB100 A01 GSP BROM",
    ica_cn="NVIDIA GB100 Provisioner ICA 00000",
    ica_crl="crl/l2-gb100.crl",
    ica_start=datetime(2023, 6, 20, tzinfo=UTC),
    device_start=datetime(2023, 6, 20, tzinfo=UTC),
    identity="gb100",
    brom_prefix=0x41,
    brom_aia=True,
    tcb_info_fwid=True,
)
#: Identity CAs: key label, CN, notBefore.
_IDENTITIES: Final[Mapping[str, tuple[str, str, datetime]]] = {
    "gh100": ("gh100-identity", "NVIDIA GH100 Identity", datetime(2022, 1, 12, tzinfo=UTC)),
    "gb100": ("gb100-identity", "NVIDIA GB100 Identity", datetime(2023, 1, 1, tzinfo=UTC)),
}


@dataclass(frozen=True, slots=True)
class RimFamily:
    """The names and validity of one RIM signing chain (nvidia-gpu.md §4): L2 CA, L3 CA, L4 signer under the CoRIM
    root. ``label`` suffixes the key labels (empty for GH100: ``rim-l2``, ``rim-l3``, ``rim-l4/<role>``)."""

    product: str  # SoftwareIdentity/@name: GH100, LS10, GB100
    label: str
    ca_cn: str
    l3_cn: str
    signer_cn: str
    ca_validity: Window
    l3_validity: Window


GH100_RIMS: Final = RimFamily(
    product="GH100",
    label="",
    ca_cn="NVIDIA Reference Value GH100 CA",
    l3_cn="NVIDIA Reference Value L3 GH100 001",
    signer_cn="HCC RIM L4 Signer",
    ca_validity=(datetime(2023, 5, 11, tzinfo=UTC), datetime(2033, 5, 11, tzinfo=UTC)),
    l3_validity=(datetime(2023, 10, 31, tzinfo=UTC), datetime(2027, 4, 30, tzinfo=UTC)),
)
#: The real LS10 chain: L2 2024-05-02 -> 2034-05-02, L3 2024-05-02 -> 2027-11-02 (both to 23:59:59).
LS10_RIMS: Final = RimFamily(
    product="LS10",
    label="/ls10",
    ca_cn="NVIDIA Reference Value LS10 CA",
    l3_cn="NVIDIA Reference Value L3 LS10 001",
    signer_cn="NVIDIA Reference Value L4 LS10",
    ca_validity=(datetime(2024, 5, 2, tzinfo=UTC), datetime(2034, 5, 2, 23, 59, 59, tzinfo=UTC)),
    l3_validity=(datetime(2024, 5, 2, tzinfo=UTC), datetime(2027, 11, 2, 23, 59, 59, tzinfo=UTC)),
)
#: Blackwell names from the spec (§4); validity: our choice (no real Blackwell RIM among the vectors).
GB100_RIMS: Final = RimFamily(
    product="GB100",
    label="/gb100",
    ca_cn="NVIDIA Reference Value GB1XX CA 001",
    l3_cn="NVIDIA Reference Value L3 GB100-CC 001",
    signer_cn="RIM L4 Signer",
    ca_validity=(datetime(2024, 5, 2, tzinfo=UTC), datetime(2034, 5, 2, 23, 59, 59, tzinfo=UTC)),
    l3_validity=(datetime(2024, 11, 1, tzinfo=UTC), datetime(2028, 5, 1, 23, 59, 59, tzinfo=UTC)),
)


def _name(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    """A name with one attribute per RDN in wire order (serialNumber and C PrintableString, the rest UTF8)."""
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


def _ca_name(cn: str, *, country: bool = True, org: str = _ORG) -> x509.Name:
    attrs = [(NameOID.COMMON_NAME, cn), (NameOID.ORGANIZATION_NAME, org)]
    return _name(*attrs, (NameOID.COUNTRY_NAME, "US")) if country else _name(*attrs)


def _device_name(cn: str, serial_hex: str) -> x509.Name:
    """BROM / leaf subject: serialNumber, C, O, CN (the real GPU-minted order)."""
    return _name(
        (NameOID.SERIAL_NUMBER, serial_hex),
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, _ORG),
        (NameOID.COMMON_NAME, cn),
    )


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _aia() -> x509.AuthorityInformationAccess:
    return x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{_URL}/ocsp"))]
    )


def _crl_dp(path: str) -> x509.CRLDistributionPoints:
    uri = x509.UniformResourceIdentifier(f"{_URL}/{path}")
    return x509.CRLDistributionPoints([x509.DistributionPoint([uri], None, None, None)])


def fwid_extension_der(brom_public_key: ec.EllipticCurvePublicKey, fwid: bytes) -> bytes:
    """extnValue of the Hopper FWID extension: ``SEQUENCE { INTEGER 1, SubjectPublicKeyInfo (BROM key),
    SEQUENCE { OID sha384, OCTET STRING fwid } }`` (nvidia-gpu.md §3)."""
    spki = brom_public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der_seq(der_int(1), spki, der_seq(der_oid(SHA384_OID), der_octets(fwid)))


def tcb_info_fwid_der(fwid: bytes) -> bytes:
    """extnValue of the Blackwell FWID extension 2.23.133.5.4.1.1, field for field like the real B200 leaf (M3):
    ``SEQUENCE { [0] "NVIDIA", [1] "GB100 A01 GSP", [2] "01", [3] svn 1, [4] layer 0, [5] index 0, [6] fwids {
    SEQUENCE { sha384, OCTET STRING fwid }, SEQUENCE { sha384, OCTET STRING 48 zero bytes } }, [7] flags
    00 80 00 00 01, [8] c0, [9] 00 }`` (implicit context tags). The FWID a verifier compares is fwids[0]."""
    fwids = der_seq(der_oid(SHA384_OID), der_octets(fwid)) + der_seq(der_oid(SHA384_OID), der_octets(bytes(48)))
    return der_seq(
        tlv(0x80, b"NVIDIA"),
        tlv(0x81, b"GB100 A01 GSP"),
        tlv(0x82, b"01"),
        tlv(0x83, b"\x01"),
        tlv(0x84, b"\x00"),
        tlv(0x85, b"\x00"),
        tlv(0xA6, fwids),
        tlv(0x87, bytes.fromhex("0080000001")),
        tlv(0x88, b"\xc0"),
        tlv(0x89, b"\x00"),
    )


def pem_chain(certs: Sequence[x509.Certificate]) -> bytes:
    """NVML's chain text: the PEM blocks concatenated, leaf first."""
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class OcspEntry:
    """One OCSP response with the certificate it answers for and that certificate's issuer (the CertID inputs).
    ``label``: "device/brom", "device/ica", "device/identity", "rim/driver-l4", "rim/vbios-l4" (a switch:
    "rim/bios-l4"), "rim/l3", "rim/l2"."""

    label: str
    cert: x509.Certificate
    issuer: x509.Certificate
    response: bytes


@dataclass(frozen=True, slots=True)
class RimFile:
    """A signed (or, with a defect, broken) RIM with the id the RIM service files it under."""

    role: RimRole
    rim_id: str
    xml: bytes
    signer_chain: tuple[x509.Certificate, ...]  # as embedded: L4, L3, L2, root


@dataclass(frozen=True, slots=True)
class NvidiaEvidence:
    """One simulated GPU's evidence and collateral, the time it is valid at and the trust store."""

    report: bytes
    chain: tuple[x509.Certificate, ...]  # leaf, BROM, Provisioner ICA, Identity, root
    chain_pem: bytes  # NVML's text
    rims: tuple[RimFile, ...]  # driver RIM, VBIOS RIM
    ocsp: tuple[OcspEntry, ...]
    nonce: bytes  # the expected request nonce (options.nonce, also under Defect.WRONG_NONCE)
    fwid: bytes  # the FWID this GPU's firmware reports
    now: datetime
    trust_store: TrustStore
    options: GpuOptions
    defect: Defect | None

    @property
    def simulated(self) -> bool:
        return self.trust_store.simulated

    @property
    def rim_xml(self) -> tuple[bytes, ...]:
        return tuple(r.xml for r in self.rims)

    @property
    def arch(self) -> str:
        """NVIDIA's name for the architecture (serialized evidence ``arch``): HOPPER or BLACKWELL."""
        return self.options.architecture

    def evidence_item(self, device_index: int | None = None, *, carry_collateral: bool = False) -> dict[str, object]:
        """The ``nvidia-gpu`` evidence item (verifier/platforms/item.py); ``device_index`` None: the GPU's own
        ``options.device_index``. ``carry_collateral``: also ``rims`` (base64 XML of this GPU's RIMs) and ``ocsp``
        (base64 DER responses for device certs 1..3 and the RIMs' chains)."""
        index = self.options.device_index if device_index is None else device_index
        return _item(self.report, self.chain_pem, index, self.rims, self.ocsp, carry_collateral=carry_collateral)


@dataclass(frozen=True, slots=True)
class SwitchEvidence:
    """One simulated NVSwitch's (LS10) evidence and collateral: report, NSCQ chain text, BIOS RIM, OCSP."""

    report: bytes
    chain: tuple[x509.Certificate, ...]  # LS_10 FMC LF, LS_10 BROM, LS_10 Provisioner ICA 1, GH100 Identity, root
    chain_pem: bytes
    rims: tuple[RimFile, ...]  # the BIOS RIM
    ocsp: tuple[OcspEntry, ...]
    nonce: bytes  # the expected request nonce (options.nonce, also under Defect.WRONG_NONCE)
    pdi: bytes  # DEVICE_PDI (type 22); GPUs list it byte-reversed
    gpu_pdis: tuple[bytes, ...]  # SWITCH_GPU_PDIS' 8 GPU PDIs as reported
    fwid: bytes  # in the leaf's FWID extension only: switch reports carry no FWID TLV (like S1)
    now: datetime
    trust_store: TrustStore
    options: SwitchOptions
    defect: Defect | None

    @property
    def simulated(self) -> bool:
        return self.trust_store.simulated

    @property
    def arch(self) -> str:
        return "LS10"

    def evidence_item(self, device_index: int | None = None, *, carry_collateral: bool = False) -> dict[str, object]:
        """The ``nvidia-gpu`` evidence item (NVSwitches use the same type); see
        :meth:`NvidiaEvidence.evidence_item`."""
        index = self.options.device_index if device_index is None else device_index
        return _item(self.report, self.chain_pem, index, self.rims, self.ocsp, carry_collateral=carry_collateral)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _item(
    report: bytes,
    chain_pem: bytes,
    device_index: int,
    rims: Sequence[RimFile],
    ocsp_entries: Sequence[OcspEntry],
    *,
    carry_collateral: bool,
) -> dict[str, object]:
    item: dict[str, object] = {
        "type": "nvidia-gpu",
        "evidence": _b64(report),
        "certs": _b64(chain_pem),
        "device_index": device_index,
    }
    if carry_collateral:
        item["rims"] = [_b64(r.xml) for r in rims]
        item["ocsp"] = [_b64(e.response) for e in ocsp_entries]
    return item


# ----------------------------------------------------------------------------------------------------------
# The PKI

_GENUINE: Final = GpuOptions()
_GENUINE_SWITCH: Final = SwitchOptions()
#: RIM indices an LS10 measures as zero (the real S1 report; its BIOS RIM lists them active with a zero hash).
LS10_ZERO_INDICES: Final = frozenset((5, 7, 12, 13, 15, 16, 17))
#: Responder CNs per issuing CA (the real responders' names, nvidia-gpu.md §3).
_RESPONDER_CN: Final[Mapping[str, str]] = {
    DEVICE_ROOT_CN: "NVIDIA OCSP Responder L1-A 02",
    IDENTITY_CN: "NVIDIA OCSP Responder L2 GH100 Identity",
    ICA_CN: "NVIDIA OCSP Responder L3 GH100 ICA1 Identity",
    LS10.ica_cn: "NVIDIA OCSP Responder L3 LS_10 ICA1 Identity",
    "NVIDIA GB100 Identity": "NVIDIA OCSP Responder L2 GB100 Identity",
    BLACKWELL.ica_cn: "NVIDIA OCSP Responder L3 GB100 ICA Identity",
    LS10_RIMS.ca_cn: "NVIDIA OCSP Responder L2 Reference Value LS10",
    LS10_RIMS.l3_cn: "NVIDIA OCSP Responder L3 LS10 001",
    GB100_RIMS.ca_cn: "NVIDIA OCSP Responder L2 Reference Value GB1XX",
    GB100_RIMS.l3_cn: "NVIDIA OCSP Responder L3 GB100-CC 001",
    RIM_ROOT_CN: "NVIDIA OCSP Responder L1 CoRIM Root",
    RIM_CA_CN: "NVIDIA OCSP Responder L2 Reference Value GH100",
    RIM_L3_CN: "NVIDIA OCSP Responder L3 GH100 001",
}


class NvidiaPki:
    """A simulated NVIDIA PKI with deterministic keys (see module docstring). Use :func:`default_nvidia_pki`.

    Key labels take a namespace prefix: ``""`` is the genuine (simulated) PKI, ``"alt/"`` a forger's twin with the
    same names and another key at every level."""

    def __init__(self, seed: str = DEFAULT_SEED) -> None:
        self._seed = seed
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._certs: dict[tuple[object, ...], x509.Certificate] = {}
        #: issuing CA DER -> its key label (to delegate OCSP responders).
        self._ca_labels: dict[bytes, str] = {}
        self.trust_store = trust_store_from_certificates(
            {NVIDIA_DEVICE_ROOT: self.device_root(), NVIDIA_RIM_ROOT: self.rim_root()}, simulated=True
        )

    # -- keys and identifiers ------------------------------------------------------------------------------

    def key(self, label: str) -> ec.EllipticCurvePrivateKey:
        """The P-384 key ``label``, derived from the seed (test use only)."""
        if label not in self._keys:
            digest = hashlib.sha512(f"{self._seed}/key/{label}".encode()).digest()
            self._keys[label] = ec.derive_private_key(
                int.from_bytes(digest, "big") % (_P384_ORDER - 1) + 1, ec.SECP384R1()
            )
        return self._keys[label]

    def _serial(self, label: str, size: int = 16) -> int:
        raw = bytearray(hashlib.sha256(f"{self._seed}/serial/{label}".encode()).digest()[:size])
        raw[0] = (raw[0] & 0x7F) | 0x40  # positive, full length
        return int.from_bytes(raw, "big")

    def pdi(self, device_index: int) -> bytes:
        """Hopper GPU ``device_index``'s 8-byte SAN identifier (in the leaf's SAN as 16 hex digits; see
        :meth:`san_id`). Not the topology PDI (:meth:`gpu_pdi`)."""
        return sim_bytes(f"nvidia/{self._seed}/pdi/{device_index}", 8)

    def san_id(self, device_index: int, family: DeviceFamily = HOPPER) -> bytes:
        """The 8 bytes after ``NVIDIA:<chip>:`` in the leaf's SAN (on real devices unrelated to the PDI)."""
        if family is HOPPER:
            return self.pdi(device_index)
        return sim_bytes(f"nvidia/{self._seed}/{family.label}-san/{device_index}", 8)

    def device_pdi(self, device_index: int, family: DeviceFamily = HOPPER) -> bytes:
        """Device ``device_index``'s 8-byte PDI: the tail of its BROM serial, what NVSwitches list for a GPU
        (SWITCH_GPU_PDIS) and what a switch reports as its own DEVICE_PDI (as on the real M1/M2 sets)."""
        return sim_bytes(f"nvidia/{self._seed}/{family.label}-pdi/{device_index}", 8)

    def gpu_pdi(self, device_index: int) -> bytes:
        """Hopper GPU ``device_index``'s PDI (:meth:`device_pdi`)."""
        return self.device_pdi(device_index, HOPPER)

    def switch_pdi(self, device_index: int) -> bytes:
        """NVSwitch ``device_index``'s PDI: its DEVICE_PDI field (GPUs list it byte-reversed)."""
        return self.device_pdi(device_index, LS10)

    def fwid(self, device_index: int, family: DeviceFamily = HOPPER) -> bytes:
        """The FWID device ``device_index``'s firmware reports (48 bytes)."""
        if family is HOPPER:
            return sim_bytes(f"nvidia/{self._seed}/fwid/{device_index}", 48)
        return sim_bytes(f"nvidia/{self._seed}/{family.label}-fwid/{device_index}", 48)

    @staticmethod
    def default_measurements(architecture: Architecture = "HOPPER") -> dict[int, bytes]:
        """Runtime values of a simulated H100 (or B200), SPDM block index (1-based) -> 48 bytes: a distinct digest
        at every index its driver or VBIOS RIM has active (RIM index + 1), zeros elsewhere (like real reports)."""
        if architecture == "BLACKWELL":
            active, tag = BLACKWELL_DRIVER_ACTIVE | BLACKWELL_VBIOS_ACTIVE, "gb100"
        else:
            active, tag = HOPPER_DRIVER_ACTIVE | HOPPER_VBIOS_ACTIVE, "gh100"
        return {i + 1: sim_bytes(f"nvidia/{tag}/msr/{i}", 48) if i in active else bytes(48) for i in range(GPU_BLOCKS)}

    @staticmethod
    def switch_measurements() -> dict[int, bytes]:
        """Runtime values of a simulated LS10 (31 blocks): a distinct digest per index, zeros where the real S1
        report has zeros (RIM indices 5, 7, 12, 13, 15, 16, 17: its BIOS RIM lists them active with a zero hash)."""
        return {
            i + 1: bytes(48) if i in LS10_ZERO_INDICES else sim_bytes(f"nvidia/ls10/msr/{i}", 48) for i in range(31)
        }

    # -- certificates --------------------------------------------------------------------------------------

    def _issue(
        self,
        cache_key: tuple[object, ...],
        *,
        subject: x509.Name,
        issuer: x509.Name,
        subject_key: str,
        signer_key: str,
        serial: int,
        validity: Window,
        extensions: Sequence[tuple[x509.ExtensionType, bool]],
        is_ca: bool = False,
    ) -> x509.Certificate:
        if cache_key not in self._certs:
            b = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer)
                .public_key(self.key(subject_key).public_key())
                .serial_number(serial)
                .not_valid_before(validity[0])
                .not_valid_after(validity[1])
            )
            for ext, critical in extensions:
                b = b.add_extension(ext, critical=critical)
            cert = b.sign(self.key(signer_key), hashes.SHA384(), ecdsa_deterministic=True)
            self._certs[cache_key] = cert
            if is_ca:
                self._ca_labels[cert.public_bytes(Encoding.DER)] = subject_key
        return self._certs[cache_key]

    def _aki(self, issuer_key: str) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key(issuer_key).public_key())

    def _ski(self, key: str) -> x509.SubjectKeyIdentifier:
        return x509.SubjectKeyIdentifier.from_public_key(self.key(key).public_key())

    def device_root(self, ns: str = "") -> x509.Certificate:
        """NVIDIA Device Identity CA (CN, O=NVIDIA): self-signed, CA, keyCertSign+cRLSign, 2021-11-05 -> 9999."""
        k = f"{ns}device-root"
        return self._issue(
            ("device-root", ns),
            subject=_ca_name(DEVICE_ROOT_CN, country=False, org="NVIDIA"),
            issuer=_ca_name(DEVICE_ROOT_CN, country=False, org="NVIDIA"),
            subject_key=k,
            signer_key=k,
            serial=self._serial(k),
            validity=(_utc(2021, 11, 5), _FOREVER),
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=None), True),
                (_key_usage(cert_sign=True, crl_sign=True), True),
                (self._ski(k), False),
                (self._aki(k), False),
            ],
            is_ca=True,
        )

    def identity(self, ns: str = "", family: DeviceFamily = HOPPER) -> x509.Certificate:
        """The Identity CA of ``family`` (NVIDIA GH100 Identity for Hopper and LS10, NVIDIA GB100 Identity for
        Blackwell; CN, O): CA under the root, CRL DP + AIA OCSP, valid to 9999."""
        k, cn, start = _IDENTITIES[family.identity]
        return self._issue(
            ("identity", ns, family.identity),
            subject=_ca_name(cn, country=False),
            issuer=self.device_root(ns).subject,
            subject_key=f"{ns}{k}",
            signer_key=f"{ns}device-root",
            serial=self._serial(f"{ns}{k}"),
            validity=(start, _FOREVER),
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=None), True),
                (_key_usage(cert_sign=True, crl_sign=True), True),
                (_crl_dp("crl/l1-root.crl"), False),
                (_aia(), False),
                (self._ski(f"{ns}{k}"), False),
                (self._aki(f"{ns}device-root"), False),
            ],
            is_ca=True,
        )

    def provisioner_ica(self, ns: str = "", family: DeviceFamily = HOPPER) -> x509.Certificate:
        """The Provisioner ICA of ``family`` (NVIDIA GH100 Provisioner ICA 1, NVIDIA LS_10 Provisioner ICA 1,
        NVIDIA GB100 Provisioner ICA 00000; CN, O, C): CA under its Identity, CRL DP + AIA OCSP."""
        k, signer = f"{ns}{family.label}-ica1", f"{ns}{_IDENTITIES[family.identity][0]}"
        return self._issue(
            ("ica", ns, family.label),
            subject=_ca_name(family.ica_cn),
            issuer=self.identity(ns, family).subject,
            subject_key=k,
            signer_key=signer,
            serial=self._serial(k),
            validity=(family.ica_start, _FOREVER),
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=None), True),
                (_key_usage(cert_sign=True, crl_sign=True), True),
                (_crl_dp(family.ica_crl), False),
                (_aia(), False),
                (self._ski(k), False),
                (self._aki(signer), False),
            ],
            is_ca=True,
        )

    def brom(self, device_index: int, ns: str = "", family: DeviceFamily = HOPPER) -> x509.Certificate:
        """Device ``device_index``'s BROM certificate (``GH100 A01 GSP BROM``, ``LS_10 A01 FSP BROM``, ``GB100 A01
        GSP BROM``): 9-byte serial = ``family.brom_prefix`` ‖ the device's PDI (also in the subject), CA,
        keyCertSign; Blackwell's also AIA OCSP."""
        k = f"{ns}{family.label}-brom/{device_index}"
        signer = f"{ns}{family.label}-ica1"
        serial = int.from_bytes(bytes((family.brom_prefix,)) + self.device_pdi(device_index, family), "big")
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (_key_usage(cert_sign=True), True),
        ]
        if family.brom_aia:
            extensions.append((_aia(), False))
        extensions += [(self._ski(k), False), (self._aki(signer), False)]
        return self._issue(
            ("brom", ns, family.label, device_index),
            subject=_device_name(family.brom_cn, f"{serial:018X}"),
            issuer=self.provisioner_ica(ns, family).subject,
            subject_key=k,
            signer_key=signer,
            serial=serial,
            validity=(family.device_start, _FOREVER),
            extensions=extensions,
            is_ca=True,
        )

    def leaf_key(
        self, device_index: int, boot: int = 0, ns: str = "", family: DeviceFamily = HOPPER
    ) -> ec.EllipticCurvePrivateKey:
        """The attestation key device ``device_index`` minted at ``boot``."""
        return self.key(f"{ns}{family.label}-ak/{device_index}/{boot}")

    def leaf(
        self,
        device_index: int,
        boot: int = 0,
        *,
        fwid: bytes | None,
        signer_index: int | None = None,
        ns: str = "",
        family: DeviceFamily = HOPPER,
    ) -> x509.Certificate:
        """Device ``device_index``'s FMC LF leaf for ``boot``: serial = SKI (20 bytes, also in the subject), KU
        digitalSignature (critical), SAN otherName ``NVIDIA:<chip>:<hex>``, the FWID extension for ``fwid`` (None:
        left out; Hopper and LS10: 2.23.133.5.4.1, Blackwell: the TcbInfo-like 2.23.133.5.4.1.1).
        ``signer_index``: whose BROM key signs it (default: its own)."""
        p = family.label
        k = f"{ns}{p}-ak/{device_index}/{boot}"
        signer = f"{ns}{p}-brom/{signer_index if signer_index is not None else device_index}"
        ski = bytearray(self._ski(k).digest)
        ski[0] &= 0x7F  # a positive 20-byte serial
        serial_hex = bytes(ski).hex().upper()
        other_name = x509.OtherName(
            x509.ObjectIdentifier(SAN_OTHER_NAME_OID),
            tlv(0x0C, f"NVIDIA:{family.chip}:{self.san_id(device_index, family).hex().upper()}".encode()),
        )
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (_key_usage(digital_signature=True), True),
            (x509.SubjectKeyIdentifier(bytes(ski)), False),
            (self._aki(f"{ns}{p}-brom/{device_index}"), False),
            (x509.SubjectAlternativeName([other_name]), False),
        ]
        if fwid is not None and family.tcb_info_fwid:
            ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(TCB_INFO_FWID_OID), tcb_info_fwid_der(fwid))
            extensions.append((ext, False))
        elif fwid is not None:
            brom_public = self.key(f"{ns}{p}-brom/{device_index}").public_key()
            ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(FWID_OID), fwid_extension_der(brom_public, fwid))
            extensions.append((ext, False))
        return self._issue(
            ("leaf", ns, p, device_index, boot, fwid, signer),
            subject=_device_name(family.leaf_cn, serial_hex),
            issuer=self.brom(device_index, ns, family).subject,
            subject_key=k,
            signer_key=signer,
            serial=int.from_bytes(ski, "big"),
            validity=(family.device_start, _FOREVER),
            extensions=extensions,
        )

    def device_chain(
        self,
        device_index: int,
        boot: int = 0,
        *,
        fwid: bytes | None,
        signer_index: int | None = None,
        ns: str = "",
        family: DeviceFamily = HOPPER,
    ) -> tuple[x509.Certificate, ...]:
        """The five certificates NVML (or NSCQ, for a switch) returns, leaf first, root last."""
        return (
            self.leaf(device_index, boot, fwid=fwid, signer_index=signer_index, ns=ns, family=family),
            self.brom(device_index, ns, family),
            self.provisioner_ica(ns, family),
            self.identity(ns, family),
            self.device_root(ns),
        )

    def rim_root(self, ns: str = "") -> x509.Certificate:
        """NVIDIA CoRIM signing Root CA (C, O=NVIDIA, CN): self-signed, 2023-03-16 -> 2053-03-08."""
        k = f"{ns}rim-root"
        name = _name(
            (NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "NVIDIA"), (NameOID.COMMON_NAME, RIM_ROOT_CN)
        )
        return self._issue(
            ("rim-root", ns),
            subject=name,
            issuer=name,
            subject_key=k,
            signer_key=k,
            serial=self._serial(k),
            validity=(_utc(2023, 3, 16), _utc(2053, 3, 8)),
            extensions=[
                (self._ski(k), False),
                (self._aki(k), False),
                (x509.BasicConstraints(ca=True, path_length=None), True),
                (_key_usage(cert_sign=True, crl_sign=True), True),
            ],
            is_ca=True,
        )

    def _rim_key(self, level: str, ns: str, family: RimFamily) -> str:
        return f"{ns}rim-{level}{family.label}"

    def rim_ca(self, ns: str = "", family: RimFamily = GH100_RIMS) -> x509.Certificate:
        """The L2 CA of ``family`` (NVIDIA Reference Value GH100 CA, … LS10 CA, … GB1XX CA 001): CA under the CoRIM
        root, CRL DP + AIA OCSP."""
        k = self._rim_key("l2", ns, family)
        return self._issue(
            ("rim-l2", ns, family.product),
            subject=_ca_name(family.ca_cn),
            issuer=self.rim_root(ns).subject,
            subject_key=k,
            signer_key=f"{ns}rim-root",
            serial=self._serial(k),
            validity=family.ca_validity,
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=None), True),
                (_key_usage(cert_sign=True, crl_sign=True), True),
                (_crl_dp("crl-corim/l1-corim"), False),
                (_aia(), False),
                (self._ski(k), False),
                (self._aki(f"{ns}rim-root"), False),
            ],
            is_ca=True,
        )

    def rim_l3(self, ns: str = "", family: RimFamily = GH100_RIMS) -> x509.Certificate:
        """The L3 CA of ``family`` (NVIDIA Reference Value L3 GH100 001, … L3 LS10 001, … L3 GB100-CC 001): CA
        pathlen 0 under L2, AIA OCSP."""
        k, signer = self._rim_key("l3", ns, family), self._rim_key("l2", ns, family)
        return self._issue(
            ("rim-l3", ns, family.product),
            subject=_ca_name(family.l3_cn),
            issuer=self.rim_ca(ns, family).subject,
            subject_key=k,
            signer_key=signer,
            serial=self._serial(k),
            validity=family.l3_validity,
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=0), True),
                (_key_usage(cert_sign=True, crl_sign=True), True),
                (_aia(), False),
                (self._ski(k), False),
                (self._aki(signer), False),
            ],
            is_ca=True,
        )

    def rim_signer(
        self, role: RimRole, ns: str = "", *, validity: Window | None = None, family: RimFamily = GH100_RIMS
    ) -> x509.Certificate:
        """The L4 signer for ``role`` (HCC RIM L4 Signer, NVIDIA Reference Value L4 LS10, RIM L4 Signer; C, ST, L,
        O, CN): CA:FALSE, KU digitalSignature, AIA OCSP; two years from 200 days before :data:`SIM_NOW` unless
        ``validity`` is given."""
        k = f"{ns}rim-l4{family.label}/{role}"
        signer = self._rim_key("l3", ns, family)
        start = SIM_NOW - 200 * _DAY
        window = validity or (start, start.replace(year=start.year + 2))
        subject = _name(
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            (NameOID.LOCALITY_NAME, "Santa Clara"),
            (NameOID.ORGANIZATION_NAME, _ORG),
            (NameOID.COMMON_NAME, family.signer_cn),
        )
        return self._issue(
            ("rim-l4", ns, family.product, role, window),
            subject=subject,
            issuer=self.rim_l3(ns, family).subject,
            subject_key=k,
            signer_key=signer,
            serial=self._serial(k, 8),
            validity=window,
            extensions=[
                (self._ski(k), False),
                (self._aki(signer), False),
                (x509.BasicConstraints(ca=False, path_length=None), True),
                (_key_usage(digital_signature=True), True),
                (_aia(), False),
            ],
        )

    def rim_signer_key(self, role: RimRole, ns: str = "", family: RimFamily = GH100_RIMS) -> ec.EllipticCurvePrivateKey:
        return self.key(f"{ns}rim-l4{family.label}/{role}")

    def rim_chain(
        self, role: RimRole, ns: str = "", *, validity: Window | None = None, family: RimFamily = GH100_RIMS
    ) -> tuple[x509.Certificate, ...]:
        """What a RIM embeds in KeyInfo: L4 signer, L3, L2 CA, root."""
        return (
            self.rim_signer(role, ns, validity=validity, family=family),
            self.rim_l3(ns, family),
            self.rim_ca(ns, family),
            self.rim_root(ns),
        )

    # -- OCSP ----------------------------------------------------------------------------------------------

    def responder(self, issuer: x509.Certificate, *, delegated: bool = True) -> tuple[x509.Certificate, str]:
        """The OCSP responder certificate ``issuer`` delegated to (EKU OCSPSigning + id-pkix-ocsp-nocheck, as
        NVIDIA's list it; critical KU digitalSignature) and its key label. ``delegated=False``: the same name and
        issuer, but no EKU, so it is not a delegated responder."""
        issuer_label = self._ca_labels.get(issuer.public_bytes(Encoding.DER))
        if issuer_label is None:
            raise ValueError(f"{issuer.subject.rfc4514_string()} is not a CA of this PKI")
        cn = str(issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        k = f"{issuer_label}/ocsp-responder" + ("" if delegated else "/undelegated")
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), False),
            (_key_usage(digital_signature=True), True),
        ]
        if delegated:
            extensions.append((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING, OCSP_NOCHECK_OID]), True))
        extensions += [(self._ski(k), False), (self._aki(issuer_label), False)]
        cert = self._issue(
            ("responder", k),
            subject=_ca_name(_RESPONDER_CN.get(cn, f"NVIDIA OCSP Responder {cn}")),
            issuer=issuer.subject,
            subject_key=k,
            signer_key=issuer_label,
            serial=self._serial(k),
            validity=(SIM_NOW - 365 * _DAY, SIM_NOW + 2 * 365 * _DAY),
            extensions=extensions,
        )
        return cert, k

    def ocsp_response(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        status: OcspStatus = "good",
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        nonce: bytes | None = None,
        delegated: bool = True,
    ) -> bytes:
        """DER OCSPResponse (successful, basic) for ``cert``: CertID SHA-384, signed ecdsa-with-SHA384 by the
        responder ``issuer`` delegated to (in ``certs``, ResponderID by key hash). Defaults: thisUpdate = now - 1 h,
        nextUpdate = thisUpdate + 24 h (like NVIDIA's), producedAt = thisUpdate. ``revoked``: keyCompromise one
        day before thisUpdate; ``hold``: revoked with reason certificateHold. ``nonce``: echoed as the nonce
        extension."""
        this = this_update or SIM_NOW - timedelta(hours=1)
        nxt = next_update or this + _DAY
        responder, key_label = self.responder(issuer, delegated=delegated)
        cert_status = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "hold": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }[status]
        reason = {"revoked": x509.ReasonFlags.key_compromise, "hold": x509.ReasonFlags.certificate_hold}.get(status)
        b = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=cert,
                issuer=issuer,
                algorithm=hashes.SHA384(),
                cert_status=cert_status,
                this_update=this,
                next_update=nxt,
                revocation_time=this - _DAY if reason is not None else None,
                revocation_reason=reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
            .certificates([responder])
        )
        if nonce is not None:
            b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
        scratch = b.sign(self.key(key_label), hashes.SHA384()).public_bytes(Encoding.DER)
        return _resign_ocsp(scratch, self.key(key_label), produced_at=this)

    # -- building evidence ---------------------------------------------------------------------------------

    def rebind(self, ev: NvidiaEvidence, nonce: bytes) -> bytes:
        """``ev.report`` with its SPDM request nonce replaced and signed again by the GPU's attestation key: the
        genuine report the GPU would give for a new nonce, in ~1 ms instead of a whole build (load generators).
        Only for genuine evidence of this PKI (the report signature is all that covers the nonce)."""
        if ev.defect is not None or len(nonce) != 32:
            raise ValueError("rebind needs genuine evidence and a 32-byte nonce")
        family = BLACKWELL if ev.options.architecture == "BLACKWELL" else HOPPER
        signed = bytearray(ev.report[:-96])  # genuine reports end with their signature
        signed[4:36] = nonce  # the request's Nonce (nvidia-gpu.md §2)
        key = self.leaf_key(ev.options.device_index, ev.options.boot, family=family)
        return sign_report(bytes(signed), key)

    def build(self, options: GpuOptions = _GENUINE, defect: Defect | None = None) -> NvidiaEvidence:
        """Build one GPU's report, chain, driver and VBIOS RIMs and OCSP responses, genuine unless ``defect`` is
        given (Hopper, or Blackwell with ``options.architecture``). Raises ValueError for impossible options or a
        defect that does not apply."""
        options.check()
        if defect is not None and not defect_applies(defect, options):
            raise ValueError(f"defect {defect.value!r} does not apply to {options}")
        d, o = defect, options
        family, rim_family = (BLACKWELL, GB100_RIMS) if o.architecture == "BLACKWELL" else (HOPPER, GH100_RIMS)
        fwid = o.fwid or self.fwid(o.device_index, family)
        values = self.default_measurements(o.architecture) | dict(o.measurements or {})
        rims = (
            self._primary_rim(
                "driver", self.rim_id("driver", o), self.rim_document("driver", o, values), rim_family, d
            ),
            self._rim_file("vbios", self.rim_id("vbios", o), self.rim_document("vbios", o, values), rim_family),
        )
        chain = self._chain(o.device_index, o.boot, fwid if o.include_fwid else None, family, d)
        changed = BLACKWELL_CHANGED_INDEX if o.architecture == "BLACKWELL" else DEFAULT_CHANGED_INDEX
        runtime = _runtime(values, d, changed)
        report = self._signed_report(
            family,
            o.device_index,
            o.boot,
            o.nonce,
            o.responder_nonce,
            runtime,
            self._gpu_opaque(o, runtime, fwid, d),
            d,
        )
        return NvidiaEvidence(
            report=report,
            chain=chain,
            chain_pem=pem_chain(chain),
            rims=rims,
            ocsp=self._ocsp(chain, rims, d),
            nonce=o.nonce,
            fwid=fwid,
            now=SIM_NOW,
            trust_store=self.trust_store,
            options=o,
            defect=d,
        )

    def build_switch(self, options: SwitchOptions = _GENUINE_SWITCH, defect: Defect | None = None) -> SwitchEvidence:
        """Build one NVSwitch's (LS10) report, chain, BIOS RIM and OCSP responses, genuine unless ``defect`` is
        given (the RIM defects hit the BIOS RIM; :data:`NOT_FOR_SWITCHES` do not apply). Defaults: the switch of
        the simulated HGX board at ``options.device_index``, listing GPUs 0..7."""
        options.check()
        if defect is not None and not defect_applies(defect, options):
            raise ValueError(f"defect {defect.value!r} does not apply to NVSwitches")
        d, o = defect, options
        fwid = o.fwid or self.fwid(o.device_index, LS10)
        pdi = o.pdi or self.switch_pdi(o.device_index)
        gpu_pdis = o.gpu_pdis or tuple(self.gpu_pdi(g) for g in range(SWITCH_GPUS))
        values = self.switch_measurements() | dict(o.measurements or {})
        rim = self._primary_rim(
            "bios", switch_bios_rim_id(o.bios_version), self.switch_rim_document(o, values), LS10_RIMS, d
        )
        chain = self._chain(o.device_index, o.boot, fwid, LS10, d)
        opaque = switch_opaque(
            bios_version=o.bios_version,
            device_pdi=pdi,
            msrscnt=o.msrscnt,
            gpu_pdis=gpu_pdis,
            port_gpu_slots=o.port_gpu_slots or switch_port_slots(o.device_index),
            floorswept_ports=o.floorswept_ports,
            position_id=o.device_index if o.position_id is None else o.position_id,
            lock_switch_status=o.lock_switch_status,
        )
        runtime = _runtime(values, d)
        report = self._signed_report(LS10, o.device_index, o.boot, o.nonce, o.responder_nonce, runtime, opaque, d)
        return SwitchEvidence(
            report=report,
            chain=chain,
            chain_pem=pem_chain(chain),
            rims=(rim,),
            ocsp=self._ocsp(chain, (rim,), d),
            nonce=o.nonce,
            pdi=pdi,
            gpu_pdis=gpu_pdis,
            fwid=fwid,
            now=SIM_NOW,
            trust_store=self.trust_store,
            options=o,
            defect=d,
        )

    def _gpu_opaque(
        self, o: GpuOptions, runtime: Mapping[int, bytes], fwid: bytes, d: Defect | None
    ) -> tuple[OpaqueTlv, ...]:
        """A GPU's opaque TLVs (§2) with the defects in them."""
        driver = o.driver_version
        if d is Defect.DRIVER_VERSION_CHANGED:
            driver = OTHER_DRIVER_VERSION if driver != OTHER_DRIVER_VERSION else "550.90.07"
        msrscnt = [1 if any(v) else 0 for _, v in sorted(runtime.items())]
        report_fwid = fwid if o.include_fwid and d is not Defect.FWID_MISSING else None
        if o.architecture == "BLACKWELL":
            return blackwell_opaque(
                driver_version=driver,
                vbios_version=o.vbios_version,
                project=o.project,
                project_sku=o.project_sku,
                chip_sku=o.chip_sku,
                fwid=report_fwid,
                nvdec0_status=o.nvdec0_status,
                msrscnt=msrscnt,
                board_id=o.board_id,
                sys_enable_status=o.sys_enable_status,
                chip_info=o.chip_info,
                opaque_data_version=o.opaque_data_version or 0,  # GpuOptions.check: never None on Blackwell
                feature_flag=o.feature_flag or 0,
            )
        return hopper_opaque(
            driver_version=driver,
            vbios_version=o.vbios_version,
            project=o.project,
            project_sku=o.project_sku,
            chip_sku=o.chip_sku,
            fwid=report_fwid,
            nvdec0_status=o.nvdec0_status,
            protected_pcie_status=o.protected_pcie_status,
            msrscnt=msrscnt,
            board_id=o.board_id,
            switch_pdis=o.switch_pdis,
            opaque_data_version=o.opaque_data_version,
            feature_flag=o.feature_flag,
        )

    def _signed_report(
        self,
        family: DeviceFamily,
        device_index: int,
        boot: int,
        nonce: bytes,
        responder_nonce: bytes,
        runtime: Mapping[int, bytes],
        opaque: Sequence[OpaqueTlv],
        d: Defect | None,
    ) -> bytes:
        """1. The report (§2) with the defects in its request nonce, its signature and its framing."""
        if d is Defect.WRONG_NONCE:
            nonce = sim_bytes("nvidia/wrong-nonce", 32)
        signed = signed_part(nonce=nonce, values=runtime, responder_nonce=responder_nonce, opaque=opaque)
        key = self.leaf_key(device_index, boot, ns="alt/" if d is Defect.WRONG_ROOT else "", family=family)
        if d is Defect.REPORT_SIGNATURE_BAD:
            key = self.key("rogue")
        report = sign_report(signed, key)
        if d is Defect.TRAILING_BYTES:
            return report + b"\x01"
        if d is Defect.TRAILING_ZERO_BYTE:
            return report + b"\x00"
        if d is Defect.TRUNCATED:
            return report[:-1]
        return report

    def _chain(
        self, device_index: int, boot: int, fwid: bytes | None, family: DeviceFamily, d: Defect | None
    ) -> tuple[x509.Certificate, ...]:
        """2. The device chain (§3) with its defects; ``fwid`` None: the leaf has no FWID extension."""
        leaf_fwid = fwid
        if d is Defect.FWID_MISMATCH:
            leaf_fwid = sim_bytes("nvidia/other-fwid", 48)
        elif d is Defect.LEAF_FWID_EXTENSION_MISSING:
            leaf_fwid = None
        return self.device_chain(
            device_index,
            boot,
            fwid=leaf_fwid,
            signer_index=(device_index + 1) % 256 if d is Defect.LEAF_WRONG_BROM else None,
            ns="alt/" if d is Defect.WRONG_ROOT else "",
            family=family,
        )

    def rim_document(self, role: RimRole, o: GpuOptions, values: Mapping[int, bytes]) -> RimDocument:
        """The genuine driver or VBIOS RIM for a GPU measuring ``values``: the real H100 active sets (§4; Blackwell:
        :data:`BLACKWELL_DRIVER_ACTIVE` / :data:`BLACKWELL_VBIOS_ACTIVE`), each active entry's Hash0 = the runtime
        value of block index + 1 (driver index 35 gets a second alternative, like real driver RIMs); inactive
        entries carry one zero hash."""
        blackwell = o.architecture == "BLACKWELL"
        if blackwell:
            active = BLACKWELL_DRIVER_ACTIVE if role == "driver" else BLACKWELL_VBIOS_ACTIVE
        else:
            active = HOPPER_DRIVER_ACTIVE if role == "driver" else HOPPER_VBIOS_ACTIVE
        entries = []
        for i in range(GPU_BLOCKS):
            if i not in active:
                entries.append(RimEntry(i, False, (bytes(48),)))
                continue
            alternatives: tuple[bytes, ...] = (values[i + 1],)
            if role == "driver" and i == 35 and not blackwell:
                alternatives += (sim_bytes("nvidia/gh100/msr/35/alt", 48),)
            entries.append(RimEntry(i, True, alternatives))
        version = o.driver_version if role == "driver" else o.vbios_version
        product = o.chip_info if blackwell else CHIP
        return RimDocument(product=product, colloquial_version=version, entries=tuple(entries))

    @staticmethod
    def switch_rim_document(o: SwitchOptions, values: Mapping[int, bytes]) -> RimDocument:
        """The genuine BIOS RIM of an LS10 measuring ``values`` (shaped like the real
        ``NV_SWITCH_BIOS_5612_0002_890_9610550001``): product LS10, edition SWITCH, indices 0..30 active (zero
        hashes included), 31..63 inactive; indices 9..25 carry 4 alternatives with the runtime value at position
        ``index % 4`` (so a verifier must match any alternative); names ``HashedMeasurement_<i>_FSP`` at 0-3 and
        27."""
        entries = []
        for i in range(GPU_BLOCKS):
            name = f"HashedMeasurement_{i}_FSP" if i in (0, 1, 2, 3, 27) else ""
            if i not in LS10_BIOS_ACTIVE:
                entries.append(RimEntry(i, False, (bytes(48),), name))
                continue
            alternatives: tuple[bytes, ...] = (values[i + 1],)
            if 9 <= i <= 25:
                others = [sim_bytes(f"nvidia/ls10/msr/{i}/alt{j}", 48) for j in range(3)]
                others.insert(i % 4, values[i + 1])
                alternatives = tuple(others)
            entries.append(RimEntry(i, True, alternatives, name))
        return RimDocument(product="LS10", colloquial_version=o.bios_version, entries=tuple(entries), edition="SWITCH")

    def rim_id(self, role: RimRole, o: GpuOptions) -> str:
        if role == "driver" and o.architecture == "BLACKWELL":
            return cc_driver_rim_id(o.chip_info, o.driver_version)
        if role == "driver":
            return driver_rim_id(CHIP, o.driver_version)
        return vbios_rim_id(o.project, o.project_sku, o.chip_sku, o.vbios_version)

    def sign_rim(
        self,
        doc: RimDocument,
        role: RimRole,
        ns: str = "",
        *,
        validity: Window | None = None,
        family: RimFamily = GH100_RIMS,
    ) -> bytes:
        """``doc`` signed by the L4 signer of ``role`` with its chain in KeyInfo."""
        chain = self.rim_chain(role, ns, validity=validity, family=family)
        return sign_rim(doc, self.rim_signer_key(role, ns, family), [c.public_bytes(Encoding.DER) for c in chain])

    def _rim_file(self, role: RimRole, rim_id: str, doc: RimDocument, family: RimFamily) -> RimFile:
        return RimFile(role, rim_id, self.sign_rim(doc, role, family=family), self.rim_chain(role, family=family))

    def _primary_rim(
        self, role: RimRole, rim_id: str, doc: RimDocument, family: RimFamily, d: Defect | None
    ) -> RimFile:
        """3. The RIM the RIM defects hit (a GPU's driver RIM, a switch's BIOS RIM; §4) with its defects."""
        ns = "alt/" if d is Defect.RIM_WRONG_ROOT else ""
        validity = (SIM_NOW - 2 * 365 * _DAY, SIM_NOW - _DAY) if d is Defect.RIM_SIGNER_EXPIRED else None
        chain = self.rim_chain(role, ns, validity=validity, family=family)
        certs = [c.public_bytes(Encoding.DER) for c in chain]
        if d is Defect.RIM_UNSIGNED:
            xml = unsigned_rim_xml(doc).encode()
        elif d is Defect.RIM_WRONG_KEY:
            xml = sign_rim(doc, self.key("rogue"), certs)
        else:
            xml = sign_rim(doc, self.rim_signer_key(role, ns, family), certs)
        if d is Defect.RIM_TAMPERED:  # the first active entry's Hash0 (a Hopper driver RIM: index 7)
            first = next(e for e in sorted(doc.entries, key=lambda e: e.index) if e.active)
            genuine = f'ns2:Hash0="{first.alternatives[0].hex()}"'.encode()
            forged = f'ns2:Hash0="{sim_bytes("nvidia/tampered", 48).hex()}"'.encode()
            if xml.count(genuine) != 1:  # pragma: no cover - the default tables have distinct values
                raise ValueError(f"cannot tamper: RIM index {first.index}'s value is not unique")
            xml = xml.replace(genuine, forged)
        if d is Defect.RIM_DOCTYPE:
            xml = b'<!DOCTYPE SoftwareIdentity [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n' + xml
        return RimFile(role, rim_id, xml, chain)

    def _ocsp(
        self, chain: Sequence[x509.Certificate], rims: Sequence[RimFile], d: Defect | None
    ) -> tuple[OcspEntry, ...]:
        """4. OCSP responses (§3) for device certs 1..3 and every RIM signing chain (each L4; the L3 and L2 they
        share); the revocation defects hit the BROM and the first RIM's L4. The L3 and L2 answers are for the
        chain under the genuine CoRIM root when there is one: under :attr:`Defect.RIM_WRONG_ROOT` a GPU's VBIOS RIM
        still needs them (the forged driver RIM is refused, so nothing asks about its L3 and L2)."""
        brom = _OcspAnswer()
        if d is Defect.DEVICE_CERT_REVOKED:
            brom = _OcspAnswer(status="revoked")
        elif d is Defect.DEVICE_CERT_HOLD:
            brom = _OcspAnswer(status="hold")
        elif d is Defect.OCSP_UNKNOWN:
            brom = _OcspAnswer(status="unknown")
        elif d is Defect.OCSP_STALE:
            brom = _OcspAnswer(window=(SIM_NOW - 2 * _DAY, SIM_NOW - _DAY))
        elif d is Defect.OCSP_NOT_DELEGATED:
            brom = _OcspAnswer(delegated=False)
        good = _OcspAnswer()
        targets: list[tuple[str, x509.Certificate, x509.Certificate, _OcspAnswer]] = [
            ("device/brom", chain[1], chain[2], brom),
            ("device/ica", chain[2], chain[3], good),
            ("device/identity", chain[3], chain[4], good),
        ]
        seen: set[str] = set()
        genuine_root = self.rim_root()
        shared = next((r for r in rims if r.signer_chain[-1] == genuine_root), rims[0]).signer_chain
        for rim in rims:
            l4, l3 = rim.signer_chain[:2]
            revoked = d is Defect.RIM_SIGNER_REVOKED and rim is rims[0]
            for label, cert, issuer, answer in (
                (f"rim/{rim.role}-l4", l4, l3, _OcspAnswer(status="revoked") if revoked else good),
                ("rim/l3", shared[1], shared[2], good),
                ("rim/l2", shared[2], shared[3], good),
            ):
                if label not in seen:
                    seen.add(label)
                    targets.append((label, cert, issuer, answer))
        return tuple(
            OcspEntry(
                label,
                cert,
                issuer,
                self.ocsp_response(
                    cert,
                    issuer,
                    status=a.status,
                    this_update=a.window[0] if a.window else None,
                    next_update=a.window[1] if a.window else None,
                    delegated=a.delegated,
                ),
            )
            for label, cert, issuer, a in targets
        )


def _runtime(values: Mapping[int, bytes], d: Defect | None, changed: int = DEFAULT_CHANGED_INDEX) -> dict[int, bytes]:
    """The runtime measurements with :attr:`Defect.MEASUREMENT_CHANGED` applied at RIM index ``changed``."""
    runtime = dict(values)
    if d is Defect.MEASUREMENT_CHANGED:
        runtime[changed + 1] = sim_bytes("nvidia/changed-measurement", 48)
    return runtime


@dataclass(frozen=True, slots=True)
class _OcspAnswer:
    status: OcspStatus = "good"
    window: Window | None = None
    delegated: bool = True


def _resign_ocsp(der: bytes, key: ec.EllipticCurvePrivateKey, *, produced_at: datetime) -> bytes:
    """Set producedAt (cryptography writes the wall clock) and re-sign the tbsResponseData deterministically.

    OCSPResponse ::= SEQUENCE { status ENUMERATED, [0] EXPLICIT SEQUENCE { OID, OCTET STRING BasicOCSPResponse } };
    BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING, [0] certs };
    ResponseData ::= SEQUENCE { [0] version OPTIONAL, responderID ([1] | [2]), producedAt GeneralizedTime, ... }.
    """
    _, outer, _ = read_element(der, 0)
    _, _, status_end = read_element(der, outer)
    _, wrap, _ = read_element(der, status_end)
    _, rb, _ = read_element(der, wrap)
    _, _, oid_end = read_element(der, rb)
    _, b_start, b_end = read_element(der, oid_end)
    basic = der[b_start:b_end]
    _, tbs_start, basic_end = read_element(basic, 0)
    _, tbs_content, tbs_end = read_element(basic, tbs_start)
    _, _, alg_end = read_element(basic, tbs_end)
    _, _, sig_end = read_element(basic, alg_end)
    tbs = basic[tbs_start:tbs_end]
    off = tbs_content - tbs_start
    tag, _, end = read_element(tbs, off)
    if tag == 0xA0:  # explicit version
        off = end
        tag, _, end = read_element(tbs, off)
    tag, t_start, t_end = read_element(tbs, end)  # producedAt
    if tag != 0x18 or t_end - t_start != 15:
        raise ValueError("unexpected ResponseData layout")
    stamp = produced_at.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode()
    tbs = tbs[:t_start] + stamp + tbs[t_end:]
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA384(), deterministic_signing=True))
    new_basic = tlv(0x30, tbs + basic[tbs_end:alg_end] + tlv(0x03, b"\x00" + signature) + basic[sig_end:basic_end])
    response_bytes = tlv(0x30, der[rb:oid_end] + tlv(0x04, new_basic))
    return tlv(0x30, der[outer:status_end] + tlv(0xA0, response_bytes))


@functools.cache
def default_nvidia_pki() -> NvidiaPki:
    """The process-wide simulated NVIDIA PKI (deterministic, built once)."""
    return NvidiaPki()


__all__ = [
    "BLACKWELL",
    "BLACKWELL_CHANGED_INDEX",
    "CHIP",
    "DEFAULT_CHANGED_INDEX",
    "EXPECTED_CODES",
    "FEATURE_MPT",
    "FEATURE_PPCIE",
    "FEATURE_SPT",
    "FWID_OID",
    "GB100_RIMS",
    "GH100_RIMS",
    "HOPPER",
    "LS10",
    "LS10_RIMS",
    "NOT_FOR_SWITCHES",
    "OTHER_DRIVER_VERSION",
    "PARSER_DEFECTS",
    "SAN_OTHER_NAME_OID",
    "SIM_NOW",
    "TCB_INFO_FWID_OID",
    "Defect",
    "DeviceFamily",
    "GpuOptions",
    "NvidiaEvidence",
    "NvidiaPki",
    "OcspEntry",
    "RimFamily",
    "RimFile",
    "SwitchEvidence",
    "SwitchOptions",
    "blackwell_options",
    "default_nvidia_pki",
    "defect_applies",
    "expected_code",
    "fwid_extension_der",
    "pem_chain",
    "tcb_info_fwid_der",
]
