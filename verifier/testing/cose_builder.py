"""A SIMULATED Microsoft-style UVM endorsement PKI and COSE_Sign1 builder, for negative tests.

SIMULATION ONLY. Nothing here is Microsoft's: every key is generated in this process, and the root
("Keyward Simulated Supply Chain Root CA", unless a test asks for a look-alike name) is only ever trusted through a
:class:`~verifier.trust.store.TrustStore` built with ``simulated=True`` (:attr:`SimPki.trust_store`).

What it builds: root -> intermediate -> leaf (RSA-2048 keys, sha384WithRSAEncryption certificates, like
Microsoft's shape but smaller keys so tests stay fast), with the leaf's EKU, validity and extensions adjustable
one at a time, and COSE_Sign1 documents with the UVM header layout Microsoft uses (alg, content type, x5chain,
x5t, ``iss``, ``feed``, ``signingtime``) signed PS384 (or ES384 with an EC leaf). Use
:func:`encode_cose_sign1` to assemble any (possibly malformed) COSE structure from parts.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.platforms.azure_uvm import MICROSOFT_SUPPLY_CHAIN_ROOT, UVM_FEED
from verifier.platforms.azure_uvm_signer import UVM_EKU, expected_issuer
from verifier.trust import cbor, cose
from verifier.trust.cbor import CborKey, CborValue, Tag
from verifier.trust.store import TrustStore, trust_store_from_certificates

#: The instant every simulated certificate is valid around.
SIM_NOW: Final = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
SIM_ROOT_NAME: Final = "Keyward Simulated Supply Chain Root CA"
SIM_MEASUREMENT: Final = bytes(range(48))

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@functools.cache
def rsa_key(slot: str) -> rsa.RSAPrivateKey:
    """One RSA-2048 key per ``slot`` per process (RSA generation is the slow part of these tests)."""
    del slot
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key(slot: str) -> ec.EllipticCurvePrivateKey:
    del slot
    return ec.generate_private_key(ec.SECP384R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keyward Simulation"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_cert(
    *,
    subject: str,
    issuer: str,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    signer: SigningKey,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
    ekus: Sequence[str] | None = None,
    path_length: int | None = None,
    key_usage: bool = True,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
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
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in ekus]), critical=False)
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signer, hashes.SHA384())


@dataclass(frozen=True)
class SimPki:
    """A simulated root -> intermediate -> leaf chain. ``leaf_key`` signs the COSE documents."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: SigningKey
    now: datetime = SIM_NOW

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.leaf, self.intermediate, self.root]

    @property
    def chain_der(self) -> list[bytes]:
        return [c.public_bytes(Encoding.DER) for c in self.chain]

    @property
    def trust_store(self) -> TrustStore:
        return trust_store_from_certificates({MICROSOFT_SUPPLY_CHAIN_ROOT: self.root}, simulated=True)

    @property
    def issuer(self) -> str:
        return expected_issuer(self.root.public_bytes(Encoding.DER))


def build_pki(
    *,
    now: datetime = SIM_NOW,
    root_name: str = SIM_ROOT_NAME,
    root_slot: str = "root",
    leaf_ekus: Sequence[str] | None = (UVM_EKU,),
    leaf_ca: bool = False,
    leaf_not_after: datetime | None = None,
    leaf_ec: bool = False,
    leaf_extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
    intermediate_ca: bool = True,
    intermediate_signer_slot: str | None = None,
) -> SimPki:
    """A fresh simulated chain around ``now``; each keyword injects one difference from the genuine shape."""
    day = timedelta(days=1)
    root_key, int_key = rsa_key(root_slot), rsa_key("intermediate")
    root = make_cert(
        subject=root_name,
        issuer=root_name,
        public_key=root_key.public_key(),
        signer=root_key,
        ca=True,
        not_before=now - 400 * day,
        not_after=now + 3650 * day,
    )
    int_name = "Keyward Simulated SCD Products CA"
    intermediate = make_cert(
        subject=int_name,
        issuer=root_name,
        public_key=int_key.public_key(),
        signer=rsa_key(intermediate_signer_slot) if intermediate_signer_slot else root_key,
        ca=intermediate_ca,
        not_before=now - 300 * day,
        not_after=now + 3000 * day,
    )
    leaf_key: SigningKey = ec_key("leaf") if leaf_ec else rsa_key("leaf")
    leaf = make_cert(
        subject="Keyward Simulated ContainerPlat",
        issuer=int_name,
        public_key=leaf_key.public_key(),
        signer=int_key,
        ca=leaf_ca,
        not_before=now - 30 * day,
        not_after=leaf_not_after or now + 335 * day,
        ekus=leaf_ekus,
        extra=leaf_extra,
    )
    return SimPki(root, intermediate, leaf, leaf_key, now)


