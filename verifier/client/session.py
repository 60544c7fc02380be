"""One enclave's life with Keyward: attest once, keep the lease alive, give the seat back on shutdown.

::

    with KeywardClient(url, licence) as client, EnclaveSession(client, ConfigfsTsmProvider(), model="llm",
                                                               deployment="eu-1") as session:
        model = load_encrypted_model(path, session.dek)
        renewer = threading.Thread(target=session.keep_alive, daemon=True)
        renewer.start()
        serve(model)            # until shutdown
    # leaving the block stops the renewals and releases the lease

:meth:`EnclaveSession.keep_alive` renews at each lease's ``renew_after`` with a fresh nonce and fresh evidence from
the same key (never sooner than ``min_interval`` after the last lease, whatever the clocks say). A transport or
provider failure is retried with back-off until the lease expires; a rejection (the lease was revoked, the licence
ended, the evidence no longer passes) is raised at once: the runtime must stop using the key. The clock and the
sleep are injected, so the loop is tested without waiting. A renewal thread that dies with an exception should stop
the model runtime (wrap ``keep_alive`` accordingly).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from verifier.client.api import KeywardClient
from verifier.client.errors import ClientError, ProviderError, TransportError
from verifier.client.keys import EnclaveKeyPair
from verifier.client.models import Lease
from verifier.client.providers.base import EvidenceProvider

Clock = Callable[[], datetime]
#: Wait up to the given seconds; return True when asked to stop (``threading.Event.wait`` has this shape).
Sleep = Callable[[float], bool]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EnclaveSession:
    """Holds the enclave key, the evidence provider and the current lease for one model deployment."""

    def __init__(
        self,
        client: KeywardClient,
        provider: EvidenceProvider,
        *,
        model: str,
        deployment: str,
        model_version: str | None = None,
        key: EnclaveKeyPair | None = None,
        wait: float = 10.0,
        deadline: float = 60.0,
        clock: Clock = _utc_now,
        max_backoff: float = 30.0,
        min_interval: float = 5.0,
    ) -> None:
        self.client, self.provider = client, provider
        self.model, self.deployment, self.model_version = model, deployment, model_version
        self.key = key or EnclaveKeyPair.generate()
        self._wait, self._deadline = wait, deadline
        self._clock, self._max_backoff, self._min_interval = clock, max_backoff, min_interval
        self._stop = threading.Event()
        self._obtained_at: datetime | None = None
        self.lease: Lease | None = None

    def __enter__(self) -> EnclaveSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Lease:
        """Attest and hold the lease (raises AttestationRejected with the reason codes)."""
        self.lease = self.client.attest(
            model=self.model,
            deployment=self.deployment,
            provider=self.provider,
            key=self.key,
            model_version=self.model_version,
            wait=self._wait,
            deadline=self._deadline,
        )
        self._obtained_at = self._clock()
        return self.lease

    @property
    def dek(self) -> bytes:
        """The model DEK from the current lease (opened inside the TEE; never log it)."""
        return self._current().unwrap()

    def renew(self) -> Lease:
        """Renew now: a fresh nonce and fresh evidence from the same key; the same lease, a new expiry."""
        self.lease = self.client.renew(self._current(), self.provider, wait=self._wait, deadline=self._deadline)
        self._obtained_at = self._clock()
        return self.lease

    def seconds_until_renewal(self) -> float:
        """Until ``renew_after``, but at least ``min_interval`` after the lease was obtained: a clock ahead of the
        server's (or a development server on simulated time) must not turn the loop into a tight one."""
        now = self._clock()
        until = (self._current().renew_after - now).total_seconds()
        if self._obtained_at is not None:
            until = max(until, self._min_interval - (now - self._obtained_at).total_seconds())
        return max(0.0, until)

    def keep_alive(
        self,
        sleep: Sleep | None = None,
        *,
        on_renewed: Callable[[Lease], None] | None = None,
        max_renewals: int | None = None,
    ) -> int:
        """Renew at every ``renew_after`` until :meth:`stop` (or ``max_renewals``); returns the renewals done.

        Raises the last TransportError / ProviderError if the lease expires while retrying, and any Rejected at
        once.
        """
        wait = sleep or self._stop.wait
        done = 0
        while max_renewals is None or done < max_renewals:
            if self._stop.is_set() or wait(self.seconds_until_renewal()):
                break
            if not self._renew_with_retry(wait):
                break
            done += 1
            if on_renewed is not None:
                on_renewed(self._current())
        return done

    def stop(self) -> None:
        """Ask :meth:`keep_alive` to return (from any thread)."""
        self._stop.set()

    def close(self) -> None:
        """Stop renewing and release the lease (the seat is free again)."""
        self.stop()
        if self.lease is not None:
            lease, self.lease = self.lease, None
            self.client.release(lease)

    def _renew_with_retry(self, wait: Sleep) -> bool:
        backoff = 1.0
        while True:
            try:
                self.renew()
                return True
            except (TransportError, ProviderError):
                left = (self._current().expires_at - self._clock()).total_seconds()
                if left <= 0:
                    raise
                if wait(min(backoff, left)):
                    return False
                backoff = min(backoff * 2, self._max_backoff)

    def _current(self) -> Lease:
        if self.lease is None:
            raise ClientError("no lease: call start() first")
        return self.lease
