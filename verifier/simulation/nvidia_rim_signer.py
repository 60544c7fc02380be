"""SIMULATED NVIDIA Reference Integrity Manifests: SWID tags (ISO/IEC 19770-2) shaped like NVIDIA's, signed with an
enveloped XML-DSig (ECDSA P-384 / SHA-384) by whatever key and certificates the caller passes.

SIMULATION ONLY. The text follows the real RIMs of the RIM service byte for byte in shape (nvidia-gpu.md §4;
google/go-nvattest-tools ``rim/NV_GPU_DRIVER_GH100_550.90.07.xml``): no XML declaration; ``SoftwareIdentity`` with
the SWID namespace both as default and as ``ns0`` and the SHA-384 namespace as ``ns2``; ``ns0:Entity``; ``ns0:Meta``
declaring the TCG RIM-IM namespace as ``ns1``; ``ns0:Payload`` with one ``ns0:Resource`` per index; then
``ds:Signature`` as the root's last child. Signing (§4):

1. DigestValue = base64 SHA-384 of the inclusive C14N 1.0 of the document without its Signature element (what
   the enveloped-signature transform leaves; lxml ``method="c14n"``).
2. SignatureValue = base64 raw ``r ‖ s`` of ECDSA P-384 / SHA-384 (RFC 6979) over the inclusive C14N 1.0 of
   ``SignedInfo`` in its place in the document (so with the namespace declarations it inherits).
3. KeyInfo/X509Data: the given certificates in order (NVIDIA: L4 signer, L3, L2 CA, root), base64 in 64-column
   lines as the RIM service writes them.

What it does not do: verify anything, or choose keys (:mod:`verifier.simulation.nvidia_pki`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import quoteattr

from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from verifier.simulation.nvidia_report_builder import ecdsa_raw

SWID_NS: Final = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
SHA384_NS: Final = "http://www.w3.org/2001/04/xmlenc#sha384"
TCG_RIM_NS: Final = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
C14N11: Final = "http://www.w3.org/2006/12/xml-c14n11"
ECDSA_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
DIGEST_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#sha384"
NVIDIA_PEN: Final = "5703"  # NVIDIA's IANA enterprise number: FirmwareManufacturerId (the claim ``oemid``)
#: Driver RIM / VBIOS RIM active indices (0-based) of a real H100 (nvidia-gpu.md §4).
HOPPER_DRIVER_ACTIVE: Final = frozenset((7, *range(21, 41)))
HOPPER_VBIOS_ACTIVE: Final = frozenset((*range(7), *range(8, 13)))
#: An NVSwitch (LS10) BIOS RIM: indices 0..30 active (the real ``NV_SWITCH_BIOS_5612_0002_890_9610550001``).
LS10_BIOS_ACTIVE: Final = frozenset(range(31))
#: Blackwell driver / VBIOS RIM active indices: SIMULATION CHOICE. No real Blackwell RIM is among the vectors; these
#: are the indices the real B200 report M3 measures (non-zero blocks, minus 1), split at 40 (index 52, which NVIDIA's
#: issue #150 calls a driver index, lands in the driver RIM).
BLACKWELL_VBIOS_ACTIVE: Final = frozenset((1, 2, 3, 4, 6, 8, 11, 12, 13, 14, 17, 18, 19, 20))
BLACKWELL_DRIVER_ACTIVE: Final = frozenset((40, 41, *range(45, 51), *range(52, 57), *range(58, 62), 63))
#: The constant project / SKU / chip of every LS10 BIOS RIM id (nvidia-gpu.md §4 "Which RIMs").
LS10_RIM_PREFIX: Final = "NV_SWITCH_BIOS_5612_0002_890"
_SIGNATURE_TAG: Final = f"{{{DSIG_NS}}}Signature"
_SIGNED_INFO_TAG: Final = f"{{{DSIG_NS}}}SignedInfo"


@dataclass(frozen=True, slots=True)
class RimEntry:
    """One ``Resource type="Measurement"``: 0-based ``index`` (SPDM block index + 1), its alternatives (each 48
    bytes), ``active`` and the resource name."""

    index: int
    active: bool
    alternatives: tuple[bytes, ...]
    name: str = ""

    @property
    def resource_name(self) -> str:
        return self.name or f"Measurement_{self.index}"


@dataclass(frozen=True, slots=True)
class RimDocument:
    """What a RIM says. ``product`` is SoftwareIdentity/@name and Meta/@product ("GH100", "GB100", "LS10");
    ``colloquial_version`` the driver version or the dotted VBIOS / switch BIOS version; ``edition`` "GPU" or
    "SWITCH"."""

    product: str
    colloquial_version: str
    entries: tuple[RimEntry, ...]
    edition: str = "GPU"
    version: str = "1.0"
    tag_id: str | None = None  # None: SHA-384 hex of product/edition/version (96 hex digits, like NVIDIA's)

    @property
    def tag(self) -> str:
        if self.tag_id is not None:
            return self.tag_id
        label = f"keyward-simulated-rim/{self.product}/{self.edition}/{self.colloquial_version}"
        return hashlib.sha384(label.encode()).hexdigest()


def driver_rim_id(chip: str, driver_version: str) -> str:
    """``NV_GPU_DRIVER_GH100_550.90.07`` (Hopper) — the RIM service id of a driver RIM (§4 "Which RIMs")."""
    return f"NV_GPU_DRIVER_{chip}_{driver_version}"


def cc_driver_rim_id(chip_info: str, driver_version: str) -> str:
    """``NV_GPU_CC_DRIVER_GB100_590.48.01`` (Blackwell) — the RIM service id of a Blackwell driver RIM (§4)."""
    return f"NV_GPU_CC_DRIVER_{chip_info}_{driver_version}"


def switch_bios_rim_id(bios_version: str) -> str:
    """``NV_SWITCH_BIOS_5612_0002_890_9610550001`` — an LS10 NVSwitch BIOS RIM id (§4; pitfall P15: dots stripped,
    upper-case)."""
    return f"{LS10_RIM_PREFIX}_{bios_version.replace('.', '').upper()}"


def vbios_rim_id(project: str, project_sku: str, chip_sku: str, vbios_version: str) -> str:
    """``NV_GPU_VBIOS_1010_0200_882_96009F0001`` — the RIM service id of a VBIOS RIM (§4 "Which RIMs")."""
    return f"NV_GPU_VBIOS_{project}_{project_sku}_{chip_sku}_{vbios_version.replace('.', '').upper()}"


def _resource(e: RimEntry) -> str:
    if not e.alternatives or any(len(a) != 48 for a in e.alternatives):
        raise ValueError(f"RIM index {e.index}: one or more 48-byte alternatives are required")
    hashes = " ".join(f'ns2:Hash{i}="{a.hex()}"' for i, a in enumerate(e.alternatives))
    return (
        f'        <ns0:Resource type="Measurement" index="{e.index}" active="{e.active}" '
        f'alternatives="{len(e.alternatives)}" {hashes} name={quoteattr(e.resource_name)} size="48"/>\n'
    )


def unsigned_rim_xml(doc: RimDocument) -> str:
    """The document text without its Signature (what the enveloped-signature transform digests)."""
    q = quoteattr
    head = (
        f'<SoftwareIdentity xmlns="{SWID_NS}" xmlns:ns0="{SWID_NS}" xmlns:ns2="{SHA384_NS}" corpus="false" '
        f'name={q(doc.product)} patch="false" supplemental="false" tagId={q(doc.tag)} version={q(doc.version)} '
        f'tagVersion="0">\n'
        f'    <ns0:Entity name="NVIDIA Corporation" role="softwareCreator tagCreator"/>\n'
        f'    <ns0:Meta xmlns:ns1="{TCG_RIM_NS}" colloquialVersion={q(doc.colloquial_version)} '
        f'edition={q(doc.edition)} product={q(doc.product)} revision="r1" PayloadType="direct" '
        f'ns1:BindingSpec="RIMIM" ns1:BindingSpecVersion="1.01" ns1:PlatformManufacturerId="{NVIDIA_PEN}" '
        f'ns1:PlatformManufacturerStr="NVIDIA Corporation" ns1:PlatformModel={q(doc.product)} '
        f'ns1:FirmwareManufacturer="NVIDIA Corporation" ns1:FirmwareManufacturerId="{NVIDIA_PEN}"/>\n'
        f'    <ns0:Payload xmlns:SHA384="{SHA384_NS}">\n'
    )
    body = "".join(_resource(e) for e in sorted(doc.entries, key=lambda e: e.index))
    return head + body + "    </ns0:Payload>\n</SoftwareIdentity>"


def c14n(element: etree._Element | etree._ElementTree) -> bytes:
    """Inclusive C14N 1.0 without comments (what NVIDIA's c14n11 declaration computes on these documents, §4)."""
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def _parse(text: bytes) -> etree._ElementTree:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.ElementTree(etree.fromstring(text, parser))


def digest_value(unsigned: bytes) -> bytes:
    """SHA-384 of the C14N of the unsigned document (step 1)."""
    return hashlib.sha384(c14n(_parse(unsigned))).digest()


def _cert_b64(der: bytes) -> str:
    text = base64.b64encode(der).decode("ascii")
    return "".join(text[i : i + 64] + "\n" for i in range(0, len(text), 64))


def _signature_xml(digest: bytes, signature: bytes, certs_der: Sequence[bytes]) -> str:
    certs = "".join(f"<ds:X509Certificate>{_cert_b64(d)}</ds:X509Certificate>" for d in certs_der)
    return (
        f'<ds:Signature xmlns:ds="{DSIG_NS}"><ds:SignedInfo>'
        f'<ds:CanonicalizationMethod Algorithm="{C14N11}"/><ds:SignatureMethod Algorithm="{ECDSA_SHA384}"/>'
        f'<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="{ENVELOPED}"/>'
        f'<ds:Transform Algorithm="{C14N11}"/></ds:Transforms><ds:DigestMethod Algorithm="{DIGEST_SHA384}"/>'
        f"<ds:DigestValue>{base64.b64encode(digest).decode()}</ds:DigestValue></ds:Reference></ds:SignedInfo>"
        f"<ds:SignatureValue>{base64.b64encode(signature).decode()}</ds:SignatureValue>"
        f"<ds:KeyInfo><ds:X509Data>{certs}</ds:X509Data></ds:KeyInfo></ds:Signature>"
    )


def _with_signature(unsigned: str, signature_xml: str) -> str:
    end = "</SoftwareIdentity>"
    if not unsigned.endswith(end):
        raise ValueError("not an unsigned SoftwareIdentity document")
    return unsigned[: -len(end)] + signature_xml + end


def sign_rim_text(unsigned: str, key: ec.EllipticCurvePrivateKey, certs_der: Sequence[bytes]) -> bytes:
    """Sign the document text ``unsigned`` (steps 1-3). Returns the UTF-8 bytes of the signed RIM."""
    digest = digest_value(unsigned.encode("utf-8"))
    # SignedInfo does not depend on SignatureValue: canonicalise it in place with a placeholder value.
    draft = _parse(_with_signature(unsigned, _signature_xml(digest, b"", certs_der)).encode("utf-8"))
    signed_info = draft.getroot().find(f"{_SIGNATURE_TAG}/{_SIGNED_INFO_TAG}")
    if signed_info is None:  # pragma: no cover - built just above
        raise ValueError("SignedInfo missing")
    signature = ecdsa_raw(key, c14n(signed_info))
    return _with_signature(unsigned, _signature_xml(digest, signature, certs_der)).encode("utf-8")


def sign_rim(doc: RimDocument, key: ec.EllipticCurvePrivateKey, certs_der: Sequence[bytes]) -> bytes:
    """The signed RIM for ``doc``: :func:`unsigned_rim_xml` then :func:`sign_rim_text`."""
    return sign_rim_text(unsigned_rim_xml(doc), key, certs_der)


__all__ = [
    "BLACKWELL_DRIVER_ACTIVE",
    "BLACKWELL_VBIOS_ACTIVE",
    "HOPPER_DRIVER_ACTIVE",
    "HOPPER_VBIOS_ACTIVE",
    "LS10_BIOS_ACTIVE",
    "LS10_RIM_PREFIX",
    "NVIDIA_PEN",
    "RimDocument",
    "RimEntry",
    "c14n",
    "cc_driver_rim_id",
    "digest_value",
    "driver_rim_id",
    "sign_rim",
    "sign_rim_text",
    "switch_bios_rim_id",
    "unsigned_rim_xml",
    "vbios_rim_id",
]
