"""The enclave API: challenges, attestations (202 + status URL, or ``Prefer: wait=N``), lease release, JWKS.

Flow (see README): ``POST /v1/challenges`` -> nonce; ``POST /v1/attestations`` with the nonce, the enclave's public
JWK and the evidence (REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint)) -> the request is stored, committed, and
then sent to a worker; ``GET /v1/attestations/{id}`` -> pending | accepted (lease, wrapped key, result token) |
rejected (customer-safe reasons). HTTP only: every decision is made in verifier.attestation.flows by a worker.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Header, Request, Response
from kombu.exceptions import KombuError
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from verifier import limits
from verifier.api.inputs import ApiInput
from verifier.attestation import leases
from verifier.attestation.answers import answer_of, status_url
from verifier.attestation.challenges import check_nonce, issue_challenge
from verifier.attestation.repository import AnswerRow, answer_row, store_request, store_request_on_loop
from verifier.attestation.requests import licensed_model_version
from verifier.auth.cache import CATALOG
from verifier.broker.notify import supports_pubsub, waiter_for
from verifier.broker.quota import RedisClients
from verifier.clock import Clock
from verifier.config import Settings
from verifier.db.models import AttestationStatus
from verifier.db.queries import clash_is_conflict
from verifier.db.session import DATABASE_UNAVAILABLE, LoopEngines, autocommit, read_session
from verifier.errors import Code, EvidenceMalformed, Fault, Forbidden, NotFound
from verifier.keywrap.enclave import parse_enclave_jwk
from verifier.platforms.item import EvidenceItem
from verifier.wiring import keyring_for

if TYPE_CHECKING:
    from verifier.broker.decide_message import DecideRoute

from .deps import EnclaveDep, SessionDep, SettingsDep, loop_engines, redis_clients

router = APIRouter(tags=["enclave"])
log = logging.getLogger(__name__)
_CLASH: Final = "the request clashes with data stored meanwhile"
#: Requests waiting for their decision in this process, by licence key id (read and written on the event loop only).
_waiting: Counter[str] = Counter()


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
async def create_challenge(credential: EnclaveDep, settings: SettingsDep) -> ChallengeOut:
    now = Clock.from_settings(settings).decision_time()
    c = issue_challenge(settings.challenge_secret.get_secret_value().encode(), now, holder=credential.key_id)
    return ChallengeOut(nonce=c.nonce_b64, expires_at=c.expires_at)


def _nonce(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise EvidenceMalformed(Code.ATTESTATION_EVIDENCE_MALFORMED, "nonce is not base64url") from e


@router.post("/v1/attestations", response_model=AttestationOut, status_code=202)
async def submit_attestation(
    body: AttestationIn,
    credential: EnclaveDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    prefer: Annotated[str | None, Header()] = None,
) -> AttestationOut:
    """Store the request, send it to a worker; answer 202 (or wait up to ``Prefer: wait=N`` seconds)."""
    if credential.entitlement_id is None:
        raise Forbidden(Code.AUTH_FORBIDDEN, "licence key is not bound to an entitlement")
    entitlement_id = credential.entitlement_id
    values = _pending(body, "attest", body.deployment, settings, credential.key_id)
    catalog_key = (settings.database_url, entitlement_id, body.model, body.model_version)
    generation: str | None = getattr(request.state, "generation", None)

    def locate() -> dict[str, Any]:
        """In the store's thread: the licensed model version, from the catalog cache or one read."""
        found = CATALOG.get(catalog_key, generation)
        if found is None:
            with read_session(settings) as reader:
                found = licensed_model_version(reader, entitlement_id, body.model, body.model_version)
            CATALOG.put(catalog_key, generation, found)
        return {"entitlement_id": found[0], "model_version_id": found[1]}

    cached = CATALOG.get(catalog_key, generation)
    located = None if cached is None else {"entitlement_id": cached[0], "model_version_id": cached[1]}
    sending = _Sending(settings, values, locate, located, redis_clients(request), loop_engines(request))
    return await _dispatch(sending, prefer, response, credential.key_id)


def _pending(body: RenewIn, kind: str, deployment_name: str, settings: Settings, key_id: str) -> dict[str, Any]:
    """The stored request's columns but where it belongs (entitlement, model version, lease), ``created_at`` on the
    wall clock (the worker places it on its decision clock). Malformed or weak enclave keys are refused here, before
    anything is stored (400), and so is a nonce this service did not issue to this licence key (``key_id``) or that
    has expired (403 ``challenge.invalid`` / ``challenge.expired``, checked without the database; the decision
    checks it again, with the key id stored beside it, and consumes it)."""
    clock = Clock.from_settings(settings)
    parse_enclave_jwk(body.enclave_key)
    nonce = _nonce(body.nonce)
    check_nonce(settings.challenge_secret.get_secret_value().encode(), nonce, clock.decision_time(), holder=key_id)
    return {
        "id": uuid.uuid4(),
        "deployment_name": deployment_name,
        "kind": kind,
        "lease_id": None,
        "platforms": sorted({e.type for e in body.evidence}),
        "status": AttestationStatus.PENDING,
        "nonce": nonce,
        "nonce_holder": key_id,
        "enclave_jwk": body.enclave_key,
        "evidence": [e.model_dump(exclude_none=True) for e in body.evidence],
        "created_at": clock.wall_time(),
        "simulated": False,
    }


