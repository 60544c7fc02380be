"""Microsoft's UVM endorsement (COSE_Sign1) for confidential ACI, verified against the pinned Microsoft root.

Real vector: tests/vectors/amd/microsoft-confidential-sidecar-containers/body.uvm_reference_info.bin (PS384;
x5chain ContainerPlat -> Microsoft SCD Products RSA CA -> Microsoft Supply Chain RSA Root CA 2022). Validity:
leaf 2023-01-05T19:22:47Z .. 2024-01-03T19:22:47Z, intermediate 2022-02-17 .. 2042-02-17, root 2022-02-17 ..
2047-02-17, so every certificate is valid in [2023-01-05T19:22:47Z, 2024-01-03T19:22:47Z]. The pinned time is
the document's own signed ``signingtime``, 2023-02-08T05:42:23Z. The matching SNP report (M1) carries the same
MEASUREMENT at 0x90.

Negative cases change one thing at a time: on the real bytes where the defect needs no re-signing, otherwise on
a simulated PKI (:mod:`verifier.testing.cose_builder`) under a ``simulated=True`` trust store.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.vectors import AMD_VECTORS
from verifier.errors import Code, EvidenceMalformed, KeywardError, UsageError, VerificationFailed
from verifier.platforms.azure_uvm import (
    MAX_UVM_ENDORSEMENT_BYTES,
    MICROSOFT_SUPPLY_CHAIN_ROOT,
    UVM_FEED,
    UvmEndorsement,
    verify_uvm_endorsement,
)
from verifier.platforms.azure_uvm_signer import UVM_EKU, expected_issuer
from verifier.testing import cose_builder as cb
from verifier.trust import cbor, cose
from verifier.trust.cbor import CborKey, CborValue, Tag
from verifier.trust.store import TrustStore, load_trust_store

ACI = AMD_VECTORS / "microsoft-confidential-sidecar-containers"
REAL = (ACI / "body.uvm_reference_info.bin").read_bytes()
REPORT = (ACI / "snp_report.bin").read_bytes()
PINNED_NOW = datetime(2023, 2, 8, 5, 42, 23, tzinfo=UTC)  # = the signed signingtime; inside every cert's validity
LEAF_NOT_BEFORE = datetime(2023, 1, 5, 19, 22, 47, tzinfo=UTC)
LEAF_NOT_AFTER = datetime(2024, 1, 3, 19, 22, 47, tzinfo=UTC)
REAL_ISSUER = "did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2"
GENUINE = load_trust_store()
ROOT_SHA256 = "23ffe2b8bdb9a1711515d4cffda04bc7f793d513c76c243f1020507d8669b7db"


def _real_parts() -> tuple[bytes, dict[CborKey, CborValue], bytes, bytes, dict[CborKey, CborValue]]:
    top = cbor.decode(REAL)
    assert isinstance(top, Tag)
    assert isinstance(top.value, list)
    protected, unprotected, payload, signature = top.value
    assert isinstance(protected, bytes)
    assert isinstance(payload, bytes)
    assert isinstance(signature, bytes)
    assert isinstance(unprotected, dict)
    header = cbor.decode(protected)
    assert isinstance(header, dict)
    return protected, header, payload, signature, unprotected


def _code(fn: Callable[[], object]) -> Code:
    with pytest.raises(KeywardError) as exc:
        fn()
    return exc.value.code


# -- the real endorsement ------------------------------------------------------------------------------------


def test_verify_uvm_endorsement_real_vector_at_pinned_time(trust: TrustStore) -> None:
    e = verify_uvm_endorsement(REAL, trust, PINNED_NOW)
    assert e == UvmEndorsement(
        launch_measurement=bytes.fromhex(
            "51068107cdc7ee3d89c7821b05bca6147eb77b2005ae759050fc049b65a1b0beabc65a9d857acecf23225f5ec76849f5"
        ),
        guest_svn=22,
        feed=UVM_FEED,
        issuer=REAL_ISSUER,
        signer_subject="CN=ContainerPlat,O=Microsoft Corporation,L=Redmond,ST=Washington,C=US",
        simulated=False,
        signing_time=PINNED_NOW,
        validated_at=PINNED_NOW,
    )


def test_verify_uvm_endorsement_measurement_equals_real_snp_report(trust: TrustStore) -> None:
    assert verify_uvm_endorsement(REAL, trust, PINNED_NOW).launch_measurement == REPORT[0x90:0xC0]


def test_pinned_microsoft_root_is_the_did_x509_fingerprint(trust: TrustStore) -> None:
    root = trust.root(MICROSOFT_SUPPLY_CHAIN_ROOT)
    assert root.sha256 == ROOT_SHA256
    assert root.certificate.subject.rfc4514_string() == (
        "CN=Microsoft Supply Chain RSA Root CA 2022,O=Microsoft Corporation,C=US"
    )
    assert expected_issuer(root.der) == REAL_ISSUER
    _, header, *_ = _real_parts()
    x5chain = header[33]
    assert isinstance(x5chain, list)
    assert x5chain[-1] == root.der  # the real chain ends at the pinned root byte for byte


@pytest.mark.parametrize(
    "now",
    [LEAF_NOT_BEFORE, LEAF_NOT_AFTER],
    ids=["leaf_not_before", "leaf_not_after"],
)
def test_verify_uvm_endorsement_real_vector_validity_edges_inclusive(trust: TrustStore, now: datetime) -> None:
    assert verify_uvm_endorsement(REAL, trust, now).guest_svn == 22


@pytest.mark.parametrize(
    ("now", "code"),
    [
        (LEAF_NOT_AFTER + timedelta(seconds=1), Code.AZURE_UVM_EXPIRED),
        (datetime(2026, 11, 23, tzinfo=UTC), Code.AZURE_UVM_EXPIRED),
        (LEAF_NOT_BEFORE - timedelta(seconds=1), Code.AZURE_UVM_NOT_YET_VALID),
    ],
    ids=["just_after_leaf_expiry", "collection_date", "before_leaf_issued"],
)
def test_verify_uvm_endorsement_real_vector_outside_validity(trust: TrustStore, now: datetime, code: Code) -> None:
    with pytest.raises(VerificationFailed) as exc:
        verify_uvm_endorsement(REAL, trust, now)
    assert exc.value.code == code


def test_verify_uvm_endorsement_real_vector_validity_at_signing_time(trust: TrustStore) -> None:
    e = verify_uvm_endorsement(REAL, trust, datetime(2026, 11, 23, tzinfo=UTC), validity_at="signing_time")
    assert e.validated_at == PINNED_NOW
    assert e.launch_measurement == REPORT[0x90:0xC0]


def test_verify_uvm_endorsement_signing_time_after_now_rejected(trust: TrustStore) -> None:
    with pytest.raises(VerificationFailed) as exc:
        verify_uvm_endorsement(REAL, trust, PINNED_NOW - timedelta(seconds=1), validity_at="signing_time")
    assert exc.value.code == Code.AZURE_UVM_NOT_YET_VALID


def test_verify_uvm_endorsement_naive_time_refused(trust: TrustStore) -> None:
    with pytest.raises(UsageError):
        verify_uvm_endorsement(REAL, trust, PINNED_NOW.replace(tzinfo=None))


def test_verify_uvm_endorsement_other_feed_expected(trust: TrustStore) -> None:
    with pytest.raises(VerificationFailed) as exc:
        verify_uvm_endorsement(REAL, trust, PINNED_NOW, feed="ConfAKS-AMD-UVM")
    assert exc.value.code == Code.AZURE_UVM_FEED_MISMATCH


def test_verify_uvm_endorsement_other_eku_expected(trust: TrustStore) -> None:
    # The leaf also carries ...59.1.1, but the issuer names ...59.1.2: asking for .1.1 is an issuer mismatch.
    with pytest.raises(VerificationFailed) as exc:
        verify_uvm_endorsement(REAL, trust, PINNED_NOW, eku="1.3.6.1.4.1.311.76.59.1.1")
    assert exc.value.code == Code.AZURE_UVM_ISSUER_MISMATCH


def test_verify_uvm_endorsement_under_simulated_root_untrusted() -> None:
    # The genuine document under a store that pins some other (simulated) root: never accepted.
    pki = cb.build_pki()
    with pytest.raises(VerificationFailed) as exc:
        verify_uvm_endorsement(REAL, pki.trust_store, PINNED_NOW)
    assert exc.value.code == Code.AZURE_UVM_CHAIN_UNTRUSTED


# -- one byte-level defect at a time on the real document ------------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _payload_flipped() -> bytes:
    i = REAL.index(b"51068107cdc7")  # inside the payload's launch measurement
    return _flip(REAL, i + 3)  # '6' -> '7': still hex, still valid JSON


def _signature_flipped() -> bytes:
    _, _, _, signature, _ = _real_parts()
    return _flip(REAL, REAL.index(signature) + 100)


def _protected_altered() -> bytes:
    _, header, payload, signature, unprotected = _real_parts()
    signing_time = header["signingtime"]
    assert isinstance(signing_time, Tag)
    assert isinstance(signing_time.value, int)
    header["signingtime"] = Tag(1, signing_time.value + 1)
    return cb.encode_cose_sign1(cbor.encode(header), unprotected, payload, signature)


def _content_type_byte_flipped() -> bytes:
    return _flip(REAL, REAL.index(b"application/json") + 3)  # 'l' -> 'm' inside the signed protected bstr


def _unprotected_timestamp_removed() -> bytes:
    protected, _, payload, signature, _ = _real_parts()
    return cb.encode_cose_sign1(protected, {}, payload, signature)


def _root_replaced() -> bytes:
    """The x5chain's root swapped for a self-made root with the same name (and the chain re-linked)."""
    _, header, payload, signature, unprotected = _real_parts()
    x5chain = header[33]
    assert isinstance(x5chain, list)
    real_root = x509.load_der_x509_certificate(x5chain[-1])  # type: ignore[arg-type]
    key = cb.rsa_key("fake-microsoft-root")
    fake = (
        x509.CertificateBuilder()
        .subject_name(real_root.subject)
        .issuer_name(real_root.subject)
        .public_key(key.public_key())
        .serial_number(real_root.serial_number)
        .not_valid_before(real_root.not_valid_before_utc)
        .not_valid_after(real_root.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, real_root.signature_hash_algorithm)  # type: ignore[arg-type]
    )
    header[33] = [*x5chain[:-1], fake.public_bytes(Encoding.DER)]
    return cb.encode_cose_sign1(cbor.encode(header), unprotected, payload, signature)


