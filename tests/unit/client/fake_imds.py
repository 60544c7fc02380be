"""A local stand-in for Azure's instance metadata service, speaking the two calls the azure-cvm provider makes
(azure-cvm.md §2): ``GET /metadata/THIM/amd/certification`` (refused without ``Metadata: true``, as IMDS refuses it)
-> ``{"vcekCert", "certificateChain", "tcbm", "cacheControl"}``, and ``POST /acc/tdquote`` ``{"report":
base64url(TDREPORT)}`` -> ``{"quote": base64url}``. Its answers come from the simulated paravisor's endorsements
(the simulated AMD and Intel PKIs); ``vcek_defect`` serves a VCEK the simulated PKI issues with that defect, as a
host whose TCB moved on since the report would; ``broken`` answers 200 with an empty JSON object."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from verifier.simulation.amd_options import Defect, ReportOptions
from verifier.simulation.amd_pki import default_amd_pki
from verifier.simulation.azure_paravisor import simulated_endorsements, simulated_td_quote


@dataclass
class FakeImds:
    vcek_defect: Defect | None = None
    broken: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)

    def thim(self) -> dict[str, str]:
        pki = default_amd_pki()
        amd = pki.build(ReportOptions(product="genoa"), self.vcek_defect) if self.vcek_defect else None
        leaf = amd.leaf_der if amd is not None else simulated_endorsements("snp", b"").vcek
        assert leaf is not None
        return {
            "vcekCert": ssl.DER_cert_to_PEM_cert(leaf),
            "certificateChain": "",
            "tcbm": "0300000000000873",
            "cacheControl": "86400",
        }

    def td_quote(self, report_b64: str) -> dict[str, str]:
        quote, _ = simulated_td_quote(base64.urlsafe_b64decode(report_b64 + "=" * (-len(report_b64) % 4)))
        return {"quote": base64.urlsafe_b64encode(quote).decode().rstrip("=")}


@contextmanager
def running_imds(imds: FakeImds) -> Iterator[str]:
    """Serve ``imds`` on 127.0.0.1; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            imds.requests.append(("GET", self.path))
            if self.path != "/metadata/THIM/amd/certification":
                self._answer(404, {"error": "not found"})
            elif self.headers.get("Metadata") != "true":
                self._answer(400, {"error": "Bad request. Required metadata header not specified"})
            else:
                self._answer(200, {} if imds.broken else imds.thim())

        def do_POST(self) -> None:
            imds.requests.append(("POST", self.path))
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if self.path != "/acc/tdquote":
                self._answer(404, {"error": "not found"})
            else:
                self._answer(200, {} if imds.broken else imds.td_quote(body["report"]))

        def _answer(self, status: int, doc: dict[str, str]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