async def _dispatch(
    sending: _Sending,
    prefer: str | None,
    response: Response,
    key_id: str,
) -> AttestationOut:
    """Store the request (one autocommit INSERT, in one threadpool hop), and only then send it to a worker; then
    optionally wait for the decision, on the event loop (no thread is held while waiting), unless the licence key
    already has ``licence_max_waiting`` requests waiting in this process. Once the request is stored and sent, the
    answer always carries its id: a database that fails while it waits makes it 202 pending, never a 503 (the
    client could not learn the id of a request that is then decided)."""
    settings = sending.settings
    pending = _pending_answer(sending.values["id"])
    wait = _wait_seconds(prefer, settings.max_wait_seconds)
    cap = settings.licence_max_waiting
    if wait <= 0 or (cap and _waiting[key_id] >= cap):
        await sending.store_and_send()
        return pending
    _waiting[key_id] += 1
    try:
        return await _wait_for_decision(settings, sending, wait, response)
    finally:
        _waiting[key_id] -= 1
        if not _waiting[key_id]:
            del _waiting[key_id]


async def _wait_for_decision(settings: Settings, sending: _Sending, wait: float, response: Response) -> AttestationOut:
    attestation_id: uuid.UUID = sending.values["id"]
    pending = _pending_answer(attestation_id)
    # Listen for the worker's "decided" announcement before sending the task, so it cannot be missed; the database
    # stays the source of truth (read when the announcement carries no answer, and polled in case one is lost).
    waiter = waiter_for(settings.broker_url, settings.broker_key_prefix)
    poll = 0.5 if supports_pubsub(settings.broker_url) else 0.02  # with announcements, polling is a fallback
    async with waiter.waiting(str(attestation_id)) as decided:
        if not await sending.store_and_send():
            return pending  # nothing will decide it before the requeue: do not wait
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(decided.event.wait(), min(poll, left))
                decided.event.clear()
            if decided.answer is not None:
                response.status_code = 200
                return AttestationOut.model_validate(decided.answer)
            try:
                current = await run_in_threadpool(_read, settings, attestation_id)
            except DATABASE_UNAVAILABLE as e:  # stored and sent already: answer with its id, never a 503
                log.warning(
                    "decision not read while waiting; answering pending",
                    extra={"attestation_id": str(attestation_id), "error": type(e).__name__},
                )
                current = None
            if current is not None and current.status != AttestationStatus.PENDING:
                response.status_code = 200
                return current
            if left <= 0:
                return current or pending


@dataclass(frozen=True, slots=True)
class _Sending:
    """A request to store and then send to a worker: where it belongs, ``located`` when that is known without the
    database (the catalog cache, a renewal's lease), else ``locate`` (called in the store's thread); the app's Redis
    clients and database engines for its event loop, None without its lifespan."""

    settings: Settings
    values: dict[str, Any]
    locate: Callable[[], dict[str, Any]]
    located: dict[str, Any] | None
    clients: RedisClients | None
    engines: LoopEngines | None

    async def store_and_send(self) -> bool:
        """The INSERT (its own transaction: durable before any worker can see the task), then the task; False if
        the broker could not take it. Both on this event loop where they can be, with no threadpool hop: the INSERT
        on the app's async engine when the request's place is known, the task onto its Redis list on the app's own
        client (:mod:`verifier.broker.decide_message`). Otherwise in the store's thread: the catalog read, the
        INSERT, and the task through Celery where the list cannot be used (no Redis broker, or a request outside
        the app's lifespan loop)."""
        from verifier.broker.decide_message import decide_route  # noqa: PLC0415 - keeps Celery out of API import time

        settings, headers = self.settings, _headers()
        route = decide_route(settings.broker_url, settings.broker_key_prefix)
        clients = self.clients if self.clients is not None and self.clients.for_this_loop() else None
        if route is None or clients is None:
            return await run_in_threadpool(self._store_then, _send, headers)
        engine = None
        if self.located is not None and self.engines is not None and self.engines.for_this_loop():
            engine = self.engines.autocommit(settings.database_url)
        if engine is not None and self.located is not None:
            self.values.update(self.located)
            async with engine.connect() as connection:
                with clash_is_conflict(_CLASH):
                    await store_request_on_loop(connection, self.values)
        else:
            await run_in_threadpool(self._store_then, None, headers)
        return await _push(clients, settings.broker_url, route, self.values["id"], headers)

    def _store_then(
        self, send: Callable[[uuid.UUID, dict[str, str] | None], bool] | None, headers: dict[str, str] | None
    ) -> bool:
        """In a threadpool thread: where the request belongs, the INSERT, then ``send`` (if given)."""
        self.values.update(self.located if self.located is not None else self.locate())
        with autocommit(self.settings) as connection, clash_is_conflict(_CLASH):
            store_request(connection, self.values)
        return send(self.values["id"], headers) if send is not None else True


