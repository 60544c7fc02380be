"""The API's documents as the SDK reads them (pydantic, so a response outside the API's shape is caught at the
edge), and what the SDK hands to callers: :class:`Challenge` and :class:`Lease`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel

from verifier.client.errors import AttestationRejected, ReasonInfo, TransportError
from verifier.client.keys import EnclaveKeyPair


class _ReasonOut(BaseModel):
    code: str
    message: str = ""


class _LeaseOut(BaseModel):
    id: str
    expires_at: AwareDatetime
    renew_after: AwareDatetime


class Decision(BaseModel):
    """One ``AttestationOut`` document as the API returns it."""

    id: str
    status: Literal["pending", "accepted", "rejected"]
    status_url: str
    lease: _LeaseOut | None = None
    wrapped_key: str | None = None
    result_token: str | None = None
    reasons: list[_ReasonOut] = []
    simulated: bool = False

    def to_lease(self, key: EnclaveKeyPair) -> Lease:
        """The lease of an accepted decision; a rejected one raises AttestationRejected with its reasons."""
        if self.status == "rejected":
            raise AttestationRejected(self.id, tuple(ReasonInfo(r.code, r.message) for r in self.reasons))
        if self.lease is None or not self.wrapped_key or not self.result_token:
            raise TransportError(f"attestation {self.id} is {self.status} without a lease and wrapped key")
        return Lease(
            id=self.lease.id,
            attestation_id=self.id,
            expires_at=self.lease.expires_at,
            renew_after=self.lease.renew_after,
            simulated=self.simulated,
            wrapped_key=self.wrapped_key,
            result_token=self.result_token,
            key=key,
        )


class ChallengeOut(BaseModel):
    nonce: str
    expires_at: AwareDatetime


class ErrorOut(BaseModel):
    error: _ReasonOut


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: bytes
    nonce_b64: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Lease:
    """A released model key: the lease, the DEK wrapped to ``key``, and the signed result token (EAR)."""

    id: str
    attestation_id: str
    expires_at: datetime
    renew_after: datetime
    simulated: bool
    wrapped_key: str = field(repr=False)
    result_token: str = field(repr=False)
    key: EnclaveKeyPair = field(repr=False)

    def unwrap(self) -> bytes:
        """The model DEK, opened with the enclave's private key."""
        return self.key.unwrap(self.wrapped_key)
