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
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from verifier.auth.records import CredentialRecord
from verifier.broker.invalidation import bump
from verifier.config import Settings
from verifier.db.models import ApiCredential, Customer, Entitlement, Model, ModelVersion

ENTRY_TTL_SECONDS: Final = 30.0
MAX_ENTRIES: Final = 10_000
#: What the cached entries are made of: a committed change to any of these replaces the generation token.
WATCHED: Final = (ApiCredential, Customer, Entitlement, Model, ModelVersion)
_WATCHED_TABLES: Final = frozenset(m.__tablename__ for m in WATCHED)
_CHANGED: Final = "keyward.config_changed"

V = TypeVar("V")


class GenerationCache(Generic[V]):
    """A bounded map whose entries count only under the generation token they were filled under, for
    :data:`ENTRY_TTL_SECONDS`. Thread-safe (the API's threadpool fills it, its event loop reads it)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, ttl_seconds: float = ENTRY_TTL_SECONDS) -> None:
        self._entries: OrderedDict[Hashable, tuple[str, float, V]] = OrderedDict()
        self._max, self._ttl = max_entries, ttl_seconds
        self._lock = threading.Lock()

    def get(self, key: Hashable, generation: str | None) -> V | None:
        """The value under ``generation`` (a token read just now), or None: absent, filled under another token,
        expired, or ``generation`` is None (no token: trust nothing)."""
        if generation is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        tag, filled, value = entry
        if tag != generation or time.monotonic() - filled > self._ttl:
            return None
        return value

    def put(self, key: Hashable, generation: str | None, value: V) -> None:
        """Keep ``value`` under ``generation``, the token read *before* the read that produced it (None: not
        kept)."""
        if generation is None:
            return
        with self._lock:
            self._entries[key] = (generation, time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: (database URL, key id) -> the credential's record.
CREDENTIALS: Final[GenerationCache[CredentialRecord]] = GenerationCache()
#: (database URL, entitlement id, model name, version or None) -> (entitlement id, model version id).
CATALOG: Final[GenerationCache[Any]] = GenerationCache()


# -- invalidation: replace the token after each commit that changes a watched table --------------------------------

_targets: dict[tuple[Any, ...], set[tuple[str, str]]] = {}
_targets_lock = threading.Lock()


def _database_key(url: str | URL) -> tuple[Any, ...]:
    u = make_url(url)
    return (u.get_backend_name(), u.host, u.port, u.database)


def watch(settings: Settings) -> None:
    """In this process, replace the generation token of ``settings``' broker after every commit on its database
    that changes a watched table (idempotent; the hooks are installed once per process)."""
    with _targets_lock:
        _targets.setdefault(_database_key(settings.database_url), set()).add(
            (settings.broker_url, settings.broker_key_prefix)
        )
    _install()


_installed = False


def _install() -> None:
    global _installed  # noqa: PLW0603 - once per process
    with _targets_lock:
        if _installed:
            return
        _installed = True
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)


def _after_flush(session: Session, _: UOWTransaction) -> None:
    # In after_flush, new/dirty/deleted still list what this flush wrote.
    if any(isinstance(o, WATCHED) for group in (session.new, session.dirty, session.deleted) for o in group):
        session.info[_CHANGED] = True


def _on_execute(state: ORMExecuteState) -> None:
    # Bulk UPDATE / DELETE / INSERT statements through the session (no unit of work sees them).
    if state.is_update or state.is_delete or state.is_insert:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _WATCHED_TABLES:
            state.session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if not session.info.pop(_CHANGED, False):
        return
    bind = session.get_bind()
    with _targets_lock:
        targets = set(_targets.get(_database_key(bind.engine.url), ()))
    for broker_url, prefix in targets:
        bump(broker_url, prefix)
    CREDENTIALS.clear()  # this process need not wait for its own token to be read again
    CATALOG.clear()


def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
