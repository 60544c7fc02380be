"""VCEK/VLEK loading on malformed certificates: only ``snp.leaf.*`` errors, never a library exception.

Regressions for crashes found by mutation fuzzing: an empty signature BIT STRING made the DER fallback raise
IndexError, and a SubjectAltName holding x400Address / ediPartyName made cryptography's lazy extension parser raise
UnsupportedGeneralNameType (neither a ValueError) out of :func:`load_leaf` and ``evaluate_snp_report``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID

from verifier.appraisal.snp import SnpPolicy
from verifier.errors import Code, VerificationFailed
from verifier.platforms.evaluation import evaluate_snp_report
from verifier.simulation.amd_pki import AmdEvidence, ReportOptions, default_amd_pki
from verifier.trust.amd_certs import load_leaf
from verifier.trust.der import elements, read_tlv


@pytest.fixture(scope="module")
def ev() -> AmdEvidence:
    return default_amd_pki().build(ReportOptions())


def _sequence(content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return b"\x30" + bytes([n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(size)]) + size + content


def _empty_signature(der: bytes) -> bytes:
    """``der`` with its signatureValue replaced by an empty BIT STRING (no unused-bits octet)."""
    _, vs, ve = read_tlv(der, 0, len(der))
    (_, tbs_start, _, _), (_, _, _, alg_end), _ = elements(der, vs, ve)
    return _sequence(der[tbs_start:alg_end] + b"\x03\x00")


def _with_extension(leaf_der: bytes, oid: x509.ObjectIdentifier, value: bytes) -> bytes:
    """The leaf re-issued (by a stranger's key: loading must fail before any signature check) with one more
    extension whose raw value is ``value``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # serial 0
        leaf = x509.load_der_x509_certificate(leaf_der)
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(leaf.issuer)
        .public_key(leaf.public_key())
        .serial_number(1)
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
    )
    for ext in leaf.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
    return builder.sign(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()).public_bytes(Encoding.DER)


# GeneralNames { [3] x400Address { NULL } } and { [5] ediPartyName { SEQUENCE {} } }: DER cryptography refuses
# with UnsupportedGeneralNameType when the extension is parsed.
X400 = bytes.fromhex("3004a3020500")
EDI = bytes.fromhex("3004a5023000")

MALFORMED: dict[str, Callable[[AmdEvidence], bytes]] = {
    "empty-certificate-empty-bitstring": lambda _: bytes.fromhex("3006300030000300"),
    "leaf-empty-signature-bitstring": lambda ev: _empty_signature(ev.leaf_der),
}
BAD_EXTENSIONS: dict[str, Callable[[AmdEvidence], bytes]] = {
    "san-x400address": lambda ev: _with_extension(ev.leaf_der, ExtensionOID.SUBJECT_ALTERNATIVE_NAME, X400),
    "san-edipartyname": lambda ev: _with_extension(ev.leaf_der, ExtensionOID.SUBJECT_ALTERNATIVE_NAME, EDI),
    "ian-x400address": lambda ev: _with_extension(ev.leaf_der, ExtensionOID.ISSUER_ALTERNATIVE_NAME, X400),
}


@pytest.mark.parametrize("force_fallback", [False, True], ids=["cryptography", "der-fallback"])
@pytest.mark.parametrize("make", list(MALFORMED.values()), ids=list(MALFORMED))
def test_load_leaf_malformed_structure_is_leaf_malformed(
    ev: AmdEvidence, make: Callable[[AmdEvidence], bytes], force_fallback: bool
) -> None:
    with pytest.raises(VerificationFailed) as exc:
        load_leaf(make(ev), force_fallback=force_fallback)
    assert exc.value.code == Code.SNP_LEAF_MALFORMED


@pytest.mark.parametrize("make", list(BAD_EXTENSIONS.values()), ids=list(BAD_EXTENSIONS))
def test_load_leaf_unsupported_general_name_is_extensions_invalid(
    ev: AmdEvidence, make: Callable[[AmdEvidence], bytes]
) -> None:
    with pytest.raises(VerificationFailed) as exc:
        load_leaf(make(ev))
    assert exc.value.code == Code.SNP_LEAF_EXTENSIONS_INVALID


@pytest.mark.parametrize(
    ("make", "code"),
    [
        *((m, Code.SNP_LEAF_MALFORMED) for m in MALFORMED.values()),
        *((m, Code.SNP_LEAF_EXTENSIONS_INVALID) for m in BAD_EXTENSIONS.values()),
    ],
    ids=[*MALFORMED, *BAD_EXTENSIONS],
)
def test_evaluate_snp_report_malformed_leaf_rejected_with_code(
    ev: AmdEvidence, make: Callable[[AmdEvidence], bytes], code: Code
) -> None:
    result = evaluate_snp_report(
        ev.report,
        leaf_der=make(ev),
        cert_table=None,
        trust=ev.trust_store,
        now=ev.now,
        policy=SnpPolicy(require_crl=True),
        crl_der=ev.crl_der,
    )
    assert not result.accepted
    assert [r.code for r in result.reasons] == [code]


def test_load_leaf_genuine_leaf_still_loads(ev: AmdEvidence) -> None:
    leaf = load_leaf(ev.leaf_der)
    assert leaf.parsed_by == "cryptography"
    assert leaf.serial == 0


def test_load_leaf_overlong_name_attribute_loads_without_a_warning() -> None:
    """A CN longer than X.520 allows makes cryptography warn when the name is read; hostile input must not reach
    the logs (or, under the suite's -W error, escape as an exception). The name is compared as DER anyway."""
    key = ec.generate_private_key(ec.SECP384R1())
    with warnings.catch_warnings():  # building such a name warns too
        warnings.simplefilter("ignore", UserWarning)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "V" * 100, _validate=False)])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        leaf = load_leaf(cert.public_bytes(Encoding.DER))
    assert leaf.parsed_by == "cryptography"
