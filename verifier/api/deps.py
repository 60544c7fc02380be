"""FastAPI dependencies: settings, a database session per request (the endpoint commits), and credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header

from verifier.auth.credentials import authenticate
from verifier.config import Settings, get_settings
from verifier.db.models import ApiCredential, CredentialKind
from verifier.db.session import Session, read_session, session_factory

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request. Endpoints commit explicitly before answering; anything else is rolled back."""
    with session_factory(settings)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require(*kinds: CredentialKind) -> Callable[..., ApiCredential]:
    """Dependency factory: the request's bearer credential, which must be one of ``kinds``."""

    def dependency(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> ApiCredential:
        token = authorization.removeprefix("Bearer ").strip() if authorization else None
        # Its own read session, closed before the endpoint runs: FastAPI runs the endpoint in another threadpool
        # slot, and under a burst a request must not hold a pooled connection while it waits for one (that starved
        # the pool). The endpoint's session checks a connection out only if it uses the database.
        with read_session(settings) as session:
            credential = authenticate(session, settings.credential_pepper.get_secret_value().encode(), token, kinds)
            session.expunge(credential)
        return credential

    return dependency


AdminDep = Annotated[ApiCredential, Depends(require(CredentialKind.ADMIN))]
EnclaveDep = Annotated[ApiCredential, Depends(require(CredentialKind.ENCLAVE))]
BillingDep = Annotated[ApiCredential, Depends(require(CredentialKind.BILLING_READ))]