def _untagged() -> bytes:
    return REAL[1:]  # drop the 0xd2 tag: still a valid COSE_Sign1 (tag 18 is optional)


REAL_DEFECTS: list[tuple[str, Callable[[], bytes], Code]] = [
    ("payload_byte_flipped", _payload_flipped, Code.AZURE_UVM_SIGNATURE_INVALID),
    ("signature_byte_flipped", _signature_flipped, Code.AZURE_UVM_SIGNATURE_INVALID),
    ("protected_header_altered", _protected_altered, Code.AZURE_UVM_SIGNATURE_INVALID),
    ("content_type_byte_flipped", _content_type_byte_flipped, Code.AZURE_UVM_SIGNATURE_INVALID),
    ("x5chain_root_replaced_same_name", _root_replaced, Code.AZURE_UVM_CHAIN_UNTRUSTED),
    ("truncated", lambda: REAL[:-1], Code.AZURE_UVM_COSE_MALFORMED),
    ("truncated_half", lambda: REAL[: len(REAL) // 2], Code.AZURE_UVM_COSE_MALFORMED),
    ("trailing_byte", lambda: REAL + b"\x00", Code.AZURE_UVM_COSE_MALFORMED),
    ("indefinite_outer_array", lambda: b"\xd2\x9f" + REAL[2:] + b"\xff", Code.AZURE_UVM_COSE_MALFORMED),
    ("wrong_tag", lambda: b"\xd1" + REAL[1:], Code.AZURE_UVM_COSE_MALFORMED),
    ("deeply_nested", lambda: b"\x81" * 10_000 + b"\x00", Code.AZURE_UVM_COSE_MALFORMED),
    ("huge_declared_length", lambda: b"\xd2\x84\x5b" + b"\xff" * 8 + REAL[8:], Code.AZURE_UVM_COSE_MALFORMED),
    ("too_large", lambda: REAL + b"\x00" * MAX_UVM_ENDORSEMENT_BYTES, Code.AZURE_UVM_COSE_MALFORMED),
    ("empty", lambda: b"", Code.AZURE_UVM_COSE_MALFORMED),
]


@pytest.mark.parametrize(("make", "code"), [(m, c) for _, m, c in REAL_DEFECTS], ids=[i for i, _, _ in REAL_DEFECTS])
def test_verify_uvm_endorsement_real_vector_defect(trust: TrustStore, make: Callable[[], bytes], code: Code) -> None:
    assert _code(lambda: verify_uvm_endorsement(make(), trust, PINNED_NOW)) == code


@pytest.mark.parametrize("make", [_untagged, _unprotected_timestamp_removed], ids=["untagged", "no_timestamp"])
def test_verify_uvm_endorsement_real_vector_unsigned_variations_still_verify(
    trust: TrustStore, make: Callable[[], bytes]
) -> None:
    assert verify_uvm_endorsement(make(), trust, PINNED_NOW).launch_measurement == REPORT[0x90:0xC0]


# -- simulated PKI: defects that need a re-signed document -----------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> cb.SimPki:
    return cb.build_pki()


def test_verify_uvm_endorsement_simulated_genuine(pki: cb.SimPki) -> None:
    e = verify_uvm_endorsement(cb.build_endorsement(pki).data, pki.trust_store, pki.now)
    assert e.simulated is True
    assert e.launch_measurement == cb.SIM_MEASUREMENT
    assert e.guest_svn == 101
    assert e.issuer == pki.issuer


def test_verify_uvm_endorsement_simulated_root_omitted(pki: cb.SimPki) -> None:
    header = cb.uvm_protected_header(pki, chain=pki.chain_der[:-1])
    e = verify_uvm_endorsement(cb.build_endorsement(pki, protected=header).data, pki.trust_store, pki.now)
    assert e.launch_measurement == cb.SIM_MEASUREMENT


def test_verify_uvm_endorsement_simulated_es384_leaf() -> None:
    pki = cb.build_pki(leaf_ec=True)
    header = cb.uvm_protected_header(pki, alg=cose.ALG_ES384)
    e = verify_uvm_endorsement(cb.build_endorsement(pki, protected=header).data, pki.trust_store, pki.now)
    assert e.guest_svn == 101


def test_verify_uvm_endorsement_simulated_integer_svn(pki: cb.SimPki) -> None:
    doc = cb.build_endorsement(pki, payload=cb.uvm_payload(guest_svn=7))
    assert verify_uvm_endorsement(doc.data, pki.trust_store, pki.now).guest_svn == 7


def _with_header(pki: cb.SimPki, **changes: CborValue) -> bytes:
    header = cb.uvm_protected_header(pki)
    for key, value in changes.items():
        header[key] = value
    return cb.build_endorsement(pki, protected=header).data


def _without_header(pki: cb.SimPki, label: CborKey) -> bytes:
    header = cb.uvm_protected_header(pki)
    del header[label]
    return cb.build_endorsement(pki, protected=header).data


def _raw(pki: cb.SimPki, protected: bytes, unprotected: dict[CborKey, CborValue], payload: CborValue) -> bytes:
    signed = payload if isinstance(payload, bytes) else b""
    sig = cb.sign(pki.leaf_key, cose.ALG_PS384, cose.sig_structure(protected, signed))
    return cb.encode_cose_sign1(protected, unprotected, payload, sig)


def _eku_missing(_: cb.SimPki) -> tuple[bytes, TrustStore]:
    other = cb.build_pki(leaf_ekus=None)
    return cb.build_endorsement(other).data, other.trust_store


def _eku_other(_: cb.SimPki) -> tuple[bytes, TrustStore]:
    other = cb.build_pki(leaf_ekus=("1.3.6.1.4.1.311.76.59.1.5",))
    return cb.build_endorsement(other).data, other.trust_store


def _leaf_is_ca(_: cb.SimPki) -> tuple[bytes, TrustStore]:
    other = cb.build_pki(leaf_ca=True)
    return cb.build_endorsement(other).data, other.trust_store


def _intermediate_not_ca(_: cb.SimPki) -> tuple[bytes, TrustStore]:
    other = cb.build_pki(intermediate_ca=False)
    return cb.build_endorsement(other).data, other.trust_store


def _intermediate_forged(_: cb.SimPki) -> tuple[bytes, TrustStore]:
    other = cb.build_pki(intermediate_signer_slot="not-the-root")
    return cb.build_endorsement(other).data, other.trust_store


def _unknown_critical_extension(_: cb.SimPki) -> tuple[bytes, TrustStore]:
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    other = cb.build_pki(leaf_extra=[(ext, True)])
    return cb.build_endorsement(other).data, other.trust_store


def _leaf_expired(_: cb.SimPki) -> tuple[bytes, TrustStore]:
    other = cb.build_pki(leaf_not_after=cb.SIM_NOW - timedelta(seconds=1))
    return cb.build_endorsement(other).data, other.trust_store


def _root_lookalike(pki: cb.SimPki) -> tuple[bytes, TrustStore]:
    other = cb.build_pki(root_slot="lookalike")  # same root name, different key
    return cb.build_endorsement(other).data, pki.trust_store


def _signed_by_other_key(pki: cb.SimPki) -> tuple[bytes, TrustStore]:
    return cb.build_endorsement(pki, signing_key=cb.rsa_key("stranger")).data, pki.trust_store


def _same(fn: Callable[[cb.SimPki], bytes]) -> Callable[[cb.SimPki], tuple[bytes, TrustStore]]:
    return lambda pki: (fn(pki), pki.trust_store)


def _issuer_names_leaf(pki: cb.SimPki) -> bytes:
    fp = expected_issuer(pki.chain_der[0]).split("::")[0]
    return _with_header(pki, iss=f"{fp}::eku:{UVM_EKU}")


def _issuer_names_intermediate(pki: cb.SimPki) -> bytes:
    # A valid did:x509 for this chain (names the intermediate) but not the pinned-root issuer Keyward requires.
    fp = expected_issuer(pki.chain_der[1]).split("::")[0]
    return _with_header(pki, iss=f"{fp}::eku:{UVM_EKU}")


def _garbage_chain(pki: cb.SimPki) -> bytes:
    header = cb.uvm_protected_header(pki, x5t=False)
    header[cose.HEADER_X5CHAIN] = [b"\x30\x03\x02\x01\x00", *pki.chain_der[1:]]
    return cb.build_endorsement(pki, protected=header).data


def _x5t_mismatch(pki: cb.SimPki) -> bytes:
    header = cb.uvm_protected_header(pki)
    header[cose.HEADER_X5T] = [-16, hashlib.sha256(b"someone else").digest()]
    return cb.build_endorsement(pki, protected=header).data


def _bad_payload(payload: bytes) -> Callable[[cb.SimPki], bytes]:
    return lambda pki: cb.build_endorsement(pki, payload=payload).data


def _alg(alg: int) -> Callable[[cb.SimPki], bytes]:
    """Header names ``alg``; the builder signs with it when COSE knows it (PS384 otherwise)."""

    def make(pki: cb.SimPki) -> bytes:
        header = cb.uvm_protected_header(pki)
        header[cose.HEADER_ALG] = alg
        return cb.build_endorsement(pki, protected=header).data

    return make


def _alg_lie(pki: cb.SimPki) -> bytes:
    """Header says PS256, the signature is PS384 over the same Sig_structure."""
    protected = cbor.encode(cb.uvm_protected_header(pki, alg=cose.ALG_PS256))
    payload = cb.uvm_payload()
    sig = cb.sign(pki.leaf_key, cose.ALG_PS384, cose.sig_structure(protected, payload))
    return cb.encode_cose_sign1(protected, {}, payload, sig)


def _header(label: CborKey, value: CborValue) -> Callable[[cb.SimPki], bytes]:
    def make(pki: cb.SimPki) -> bytes:
        header = cb.uvm_protected_header(pki)
        header[label] = value
        return cb.build_endorsement(pki, protected=header).data

    return make


def _drop(label: CborKey) -> Callable[[cb.SimPki], bytes]:
    return lambda pki: _without_header(pki, label)


def _x5chain_unprotected(pki: cb.SimPki) -> bytes:
    header = cb.uvm_protected_header(pki)
    chain = header.pop(cose.HEADER_X5CHAIN)
    return cb.build_endorsement(pki, protected=header, unprotected={cose.HEADER_X5CHAIN: chain}).data


def _detached_payload(pki: cb.SimPki) -> bytes:
    return _raw(pki, cbor.encode(cb.uvm_protected_header(pki)), {}, None)


def _crit_unknown(pki: cb.SimPki) -> bytes:
    header = cb.uvm_protected_header(pki)
    header["x-unknown"] = 1
    header[cose.HEADER_CRIT] = ["x-unknown"]
    return cb.build_endorsement(pki, protected=header).data


def _too_long_chain(pki: cb.SimPki) -> bytes:
    header = cb.uvm_protected_header(pki, x5t=False)
    header[cose.HEADER_X5CHAIN] = [pki.chain_der[0]] * (cose.MAX_X5CHAIN_CERTS + 1)
    return cb.build_endorsement(pki, protected=header).data


M = "00" * 48
SIM_DEFECTS: list[tuple[str, Callable[[cb.SimPki], tuple[bytes, TrustStore]], Code]] = [
    ("leaf_eku_missing", _eku_missing, Code.AZURE_UVM_EKU_MISSING),
    ("leaf_eku_other", _eku_other, Code.AZURE_UVM_EKU_MISSING),
    ("leaf_is_ca", _leaf_is_ca, Code.AZURE_UVM_CHAIN_UNTRUSTED),
    ("intermediate_not_ca", _intermediate_not_ca, Code.AZURE_UVM_CHAIN_UNTRUSTED),
    ("intermediate_forged_same_name", _intermediate_forged, Code.AZURE_UVM_CHAIN_SIGNATURE_INVALID),
    ("unknown_critical_extension", _unknown_critical_extension, Code.AZURE_UVM_CHAIN_UNTRUSTED),
    ("leaf_expired", _leaf_expired, Code.AZURE_UVM_EXPIRED),
    ("root_lookalike_same_name", _root_lookalike, Code.AZURE_UVM_CHAIN_UNTRUSTED),
    ("signed_by_other_key", _signed_by_other_key, Code.AZURE_UVM_SIGNATURE_INVALID),
    ("wrong_feed", _same(_header("feed", "ConfAKS-AMD-UVM")), Code.AZURE_UVM_FEED_MISMATCH),
    ("feed_missing", _same(_drop("feed")), Code.AZURE_UVM_COSE_MALFORMED),
    ("feed_not_text", _same(_header("feed", b"ContainerPlat-AMD-UVM")), Code.AZURE_UVM_COSE_MALFORMED),
    ("issuer_missing", _same(_drop("iss")), Code.AZURE_UVM_COSE_MALFORMED),
    ("issuer_not_did", _same(_header("iss", "Microsoft")), Code.AZURE_UVM_ISSUER_MISMATCH),
    ("issuer_did_version_1", _same(_header("iss", "did:x509:1:sha256:AAAA::eku:1.2")), Code.AZURE_UVM_ISSUER_MISMATCH),
    ("issuer_names_leaf", _same(_issuer_names_leaf), Code.AZURE_UVM_ISSUER_MISMATCH),
    ("issuer_names_intermediate", _same(_issuer_names_intermediate), Code.AZURE_UVM_ISSUER_MISMATCH),
    (
        "issuer_subject_predicate",
        _same(lambda p: _with_header(p, iss=p.issuer.replace("::eku:", "::subject:CN:"))),
        Code.AZURE_UVM_ISSUER_MISMATCH,
    ),
    (
        "issuer_extra_eku_predicate",
        _same(lambda p: _with_header(p, iss=p.issuer + "::eku:1.3.6.1.5.5.7.3.3")),
        Code.AZURE_UVM_EKU_MISSING,
    ),
    ("x5chain_garbage_der", _same(_garbage_chain), Code.AZURE_UVM_CHAIN_MALFORMED),
    ("x5chain_missing", _same(_drop(cose.HEADER_X5CHAIN)), Code.AZURE_UVM_COSE_MALFORMED),
    ("x5chain_unprotected", _same(_x5chain_unprotected), Code.AZURE_UVM_COSE_MALFORMED),
    ("x5chain_too_long", _same(_too_long_chain), Code.AZURE_UVM_COSE_MALFORMED),
    ("x5t_mismatch", _same(_x5t_mismatch), Code.AZURE_UVM_CHAIN_UNTRUSTED),
    ("x5t_unknown_hash", _same(_header(cose.HEADER_X5T, [-99, b"\x00" * 32])), Code.AZURE_UVM_ALGORITHM_UNSUPPORTED),
    ("alg_rs256", _same(_alg(-257)), Code.AZURE_UVM_ALGORITHM_UNSUPPORTED),
    ("alg_es384_with_rsa_leaf", _same(_alg(cose.ALG_ES384)), Code.AZURE_UVM_ALGORITHM_UNSUPPORTED),
    ("alg_ps256_header_ps384_signature", _same(_alg_lie), Code.AZURE_UVM_SIGNATURE_INVALID),
    ("alg_missing", _same(_drop(cose.HEADER_ALG)), Code.AZURE_UVM_COSE_MALFORMED),
    ("crit_unknown_label", _same(_crit_unknown), Code.AZURE_UVM_COSE_MALFORMED),
    ("signingtime_not_epoch", _same(_header("signingtime", "2026-01-14")), Code.AZURE_UVM_COSE_MALFORMED),
    ("detached_payload", _same(_detached_payload), Code.AZURE_UVM_COSE_MALFORMED),
    ("content_type_text", _same(_header(cose.HEADER_CONTENT_TYPE, "text/plain")), Code.AZURE_UVM_PAYLOAD_INVALID),
    ("payload_not_json", _same(_bad_payload(b"\xff{")), Code.AZURE_UVM_PAYLOAD_INVALID),
    ("payload_json_array", _same(_bad_payload(b"[]")), Code.AZURE_UVM_PAYLOAD_INVALID),
    ("payload_measurement_short", _same(_bad_payload(cb.uvm_payload(bytes(47)))), Code.AZURE_UVM_PAYLOAD_INVALID),
    (
        "payload_measurement_missing",
        _same(_bad_payload(b'{"x-ms-sevsnpvm-guestsvn": "1"}')),
        Code.AZURE_UVM_PAYLOAD_INVALID,
    ),
    ("payload_svn_negative", _same(_bad_payload(cb.uvm_payload(guest_svn="-1"))), Code.AZURE_UVM_PAYLOAD_INVALID),
    ("payload_svn_too_big", _same(_bad_payload(cb.uvm_payload(guest_svn=2**32))), Code.AZURE_UVM_PAYLOAD_INVALID),
    ("payload_svn_bool", _same(_bad_payload(cb.uvm_payload(guest_svn=True))), Code.AZURE_UVM_PAYLOAD_INVALID),
    (
        "payload_duplicate_key",
        _same(
            _bad_payload(
                f'{{"x-ms-sevsnpvm-guestsvn":"1","x-ms-sevsnpvm-launchmeasurement":"{M}",'
                f'"x-ms-sevsnpvm-launchmeasurement":"{M}"}}'.encode()
            )
        ),
        Code.AZURE_UVM_PAYLOAD_INVALID,
    ),
]


@pytest.mark.parametrize(("make", "code"), [(m, c) for _, m, c in SIM_DEFECTS], ids=[i for i, _, _ in SIM_DEFECTS])
def test_verify_uvm_endorsement_simulated_defect(
    pki: cb.SimPki, make: Callable[[cb.SimPki], tuple[bytes, TrustStore]], code: Code
) -> None:
    data, store = make(pki)
    assert _code(lambda: verify_uvm_endorsement(data, store, pki.now)) == code


def test_verify_uvm_endorsement_signing_time_mode_needs_signing_time(pki: cb.SimPki) -> None:
    data = cb.build_endorsement(pki, protected=cb.uvm_protected_header(pki, with_signing_time=False)).data
    assert verify_uvm_endorsement(data, pki.trust_store, pki.now).signing_time is None
    with pytest.raises(EvidenceMalformed) as exc:
        verify_uvm_endorsement(data, pki.trust_store, pki.now, validity_at="signing_time")
    assert exc.value.code == Code.AZURE_UVM_COSE_MALFORMED


def test_verify_uvm_endorsement_missing_pinned_root_refused(pki: cb.SimPki) -> None:
    empty = TrustStore({}, simulated=True)
    assert _code(lambda: verify_uvm_endorsement(cb.build_endorsement(pki).data, empty, pki.now)) == (
        Code.TRUST_ROOT_MISMATCH
    )


# -- COSE layer ---------------------------------------------------------------------------------------------------


def test_sig_structure_encoding() -> None:
    assert cose.sig_structure(b"\xa0", b"hi").hex() == "846a5369676e61747572653141a0404268 69".replace(" ", "")


def test_parse_cose_sign1_real_vector_headers() -> None:
    msg = cose.parse_cose_sign1(REAL)
    assert msg.tagged is True
    assert msg.alg == cose.ALG_PS384
    assert len(msg.x5chain) == 3
    assert msg.protected[cose.HEADER_CONTENT_TYPE] == "application/json"
    assert msg.text_header("feed") == UVM_FEED
    assert msg.text_header("iss") == REAL_ISSUER
    assert set(msg.protected) == {1, 3, 33, 34, "iss", "feed", "signingtime"}
    assert set(msg.unprotected) == {"timestamp"}  # RFC 3161 token, not covered by the signature


@pytest.mark.parametrize(
    "value",
    [
        [],
        [b"\xa0", {}, b"", b"x", b"extra"],
        [b"\x01", {}, b"", b"x"],
        [b"\xa1\x01\x26", [], b"", b"x"],
        [b"\xa1\x01\x26", {}, "text", b"x"],
        [b"\xa1\x01\x26", {}, b"", b""],
        [b"\xa1\x01\x26", {1: -37}, b"", b"x"],
        [b"\xa1\x01\x26", {2: [1]}, b"", b"x"],
        [b"\xa1\x01\x26", {-1.0: 1}, b"", b"x"],
    ],
    ids=[
        "empty",
        "five_items",
        "protected_not_map",
        "unprotected_not_map",
        "payload_text",
        "empty_signature",
        "alg_in_both",
        "crit_unprotected",
        "float_label",
    ],
)
def test_parse_cose_sign1_rejects_shape(value: list[CborValue]) -> None:
    try:
        data = cbor.encode(Tag(18, value))
    except ValueError:
        data = b"\xd2\x84\x43\xa1\x01\x26\xa1\xf9\x3c\x00\x01\x40\x41x"  # float label, hand-encoded
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError; callers map it to one code
        cose.parse_cose_sign1(data)


def test_verify_cose_sign1_es256_and_ps512_round_trip() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    for alg, key in ((cose.ALG_ES256, ec.generate_private_key(ec.SECP256R1())), (cose.ALG_PS512, cb.rsa_key("leaf"))):
        protected = cbor.encode({1: alg})
        sig = cb.sign(key, alg, cose.sig_structure(protected, b"payload"))
        msg = cose.parse_cose_sign1(cb.encode_cose_sign1(protected, {}, b"payload", sig, tagged=False))
        assert msg.tagged is False
        cose.verify_cose_sign1(msg, key.public_key())
        other = cb.ec_key("leaf") if alg == cose.ALG_PS512 else cb.rsa_key("leaf")
        with pytest.raises(cose.UnsupportedCoseAlgorithm):
            cose.verify_cose_sign1(msg, other.public_key())


# Single-byte edits of the leaf DER inside the real x5chain that make cryptography's lazy parsers raise
# something other than ValueError (found by fuzzing; each must still map to chain_malformed).
LAZY_PARSE_FAILURES = [
    ("version_1_invalid_version", 45, 0x01),
    ("issuer_attr_type_type_error", 93, 0x03),
    ("spki_oid_unsupported_algorithm", 319, 0x00),
]


@pytest.mark.parametrize(
    ("offset", "value"), [(o, v) for _, o, v in LAZY_PARSE_FAILURES], ids=[i for i, _, _ in LAZY_PARSE_FAILURES]
)
def test_verify_uvm_endorsement_real_leaf_der_byte_edit_is_chain_malformed(
    trust: TrustStore, offset: int, value: int
) -> None:
    raw = bytearray(REAL)
    raw[offset] = value
    with pytest.raises(EvidenceMalformed) as exc:
        verify_uvm_endorsement(bytes(raw), trust, PINNED_NOW)
    assert exc.value.code == Code.AZURE_UVM_CHAIN_MALFORMED


# -- fuzzing: any mutation of the real document fails with one of our codes, never another exception ------------


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_verify_uvm_endorsement_mutated_real_vector_raises_only_keyward_errors(data: st.DataObject) -> None:
    raw = bytearray(REAL)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        raw[data.draw(st.integers(min_value=0, max_value=len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([len(raw), data.draw(st.integers(min_value=0, max_value=len(raw)))]))
    with contextlib.suppress(KeywardError):
        verify_uvm_endorsement(bytes(raw[:cut]), GENUINE, PINNED_NOW)
