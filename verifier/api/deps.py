"""FastAPI dependencies: settings, the request's transaction (its owner), and credentials.

The request's transaction is owned here, by :func:`get_transaction`: it commits when the endpoint returns and rolls
back when it raises, before the answer is sent (``scope="function"``: the dependency ends right after the endpoint,
inside the app's error handling), so a 2xx means committed and a commit that fails is a structured error, never a
success. Endpoints never commit; the one mid-request commit is :meth:`RequestTransaction.commit_now`.

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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request

from verifier.auth.credentials import authenticate, bearer_token
from verifier.broker.quota import spend
from verifier.config import Settings, get_settings
from verifier.db.models import ApiCredential, CredentialKind
from verifier.db.queries import clash_is_conflict
from verifier.db.session import Session, read_session, session_factory
from verifier.errors import Code, RateLimited

SettingsDep = Annotated[Settings, Depends(get_settings)]

_CLASH = "the request clashes with data stored meanwhile"


class RequestTransaction:
    """The request's session and its one transaction, which :func:`get_transaction` ends."""

    __slots__ = ("_committed", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self._committed = False

    def commit_now(self) -> None:
        """The one mid-request commit, before an after-commit send: the enclave submission commits the stored
        request here, then sends the decide task (its worker must see the row) and may wait for the decision. The
        connection goes back to the pool. A second call is a bug (RuntimeError): whatever the endpoint writes after
        this is committed when it returns, like any request's writes."""
        if self._committed:
            raise RuntimeError("commit_now() is the request's one mid-request commit")
        self._committed = True
        _commit(self.session)


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
        _commit(session)  # after commit_now() and no write since: no statement, no round trip


TransactionDep = Annotated[RequestTransaction, Depends(get_transaction, scope="function")]


def get_session(transaction: TransactionDep) -> Session:
    """The request's session (the same one for every dependency and the endpoint); the request commits it."""
    return transaction.session


SessionDep = Annotated[Session, Depends(get_session)]


def licence_quotas(request: Request, settings: Settings, key_id: str) -> None:
    """A licence key's limits (:mod:`verifier.broker.quota`): requests per minute, and the bytes of the submissions
    it stores per hour (by the declared Content-Length; the body limit bounds it). 429 with Retry-After over either,
    before anything is stored."""
    now = time.time()
    prefix = settings.broker_key_prefix
    if settings.licence_requests_per_minute:
        wait = spend(
            settings.broker_url, prefix, f"requests:{key_id}", 1,
            limit=settings.licence_requests_per_minute, window_seconds=60, now=now,
        )  # fmt: skip
        if wait is not None:
            raise RateLimited(
                Code.REQUEST_RATE_LIMITED,
                f"this licence key is over {settings.licence_requests_per_minute} requests a minute",
                retry_after=wait,
            )
    length = request.headers.get("content-length", "")
    if settings.licence_stored_bytes_per_hour and request.method == "POST" and length.isdigit() and int(length):
        wait = spend(
            settings.broker_url, prefix, f"bytes:{key_id}", int(length),
            limit=settings.licence_stored_bytes_per_hour, window_seconds=3600, now=now,
        )  # fmt: skip
        if wait is not None:
            raise RateLimited(
                Code.REQUEST_STORAGE_QUOTA,
                f"this licence key is over {settings.licence_stored_bytes_per_hour} submitted bytes an hour",
                retry_after=wait,
            )


def require(*kinds: CredentialKind) -> Callable[..., ApiCredential]:
    """Dependency factory: the request's bearer credential, which must be one of ``kinds``."""

    def dependency(
        request: Request, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
    ) -> ApiCredential:
        token = bearer_token(authorization)
        # Its own read session, closed before the endpoint runs: FastAPI runs the endpoint in another threadpool
        # slot, and under a burst a request must not hold a pooled connection while it waits for one (that starved
        # the pool). The endpoint's session checks a connection out only if it uses the database.
        with read_session(settings) as session:
            pepper = settings.credential_pepper.get_secret_value().encode()
            credential = authenticate(session, pepper, token, kinds, now=datetime.now(UTC))
            session.expunge(credential)
        if credential.kind == CredentialKind.ENCLAVE:
            licence_quotas(request, settings, credential.key_id)
        return credential

    return dependency


AdminDep = Annotated[ApiCredential, Depends(require(CredentialKind.ADMIN))]
EnclaveDep = Annotated[ApiCredential, Depends(require(CredentialKind.ENCLAVE))]
BillingDep = Annotated[ApiCredential, Depends(require(CredentialKind.BILLING_READ))]
