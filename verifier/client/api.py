"""The enclave's HTTP client for Keyward: challenge, attest, wait, renew, release (README "The service").

:class:`KeywardClient` runs the enclave flow with an :class:`~verifier.client.providers.EvidenceProvider`:

1. ``POST /v1/challenges`` -> a single-use nonce.
2. Bind the nonce and the enclave key (:class:`~verifier.client.providers.Binding`); the provider collects evidence.
3. ``POST /v1/attestations`` (or ``POST /v1/leases/{id}/renew``) with ``Prefer: wait=N``: 200 with the decision, or
   202 pending.
4. While pending, ``GET`` the status URL with a growing interval until the caller's deadline.
5. ``accepted`` -> a :class:`Lease` (``lease.unwrap()`` opens the DEK inside the TEE); ``rejected`` ->
   :class:`~verifier.client.errors.AttestationRejected` with the reason codes.
6. ``DELETE /v1/leases/{id}`` gives the seat back.

Any ``httpx.Client`` can carry the requests (tests inject FastAPI's ``TestClient``); the licence goes in each
request's ``Authorization`` header, never into the shared client. Time is injected (``monotonic``, ``sleep``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from verifier.client.errors import DecisionTimeout, ReasonInfo, RequestRefused, TransportError
from verifier.client.keys import EnclaveKeyPair
from verifier.client.models import Challenge, ChallengeOut, Decision, ErrorOut, Lease
from verifier.client.providers.base import Binding, EvidenceProvider

Progress = Callable[[str], None]
M = TypeVar("M", bound=BaseModel)
#: Times a request that changes nothing is tried again while the server answers 503 service.unavailable.
UNAVAILABLE_RETRIES: Final = 3


class KeywardClient:
    """Talks to one Keyward server with one licence key. Use as a context manager to close its HTTP client.

    Args:
        base_url: the server, e.g. ``https://keyward.example`` (relative status URLs are joined to it).
        licence: the enclave licence key; sent as a bearer token, never logged or put in an error.
        http: an ``httpx.Client`` to use (closed by its owner, not here); default: a new one.
        timeout: seconds per request; a long-poll (``Prefer: wait=N``) request gets ``timeout + N`` when the
            HTTP client's own read timeout is shorter.
        poll_interval, max_poll_interval: the first and the largest pause between status polls (doubling).
        monotonic, sleep: the clock and the pause used while polling (tests inject fakes).
        progress: called with a short line at each step (the CLI prints them).
    """

    def __init__(
        self,
        base_url: str,
        licence: str,
        *,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        poll_interval: float = 0.25,
        max_poll_interval: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        progress: Progress | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {licence}"}
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._poll = (poll_interval, max_poll_interval)
        self._monotonic, self._sleep = monotonic, sleep
        self._progress = progress or (lambda _: None)

    def __enter__(self) -> KeywardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- the flow -----------------------------------------------------------------------------------------------

    def challenge(self) -> Challenge:
        out = _parse(ChallengeOut, self._request("POST", "/v1/challenges", retry_unavailable=True))
        try:
            nonce = base64.urlsafe_b64decode(out.nonce + "=" * (-len(out.nonce) % 4))
        except ValueError as e:
            raise TransportError("the challenge nonce is not base64url") from e
        return Challenge(nonce, out.nonce, out.expires_at)

    def attest(
        self,
        *,
        model: str,
        deployment: str,
        provider: EvidenceProvider,
        key: EnclaveKeyPair | None = None,
        model_version: str | None = None,
        wait: float = 10.0,
        deadline: float = 60.0,
    ) -> Lease:
        """Attest with fresh evidence and return the lease; raises AttestationRejected with the reason codes.

        ``key``: the enclave key (default: a new P-384 key, kept in the lease). ``wait``: seconds the server may
        hold the request for the decision (``Prefer: wait``). ``deadline``: seconds from this call until
        DecisionTimeout if the decision is still pending.
        """
        body: dict[str, Any] = {"model": model, "deployment": deployment}
        if model_version is not None:
            body["model_version"] = model_version
        return self._submit("/v1/attestations", body, key or EnclaveKeyPair.generate(), provider, wait, deadline)

    def renew(
        self,
        lease: Lease | str,
        provider: EvidenceProvider,
        *,
        key: EnclaveKeyPair | None = None,
        wait: float = 10.0,
        deadline: float = 60.0,
    ) -> Lease:
        """Extend a lease with a fresh nonce and fresh evidence from the same enclave key (``lease.key``, or
        ``key`` when only the lease id is known)."""
        lease_id, key = (lease.id, key or lease.key) if isinstance(lease, Lease) else (lease, key)
        if key is None:
            raise ValueError("renewing by lease id needs the lease's enclave key")
        return self._submit(f"/v1/leases/{lease_id}/renew", {}, key, provider, wait, deadline)

    def release(self, lease: Lease | str) -> None:
        """Give the seat back (idempotent on the server for an already ended lease)."""
        lease_id = lease.id if isinstance(lease, Lease) else lease
        self._request("DELETE", f"/v1/leases/{lease_id}")
        self._progress(f"released lease {lease_id}")

    def decision(self, attestation_id: str) -> Decision:
        return _parse(Decision, self._request("GET", f"/v1/attestations/{attestation_id}"))

    def jwks(self) -> dict[str, Any]:
        """The public keys that sign result tokens (for :func:`verifier.keywrap.ear.verify_ear`)."""
        doc = self._request("GET", "/.well-known/jwks.json", auth=False).json()
        if not isinstance(doc, dict):
            raise TransportError("the JWKS is not a JSON object")
        return doc

    # -- internals ------------------------------------------------------------------------------------------------

    def _submit(
        self,
        path: str,
        body: dict[str, Any],
        key: EnclaveKeyPair,
        provider: EvidenceProvider,
        wait: float,
        deadline: float,
    ) -> Lease:
        started = self._monotonic()
        challenge = self.challenge()
        self._progress("challenge received")
        binding = Binding(challenge.nonce, key.public_jwk, key.report_data(challenge.nonce))
        self._progress(f"collecting evidence with {provider.name}")
        evidence = provider.collect(binding)
        body = {**body, "nonce": challenge.nonce_b64, "enclave_key": key.public_jwk, "evidence": evidence}
        prefer = {"Prefer": f"wait={wait:g}"} if wait > 0 else {}
        r = self._request("POST", path, json=body, headers=prefer, long_poll=max(wait, 0))
        decision = _parse(Decision, r)
        self._progress(f"submitted attestation {decision.id} ({decision.status})")
        decision = self._await(decision, started, deadline)
        return decision.to_lease(key)

    def _await(self, decision: Decision, started: float, deadline: float) -> Decision:
        interval, cap = self._poll
        while decision.status == "pending":
            remaining = started + deadline - self._monotonic()
            if remaining <= 0:
                raise DecisionTimeout(decision.id, deadline - remaining)
            self._sleep(min(interval, remaining))
            interval = min(interval * 2, cap)
            decision = _parse(Decision, self._request("GET", decision.status_url))
        return decision

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        long_poll: float = 0.0,
        auth: bool = True,
        retry_unavailable: bool | None = None,
    ) -> httpx.Response:
        """One API call. ``retry_unavailable`` (default: GET only, requests that change nothing): a 503
        ``service.unavailable`` (the server's database is briefly unreachable) is tried again after its
        Retry-After (at most 5 s), at most :data:`UNAVAILABLE_RETRIES` times. Submissions are never repeated."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        all_headers = {**(self._auth if auth else {}), **(headers or {})}
        # The HTTP client's own timeout, unless it is too short for a request the server may hold ``long_poll`` s.
        needed, current = self._timeout + long_poll, self._http.timeout.read
        timeout = needed if long_poll and current is not None and current < needed else httpx.USE_CLIENT_DEFAULT
        retries = UNAVAILABLE_RETRIES if (method == "GET" if retry_unavailable is None else retry_unavailable) else 0
        for attempt in range(retries + 1):
            try:
                r = self._http.request(method, url, json=json, headers=all_headers, timeout=timeout)
            except httpx.HTTPError as e:
                raise TransportError(f"{method} {path} failed: {type(e).__name__}: {e}") from e
            if attempt == retries or not _unavailable(r):
                break
            self._sleep(_retry_after(r))
        if r.is_success:
            return r
        refusal = _refusal(r)
        if refusal is not None:
            raise refusal
        raise TransportError(f"{method} {path} answered HTTP {r.status_code}")


def _unavailable(r: httpx.Response) -> bool:
    if r.status_code != 503:
        return False
    try:
        return ErrorOut.model_validate_json(r.content).error.code == "service.unavailable"
    except ValidationError:
        return False


def _retry_after(r: httpx.Response) -> float:
    try:
        return min(max(float(r.headers.get("Retry-After", "1")), 0.0), 5.0)
    except ValueError:
        return 1.0


def _refusal(r: httpx.Response) -> RequestRefused | None:
    """A structured ``{"error": {"code", "message"}}`` answer is a refusal (4xx, or 5xx with a stable code)."""
    try:
        err = ErrorOut.model_validate_json(r.content).error
    except ValidationError:
        if r.status_code == 422:  # FastAPI's request validation: our request does not match the API
            return RequestRefused(422, ReasonInfo("request.invalid", r.text[:300]))
        return None
    if r.status_code >= 500 and err.code == "internal.error":
        return None
    return RequestRefused(r.status_code, ReasonInfo(err.code, err.message))


def _parse(model: type[M], r: httpx.Response) -> M:
    try:
        return model.model_validate_json(r.content)
    except ValidationError as e:
        raise TransportError(f"unexpected response from {r.request.url.path}: {e.error_count()} problem(s)") from e
