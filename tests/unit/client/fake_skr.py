"""A local stand-in for the confidential ACI SKR sidecar's HTTP API (tests only), served by http.server in a thread.

It speaks the shape of ``internal/httpginendpoints`` in microsoft/confidential-sidecar-containers: ``POST
/attest/raw`` and ``POST /attest/combined`` take ``{"runtime_data": "<standard base64>"}``; REPORT_DATA is
SHA-256(runtime data) || 32 zeros; raw answers ``{"report": "<hex>"}``, combined ``{"evidence": "<base64>",
"endorsements": "<base64 of VCEK PEM + chain PEM>", "endorsed_tcb", "uvm_endorsements"}``; errors are
``{"error": "..."}`` with 400 / 403 / 500. Reports come from the simulated AMD PKI. ``override`` replaces the
answer for one test (status, raw body bytes); ``vcek_defect`` makes combined's VCEK the one the simulated PKI issues
with that defect (another TCB, another chip), as a sidecar holding a stale THIM VCEK would send.
``running_sidecar(listen_after=s)`` binds its port at once but listens only after ``s`` seconds (connections are
refused until then), as a sidecar still starting beside the workload.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from verifier.simulation.amd_options import Defect
from verifier.simulation.amd_pki import ReportOptions, default_amd_pki


@dataclass
class FakeSidecar:
    url: str = ""
    override: tuple[int, bytes] | None = None
    uvm_endorsements: str = ""  # base64 COSE_Sign1, as the sidecar reads it from the container group's reference-info
    vcek_defect: Defect | None = None
    requests: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            doc = json.loads(body)
            self.requests.append((path, doc))
            runtime = base64.b64decode(doc["runtime_data"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return 400, json.dumps({"error": "invalid request format"}).encode()
        if self.override is not None:
            return self.override
        report_data = hashlib.sha256(runtime).digest() + bytes(32)
        ev = default_amd_pki().build(ReportOptions(report_data=report_data))
        if path == "/attest/raw":
            return 200, json.dumps({"report": ev.report.hex()}).encode()
        if path == "/attest/combined":
            leaf_der = ev.leaf_der
            if self.vcek_defect is not None:
                leaf_der = default_amd_pki().build(ReportOptions(report_data=report_data), self.vcek_defect).leaf_der
            vcek_pem = ssl.DER_cert_to_PEM_cert(leaf_der)  # serial 0: cryptography would warn on load
            return 200, json.dumps(
                {
                    "endorsed_tcb": "0300000000000873",
                    "endorsements": base64.b64encode((vcek_pem + ev.chain_pem).encode()).decode(),
                    "evidence": base64.b64encode(ev.report).decode(),
                    "uvm_endorsements": self.uvm_endorsements,
                }
            ).encode()
        return 404, b"404 page not found"


@contextmanager
def running_sidecar(listen_after: float = 0.0) -> Iterator[FakeSidecar]:
    sidecar = FakeSidecar()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, payload = sidecar.answer(self.path, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.server_bind()  # the port is ours; until listen() the kernel refuses connections to it
    sidecar.url = f"http://127.0.0.1:{server.server_address[1]}"

    def serve() -> None:
        time.sleep(listen_after)
        server.server_activate()
        server.serve_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sidecar
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
