"""The enclave API: challenges, attestations (202 + status URL, or ``Prefer: wait=N``), lease release, JWKS.

Flow (see README): ``POST /v1/challenges`` -> nonce; ``POST /v1/attestations`` with the nonce, the enclave's public
JWK and the evidence (REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint)) -> the request is stored, committed, and
then sent to a worker; ``GET /v1/attestations/{id}`` -> pending | accepted (lease, wrapped key, result token) |
rejected (customer-safe reasons). HTTP only: every decision is made in verifier.attestation.flows by a worker.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from kombu.exceptions import KombuError
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from verifier import limits
from verifier.api.inputs import ApiInput
from verifier.attestation import leases
from verifier.attestation import repository as attestations
from verifier.attestation.challenges import check_nonce, issue_challenge
from verifier.attestation.requests import licensed_model_version, store_request
from verifier.broker.notify import supports_pubsub, waiter_for
from verifier.clock import Clock
from verifier.config import Settings
from verifier.db.models import Attestation, AttestationStatus, Lease
from verifier.db.session import read_session
from verifier.errors import Code, EvidenceMalformed, Fault, Forbidden, NotFound, with_fault
from verifier.keywrap.enclave import parse_enclave_jwk
from verifier.platforms.item import EvidenceItem
from verifier.wiring import keyring_for

from .deps import EnclaveDep, RequestTransaction, SessionDep, SettingsDep, TransactionDep

router = APIRouter(tags=["enclave"])
log = logging.getLogger(__name__)


class ChallengeOut(BaseModel):
    nonce: str = Field(description="base64url, no padding; single use")
    expires_at: datetime


class EvidenceIn(EvidenceItem, ApiInput):
    """One piece of evidence: the :class:`~verifier.platforms.item.EvidenceItem` the worker decides on, with the
    API's input checks. Every string is length-limited (verifier.limits; the whole body is too)."""


class RenewIn(ApiInput):
    """Fresh evidence bound to a fresh nonce and the enclave key (a renewal needs nothing more)."""

    nonce: str = Field(max_length=limits.MAX_NONCE_CHARS)
    enclave_key: dict[str, Any] = Field(
        description=f"public JWK: RSA 3072-{limits.MAX_ENCLAVE_RSA_BITS} bits or EC P-256/P-384",
        max_length=limits.MAX_JWK_MEMBERS,
    )
    evidence: list[EvidenceIn] = Field(min_length=1, max_length=limits.MAX_EVIDENCE_ITEMS)


class AttestationIn(RenewIn):
    model: str = Field(max_length=limits.MAX_NAME_CHARS)
    model_version: str | None = Field(None, max_length=limits.MAX_VERSION_CHARS)
    deployment: str = Field(min_length=1, max_length=limits.MAX_NAME_CHARS)


class LeaseOut(BaseModel):
    id: uuid.UUID
    expires_at: datetime
    renew_after: datetime


class ReasonOut(BaseModel):
    code: str
    fault: Fault = Field(description="whose fault: malformed evidence, a failed check, policy, entitlement, ...")
    message: str


class AttestationOut(BaseModel):
    id: uuid.UUID
    status: AttestationStatus
    status_url: str
    lease: LeaseOut | None = None
    wrapped_key: str | None = Field(None, description="compact JWE of the model key, for the enclave key only")
    result_token: str | None = Field(None, description="signed EAR attestation-result JWT")
    reasons: list[ReasonOut] = []
    simulated: bool = False


@router.post("/v1/challenges", response_model=ChallengeOut)
def create_challenge(credential: EnclaveDep, settings: SettingsDep) -> ChallengeOut:
    now = Clock.from_settings(settings).decision_time()
    c = issue_challenge(settings.challenge_secret.get_secret_value().encode(), now)
    return ChallengeOut(nonce=c.nonce_b64, expires_at=c.expires_at)


