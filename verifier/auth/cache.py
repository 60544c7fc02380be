"""In-process caches of what every enclave request reads and staff rarely change: credentials (key id -> its
:class:`~verifier.auth.records.CredentialRecord`) and the licence catalog (entitlement, model, version -> the
licensed model version), so a warm request reads neither from PostgreSQL.

Still checked on every request, from the cached record: the secret's HMAC, revocation, expiry at the request's
time, the kind and the customer's status (:func:`~verifier.auth.credentials.check_record`). The decision still
locks and reads the entitlement afresh in its own transaction.

Current, not merely recent: each entry is tagged with the generation token read from Redis before the database
read that filled it (:mod:`verifier.broker.invalidation`), and a request uses it only if the token it reads now is
the same. Every commit that changes a credential, customer, entitlement, model or model version replaces the token
before the commit's request is answered (:func:`watch` installs the session hooks that do it, in each process that
writes them: the API and its dashboard). Without a token (no Redis, or Redis failing) nothing is cached or used.
Entries also expire after :data:`ENTRY_TTL_SECONDS`, which bounds staleness if a replacement was lost to a Redis
outage in the writing process alone.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from sqlalchemy.orm import Session

from verifier.auth.records import CredentialRecord
from verifier.broker.invalidation import GenerationCache, bump
from verifier.config import Settings
from verifier.db.commit_watch import CommitWatch, database_key
from verifier.db.models import ApiCredential, Customer, Entitlement, Model, ModelVersion

ENTRY_TTL_SECONDS: Final = 30.0
MAX_ENTRIES: Final = 10_000
#: What the cached entries are made of: a committed change to any of these replaces the generation token.
WATCHED: Final = (ApiCredential, Customer, Entitlement, Model, ModelVersion)

#: (database URL, key id) -> the credential's record.
CREDENTIALS: Final[GenerationCache[CredentialRecord]] = GenerationCache(MAX_ENTRIES, ENTRY_TTL_SECONDS)
#: (database URL, entitlement id, model name, version or None) -> (entitlement id, model version id).
CATALOG: Final[GenerationCache[Any]] = GenerationCache(MAX_ENTRIES, ENTRY_TTL_SECONDS)


# -- invalidation: replace the token after each commit that changes a watched table --------------------------------

_targets: dict[tuple[Any, ...], set[tuple[str, str]]] = {}
_targets_lock = threading.Lock()


def watch(settings: Settings) -> None:
    """In this process, replace the generation token of ``settings``' broker after every commit on its database
    that changes a watched table (idempotent; the hooks are installed once per process)."""
    with _targets_lock:
        _targets.setdefault(database_key(settings.database_url), set()).add(
            (settings.broker_url, settings.broker_key_prefix)
        )
    _WATCH.install()


def _changed(session: Session) -> None:
    with _targets_lock:
        targets = set(_targets.get(database_key(session.get_bind().engine.url), ()))
    for broker_url, prefix in targets:
        bump(broker_url, prefix)
    CREDENTIALS.clear()  # this process need not wait for its own token to be read again
    CATALOG.clear()


_WATCH: Final = CommitWatch("config", WATCHED, _changed)

__all__ = ["CATALOG", "CREDENTIALS", "ENTRY_TTL_SECONDS", "MAX_ENTRIES", "WATCHED", "GenerationCache", "watch"]