def uvm_payload(measurement: bytes = SIM_MEASUREMENT, guest_svn: object = "101") -> bytes:
    """The payload shape Microsoft uses (pretty-printed JSON, svn as a decimal string)."""
    return json.dumps(
        {"x-ms-sevsnpvm-guestsvn": guest_svn, "x-ms-sevsnpvm-launchmeasurement": measurement.hex()}, indent=2
    ).encode()


def uvm_protected_header(
    pki: SimPki,
    *,
    alg: int = cose.ALG_PS384,
    feed: str = UVM_FEED,
    issuer: str | None = None,
    chain: Sequence[bytes] | None = None,
    signing_time: datetime | None = None,
    with_signing_time: bool = True,
    x5t: bool = True,
) -> dict[CborKey, CborValue]:
    """Protected header in Microsoft's label order: 1, 3, 33, 34, "iss", "feed", "signingtime"."""
    ders = list(chain) if chain is not None else pki.chain_der
    header: dict[CborKey, CborValue] = {
        cose.HEADER_ALG: alg,
        cose.HEADER_CONTENT_TYPE: "application/json",
        cose.HEADER_X5CHAIN: list(ders),
    }
    if x5t:
        header[cose.HEADER_X5T] = [-16, hashlib.sha256(ders[0]).digest()]
    header["iss"] = issuer if issuer is not None else pki.issuer
    header["feed"] = feed
    if with_signing_time:
        header["signingtime"] = Tag(1, int((signing_time or pki.now - timedelta(days=1)).timestamp()))
    return header


def sign(key: SigningKey, alg: int, tbs: bytes) -> bytes:
    """A COSE signature (PS* as RSASSA-PSS salt = hash length; ES* as raw r||s) over ``tbs``."""
    spec = cose.ALGORITHMS[alg]
    algorithm = spec.hash()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(tbs, padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size), algorithm)
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(algorithm)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def encode_cose_sign1(
    protected: bytes,
    unprotected: dict[CborKey, CborValue],
    payload: CborValue,
    signature: bytes,
    *,
    tagged: bool = True,
) -> bytes:
    body: CborValue = [protected, unprotected, payload, signature]
    return cbor.encode(Tag(cose.COSE_SIGN1_TAG, body) if tagged else body)


@dataclass(frozen=True)
class Endorsement:
    """A built document plus the parts it was built from (to re-sign variants)."""

    data: bytes
    protected: dict[CborKey, CborValue]
    payload: bytes
    unprotected: dict[CborKey, CborValue] = field(default_factory=dict)


def build_endorsement(
    pki: SimPki,
    *,
    protected: dict[CborKey, CborValue] | None = None,
    payload: bytes | None = None,
    unprotected: dict[CborKey, CborValue] | None = None,
    signing_key: SigningKey | None = None,
    tagged: bool = True,
) -> Endorsement:
    """Sign ``protected`` (default: :func:`uvm_protected_header`) over ``payload`` with the leaf key."""
    header = protected if protected is not None else uvm_protected_header(pki)
    body = payload if payload is not None else uvm_payload()
    protected_bytes = cbor.encode(header)
    alg = header.get(cose.HEADER_ALG)
    sig_alg = alg if isinstance(alg, int) and alg in cose.ALGORITHMS else cose.ALG_PS384
    signature = sign(signing_key or pki.leaf_key, sig_alg, cose.sig_structure(protected_bytes, body))
    unprot = unprotected if unprotected is not None else {}
    return Endorsement(encode_cose_sign1(protected_bytes, unprot, body, signature, tagged=tagged), header, body, unprot)
