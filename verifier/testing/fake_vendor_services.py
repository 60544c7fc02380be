"""A real local HTTP server that answers like Intel PCS v4 / PCCS and AMD KDS, from SIMULATED evidence.

SIMULATION ONLY: it serves documents built by :mod:`verifier.simulation.intel_pki` and
:mod:`verifier.simulation.amd_pki`, never anything of Intel's or AMD's. It listens on ``127.0.0.1`` on a free port
(``http.server.ThreadingHTTPServer`` in a daemon thread) and speaks the vendors' API shapes:

* ``GET /{sgx,tdx}/certification/v4/tcb?fmspc=<hex12>`` → TCB Info JSON, header ``TCB-Info-Issuer-Chain``
* ``GET /{sgx,tdx}/certification/v4/qe/identity`` → QE Identity JSON, header ``SGX-Enclave-Identity-Issuer-Chain``
* ``GET /sgx/certification/v4/pckcrl?ca=platform|processor[&encoding=der|pem]`` → PCK CRL, header
  ``SGX-PCK-CRL-Issuer-Chain``
* ``GET /sgx/certification/v4/rootcacrl`` → hex text of the Root CA CRL (as PCCS); ``GET /IntelSGXRootCA.der`` → DER
* ``GET /vcek/v1/<Milan|Genoa|Turin>/<hwid>?[fmcSPL=&]blSPL=&teeSPL=&snpSPL=&ucodeSPL=`` → VCEK DER (the query
  must carry exactly the SPLs KDS wants, in decimal; anything else is 400 like KDS)
* ``GET /{vcek,vlek}/v1/<Milan|Genoa|Turin>/crl`` → the fake ARK's CRL of that chain (DER)
* ``GET /v1/rim/<id>`` → NVIDIA RIM service JSON ``{"id", "rim": base64(XML), "sha256"}``; an unknown id → 404
  ``{"message": "RIM_NOT_FOUND"}``; ``GET /v1/rim/ids`` → ``{"ids": [...]}``
* ``POST /`` with a DER ``OCSPRequest`` (``application/ocsp-request``) → the DER ``OCSPResponse`` registered for its
  CertID (``application/ocsp-response``); a CertID nobody registered → an unsigned ``unauthorized`` OCSPResponse
  (RFC 6960's answer for a certificate the responder does not serve), a body that is not one request →
  ``malformedRequest``. Register with ``add_nvidia_rim`` / ``add_nvidia_ocsp`` (test RIMs and responses, which may
  be real NVIDIA data: the server verifies nothing)

Unknown documents are 404. ``server.status_override = 429`` answers every request with that status (KDS/PCS
throttling); ``server.fail_next(503, count=2, retry_after="1")`` answers only the next ``count`` requests so (an
outage that ends). ``server.requests`` records each request path (with query) in order, ``server.ocsp_requests``
each OCSP request body (DER), ``server.authorizations`` each ``Authorization`` header (None when absent);
``server.reset()`` forgets everything. Usage::

    with FakeVendorServices() as server:
        server.add_intel(ev)
        server.add_amd(amd_ev)
        IntelPcsClient(server.base_url, httpx.Client(timeout=5))
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from verifier.collateral.nvidia_fetchers import RIM_NOT_FOUND
from verifier.evidence.snp import Product, decode_tcb, parse_snp_report
from verifier.simulation.amd_pki import AmdEvidence
from verifier.simulation.intel_pki import Evidence
from verifier.trust.ocsp import cert_id_key

_KDS_NAMES: Final = {"milan": "Milan", "genoa": "Genoa", "turin": "Turin"}


class _Document:
    __slots__ = ("body", "content_type", "headers")

    def __init__(self, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class FakeVendorServices:
    """See the module docstring. Thread-safe registration; start on construction, stop on ``close``/exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, tuple[tuple[str, str], ...]], _Document] = {}
        self._vceks: dict[tuple[str, str], tuple[dict[str, str], bytes]] = {}
        self._rims: dict[str, tuple[bytes, str | None]] = {}
        self._ocsp: dict[tuple[bytes, bytes, int], bytes] = {}
        self.requests: list[str] = []
        self.ocsp_requests: list[bytes] = []
        self.authorizations: list[str | None] = []
        self.status_override: int | None = None
        self._failures: list[tuple[int, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-vendor-services", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- registration --------------------------------------------------------------------------------------

    def _put(self, path: str, query: dict[str, str], doc: _Document) -> None:
        with self._lock:
            self._docs[(path, tuple(sorted(query.items())))] = doc

    def add_intel(self, ev: Evidence) -> None:
        """Serve ``ev``'s PCS responses: TCB Info for its TEE and FMSPC, QE Identity, its PCK CA's CRL, Root CRL."""
        pcs, tee = ev.pcs, ev.options.tee
        fmspc = ev.platform.fmspc.hex().upper()
        json_type = "application/json"
        self._put(
            f"/{tee}/certification/v4/tcb",
            {"fmspc": fmspc},
            _Document(pcs.tcb_info_body, json_type, {"TCB-Info-Issuer-Chain": pcs.tcb_info_issuer_chain}),
        )
        self._put(
            f"/{tee}/certification/v4/qe/identity",
            {},
            _Document(
                pcs.qe_identity_body, json_type, {"SGX-Enclave-Identity-Issuer-Chain": pcs.qe_identity_issuer_chain}
            ),
        )
        crl_headers = {"SGX-PCK-CRL-Issuer-Chain": pcs.pck_crl_issuer_chain}
        der_doc = _Document(pcs.pck_crl, "application/pkix-crl", crl_headers)
        pem = b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(pcs.pck_crl) + b"-----END X509 CRL-----\n"
        self._put("/sgx/certification/v4/pckcrl", {"ca": pcs.ca, "encoding": "der"}, der_doc)
        self._put(
            "/sgx/certification/v4/pckcrl",
            {"ca": pcs.ca, "encoding": "pem"},
            _Document(pem, "application/x-pem-file", crl_headers),
        )
        self._put("/sgx/certification/v4/pckcrl", {"ca": pcs.ca}, _Document(pem, "application/x-pem-file", crl_headers))
        # PCCS serves the hex text of the DER (despite its content type); Intel's CDP serves DER.
        self._put(
            "/sgx/certification/v4/rootcacrl", {}, _Document(pcs.root_ca_crl.hex().encode(), "application/pkix-crl")
        )
        self._put("/IntelSGXRootCA.der", {}, _Document(pcs.root_ca_crl, "application/pkix-crl"))

    def add_amd(self, ev: AmdEvidence) -> None:
        """Serve ``ev``'s leaf as the KDS VCEK for its product, CHIP_ID and REPORTED_TCB, and its CRL (when it has
        one) as the CRL of its chain."""
        report = parse_snp_report(ev.report)
        product = ev.options.product
        tcb = decode_tcb(report.reported_tcb, product)
        query = {
            "blSPL": str(tcb.bootloader),
            "teeSPL": str(tcb.tee),
            "snpSPL": str(tcb.snp),
            "ucodeSPL": str(tcb.microcode),
        }
        if product == "turin":
            query["fmcSPL"] = str(tcb.fmc)
            hwid = report.chip_id[:8].hex()
        else:
            hwid = report.chip_id.hex()
        with self._lock:
            self._vceks[(_KDS_NAMES[product], hwid)] = (query, ev.leaf_der)
        if ev.crl_der is not None:
            self.add_amd_crl(product, report.signing_key_name, ev.crl_der)

    def add_amd_crl(self, product: Product, chain: str, crl_der: bytes) -> None:
        """Serve ``crl_der`` at ``/{chain}/v1/<Product>/crl`` (``chain``: ``vcek`` or ``vlek``)."""
        self._put(f"/{chain}/v1/{_KDS_NAMES[product]}/crl", {}, _Document(crl_der, "application/pkix-crl"))

    def add_nvidia_rim(self, rim_id: str, xml: bytes, *, sha256: str | None = None) -> None:
        """Serve ``xml`` as the RIM ``rim_id``; the answer's ``sha256`` is the XML's unless given (a wrong one)."""
        with self._lock:
            self._rims[rim_id] = (xml, hashlib.sha256(xml).hexdigest() if sha256 is None else sha256)

    def add_nvidia_ocsp(
        self, key_or_cert: str | x509.Certificate, der: bytes, issuer: x509.Certificate | None = None
    ) -> None:
        """Answer OCSP requests for a CertID with ``der``: the CertID by its cache key (``cert_id_key``), or as the
        certificate and its ``issuer``."""
        if isinstance(key_or_cert, str):
            key = key_or_cert
        elif issuer is not None:
            key = cert_id_key(key_or_cert, issuer)
        else:
            raise ValueError("a certificate needs its issuer")
        _, name_hash, key_hash, serial = key.split(":")
        with self._lock:
            self._ocsp[(bytes.fromhex(name_hash), bytes.fromhex(key_hash), int(serial, 16))] = der

    def fail_next(self, status: int, count: int = 1, *, retry_after: str | None = None) -> None:
        """Answer the next ``count`` requests (any document) with ``status`` and, when given, ``Retry-After``
        (seconds), as PCS and KDS do while overloaded or down; then serve normally again."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def reset(self) -> None:
        """Forget every registered document, queued failure and recorded request (one server, many tests)."""
        with self._lock:
            self._docs.clear()
            self._vceks.clear()
            self._rims.clear()
            self._ocsp.clear()
            self._failures.clear()
            self.requests.clear()
            self.ocsp_requests.clear()
            self.authorizations.clear()
            self.status_override = None

    # -- serving -------------------------------------------------------------------------------------------

    def _answer(self, raw_path: str) -> tuple[int, _Document]:
        parts = urllib.parse.urlsplit(raw_path)
        query_list = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query = dict(query_list)
        not_found = _Document(b'{"error":"not found"}', "application/json")
        with self._lock:
            self.requests.append(raw_path)
            if self.status_override is not None:
                return self.status_override, _Document(b"Too Many Requests", "text/plain", {"Retry-After": "60"})
            if self._failures:
                status, retry_after = self._failures.pop(0)
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return status, _Document(HTTPStatus(status).phrase.encode(), "text/plain", headers)
            segs = parts.path.split("/")
            if len(segs) == 5 and segs[1] == "vcek" and segs[2] == "v1" and segs[4] != "crl":  # /vcek/v1/<P>/<hwid>
                entry = self._vceks.get((segs[3], segs[4].lower()))
                if entry is None:
                    return 404, not_found
                wanted, der = entry
                if len(query_list) != len(query) or set(query) != set(wanted):
                    return 400, _Document(b"bad SPL parameters", "text/plain")
                if query != wanted:
                    return 404, not_found
                return 200, _Document(der, "application/pkix-cert")
            if parts.path == "/v1/rim/ids":
                ids = json.dumps({"ids": sorted(self._rims)}).encode()
                return 200, _Document(ids, "application/json")
            if len(segs) == 4 and segs[1:3] == ["v1", "rim"]:
                return self._rim_answer(urllib.parse.unquote(segs[3]))
            if "fmspc" in query:
                query["fmspc"] = query["fmspc"].upper()  # PCS accepts either case
            doc = self._docs.get((parts.path, tuple(sorted(query.items()))))
        return (404, not_found) if doc is None else (200, doc)

    def _rim_answer(self, rim_id: str) -> tuple[int, _Document]:
        entry = self._rims.get(rim_id)
        if entry is None:
            return 404, _Document(json.dumps({"message": RIM_NOT_FOUND}).encode(), "application/json")
        xml, digest = entry
        answer = {"id": rim_id, "rim": base64.b64encode(xml).decode(), "sha256": digest}
        return 200, _Document(json.dumps(answer).encode(), "application/json")

    def _answer_post(self, raw_path: str, body: bytes, content_type: str | None) -> tuple[int, _Document]:
        """An OCSP request (NVIDIA's OCSP service answers at ``POST /``)."""
        response_type = "application/ocsp-response"
        with self._lock:
            self.requests.append(raw_path)
            self.ocsp_requests.append(body)
            if self.status_override is not None:
                return self.status_override, _Document(b"Too Many Requests", "text/plain", {"Retry-After": "60"})
            if self._failures:
                status, retry_after = self._failures.pop(0)
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return status, _Document(HTTPStatus(status).phrase.encode(), "text/plain", headers)
            if urllib.parse.urlsplit(raw_path).path != "/" or content_type != "application/ocsp-request":
                return 404, _Document(b'{"error":"not found"}', "application/json")
            try:
                request = ocsp.load_der_ocsp_request(body)
                cert_id = (request.issuer_name_hash, request.issuer_key_hash, request.serial_number)
            except ValueError:
                return 200, _Document(_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST), response_type)
            der = self._ocsp.get(cert_id)
        if der is None:
            return 200, _Document(_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED), response_type)
        return 200, _Document(der, response_type)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        services = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                services.authorizations.append(self.headers.get("Authorization"))
                self._send(*services._answer(self.path))

            def do_POST(self) -> None:
                services.authorizations.append(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20))
                self._send(*services._answer_post(self.path, body, self.headers.get("Content-Type")))

            def _send(self, status: int, doc: _Document) -> None:
                self.send_response(status)
                self.send_header("Content-Type", doc.content_type)
                self.send_header("Content-Length", str(len(doc.body)))
                self.send_header("Request-ID", "fake-" + str(len(services.requests)))
                for name, value in doc.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(doc.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    # -- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeVendorServices:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)
