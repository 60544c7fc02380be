"""Vendor documents of the simulated Intel and AMD PKIs with chosen issue dates and numbers, genuinely signed, for
the collateral selection and cache tests: an older or newer TCB Info, QE Identity, PCK CRL, Root CA CRL or AMD CRL
than the one a simulated evidence build comes with."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.collateral.selection import IssuedCrl, SignedJson
from verifier.evidence.snp import Product
from verifier.simulation.amd_pki import TITLE, Kind, default_amd_pki
from verifier.simulation.intel_pki import QE_PROFILES, CollateralOptions, Evidence, default_pki
from verifier.simulation.intel_quote_builder import sign_raw
from verifier.trust.intel_collateral import Collateral

DAY = timedelta(days=1)


def supplied(ev: Evidence) -> Collateral:
    """The collateral ``ev`` comes with, as the decision parses it."""
    return ev.pcs.to_collateral()


def tcb_info(
    ev: Evidence,
    *,
    issued: datetime,
    number: int = 17,
    lifetime: timedelta = 30 * DAY,
    top_status: str = "UpToDate",
    fmspc: bytes | None = None,
) -> SignedJson:
    """``ev``'s TCB Info (its TEE and FMSPC unless ``fmspc``) issued at ``issued`` with evaluation data number
    ``number``; ``top_status`` is the status of the highest TCB level (the one the simulated platform has)."""
    raw = (
        default_pki()
        .tcb_info_json(
            tdx=ev.options.tee == "tdx",
            window=(issued, issued + lifetime),
            c=CollateralOptions(tcb_evaluation_data_number=number, top_tcb_status=top_status),
            fmspc=ev.platform.fmspc if fmspc is None else fmspc,
            pce_id=ev.platform.pce_id,
        )
        .encode()
    )
    return SignedJson(raw, sign_raw(default_pki().tcb_signing_key, raw), supplied(ev).tcb_info_issuer_chain)


def qe_identity(ev: Evidence, *, issued: datetime, number: int = 17, lifetime: timedelta = 30 * DAY) -> SignedJson:
    """``ev``'s QE Identity issued at ``issued`` with evaluation data number ``number``."""
    raw = (
        default_pki()
        .qe_identity_json(
            QE_PROFILES[ev.options.tee],
            window=(issued, issued + lifetime),
            c=CollateralOptions(tcb_evaluation_data_number=number),
        )
        .encode()
    )
    return SignedJson(raw, sign_raw(default_pki().tcb_signing_key, raw), supplied(ev).qe_identity_issuer_chain)


def pck_crl(
    ev: Evidence,
    *,
    issued: datetime,
    number: int | None = 1,
    revoked: Iterable[int] = (),
    lifetime: timedelta = 30 * DAY,
) -> IssuedCrl:
    """The CRL of ``ev``'s PCK CA issued at ``issued`` (CRL Number ``number``) listing ``revoked``."""
    pki = default_pki()
    crl = pki.crl(pki.cas[ev.pcs.ca], pki.ca_keys[ev.pcs.ca], (issued, issued + lifetime), revoked, number=number)
    return IssuedCrl(crl.public_bytes(Encoding.DER), supplied(ev).pck_crl_issuer_chain)


def root_ca_crl(
    *, issued: datetime, number: int | None = 1, revoked: Iterable[int] = (), lifetime: timedelta = 365 * DAY
) -> IssuedCrl:
    """The Root CA CRL issued at ``issued`` (CRL Number ``number``) listing ``revoked``."""
    pki = default_pki()
    crl = pki.crl(pki.root, pki.root_key, (issued, issued + lifetime), revoked, number=number)
    return IssuedCrl(crl.public_bytes(Encoding.DER))


def with_documents(
    collateral: Collateral,
    *,
    tcb: SignedJson | None = None,
    qe: SignedJson | None = None,
    pck: IssuedCrl | None = None,
    root: IssuedCrl | None = None,
) -> Collateral:
    """``collateral`` with the given documents in place of its own (each with its issuer chain)."""
    changes: dict[str, object] = {}
    if tcb is not None:
        changes |= {
            "tcb_info_raw": tcb.raw,
            "tcb_info_signature": tcb.signature,
            "tcb_info_issuer_chain": tcb.issuer_chain,
        }
    if qe is not None:
        changes |= {
            "qe_identity_raw": qe.raw,
            "qe_identity_signature": qe.signature,
            "qe_identity_issuer_chain": qe.issuer_chain,
        }
    if pck is not None:
        changes |= {"pck_crl": pck.der, "pck_crl_issuer_chain": pck.issuer_chain}
    if root is not None:
        changes |= {"root_ca_crl": root.der}
    return dataclasses.replace(collateral, **changes)  # type: ignore[arg-type]


def pcs_body(member: str, doc: SignedJson) -> bytes:
    """The PCS response body serving ``doc`` (``member``: ``tcbInfo`` or ``enclaveIdentity``)."""
    return b'{"%s":%s,"signature":"%s"}' % (member.encode(), doc.raw, doc.signature.hex().encode())


def pcs_chain_header(chain: tuple[bytes, ...]) -> str:
    """The ``*-Issuer-Chain`` header value for ``chain`` (DER): URL-encoded concatenated PEM."""
    pem = "".join(x509.load_der_x509_certificate(d).public_bytes(Encoding.PEM).decode() for d in chain)
    return urllib.parse.quote(pem)


def amd_crl(
    product: Product,
    *,
    issued: datetime,
    revoked: Iterable[int] = (),
    number: int = 1,
    lifetime: timedelta = 30 * DAY,
    names_chain: Kind | None = None,
) -> bytes:
    """An AMD CRL of ``product`` signed by its (simulated) ARK, issued at ``issued`` with CRL Number ``number``
    (serial 0 cannot be listed here). ``names_chain``: an IssuingDistributionPoint with that chain's KDS URL."""
    pki = default_amd_pki()
    ark, key = pki.ark[product], pki.rsa_key(f"{product}/ark")
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ark.subject)
        .last_update(issued)
        .next_update(issued + lifetime)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    if names_chain is not None:
        url = f"https://kdsintf.amd.com/{names_chain}/v1/{TITLE[product]}/crl"
        b = b.add_extension(
            x509.IssuingDistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                only_contains_user_certs=False,
                only_contains_ca_certs=False,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
            critical=True,
        )
    for serial in sorted(set(revoked)):
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(issued - DAY).build()
        )
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    return b.sign(key.private, hashes.SHA384(), rsa_padding=pss).public_bytes(Encoding.DER)
