"""The raw DER views must agree with cryptography on every real certificate and CRL, and fail only with DerError."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.trust import der
from verifier.trust.intel_collateral import parse_collateral_json

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
INTEL_COLLATERAL = sorted((VECTORS / "intel").rglob("*.collateral.json"))
AMD_CERTS = sorted((VECTORS / "amd").rglob("*.der")) + sorted((VECTORS / "amd" / "roots").glob("*.pem"))
E = TypeVar("E", bound=x509.ExtensionType)


def _intel_certificates() -> list[bytes]:
    out: set[bytes] = set()
    for path in INTEL_COLLATERAL:
        c = parse_collateral_json(path.read_bytes())
        out.update(c.tcb_info_issuer_chain + c.qe_identity_issuer_chain + c.pck_crl_issuer_chain)
    return sorted(out)


def _intel_crls() -> list[bytes]:
    out: set[bytes] = set()
    for path in INTEL_COLLATERAL:
        c = parse_collateral_json(path.read_bytes())
        out.update((c.pck_crl, c.root_ca_crl))
    return sorted(out)


def _amd_certificates() -> list[bytes]:
    out = []
    for path in AMD_CERTS:
        data = path.read_bytes()
        with warnings.catch_warnings():
            # Every real VCEK/VLEK has serial number 0, which cryptography warns about (verifier/trust/amd_certs.py).
            warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, message=".*serial number.*")
            certs = (
                x509.load_pem_x509_certificates(data)
                if data.startswith(b"-----")
                else [x509.load_der_x509_certificate(data)]
            )
        out += [c.public_bytes(Encoding.DER) for c in certs]
    return out


CERTS = _intel_certificates() + _amd_certificates()
CRLS = _intel_crls()


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if len(attrs) == 1 else ""


def test_der_vectors_present() -> None:
    assert len(CERTS) >= 8
    assert len(CRLS) >= 4


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier, kind: type[E]) -> E | None:
    """cryptography's reading of one extension of ``cert``, or None when it is absent."""
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    assert isinstance(value, kind)
    return value


@pytest.mark.parametrize("data", CERTS, ids=lambda d: d[-8:].hex())
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")  # AMD VCEK serial 0
def test_certificate_view_matches_cryptography(data: bytes) -> None:
    cert = x509.load_der_x509_certificate(data)
    view = der.certificate_view(data)
    assert view.tbs == cert.tbs_certificate_bytes
    assert view.issuer == cert.issuer.public_bytes()
    assert view.subject == cert.subject.public_bytes()
    assert der.common_name(view.subject) == _cn(cert.subject)
    assert set(view.extensions) == {_oid_der(e.oid.dotted_string) for e in cert.extensions}
    bc = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS, x509.BasicConstraints)
    assert der.is_ca(view) == (bc.ca if bc is not None else False)
    ski = _extension(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER, x509.SubjectKeyIdentifier)
    assert der.subject_key_id(view) == (ski.digest if ski is not None else None)


@pytest.mark.parametrize("data", CRLS, ids=lambda d: d[-8:].hex())
def test_crl_view_matches_cryptography(data: bytes) -> None:
    crl = x509.load_der_x509_crl(data)
    view = der.crl_view(data)
    assert view.tbs == crl.tbs_certlist_bytes
    assert view.issuer == crl.issuer.public_bytes()
    assert view.subject == b""
    aki = crl.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert der.authority_key_id(view) == aki.key_identifier
    assert der.OID_CRL_NUMBER in view.extensions


def _oid_der(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d[:-1], id="truncated"),
        pytest.param(lambda d: d + b"\x00", id="trailing-byte"),
        pytest.param(lambda d: b"\x31" + d[1:], id="outer-not-sequence"),
        pytest.param(lambda d: d[:1] + b"\x84\x00\x00" + d[1:], id="non-minimal-length"),
        pytest.param(lambda d: d[:1] + b"\x80" + d[2:], id="indefinite-length"),
    ],
)
def test_certificate_view_rejects_defect(mutate: object) -> None:
    assert callable(mutate)
    with pytest.raises(der.DerError):
        der.certificate_view(mutate(CERTS[0]))


def test_certificate_view_rejects_duplicate_extension() -> None:
    data = CERTS[0]
    view = der.certificate_view(data)
    oid, (_, value) = next(iter(view.extensions.items()))
    ext = _tlv(0x30, _tlv(0x06, oid) + _tlv(0x04, value))
    with pytest.raises(der.DerError, match="duplicate"):
        der.extensions_of(_tlv(0x30, ext + ext))


def test_common_name_needs_exactly_one() -> None:
    def attr(value: str) -> bytes:
        return _tlv(0x31, _tlv(0x30, _tlv(0x06, der.OID_COMMON_NAME) + _tlv(0x0C, value.encode())))

    assert der.common_name(_tlv(0x30, attr("Intel SGX Root CA"))) == "Intel SGX Root CA"
    assert der.common_name(_tlv(0x30, attr("a") + attr("b"))) == ""
    assert der.common_name(_tlv(0x30, b"")) == ""


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + value


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CERTS + CRLS), st.data())
def test_views_fail_only_with_der_error(data: bytes, draw: st.DataObject) -> None:
    pos = draw.draw(st.integers(0, len(data) - 1))
    mutated = data[:pos] + bytes([draw.draw(st.integers(0, 255))]) + data[pos + 1 :]
    for view in (der.certificate_view, der.crl_view):
        try:
            v = view(mutated)
            der.common_name(v.issuer)
            der.is_ca(v)
            der.authority_key_id(v)
            der.subject_key_id(v)
        except der.DerError:
            pass


@given(st.binary(max_size=300))
def test_views_of_arbitrary_bytes_fail_only_with_der_error(data: bytes) -> None:
    for view in (der.certificate_view, der.crl_view):
        with contextlib.suppress(der.DerError):
            view(data)
