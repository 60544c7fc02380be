"""An in-memory Keyward enclave API behind ``httpx.MockTransport`` (tests only), on a clock the test controls.

It keeps the real server's contract where the SDK can see it: bearer licence, single-use nonces, the default
binding checked against :func:`verifier.keywrap.enclave.expected_report_data` (evidence from :class:`EchoProvider`
carries the REPORTDATA itself), the DEK wrapped with :func:`wrap_for_enclave`, leases with ``renew_after`` at 2/3
of the TTL, renewals only from the lease's key, ``{"error": {...}}`` bodies. ``outcome`` picks the next decision
(``accept``, ``reject`` or ``pending``: answer 202 and stay pending for ``pending_polls`` GETs, ``None``
for ever); ``faults`` are
answered (a status and body, or an exception raised) before any request is served.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from verifier.client.providers import Binding
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk, wrap_for_enclave

LICENCE = "kw_testkey_0123456789abcdef"
TTL = timedelta(seconds=900)


@dataclass
class FakeClock:
    now: datetime = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> bool:
        """Advance instead of waiting; never asks to stop (the ``Sleep`` shape of the session)."""
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        return False


class EchoProvider:
    """Evidence whose 'quote' is the REPORTDATA itself (the fake server checks it against the binding)."""

    name = "echo"

    def __init__(self, tamper: bool = False) -> None:
        self.tamper = tamper
        self.bindings: list[Binding] = []

    def collect(self, binding: Binding) -> list[dict[str, str]]:
        self.bindings.append(binding)
        data = bytes(64) if self.tamper else binding.report_data
        return [{"type": "intel-tdx", "evidence": base64.b64encode(data).decode()}]


@dataclass
class FakeKeyward:
    clock: FakeClock = field(default_factory=FakeClock)
    dek: bytes = field(default_factory=lambda: os.urandom(32))
    outcome: Literal["accept", "reject", "pending"] = "accept"
    pending_polls: int | None = 0  # None: never decided
    faults: list[tuple[int, bytes] | Exception] = field(default_factory=list)
    #: Faults for one kind of request only, keyed ``"METHOD /path"`` (a path prefix ending in ``/`` matches what
    #: follows it), answered before ``faults``.
    path_faults: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    nonces: set[bytes] = field(default_factory=set)
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    attestations: dict[str, dict[str, Any]] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for where, queued in self.path_faults.items():
            method, _, path = where.partition(" ")
            matches = request.url.path.startswith(path) if path.endswith("/") else request.url.path == path
            if queued and request.method == method and matches:
                status, content = queued.pop(0)
                return httpx.Response(status, content=content)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return httpx.Response(fault[0], content=fault[1])
        if request.headers.get("Authorization") != f"Bearer {LICENCE}" and "jwks" not in request.url.path:
            return _error(401, "auth.invalid", "unknown licence key")
        parts = request.url.path.strip("/").split("/")
        match request.method, parts:
            case "POST", ["v1", "challenges"]:
                nonce = os.urandom(32)
                self.nonces.add(nonce)
                return httpx.Response(200, json={"nonce": _b64url(nonce), "expires_at": self.clock().isoformat()})
            case "POST", ["v1", "attestations"]:
                return self._decide(json.loads(request.content), None)
            case "POST", ["v1", "leases", lease_id, "renew"]:
                if lease_id not in self.leases:
                    return _error(500, "lease.not_renewable", "no such lease for this licence")
                return self._decide(json.loads(request.content), lease_id)
            case "GET", ["v1", "attestations", att_id]:
                return self._poll(att_id)
            case "DELETE", ["v1", "leases", lease_id]:
                self.released.append(lease_id)
                return httpx.Response(204)
        return httpx.Response(404, json={"detail": "Not Found"})

    def _decide(self, body: dict[str, Any], lease_id: str | None) -> httpx.Response:
        nonce = base64.urlsafe_b64decode(body["nonce"] + "==")
        key = parse_enclave_jwk(body["enclave_key"])
        att_id = str(uuid.uuid4())
        reasons: list[dict[str, str]] = []
        if nonce not in self.nonces:
            reasons.append({"code": "challenge.invalid", "message": "unknown or used nonce"})
        self.nonces.discard(nonce)
        if base64.b64decode(body["evidence"][0]["evidence"]) != expected_report_data(nonce, key):
            reasons.append({"code": "intel.policy.report_data_mismatch", "message": "REPORTDATA is not the binding"})
        if self.outcome == "reject":
            reasons.append({"code": "intel.policy.td_debug", "message": "TD is in DEBUG mode"})
        lease = self.leases.get(lease_id or "")
        if lease is not None and (lease["revoked"] or lease["thumbprint"] != key.thumbprint):
            reasons.append({"code": "lease.not_renewable", "message": "the lease is not live"})
        doc: dict[str, Any] = {"id": att_id, "status": "rejected", "status_url": f"/v1/attestations/{att_id}"}
        if reasons:
            doc["reasons"] = reasons
        else:
            now = self.clock()
            lease = lease or {"id": str(uuid.uuid4()), "thumbprint": key.thumbprint, "revoked": False}
            lease.update(expires_at=(now + TTL).isoformat(), renew_after=(now + TTL * 2 / 3).isoformat())
            self.leases[lease["id"]] = lease
            doc |= {
                "status": "accepted",
                "lease": {k: lease[k] for k in ("id", "expires_at", "renew_after")},
                "wrapped_key": wrap_for_enclave(self.dek, key, kid=lease["id"]),
                "result_token": "header.claims.signature",
                "simulated": True,
            }
        self.attestations[att_id] = doc
        if self.outcome == "pending":
            return httpx.Response(202, json={"id": att_id, "status": "pending", "status_url": doc["status_url"]})
        return httpx.Response(200, json=doc)

    def _poll(self, att_id: str) -> httpx.Response:
        if att_id not in self.attestations:
            return _error(500, "attestation.not_found", "no such attestation for this licence")
        if self.pending_polls is None or self.pending_polls > 0:
            if self.pending_polls is not None:
                self.pending_polls -= 1
            url = f"/v1/attestations/{att_id}"
            return httpx.Response(200, json={"id": att_id, "status": "pending", "status_url": url})
        return httpx.Response(200, json=self.attestations[att_id])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "expected": None, "actual": None}})