def _headers() -> dict[str, str] | None:
    """The decide message's extra headers: the request id (read on the event loop, where the request's context is),
    so the worker's log lines for the decision carry it too."""
    from verifier.observability.logging import CELERY_REQUEST_ID_HEADER, current_request_id  # noqa: PLC0415

    request_id = current_request_id()
    return {CELERY_REQUEST_ID_HEADER: request_id} if request_id else None


def _send(attestation_id: uuid.UUID, headers: dict[str, str] | None) -> bool:
    """Send the decide task through Celery; False if the broker cannot take it. The request is already stored, so
    it is not lost: the answer is 202 pending, and beat sends the task again once the request has been pending for
    ``pending_requeue_seconds`` (verifier/attestation/pending.py)."""
    from verifier.broker.app import send_decide  # noqa: PLC0415 - keeps Celery out of API import time

    try:
        send_decide(str(attestation_id), headers)
    except (KombuError, RedisError, OSError) as e:
        _not_sent(attestation_id, e)
        return False
    return True


async def _push(
    clients: RedisClients,
    broker_url: str,
    route: DecideRoute,
    attestation_id: uuid.UUID,
    headers: dict[str, str] | None,
) -> bool:
    """:func:`_send` as one LPUSH of the message Celery would write, on the app's Redis client."""
    from verifier.broker.decide_message import decide_message  # noqa: PLC0415

    try:
        await clients.get(broker_url).lpush(route.key, decide_message(str(attestation_id), headers, route))
    except (RedisError, OSError) as e:
        _not_sent(attestation_id, e)
        return False
    return True


def _not_sent(attestation_id: uuid.UUID, error: BaseException) -> None:
    log.warning(
        "decide task not sent; the request stays pending until it is requeued",
        extra={"attestation_id": str(attestation_id), "error": type(error).__name__},
    )


@router.post("/v1/leases/{lease_id}/renew", response_model=AttestationOut, status_code=202)
async def renew_lease(
    lease_id: uuid.UUID,
    body: RenewIn,
    credential: EnclaveDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    prefer: Annotated[str | None, Header()] = None,
) -> AttestationOut:
    """Fresh nonce + fresh evidence from the same enclave key extend a live lease (revoked leases never renew)."""

    def find() -> leases.LeaseForRenewal:
        """The lease (``lease.not_found`` unless it is this licence's), before the body is judged."""
        with read_session(settings) as reader:
            return leases.lease_for_renewal(reader, lease_id, entitlement_id=credential.entitlement_id)

    lease = await run_in_threadpool(find)
    values = _pending(body, "renew", lease.deployment_name, settings, credential.key_id)
    where = {
        "entitlement_id": lease.entitlement_id,
        "model_version_id": lease.model_version_id,
        "lease_id": lease.lease_id,
    }
    sending = _Sending(settings, values, lambda: where, where, redis_clients(request), loop_engines(request))
    return await _dispatch(sending, prefer, response, credential.key_id)


@router.get("/v1/attestations/{attestation_id}", response_model=AttestationOut)
async def get_attestation(attestation_id: uuid.UUID, credential: EnclaveDep, settings: SettingsDep) -> AttestationOut:
    found = await run_in_threadpool(_answer_row, settings, attestation_id)
    if found is None or found.entitlement_id != credential.entitlement_id:
        raise NotFound(Code.ATTESTATION_NOT_FOUND, "no such attestation for this licence")
    return _render(found)


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


def _answer_row(settings: Settings, attestation_id: uuid.UUID) -> AnswerRow | None:
    with autocommit(settings) as connection:
        return answer_row(connection, attestation_id)


def _read(settings: Settings, attestation_id: uuid.UUID) -> AttestationOut | None:
    """The answer as committed now (one narrow read, never the evidence)."""
    found = _answer_row(settings, attestation_id)
    return None if found is None else _render(found)


def _pending_answer(attestation_id: uuid.UUID) -> AttestationOut:
    return AttestationOut(id=attestation_id, status=AttestationStatus.PENDING, status_url=status_url(attestation_id))


def _render(row: AnswerRow) -> AttestationOut:
    """The enclave's answer (:func:`answer_of`, as the worker's announcement carries it)."""
    return AttestationOut.model_validate(answer_of(row))
