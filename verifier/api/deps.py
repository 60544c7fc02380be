"""FastAPI dependencies: settings, the request's transaction (its owner), and credentials.

The request's transaction is owned here, by :func:`get_transaction`: it commits when the endpoint returns and rolls
back when it raises, before the answer is sent (``scope="function"``: the dependency ends right after the endpoint,
inside the app's error handling), so a 2xx means committed and a commit that fails is a structured error, never a
success. Endpoints never commit. (The enclave submission has no request transaction: its one write is an
autocommit INSERT, :func:`verifier.attestation.repository.store_request`, before the decide task is sent.)

The commit also follows the rendering of the response: in the FastAPI this runs on (0.165), the route's handler
validates and serializes the endpoint's return value to JSON inside the same exit stack as this dependency
(``fastapi.routing.request_response``: the function stack wraps the whole handler, ``serialize_response``
included), so a response that cannot be rendered (a document deeper than the serializer goes) raises into
:func:`get_transaction` and rolls back: a 500, never a 500 whose write stays. Pinned by
``tests/integration/api/test_request_transaction.py`` and ``test_admin_api.py``
(``..._cannot_be_rendered_leaves_nothing_stored``), for a FastAPI upgrade to keep.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from verifier.auth.cache import CREDENTIALS
from verifier.auth.credentials import bearer_token, check_record, split_token
from verifier.auth.records import CredentialRecord, Principal
from verifier.auth.repository import record_by_key_id
from verifier.broker.quota import RedisClients, Spend, round_trip
from verifier.config import Settings, get_settings
from verifier.db.models import CredentialKind
from verifier.db.queries import clash_is_conflict
from verifier.db.session import LoopEngines, Session, read_session, session_factory
from verifier.errors import Code, KeywardError, RateLimited


async def app_settings(request: Request) -> Settings:
    """The settings the app was made with (:func:`verifier.app.create_app`), else the environment's; async, so no
    request spends a threadpool hop on them."""
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


SettingsDep = Annotated[Settings, Depends(app_settings)]

_CLASH = "the request clashes with data stored meanwhile"


class RequestTransaction:
    """The request's session and its one transaction, which :func:`get_transaction` ends."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session


def _commit(session: Session) -> None:
    with clash_is_conflict(_CLASH):  # a constraint checked only at COMMIT: 409, not a 500
        session.commit()


def get_transaction(settings: SettingsDep) -> Iterator[RequestTransaction]:
    """One session and transaction per request: committed when the endpoint returns, rolled back if it raises."""
    with session_factory(settings)() as session:
        try:
            yield RequestTransaction(session)
        except BaseException:
            session.rollback()
            raise
        _commit(session)


TransactionDep = Annotated[RequestTransaction, Depends(get_transaction, scope="function")]


def get_session(transaction: TransactionDep) -> Session:
    """The request's session (the same one for every dependency and the endpoint); the request commits it."""
    return transaction.session


SessionDep = Annotated[Session, Depends(get_session)]


def _spends(request: Request, settings: Settings, key_id: str) -> list[Spend]:
    """A licence key's limits (:mod:`verifier.broker.quota`): requests per minute, and the bytes of the
    submissions it stores per hour (by the declared Content-Length; the body limit bounds it)."""
    spends: list[Spend] = []
    if settings.licence_requests_per_minute:
        spends.append(Spend(f"requests:{key_id}", 1, settings.licence_requests_per_minute, 60))
    length = request.headers.get("content-length", "")
    if settings.licence_stored_bytes_per_hour and request.method == "POST" and length.isdigit() and int(length):
        spends.append(Spend(f"bytes:{key_id}", int(length), settings.licence_stored_bytes_per_hour, 3600))
    return spends


