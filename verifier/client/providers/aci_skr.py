"""Evidence from the confidential ACI SKR sidecar (github.com/microsoft/confidential-sidecar-containers, ``cmd/skr``).

The sidecar serves HTTP on ``localhost:<Port>`` (default 8080) inside the container group
(``internal/httpginendpoints/httpginendpoints.go``, ``cmd/skr/README.md``):

* ``POST /attest/raw``  ``{"runtime_data": "<standard base64>"}`` -> 200 ``{"report": "<hex SNP report>"}``.
  The sidecar puts SHA-256(runtime data) in REPORT_DATA[0:32], zeros after (``attest.GenerateMAAReportData``).
* ``POST /attest/combined`` (same request) -> 200 ``{"evidence": "<base64 report>", "endorsements": "<base64 of
  the VCEK PEM + ASK/ARK PEM from THIM>", "endorsed_tcb", "uvm_endorsements"}``.
* Errors: 400 / 403 / 500 with ``{"error": "<message>"}`` (a failed report fetch may be followed by a second JSON
  object in the same body; only the first is read).

Keyward's SKR binding (README step 2, ``verifier.attestation.items.binding_for``): the runtime data is the JSON
``{"nonce": "<base64url nonce>", "keys": [<enclave public JWK>]}``; the evidence item carries its exact bytes as
``runtime_data`` and the server checks REPORT_DATA = SHA-256(runtime data) || 32 zero bytes. With ``/attest/raw``
the VCEK comes from the server's cache; ``/attest/combined`` also sends the THIM VCEK as ``vcek`` (untrusted
transport: the server chains it to its pinned ARK) when it fits the report, and the container group's UVM
endorsement (base64 COSE_Sign1, as CCF and the sidecar pass it) as ``uvm_endorsement``, which the server verifies to
the pinned Microsoft root.

The sidecar loads the THIM certificates once, at its start, so after a TCB update its VCEK may be older than the
report; a supplied ``vcek`` replaces the server's cache, and the server refuses a leaf whose TCB or hwID differs.
So the VCEK goes into the item only when the server's own binding check passes
(:func:`verifier.platforms.amd_snp.check_leaf_binding`: SPLs = REPORTED_TCB, hwID = CHIP_ID; and the kind that
SIGNING_KEY names); otherwise the server uses its cache.

Connection: the sidecar listens on the container group's loopback only (``cmd/skr/main.go``), which no proxy can
reach, so the client never takes proxy settings from the environment (``trust_env=False``, for every URL): an
``HTTP(S)_PROXY`` without ``NO_PROXY=localhost`` would otherwise send the request to the proxy. Containers in a
group start together, so until the sidecar has answered once, a refused connection is tried again for up to
``startup_wait`` seconds (backing off from 0.1 s to 1 s). Other connection failures, and a refusal after that, are
:class:`ProviderUnavailable` at once; the sidecar serves as soon as it listens (``SetServerReady`` precedes ``Run``).

Not on SEV-SNP hardware the sidecar answers with a *fake* report (version 1), which does not parse here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx

from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.providers.base import Binding, EvidenceItem, b64
from verifier.collateral.amd_files import leaf_from_certificates
from verifier.errors import KeywardError
from verifier.evidence.snp import SnpReport, decode_tcb, parse_snp_report, product_from_cpuid
from verifier.platforms.amd_snp import check_leaf_binding
from verifier.trust.amd_certs import load_leaf, parse_amd_extensions

NAME: Final = "aci-skr"
DEFAULT_URL: Final = "http://localhost:8080"
Endpoint = Literal["raw", "combined"]
#: Back-off between refused connections while the sidecar starts: from the first to the last, doubling.
STARTUP_BACKOFF: Final = (0.1, 1.0)


def skr_runtime_data(binding: Binding) -> bytes:
    """The exact runtime-data bytes naming this nonce and this enclave key."""
    doc = {"nonce": binding.nonce_b64url, "keys": [dict(binding.public_jwk)]}
    return json.dumps(doc, separators=(",", ":")).encode()


def skr_report_data(runtime_data: bytes) -> bytes:
    """REPORT_DATA as the sidecar sets it: SHA-256(runtime data) followed by 32 zero bytes."""
    return hashlib.sha256(runtime_data).digest() + bytes(32)


@dataclass
class AciSkrProvider:
    """Ask the SKR sidecar for an SEV-SNP report whose REPORT_DATA hashes Keyward's runtime data."""

    url: str = DEFAULT_URL
    endpoint: Endpoint = "raw"
    timeout: float = 30.0
    startup_wait: float = 5.0
    http: httpx.Client | None = field(default=None, repr=False)
    name: str = NAME
    _answered: bool = field(default=False, init=False, repr=False)  # the sidecar has answered once

    def collect(self, binding: Binding) -> list[EvidenceItem]:
        runtime = skr_runtime_data(binding)
        doc = self._post(f"/attest/{self.endpoint}", {"runtime_data": b64(runtime)})
        report = self._report(doc)
        try:
            parsed = parse_snp_report(report)
        except KeywardError as e:
            raise ProviderError(self.name, f"the sidecar's report does not parse: {e.code.value}") from e
        if parsed.report_data != skr_report_data(runtime):
            raise ProviderError(self.name, "the sidecar's report does not carry SHA-256 of the runtime data")
        item = {"type": "amd-sev-snp", "evidence": b64(report), "runtime_data": b64(runtime)}
        vcek = self._vcek(doc)
        if vcek is not None and vcek_fits(parsed, vcek):
            item["vcek"] = b64(vcek)
        uvm = self._uvm_endorsement(doc)
        if uvm is not None:
            item["uvm_endorsement"] = b64(uvm)
        return [item]

    def _post(self, path: str, body: dict[str, str]) -> dict[str, Any]:
        url = self.url.rstrip("/") + path
        client = self.http or httpx.Client(timeout=self.timeout, trust_env=False)  # loopback: never a proxy
        try:
            r = self._post_waiting(client, url, body)
        except httpx.ConnectError as e:
            raise ProviderUnavailable(self.name, f"no SKR sidecar answers at {self.url}") from e
        except httpx.HTTPError as e:
            raise ProviderError(self.name, f"request to {url} failed: {type(e).__name__}") from e
        finally:
            if self.http is None:
                client.close()
        self._answered = True
        doc = _first_json_object(r.text)
        if r.status_code == 404:
            raise ProviderUnavailable(self.name, f"the sidecar has no {path} endpoint (HTTP 404)")
        if r.status_code != 200:
            message = str(doc.get("error") or "") if doc else r.text
            first = message.strip().splitlines()[0][:200] if message.strip() else "no message"
            raise ProviderError(self.name, f"{path} answered HTTP {r.status_code}: {first}")
        if doc is None:
            raise ProviderError(self.name, f"{path} answered 200 without a JSON object")
        return doc

    def _post_waiting(self, client: httpx.Client, url: str, body: dict[str, str]) -> httpx.Response:
        """POST, trying a refused connection again until ``startup_wait`` has passed (only before the sidecar
        has ever answered: it may still be starting)."""
        deadline = time.monotonic() + (0.0 if self._answered else self.startup_wait)
        delay, cap = STARTUP_BACKOFF
        while True:
            try:
                return client.post(url, json=body)
            except httpx.ConnectError as e:
                left = deadline - time.monotonic()
                if not _refused(e) or left <= 0:
                    raise
                time.sleep(min(delay, left))
                delay = min(delay * 2, cap)

    def _report(self, doc: dict[str, Any]) -> bytes:
        key, decode = ("report", bytes.fromhex) if self.endpoint == "raw" else ("evidence", base64.b64decode)
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            raise ProviderError(self.name, f"the sidecar's answer has no {key!r}")
        try:
            return decode(value)
        except (ValueError, binascii.Error) as e:
            raise ProviderError(self.name, f"the sidecar's {key!r} does not decode") from e

    def _vcek(self, doc: dict[str, Any]) -> bytes | None:
        value = doc.get("endorsements") if self.endpoint == "combined" else None
        if not isinstance(value, str) or not value:
            return None  # the server falls back to its VCEK cache
        try:
            return leaf_from_certificates(base64.b64decode(value))
        except (ValueError, binascii.Error, KeywardError) as e:
            raise ProviderError(self.name, "the sidecar's endorsements hold no VCEK") from e

    def _uvm_endorsement(self, doc: dict[str, Any]) -> bytes | None:
        value = doc.get("uvm_endorsements") if self.endpoint == "combined" else None
        if not isinstance(value, str) or not value:
            return None  # not in confidential ACI, or none published: the policy decides whether one is needed
        try:
            return base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error) as e:
            raise ProviderError(self.name, "the sidecar's uvm_endorsements is not base64") from e


def vcek_fits(report: SnpReport, vcek_der: bytes) -> bool:
    """Whether the server's leaf checks would accept this VCEK for ``report``: the kind SIGNING_KEY names, SPLs equal
    to REPORTED_TCB, hwID equal to CHIP_ID (:func:`verifier.platforms.amd_snp.check_leaf_binding`). A v2 report
    has no CPUID; Milan and Genoa lay out the TCB and hwID alike, so either stands for both."""
    try:
        ext = parse_amd_extensions(load_leaf(vcek_der))
        product = product_from_cpuid(report) or "milan"
        if ext.kind != report.signing_key_name:
            return False
        check_leaf_binding(report, product, ext, decode_tcb(report.reported_tcb, product))
    except KeywardError:
        return False
    return True


def _refused(e: httpx.ConnectError) -> bool:
    """Whether the connection was refused (nothing listens yet), as opposed to DNS, routing or TLS failures."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (the sidecar may write two after an error), or None."""
    try:
        doc, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
