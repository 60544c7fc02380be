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
transport: the server chains it to its pinned ARK) and the container group's UVM endorsement (base64 COSE_Sign1,
as CCF and the sidecar pass it) as ``uvm_endorsement``, which the server verifies to the pinned Microsoft root.

Not on SEV-SNP hardware the sidecar answers with a *fake* report; the server rejects it (no valid signature).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx

from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.providers.base import Binding, EvidenceItem, b64
from verifier.collateral.amd_files import leaf_from_certificates
from verifier.errors import KeywardError
from verifier.evidence.snp import parse_snp_report

NAME: Final = "aci-skr"
DEFAULT_URL: Final = "http://localhost:8080"
Endpoint = Literal["raw", "combined"]


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
    http: httpx.Client | None = field(default=None, repr=False)
    name: str = NAME

    def collect(self, binding: Binding) -> list[EvidenceItem]:
        runtime = skr_runtime_data(binding)
        doc = self._post(f"/attest/{self.endpoint}", {"runtime_data": b64(runtime)})
        report = self._report(doc)
        try:
            carried = parse_snp_report(report).report_data
        except KeywardError as e:
            raise ProviderError(self.name, f"the sidecar's report does not parse: {e.code.value}") from e
        if carried != skr_report_data(runtime):
            raise ProviderError(self.name, "the sidecar's report does not carry SHA-256 of the runtime data")
        item = {"type": "amd-sev-snp", "evidence": b64(report), "runtime_data": b64(runtime)}
        vcek = self._vcek(doc)
        if vcek is not None:
            item["vcek"] = b64(vcek)
        uvm = self._uvm_endorsement(doc)
        if uvm is not None:
            item["uvm_endorsement"] = b64(uvm)
        return [item]

    def _post(self, path: str, body: dict[str, str]) -> dict[str, Any]:
        url = self.url.rstrip("/") + path
        client = self.http or httpx.Client(timeout=self.timeout)
        try:
            r = client.post(url, json=body)
        except httpx.ConnectError as e:
            raise ProviderUnavailable(self.name, f"no SKR sidecar answers at {self.url}") from e
        except httpx.HTTPError as e:
            raise ProviderError(self.name, f"request to {url} failed: {type(e).__name__}") from e
        finally:
            if self.http is None:
                client.close()
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


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (the sidecar may write two after an error), or None."""
    try:
        doc, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
