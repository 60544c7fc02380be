"""FastAPI dependencies: settings, a database session per request (the endpoint commits), and credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from verifier.auth.credentials import authenticate
from verifier.config import Settings, get_settings
from verifier.db.engine import is_sqlite, make_engine
from verifier.db.models import ApiCredential, CredentialKind

SettingsDep = Annotated[Settings, Depends(get_settings)]


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request. Endpoints commit explicitly before answering; anything else is rolled back."""
    factory = sessionmaker(bind=engine_for(settings.database_url), expire_on_commit=False)
    with factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@lru_cache(maxsize=4)
def _autocommit_engine(url: str) -> Engine:
    return engine_for(url).execution_options(isolation_level="AUTOCOMMIT")


def read_session(settings: Settings) -> Session:
    """A session for reads that need no transaction of their own (authentication, a decision's answer). On
    PostgreSQL its statements run in autocommit mode: no BEGIN and ROLLBACK round trips, each statement sees what
    is committed when it runs, and the connection goes back to the pool when the session closes. SQLite (the
    embedded profile, whose transactions take the write lock) keeps its usual transactions."""
    url = settings.database_url
    return Session(bind=engine_for(url) if is_sqlite(url) else _autocommit_engine(url), expire_on_commit=False)


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
