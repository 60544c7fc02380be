"""What the enclave SDK raises, grouped by what the caller can do about it.

* :class:`Rejected`: Keyward said no, with stable reason codes. Retrying the same thing will not help.

  * :class:`AttestationRejected`: the decision was ``rejected`` (``reasons`` as the API returns them).
  * :class:`RequestRefused`: the API refused the request itself (bad licence, unknown model, weak key): HTTP
    status plus the server's one ``{"error": {"code", "message"}}``.

* :class:`TransportError`: the server could not be reached, answered 5xx without a reason code, or answered
  something that is not the documented API. :class:`DecisionTimeout` (still pending at the deadline) is one.
* :class:`ProviderError`: the evidence provider (configfs-tsm, the SKR sidecar) failed to produce evidence;
  :class:`ProviderUnavailable` (not on this machine) and :class:`ProviderOptionRefused` (an option that cannot
  work here) are kinds of it.
* :class:`UnwrapFailed`: the wrapped key does not open with the enclave key.

Every class has a stable ``code`` (``client.*``); server reason codes travel in ``codes``. Messages never carry
secrets (licence, private key, DEK).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """One reason the server gave: a stable code and a message for people."""

    code: str
    message: str


class ClientError(Exception):
    """Base of every error the enclave SDK raises on purpose."""

    code: ClassVar[str] = "client.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Rejected(ClientError):
    """Keyward decided against the request; ``codes`` says why."""

    code = "client.rejected"

    def __init__(self, message: str, codes: list[str]) -> None:
        super().__init__(message)
        self.codes = codes


class AttestationRejected(Rejected):
    """The attestation (or renewal) was decided ``rejected``."""

    code = "client.attestation_rejected"

    def __init__(self, attestation_id: str, reasons: tuple[ReasonInfo, ...]) -> None:
        listed = ", ".join(r.code for r in reasons) or "no reason given"
        super().__init__(f"attestation {attestation_id} rejected: {listed}", [r.code for r in reasons])
        self.attestation_id = attestation_id
        self.reasons = reasons


class RequestRefused(Rejected):
    """The API refused the request with a structured error (``status``, ``reason``)."""

    code = "client.request_refused"

    def __init__(self, status: int, reason: ReasonInfo) -> None:
        super().__init__(f"HTTP {status}: {reason.code}: {reason.message}", [reason.code])
        self.status = status
        self.reason = reason


class TransportError(ClientError):
    """No usable answer from the server: network failure, 5xx, or a response outside the API's shape."""

    code = "client.transport"


class DecisionTimeout(TransportError):
    """The attestation was still pending when the caller's deadline passed (it may still be decided later)."""

    code = "client.decision_timeout"

    def __init__(self, attestation_id: str, waited: float) -> None:
        super().__init__(f"attestation {attestation_id} still pending after {waited:.1f}s")
        self.attestation_id = attestation_id


class ProviderError(ClientError):
    """The evidence provider could not produce evidence (``provider`` names it)."""

    code = "client.provider"

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class ProviderUnavailable(ProviderError):
    """The provider does not exist on this machine (no configfs-tsm, no TSM driver, no sidecar listening)."""

    code = "client.provider.unavailable"


class ProviderOptionRefused(ProviderError):
    """An option the provider was given cannot work on this machine (a privilege level below the guest's VMPL
    floor, a privilege level on TDX); nothing was asked of the hardware with it."""

    code = "client.provider.option_refused"


class UnwrapFailed(ClientError):
    """The wrapped key does not open with the enclave's private key."""

    code = "client.unwrap_failed"
