"""Worker-side fetchers for NVIDIA collateral: RIMs from the RIM service and certificate status from the OCSP
service (nvidia-gpu.md §3 "Revocation", §4 "Fetching"). With :mod:`verifier.collateral.fetchers` the only network
code for vendor collateral.

* RIM service: ``GET {base}/v1/rim/{id}`` -> 200 JSON ``{"id", "rim": base64(XML), "sha256"}``; ``GET
  {base}/v1/rim/ids`` -> ``{"ids": [...]}``; an unknown id -> 404 ``{"message": "RIM_NOT_FOUND"}``, raised as
  :class:`RimNotFound` (a definitive answer, never retried) apart from every other failure (:class:`FetchError`).
* OCSP service: ``POST {url}/`` with one DER ``OCSPRequest`` (CertID hash SHA-384, a fresh nonce; Content-Type
  ``application/ocsp-request``) -> DER ``OCSPResponse``. The request is built from a cache key alone
  (:func:`cert_id_key`, :func:`parse_ocsp_key`), so a cached status can be fetched again without its certificates.
* Both send ``Authorization: Bearer <key>`` when an NVIDIA service key is configured.

Nothing is verified here: the RIM's signature and chain, and each OCSP response's signature, responder and window,
are checked when a decision reads the cache (:mod:`verifier.trust.nvidia_rim`, :mod:`verifier.trust.ocsp`).
What is refused here is only what can never verify or would be stored under the wrong key: a body that is not
the shape the service answers with, a RIM whose ``id`` or ``sha256`` disagrees with what was asked or served, an
OCSP response that is not successful, answers for another certificate or echoes another nonce. Reading the signing
certificates of a RIM (:func:`rim_signing_certificates`, to ask for their status) trusts none of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import os
import re
from collections.abc import Sequence
from typing import Final

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from lxml import etree

from verifier import limits
from verifier.collateral.fetchers import FetchError, exchange
from verifier.errors import Code, error_for
from verifier.trust.nvidia_rim import parse_rim_document

NVIDIA_RIM_URL: Final = "https://rim.attestation.nvidia.com"
NVIDIA_OCSP_URL: Final = "https://ocsp.ndis.nvidia.com"
OCSP_REQUEST_TYPE: Final = "application/ocsp-request"
#: The RIM service's answer for an id it does not know (HTTP 404).
RIM_NOT_FOUND: Final = "RIM_NOT_FOUND"
#: RIM ids as NVIDIA names them (``NV_GPU_DRIVER_GH100_550.90.07``, ``NV_GPU_VBIOS_1010_0200_882_96009F0001``,
#: ``NV_SWITCH_BIOS_5612_0002_890_9610550001``): the only ids put in a URL.
RIM_ID_RE: Final = re.compile(r"\ANV_[A-Z0-9_]{1,64}_[A-Za-z0-9.]{1,32}\Z")
#: Largest RIM service answer: the base64 of the largest RIM, and its JSON.
MAX_RIM_ANSWER_BYTES: Final = (limits.MAX_NVIDIA_RIM_BYTES + 2) // 3 * 4 + 4096
#: Largest ``/v1/rim/ids`` answer.
MAX_RIM_IDS_BYTES: Final = limits.MAX_COLLATERAL_ITEM_BYTES
#: Bytes of the nonce each OCSP request carries (as NVIDIA's Python verifier sends).
OCSP_NONCE_BYTES: Final = 32
_OCSP_KEY_RE: Final = re.compile(r"\Asha384:([0-9a-f]{96}):([0-9a-f]{96}):([0-9a-f]{1,64})\Z")
_DSIG: Final = "http://www.w3.org/2000/09/xmldsig#"
_RIM_SIGNATURES: Final = etree.XPath("/*/ds:Signature", namespaces={"ds": _DSIG})
_RIM_CERTS: Final = etree.XPath("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces={"ds": _DSIG})


class RimNotFound(FetchError):
    """The RIM service does not know this id (HTTP 404 ``RIM_NOT_FOUND``): a definitive answer, not an outage.
    Never retryable; the decision reports ``nvidia.rim.missing`` for it, where any other :class:`FetchError`
    leaves the RIM unavailable (``nvidia.rim.unavailable``)."""

    def __init__(self, rim_id: str, *, url: str) -> None:
        super().__init__(Code.NVIDIA_RIM_UNAVAILABLE, f"RIM {rim_id}: {RIM_NOT_FOUND}", url=url, status=404)
        self.rim_id = rim_id


# ----------------------------------------------------------------------------------------------------------
# HTTP


def _headers(api_key: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = dict(extra or {})
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _http_error(code: Code, what: str, url: str, status: int, retry_after: float | None) -> FetchError:
    return FetchError(code, f"{what}: HTTP {status} from {url}", url=url, status=status, retry_after=retry_after)


def _json_object(body: bytes, code: Code, what: str, url: str) -> dict[str, object]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FetchError(code, f"{what}: body is not JSON", url=url, status=200) from exc
    if not isinstance(value, dict):
        raise FetchError(code, f"{what}: body is not a JSON object", url=url, status=200)
    return value


# ----------------------------------------------------------------------------------------------------------
# RIM service


class NvidiaRimClient:
    """NVIDIA's RIM service (``https://rim.attestation.nvidia.com``): a RIM by id, as the XML bytes it serves."""

    def __init__(self, base_url: str, client: httpx.Client, *, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.api_key = api_key

    def rim_url(self, rim_id: str) -> str:
        if not RIM_ID_RE.match(rim_id):
            raise ValueError(f"not an NVIDIA RIM id: {rim_id[:80]!r}")
        return f"{self.base_url}/v1/rim/{rim_id}"

    @property
    def ids_url(self) -> str:
        return f"{self.base_url}/v1/rim/ids"

    def fetch_rim(self, rim_id: str) -> bytes:
        """The RIM XML for ``rim_id``, decoded from the service's JSON: its ``id`` must be ``rim_id`` and, when the
        answer carries ``sha256``, that must be the SHA-256 of the XML. Raises :class:`RimNotFound` for HTTP 404
        ``RIM_NOT_FOUND``, :class:`FetchError` (``nvidia.rim.unavailable``) for anything else."""
        url, code, what = self.rim_url(rim_id), Code.NVIDIA_RIM_UNAVAILABLE, f"RIM {rim_id}"
        status, body, _, retry_after = exchange(
            self.client,
            "GET",
            url,
            code=code,
            what=what,
            max_bytes=MAX_RIM_ANSWER_BYTES,
            headers=_headers(self.api_key),
        )
        if status == 404 and _not_found(body):
            raise RimNotFound(rim_id, url=url)
        if status != 200:
            raise _http_error(code, what, url, status, retry_after)
        answer = _json_object(body, code, what, url)
        if answer.get("id") != rim_id:
            raise FetchError(code, f"{what}: the service answered for another id", url=url, status=200)
        encoded = answer.get("rim")
        if not isinstance(encoded, str):
            raise FetchError(code, f"{what}: the answer has no rim", url=url, status=200)
        try:
            xml = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FetchError(code, f"{what}: rim is not base64", url=url, status=200) from exc
        if not xml or len(xml) > limits.MAX_NVIDIA_RIM_BYTES or not xml.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            raise FetchError(code, f"{what}: rim is not an XML document of at most the size limit", url=url, status=200)
        digest = answer.get("sha256")
        if digest is not None and (not isinstance(digest, str) or digest.lower() != hashlib.sha256(xml).hexdigest()):
            raise FetchError(code, f"{what}: sha256 is not the digest of the rim served", url=url, status=200)
        return xml

    def fetch_ids(self) -> tuple[str, ...]:
        """Every RIM id the service lists (``/v1/rim/ids``)."""
        url, code, what = self.ids_url, Code.NVIDIA_RIM_UNAVAILABLE, "RIM ids"
        status, body, _, retry_after = exchange(
            self.client, "GET", url, code=code, what=what, max_bytes=MAX_RIM_IDS_BYTES, headers=_headers(self.api_key)
        )
        if status != 200:
            raise _http_error(code, what, url, status, retry_after)
        ids = _json_object(body, code, what, url).get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise FetchError(code, f"{what}: ids is not a list of strings", url=url, status=200)
        return tuple(str(i) for i in ids)


def _not_found(body: bytes) -> bool:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and value.get("message") == RIM_NOT_FOUND


# ----------------------------------------------------------------------------------------------------------
# OCSP: cache keys and requests


def _key(name_hash: bytes, key_hash: bytes, serial: int) -> str:
    return f"sha384:{name_hash.hex()}:{key_hash.hex()}:{serial:x}"


def parse_ocsp_key(key: str) -> tuple[bytes, bytes, int]:
    """(issuer name hash, issuer key hash, serial) of an :func:`cert_id_key`. Raises ValueError for anything else."""
    match = _OCSP_KEY_RE.match(key)
    if match is None:
        raise ValueError(f"not an OCSP cache key: {key[:120]!r}")
    name_hash, key_hash, serial = match.groups()
    return bytes.fromhex(name_hash), bytes.fromhex(key_hash), int(serial, 16)


def ocsp_request_for_key(key: str, nonce: bytes | None = None) -> bytes:
    """A DER OCSPRequest for the certificate an :func:`cert_id_key` names, with a nonce extension when given."""
    name_hash, key_hash, serial = parse_ocsp_key(key)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA384())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