def _refuse_over_limit(settings: Settings, spends: list[Spend], waits: tuple[int | None, ...]) -> None:
    """429 with Retry-After for the first limit passed, before anything is stored."""
    for spend, wait in zip(spends, waits, strict=False):
        if wait is None:
            continue
        if spend.name.startswith("requests:"):
            raise RateLimited(
                Code.REQUEST_RATE_LIMITED,
                f"this licence key is over {settings.licence_requests_per_minute} requests a minute",
                retry_after=wait,
            )
        raise RateLimited(
            Code.REQUEST_STORAGE_QUOTA,
            f"this licence key is over {settings.licence_stored_bytes_per_hour} submitted bytes an hour",
            retry_after=wait,
        )


def _read_record(settings: Settings, key_id: str) -> CredentialRecord | None:
    with read_session(settings) as session:
        return record_by_key_id(session, key_id)


def redis_clients(request: Request) -> RedisClients | None:
    """The app's Redis clients (made by its lifespan), or None: the app runs without its lifespan."""
    clients = getattr(request.app.state, "redis", None)
    return clients if isinstance(clients, RedisClients) else None


def loop_engines(request: Request) -> LoopEngines | None:
    """The app's asyncio database engines (made by its lifespan), or None: the app runs without its lifespan."""
    engines = getattr(request.app.state, "databases", None)
    return engines if isinstance(engines, LoopEngines) else None


def _would_pass(
    record: CredentialRecord, pepper: bytes, secret: str, kinds: frozenset[CredentialKind], at: datetime
) -> bool:
    try:
        check_record(record, pepper, secret, kinds, now=at)
    except KeywardError:
        return False
    return True


def require(*kinds: CredentialKind) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the request's bearer credential, which must be one of ``kinds``.

    One Redis round trip (:func:`~verifier.broker.quota.round_trip`: the cache generation, and a licence key's
    limits) and, when the cached record is current, no database read and no thread; otherwise one read on a
    threadpool thread (its own autocommit read session, closed before the endpoint runs). The generation read is
    kept on ``request.state`` for the endpoint's catalog lookup."""
    allowed = frozenset(kinds)

    async def dependency(
        request: Request, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
    ) -> Principal:
        key_id, secret = split_token(bearer_token(authorization))
        pepper = settings.credential_pepper.get_secret_value().encode()
        cache_key = (settings.database_url, key_id)
        now = time.time()
        # The cached record decides who the caller is (so only a caller that would authenticate spends a
        # licence's quota); the generation read in the same round trip says whether it may.
        at = datetime.fromtimestamp(now, UTC)
        # The record cached under the last token seen decides whether a licence's limits are spent in this round
        # trip (only for a caller that would authenticate); whether the record may decide is known after it.
        cached = CREDENTIALS.get(cache_key, getattr(request.app.state, "last_generation", None))
        spends: list[Spend] = []
        if (
            cached is not None
            and cached.principal.kind == CredentialKind.ENCLAVE
            and _would_pass(cached, pepper, secret, allowed, at)
        ):
            spends = _spends(request, settings, key_id)
        reading = await round_trip(
            settings.broker_url, settings.broker_key_prefix, spends, now=now, clients=redis_clients(request)
        )
        generation = reading.generation if reading.generation_known else None
        request.state.generation = request.app.state.last_generation = generation
        if cached is not None and CREDENTIALS.get(cache_key, generation) is cached:
            principal = check_record(cached, pepper, secret, allowed, now=at)
        else:
            record = await run_in_threadpool(_read_record, settings, key_id)
            if record is not None:
                CREDENTIALS.put(cache_key, generation, record)
            principal = check_record(record, pepper, secret, allowed, now=at)
            if not spends and principal.kind == CredentialKind.ENCLAVE:
                spends = _spends(request, settings, key_id)
                if spends:
                    reading = await round_trip(
                        settings.broker_url, settings.broker_key_prefix, spends, now=now, clients=redis_clients(request)
                    )
        _refuse_over_limit(settings, spends, reading.waits)
        return principal

    return dependency


AdminDep = Annotated[Principal, Depends(require(CredentialKind.ADMIN))]
EnclaveDep = Annotated[Principal, Depends(require(CredentialKind.ENCLAVE))]
BillingDep = Annotated[Principal, Depends(require(CredentialKind.BILLING_READ))]