def _nonce(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise EvidenceMalformed(Code.ATTESTATION_EVIDENCE_MALFORMED, "nonce is not base64url") from e


@router.post("/v1/attestations", response_model=AttestationOut, status_code=202)
def submit_attestation(
    body: AttestationIn,
    credential: EnclaveDep,
    transaction: TransactionDep,
    settings: SettingsDep,
    response: Response,
    prefer: Annotated[str | None, Header()] = None,
) -> AttestationOut:
    """Store the request, commit, send it to a worker; answer 202 (or wait up to ``Prefer: wait=N`` seconds)."""
    if credential.entitlement_id is None:
        raise Forbidden(Code.AUTH_FORBIDDEN, "licence key is not bound to an entitlement")
    entitlement_id, version_id = licensed_model_version(
        transaction.session, credential.entitlement_id, body.model, body.model_version
    )
    clock, secret = Clock.from_settings(settings), settings.challenge_secret.get_secret_value().encode()
    att = _pending(body, "attest", entitlement_id, version_id, body.deployment, clock, secret)
    return _dispatch(transaction, att, prefer, settings, response)


def _pending(
    body: RenewIn,
    kind: str,
    entitlement_id: uuid.UUID,
    model_version_id: uuid.UUID,
    deployment_name: str,
    clock: Clock,
    secret: bytes,
    lease_id: uuid.UUID | None = None,
) -> Attestation:
    """The stored request, ``created_at`` on the wall clock (the worker places it on its decision clock). Malformed
    or weak enclave keys are refused here, before anything is queued (400), and so is a nonce this service did not
    issue or that has expired (403 ``challenge.invalid`` / ``challenge.expired``, checked without the database; the
    decision checks it again and consumes it)."""
    parse_enclave_jwk(body.enclave_key)
    nonce = _nonce(body.nonce)
    check_nonce(secret, nonce, clock.decision_time())
    return Attestation(
        entitlement_id=entitlement_id,
        model_version_id=model_version_id,
        deployment_name=deployment_name,
        kind=kind,
        lease_id=lease_id,
        platforms=sorted({e.type for e in body.evidence}),
        status=AttestationStatus.PENDING,
        nonce=nonce,
        enclave_jwk=body.enclave_key,
        evidence=[e.model_dump(exclude_none=True) for e in body.evidence],
        created_at=clock.wall_time(),
    )


def _dispatch(
    transaction: RequestTransaction, att: Attestation, prefer: str | None, settings: Settings, response: Response
) -> AttestationOut:
    """Commit the request, then (and only then) send it to a worker; optionally wait for the decision."""
    store_request(transaction.session, att)
    transaction.commit_now()  # the request is durable before any worker can see the task; the connection goes back
    from verifier.observability.logging import CELERY_REQUEST_ID_HEADER, current_request_id  # noqa: PLC0415

    # The request id travels in the message headers, so the worker's log lines for this decision carry it too.
    request_id = current_request_id()
    headers = {CELERY_REQUEST_ID_HEADER: request_id} if request_id else None
    wait = _wait_seconds(prefer, settings.max_wait_seconds)
    if wait <= 0:
        _send(att.id, headers)
        return _render(att, None)
    # Listen for the worker's "decided" notification before sending the task, so it cannot be missed; the database
    # stays the only source of truth (read after every wake-up, and polled in case a notification is lost).
    waiter = waiter_for(settings.broker_url, settings.broker_key_prefix)
    poll = 0.5 if supports_pubsub(settings.broker_url) else 0.02  # with notifications, polling is a fallback
    with waiter.waiting(str(att.id)) as decided:
        if not _send(att.id, headers):
            return _render(att, None)  # nothing will decide it before the requeue: do not wait
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left > 0:
                decided.wait(min(poll, left))
                decided.clear()
            current = _read(settings, att.id)
            if current is not None and current.status != AttestationStatus.PENDING:
                response.status_code = 200
                return current
            if left <= 0:
                return current or _render(att, None)


def _send(attestation_id: uuid.UUID, headers: dict[str, str] | None) -> bool:
    """Send the decide task; False if the broker cannot take it. The request is already stored, so it is not
    lost: the answer is 202 pending, and beat sends the task again once the request has been pending for
    ``pending_requeue_seconds`` (verifier/attestation/pending.py)."""
    from verifier.broker.app import send_decide  # noqa: PLC0415 - keeps Celery out of API import time

    try:
        send_decide(str(attestation_id), headers)
    except (KombuError, RedisError, OSError) as e:
        log.warning(
            "decide task not sent; the request stays pending until it is requeued",
            extra={"attestation_id": str(attestation_id), "error": type(e).__name__},
        )
        return False
    return True


@router.post("/v1/leases/{lease_id}/renew", response_model=AttestationOut, status_code=202)
def renew_lease(
    lease_id: uuid.UUID,
    body: RenewIn,
    credential: EnclaveDep,
    transaction: TransactionDep,
    settings: SettingsDep,
    response: Response,
    prefer: Annotated[str | None, Header()] = None,
) -> AttestationOut:
    """Fresh nonce + fresh evidence from the same enclave key extend a live lease (revoked leases never renew)."""
    lease = leases.lease_for_renewal(transaction.session, lease_id, entitlement_id=credential.entitlement_id)
    clock = Clock.from_settings(settings)
    version_id, name = lease.model_version_id, lease.deployment_name
    secret = settings.challenge_secret.get_secret_value().encode()
    att = _pending(body, "renew", lease.entitlement_id, version_id, name, clock, secret, lease_id=lease.lease_id)
    return _dispatch(transaction, att, prefer, settings, response)


@router.get("/v1/attestations/{attestation_id}", response_model=AttestationOut)
def get_attestation(attestation_id: uuid.UUID, credential: EnclaveDep, settings: SettingsDep) -> AttestationOut:
    with read_session(settings) as reader:
        found = attestations.attestation_with_lease(reader, attestation_id)
    if found is None or found[0].entitlement_id != credential.entitlement_id:
        raise NotFound(Code.ATTESTATION_NOT_FOUND, "no such attestation for this licence")
    return _render(*found)


@router.delete("/v1/leases/{lease_id}", status_code=204)
def release_lease(lease_id: uuid.UUID, credential: EnclaveDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Give a seat back (the enclave shuts down). Idempotent for an already ended lease. The lease ends on the
    decision clock, the clock it was issued and renewed on (in development, the simulation clock)."""
    leases.release_lease(
        session,
        lease_id,
        entitlement_id=credential.entitlement_id,
        actor=f"credential:{credential.key_id}",
        now=Clock.from_settings(settings).decision_time(),
    )
    return Response(status_code=204)


@router.get("/.well-known/jwks.json")
def jwks(settings: SettingsDep) -> dict[str, Any]:
    """Public keys that sign attestation-result tokens."""
    return keyring_for(settings).public_jwks()


_WAIT = re.compile(r"wait=(\d+(?:\.\d+)?)")


def _wait_seconds(prefer: str | None, cap: float) -> float:
    m = _WAIT.search(prefer or "")
    return min(float(m.group(1)), cap) if m else 0.0


def _read(settings: Settings, attestation_id: uuid.UUID) -> AttestationOut | None:
    """The answer as committed now, from a read session of its own."""
    with read_session(settings) as reader:
        found = attestations.attestation_with_lease(reader, attestation_id)
    return None if found is None else _render(*found)


def _render(att: Attestation, lease: Lease | None) -> AttestationOut:
    out = AttestationOut(id=att.id, status=att.status, status_url=f"/v1/attestations/{att.id}", simulated=att.simulated)
    if att.status == AttestationStatus.ACCEPTED and att.lease_id is not None:
        if lease is not None:
            out.lease = LeaseOut(id=lease.id, expires_at=lease.expires_at, renew_after=lease.renew_after)
        out.wrapped_key, out.result_token = att.wrapped_key, att.result_token
    if att.status == AttestationStatus.REJECTED and att.verdict:
        # Customer-safe: which check failed (code, its fault, message); expected/actual values stay for staff.
        out.reasons = [
            ReasonOut(code=r["code"], fault=Fault(with_fault(r)["fault"]), message=r["message"])
            for r in att.verdict.get("reasons", [])
        ]
    return out
