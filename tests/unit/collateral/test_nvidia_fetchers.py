"""NVIDIA collateral fetchers without a network: CertID cache keys and OCSP requests, a RIM's signing certificates
read untrusted, the RIM service and OCSP clients against an in-process transport (httpx.MockTransport), and the
cache rows' data helpers. Real NVIDIA data from tests/vectors/nvidia/rim/ and ocsp/ (see PROVENANCE-rim-ocsp.md)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from verifier import limits
from verifier.collateral.documents import (
    NVIDIA_RIM_MISSING_BODY,
    Document,
    nvidia_ocsp,
    nvidia_rim,
    parse_rim_ocsp_bundle,
    rim_ocsp_bundle,
    wanted_ocsp,
    wanted_rim,
    wanted_rim_ocsp,
)
from verifier.collateral.fetchers import FetchError
from verifier.collateral.nvidia_fetchers import (
    NvidiaOcspClient,
    NvidiaRimClient,
    RimNotFound,
    ocsp_request_for_key,
    ocsp_response_key,
    parse_ocsp_key,
    rim_chain_pairs,
    rim_signing_certificates,
)
from verifier.errors import Code, KeywardError
from verifier.trust.ocsp import cert_id_key
from verifier.worker.vendor_documents import document_next_update

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nvidia"
DRIVER_RIM_ID = "NV_GPU_DRIVER_GH100_550.90.07"
DRIVER_RIM = (VECTORS / "rim" / f"{DRIVER_RIM_ID}.xml").read_bytes()
REAL_OCSP = {
    name: (VECTORS / "ocsp" / f"{name}.ocsp.der").read_bytes()
    for name in ("test_gpu_driver_rim_l4", "test_gpu_driver_rim_l3", "test_gpu_rim_l2")
}
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
BASE = "https://rim.example"
OCSP_URL = "https://ocsp.example"


# ----------------------------------------------------------------------------------------------------------
# A throwaway CA and OCSP responses for it


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=subject == issuer, path_length=None), critical=True)
        .sign(signer, hashes.SHA384())
    )


CA_KEY = ec.generate_private_key(ec.SECP384R1())
CA = _cert("test ca", CA_KEY, "test ca", CA_KEY)
LEAF = _cert("test leaf", ec.generate_private_key(ec.SECP384R1()), "test ca", CA_KEY)


def _response(
    cert: x509.Certificate = LEAF,
    *,
    nonce: bytes | None = None,
    next_update: datetime | None = NOW + timedelta(hours=24),
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=CA,
            algorithm=algorithm or hashes.SHA384(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=next_update,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, CA)
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(CA_KEY, hashes.SHA384()).public_bytes(Encoding.DER)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


Handler = Callable[[httpx.Request], httpx.Response]


def _http(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _rim_answer(rim_id: str = DRIVER_RIM_ID, xml: bytes = DRIVER_RIM, **override: object) -> Handler:
    answer: dict[str, object] = {
        "id": rim_id,
        "rim": base64.b64encode(xml).decode(),
        "sha256": hashlib.sha256(xml).hexdigest(),
    }
    answer.update(override)
    return lambda _request: httpx.Response(200, json=answer)


# ----------------------------------------------------------------------------------------------------------
# CertID keys and requests


def test_ocsp_key_real_rim_chain_matches_real_nvidia_responses() -> None:
    pairs = rim_chain_pairs(rim_signing_certificates(DRIVER_RIM))
    assert [cert_id_key(cert, issuer) for cert, issuer in pairs] == [ocsp_response_key(d) for d in REAL_OCSP.values()]


def test_ocsp_request_for_key_names_the_certid_and_nonce() -> None:
    key = cert_id_key(LEAF, CA)
    request = ocsp.load_der_ocsp_request(ocsp_request_for_key(key, b"n" * 32))
    assert (request.issuer_name_hash, request.issuer_key_hash, request.serial_number) == parse_ocsp_key(key)
    assert isinstance(request.hash_algorithm, hashes.SHA384)
    assert request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 32


def test_ocsp_request_for_key_without_nonce_has_no_extension() -> None:
    request = ocsp.load_der_ocsp_request(ocsp_request_for_key(cert_id_key(LEAF, CA)))
    assert len(request.extensions) == 0


@pytest.mark.parametrize(
    "key",
    [
        "sha1:" + "00" * 48 + ":" + "00" * 48 + ":1",
        "sha384:" + "00" * 47 + ":" + "00" * 48 + ":1",
        "sha384:" + "00" * 48 + ":" + "00" * 48 + ":",
        "sha384:" + "AA" * 48 + ":" + "00" * 48 + ":1",
        "sha384:" + "00" * 48 + ":" + "00" * 48 + ":1:2",
    ],
    ids=["sha1", "short-name-hash", "no-serial", "upper-case", "extra-field"],
)
def test_parse_ocsp_key_malformed_raises(key: str) -> None:
    with pytest.raises(ValueError, match="not an OCSP cache key"):
        parse_ocsp_key(key)


def test_ocsp_response_key_sha1_certid_is_none() -> None:
    assert ocsp_response_key(_response(algorithm=hashes.SHA1())) is None  # noqa: S303 - a CertID hash, as a defect


def test_ocsp_response_key_unsuccessful_is_none() -> None:
    assert ocsp_response_key(_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)) is None


# ----------------------------------------------------------------------------------------------------------
# A RIM's signing certificates (untrusted)


def test_rim_signing_certificates_real_rim_l4_first_root_last() -> None:
    certs = rim_signing_certificates(DRIVER_RIM)
    assert [c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for c in certs] == [
        "HCC RIM L4 Signer",
        "NVIDIA Reference Value L3 GH100 002",
        "NVIDIA Reference Value GH100 CA",
        "NVIDIA CoRIM signing Root CA",
    ]


def _cert_element(der: bytes) -> bytes:
    return b"<ds:X509Certificate>" + base64.b64encode(der) + b"</ds:X509Certificate>"


def _rim(certs: bytes, *, prolog: bytes = b"", signatures: int = 1) -> bytes:
    signature = (
        b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyInfo><ds:X509Data>'
        + certs
        + b"</ds:X509Data></ds:KeyInfo></ds:Signature>"
    )
    swid = b'<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd">'
    return prolog + swid + signature * signatures + b"</SoftwareIdentity>"


TWO_CERTS = _cert_element(LEAF.public_bytes(Encoding.DER)) + _cert_element(CA.public_bytes(Encoding.DER))


def test_rim_signing_certificates_minimal_chain_read() -> None:
    assert rim_signing_certificates(_rim(TWO_CERTS)) == (LEAF, CA)


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        (b"<SoftwareIdentity>", Code.NVIDIA_RIM_MALFORMED),
        (_rim(TWO_CERTS, prolog=b'<!DOCTYPE SoftwareIdentity [<!ENTITY e "x">]>'), Code.NVIDIA_RIM_MALFORMED),
        (
            _rim(TWO_CERTS, prolog=b'<!DOCTYPE SoftwareIdentity SYSTEM "http://x.example/d.dtd">'),
            Code.NVIDIA_RIM_MALFORMED,
        ),
        (_rim(TWO_CERTS, signatures=2), Code.NVIDIA_RIM_MALFORMED),
        (b"<SoftwareIdentity/>", Code.NVIDIA_RIM_MALFORMED),
        (_rim(_cert_element(CA.public_bytes(Encoding.DER))), Code.NVIDIA_RIM_MALFORMED),
        (_rim(TWO_CERTS * 5), Code.NVIDIA_RIM_MALFORMED),
        (_rim(TWO_CERTS + b"<ds:X509Certificate>bm90IGEgY2VydA==</ds:X509Certificate>"), Code.NVIDIA_RIM_MALFORMED),
        (_rim(TWO_CERTS + b"<ds:X509Certificate>%%%</ds:X509Certificate>"), Code.NVIDIA_RIM_MALFORMED),
        (b" " * (limits.MAX_NVIDIA_RIM_BYTES + 1), Code.NVIDIA_RIM_TOO_LARGE),
    ],
    ids=[
        "not-well-formed",
        "internal-dtd",
        "external-dtd",
        "two-signatures",
        "no-signature",
        "one-cert",
        "too-many-certs",
        "cert-not-der",
        "cert-not-base64",
        "too-large",
    ],
)
def test_rim_signing_certificates_refused(xml: bytes, code: Code) -> None:
    with pytest.raises(KeywardError) as info:
        rim_signing_certificates(xml)
    assert info.value.code == code


# ----------------------------------------------------------------------------------------------------------
# RIM service client


def test_fetch_rim_decodes_the_served_xml() -> None:
    with _http(_rim_answer()) as http:
        assert NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID) == DRIVER_RIM


def test_fetch_rim_without_sha256_accepted() -> None:
    answer = {"id": DRIVER_RIM_ID, "rim": base64.b64encode(DRIVER_RIM).decode()}
    with _http(lambda _r: httpx.Response(200, json=answer)) as http:
        assert NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID) == DRIVER_RIM


def test_fetch_rim_sends_bearer_key_when_configured() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _rim_answer()(request)

    with _http(handler) as http:
        NvidiaRimClient(BASE + "/", http, api_key="k3y").fetch_rim(DRIVER_RIM_ID)
        NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID)
    assert str(seen[0].url) == f"{BASE}/v1/rim/{DRIVER_RIM_ID}"
    assert [r.headers.get("Authorization") for r in seen] == ["Bearer k3y", None]


def test_fetch_rim_not_found_is_definitive() -> None:
    with (
        _http(lambda _r: httpx.Response(404, json={"message": "RIM_NOT_FOUND"})) as http,
        pytest.raises(RimNotFound) as info,
    ):
        NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID)
    assert (info.value.code, info.value.status, info.value.retryable) == (Code.NVIDIA_RIM_UNAVAILABLE, 404, False)


def test_fetch_rim_other_404_is_not_rim_not_found() -> None:
    with _http(lambda _r: httpx.Response(404, text="no route")) as http, pytest.raises(FetchError) as info:
        NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID)
    assert not isinstance(info.value, RimNotFound)
    assert info.value.status == 404


def test_fetch_rim_outage_retryable_with_retry_after() -> None:
    answer = httpx.Response(503, headers={"Retry-After": "7"}, text="down")
    with _http(lambda _r: answer) as http, pytest.raises(FetchError) as info:
        NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID)
    assert (info.value.retryable, info.value.retry_after, info.value.code) == (True, 7.0, Code.NVIDIA_RIM_UNAVAILABLE)


def test_fetch_rim_transport_error_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _http(handler) as http, pytest.raises(FetchError) as info:
        NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID)
    assert info.value.status is None
    assert info.value.retryable


@pytest.mark.parametrize(
    "handler",
    [
        _rim_answer(rim_id="NV_GPU_DRIVER_GH100_550.54.15"),
        _rim_answer(sha256="00" * 32),
        _rim_answer(sha256=7),
        _rim_answer(rim="%%%"),
        _rim_answer(rim=None),
        _rim_answer(xml=b'{"message":"RIM_NOT_FOUND"}'),
        _rim_answer(xml=b""),
        lambda _r: httpx.Response(200, text="not json"),
        lambda _r: httpx.Response(200, json=["a list"]),
        lambda _r: httpx.Response(200, content=b"x" * (limits.MAX_NVIDIA_RIM_BYTES * 2)),
    ],
    ids=[
        "other-id",
        "sha256-mismatch",
        "sha256-not-text",
        "rim-not-base64",
        "no-rim",
        "rim-not-xml",
        "rim-empty",
        "not-json",
        "not-object",
        "too-large",
    ],
)
def test_fetch_rim_unusable_answer_refused(handler: Handler) -> None:
    with _http(handler) as http, pytest.raises(FetchError) as info:
        NvidiaRimClient(BASE, http).fetch_rim(DRIVER_RIM_ID)
    assert (info.value.code, info.value.status, info.value.retryable) == (Code.NVIDIA_RIM_UNAVAILABLE, 200, False)


@pytest.mark.parametrize("rim_id", ["../admin", "NV_GPU_DRIVER_GH100_550.90.07?x=1", "", "nv_gpu_x_1"])
def test_rim_url_refuses_what_is_not_a_rim_id(rim_id: str) -> None:
    with _http(_rim_answer()) as http, pytest.raises(ValueError, match="not an NVIDIA RIM id"):
        NvidiaRimClient(BASE, http).rim_url(rim_id)


def test_fetch_ids_lists_the_service_ids() -> None:
    ids = [DRIVER_RIM_ID, "NV_GPU_VBIOS_1010_0200_882_96009F0001"]
    with _http(lambda _r: httpx.Response(200, json={"ids": ids})) as http:
        assert NvidiaRimClient(BASE, http).fetch_ids() == tuple(ids)


def test_fetch_ids_not_a_list_refused() -> None:
    with _http(lambda _r: httpx.Response(200, json={"ids": "all"})) as http, pytest.raises(FetchError):
        NvidiaRimClient(BASE, http).fetch_ids()


# ----------------------------------------------------------------------------------------------------------
# OCSP client


def _ocsp_handler(answer: Callable[[ocsp.OCSPRequest], bytes], seen: list[httpx.Request] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        parsed = ocsp.load_der_ocsp_request(request.content)
        return httpx.Response(200, content=answer(parsed), headers={"Content-Type": "application/ocsp-response"})

    return handler


def test_ocsp_fetch_posts_der_request_with_nonce_and_returns_response() -> None:
    seen: list[httpx.Request] = []
    der = _response()
    with _http(_ocsp_handler(lambda _q: der, seen)) as http:
        assert NvidiaOcspClient(OCSP_URL, http, api_key="k").fetch(cert_id_key(LEAF, CA), nonce=b"z" * 32) == der
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", OCSP_URL + "/")
    assert request.headers["Content-Type"] == "application/ocsp-request"
    assert request.headers["Authorization"] == "Bearer k"
    parsed = ocsp.load_der_ocsp_request(request.content)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"z" * 32


def test_ocsp_fetch_fresh_random_nonce_each_time() -> None:
    nonces: list[bytes] = []

    def answer(request: ocsp.OCSPRequest) -> bytes:
        nonces.append(request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce)
        return _response()

    with _http(_ocsp_handler(answer)) as http:
        client = NvidiaOcspClient(OCSP_URL, http)
        client.fetch(cert_id_key(LEAF, CA))
        client.fetch(cert_id_key(LEAF, CA))
    assert len(nonces[0]) == 32
    assert nonces[0] != nonces[1]


def test_ocsp_fetch_echoed_nonce_accepted() -> None:
    with _http(_ocsp_handler(lambda _q: _response(nonce=b"e" * 32))) as http:
        assert NvidiaOcspClient(OCSP_URL, http).fetch(cert_id_key(LEAF, CA), nonce=b"e" * 32)


@pytest.mark.parametrize(
    "answer",
    [
        lambda: _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED),
        lambda: _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER),
        lambda: _response(CA),
        lambda: _response(algorithm=hashes.SHA256()),
        lambda: _response(nonce=b"other" * 4),
        lambda: b"not der",
    ],
    ids=["unauthorized", "try-later", "other-certid", "sha256-certid", "other-nonce", "not-der"],
)
def test_ocsp_fetch_unusable_response_refused(answer: Callable[[], bytes]) -> None:
    body = answer()
    with _http(_ocsp_handler(lambda _q: body)) as http, pytest.raises(FetchError) as info:
        NvidiaOcspClient(OCSP_URL, http).fetch(cert_id_key(LEAF, CA), nonce=b"n" * 32)
    assert (info.value.code, info.value.status, info.value.retryable) == (Code.NVIDIA_OCSP_UNAVAILABLE, 200, False)


def test_ocsp_fetch_http_error_retryable() -> None:
    with _http(lambda _r: httpx.Response(502)) as http, pytest.raises(FetchError) as info:
        NvidiaOcspClient(OCSP_URL, http).fetch(cert_id_key(LEAF, CA))
    assert (info.value.status, info.value.retryable) == (502, True)


def test_ocsp_fetch_oversized_refused() -> None:
    big = b"\x30" * (limits.MAX_OCSP_RESPONSE_BYTES + 1)
    with _http(lambda _r: httpx.Response(200, content=big)) as http, pytest.raises(FetchError, match="larger"):
        NvidiaOcspClient(OCSP_URL, http).fetch(cert_id_key(LEAF, CA))


# ----------------------------------------------------------------------------------------------------------
# Cache rows as data


def test_nvidia_rim_row_found_missing_or_unavailable() -> None:
    found, missing = "NV_GPU_DRIVER_GH100_1.0", "NV_GPU_DRIVER_GH100_2.0"
    documents = {
        wanted_rim(found).row: Document(DRIVER_RIM, None),
        wanted_rim(missing).row: Document(NVIDIA_RIM_MISSING_BODY, None),
    }
    assert nvidia_rim(found, documents).xml == DRIVER_RIM
    assert nvidia_rim(missing, documents).missing
    assert nvidia_rim("NV_GPU_DRIVER_GH100_3.0", documents).unavailable
    assert not nvidia_rim(found, documents).unavailable
    assert not nvidia_rim(missing, documents).unavailable


def test_rim_ocsp_bundle_round_trips() -> None:
    responses = {ocsp_response_key(d) or "": d for d in REAL_OCSP.values()}
    assert parse_rim_ocsp_bundle(rim_ocsp_bundle(responses)) == responses


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", json.dumps({"k": "%%%"}).encode()], ids=["not-json", "not-object", "not-base64"]
)
def test_parse_rim_ocsp_bundle_unreadable_is_empty(body: bytes) -> None:
    assert parse_rim_ocsp_bundle(body) == {}


def test_nvidia_ocsp_merges_device_rows_and_rim_bundles() -> None:
    device_key, bundle_key = cert_id_key(LEAF, CA), "sha384:" + "11" * 48 + ":" + "22" * 48 + ":3"
    documents = {
        wanted_ocsp(device_key).row: Document(b"device", None),
        wanted_rim_ocsp(DRIVER_RIM_ID).row: Document(rim_ocsp_bundle({bundle_key: b"rim"}), None),
    }
    absent = "sha384:" + "33" * 48 + ":" + "44" * 48 + ":5"
    found = nvidia_ocsp([device_key, absent], [DRIVER_RIM_ID, "NV_GPU_VBIOS_1_2_3_4"], documents)
    assert found == {device_key: b"device", bundle_key: b"rim"}


# ----------------------------------------------------------------------------------------------------------
# When a cached NVIDIA row is due


def test_document_next_update_rim_is_earliest_signer_not_after() -> None:
    expected = min(c.not_valid_after_utc for c in rim_signing_certificates(DRIVER_RIM))
    assert document_next_update("rim", DRIVER_RIM) == expected == datetime(2026, 6, 1, 2, 8, 29, tzinfo=UTC)


def test_document_next_update_ocsp_is_next_update() -> None:
    assert document_next_update("ocsp", _response()) == NOW + timedelta(hours=24)


def test_document_next_update_rim_ocsp_is_earliest_next_update() -> None:
    later = _response(next_update=NOW + timedelta(hours=30))
    body = rim_ocsp_bundle({"a": later, "b": _response()})
    assert document_next_update("rim-ocsp", body) == NOW + timedelta(hours=24)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("rim", NVIDIA_RIM_MISSING_BODY),
        ("rim", b"<not-a-rim/>"),
        ("ocsp", _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)),
        ("ocsp", _response(next_update=None)),
        ("ocsp", b"junk"),
        ("rim-ocsp", rim_ocsp_bundle({})),
        ("rim-ocsp", rim_ocsp_bundle({"a": _response(), "b": _response(next_update=None)})),
    ],
    ids=[
        "rim-missing",
        "rim-unreadable",
        "ocsp-unsuccessful",
        "ocsp-no-next-update",
        "ocsp-junk",
        "bundle-empty",
        "bundle-one-without-next-update",
    ],
)
def test_document_next_update_nvidia_unreadable_is_none(kind: str, body: bytes) -> None:
    assert document_next_update(kind, body) is None