# ----------------------------------------------------------------------------------------------------------
# OCSP service


class NvidiaOcspClient:
    """NVIDIA's OCSP service (``https://ocsp.ndis.nvidia.com``): one certificate's status, as the DER
    ``OCSPResponse`` it serves."""

    def __init__(self, url: str, client: httpx.Client, *, api_key: str | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.client = client
        self.api_key = api_key

    def fetch(self, key: str, *, nonce: bytes | None = None) -> bytes:
        """The DER response for the certificate ``key`` names (:func:`cert_id_key`), asked with ``nonce`` (default: a
        fresh random one). Refused (:class:`FetchError`, ``nvidia.ocsp.unavailable``, never stored): an HTTP error,
        a body that is not a DER OCSPResponse of at most :data:`~verifier.limits.MAX_OCSP_RESPONSE_BYTES`, a status
        other than successful (NVIDIA's answer for a certificate it does not know), a response without exactly one
        answer for this CertID, or one that echoes another nonce. Nothing else is checked (see the module)."""
        code, what = Code.NVIDIA_OCSP_UNAVAILABLE, f"OCSP {key[:40]}..."
        name_hash, key_hash, serial = parse_ocsp_key(key)
        nonce = os.urandom(OCSP_NONCE_BYTES) if nonce is None else nonce
        status, body, _, retry_after = exchange(
            self.client,
            "POST",
            self.url,
            code=code,
            what=what,
            max_bytes=limits.MAX_OCSP_RESPONSE_BYTES,
            headers=_headers(self.api_key, {"Content-Type": OCSP_REQUEST_TYPE}),
            content=ocsp_request_for_key(key, nonce),
        )
        if status != 200:
            raise _http_error(code, what, self.url, status, retry_after)
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError as exc:
            raise FetchError(code, f"{what}: body is not a DER OCSPResponse", url=self.url, status=200) from exc
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise FetchError(
                code, f"{what}: responder answered {response.response_status.name}", url=self.url, status=200
            )
        try:
            answers = list(response.responses)
            echoed = _nonce(response.extensions)
        except ValueError as exc:
            raise FetchError(code, f"{what}: response does not parse", url=self.url, status=200) from exc
        if (
            len(answers) != 1
            or _key(answers[0].issuer_name_hash, answers[0].issuer_key_hash, answers[0].serial_number)
            != _key(name_hash, key_hash, serial)
            or not isinstance(answers[0].hash_algorithm, hashes.SHA384)
        ):
            raise FetchError(code, f"{what}: response is not one answer for this CertID", url=self.url, status=200)
        if echoed is not None and echoed != nonce:
            raise FetchError(code, f"{what}: response echoes another nonce", url=self.url, status=200)
        return body


def _nonce(extensions: x509.Extensions) -> bytes | None:
    try:
        return extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def ocsp_response_key(der: bytes) -> str | None:
    """The :func:`cert_id_key` a DER OCSPResponse answers for (its one single response, SHA-384 CertID); None when
    it is not such a response. Nothing is verified."""
    try:
        response = ocsp.load_der_ocsp_response(der)
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        answers = list(response.responses)
        if len(answers) != 1 or not isinstance(answers[0].hash_algorithm, hashes.SHA384):
            return None
        return _key(answers[0].issuer_name_hash, answers[0].issuer_key_hash, answers[0].serial_number)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------------------
# A RIM's signing certificates (to ask for their status; nothing trusted)


def rim_signing_certificates(xml: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates a RIM embeds in ``ds:Signature/ds:KeyInfo/ds:X509Data`` (L4 signer first, root last),
    parsed without trusting any: the RIM's signature and chain are verified at decision time
    (:func:`verifier.trust.nvidia_rim.verify_rim`). Parsed as the verifier parses RIMs (:func:`~verifier.trust.
    nvidia_rim.parse_rim_document`: no DTD, entity, processing instruction or network). Raises
    ``nvidia.rim.too_large`` over :data:`~verifier.limits.MAX_NVIDIA_RIM_BYTES`, ``nvidia.rim.malformed`` for
    anything that is not such a document with 2 to :data:`~verifier.limits.MAX_NVIDIA_RIM_CERTS` certificates."""
    if len(xml) > limits.MAX_NVIDIA_RIM_BYTES:
        raise error_for(
            Code.NVIDIA_RIM_TOO_LARGE,
            "RIM larger than the limit",
            expected=limits.MAX_NVIDIA_RIM_BYTES,
            actual=len(xml),
        )
    root = parse_rim_document(xml)
    signatures = _RIM_SIGNATURES(root)
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], etree._Element):
        raise error_for(Code.NVIDIA_RIM_MALFORMED, "RIM has not exactly one ds:Signature under its root")
    nodes = _RIM_CERTS(signatures[0])
    if not isinstance(nodes, list) or not 2 <= len(nodes) <= limits.MAX_NVIDIA_RIM_CERTS:
        count = len(nodes) if isinstance(nodes, list) else None
        raise error_for(Code.NVIDIA_RIM_MALFORMED, "RIM does not embed its signing chain", actual=count)
    certificates = []
    for node in nodes:
        text = (node.text or "") if isinstance(node, etree._Element) and len(node) == 0 else ""
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
            certificates.append(x509.load_der_x509_certificate(der))
        except (binascii.Error, ValueError) as exc:
            raise error_for(Code.NVIDIA_RIM_MALFORMED, "RIM embeds a certificate that does not parse") from exc
    return tuple(certificates)


def rim_chain_pairs(certificates: Sequence[x509.Certificate]) -> tuple[tuple[x509.Certificate, x509.Certificate], ...]:
    """(certificate, issuer) for each link of a RIM's embedded chain: (L4, L3), (L3, L2), (L2, root)."""
    return tuple(itertools.pairwise(certificates))
