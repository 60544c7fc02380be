"""The worker's in-process copy of the vendor-collateral rows its decisions read (``collateral_cache``: key -> the
row's body, issuer chain, ``fetched_at`` and ``next_update``, or that there is no such row), so a warm decision
reads none from PostgreSQL.

Current, not merely recent: each kept row is tagged with the collateral generation token read from Redis *before*
the statement that read it (:func:`verifier.broker.invalidation.read_collateral_generation`), and a decision uses it
only while the token it reads now (one ``GET``) is the same. Every commit that changes ``collateral_cache`` replaces
the token before the code that committed returns: :func:`watch` installs the session hooks that do it in each
process that writes collateral (the worker's prefetch and periodic refresh; tests and tools that seed or empty the
cache, :mod:`verifier.testing.fleet` included). They see rows added, changed or deleted through the ORM (at flush)
and INSERT / UPDATE / DELETE statements, or text statements naming the table, executed through a session; a write on
a bare connection would go unseen, so none is made. The token is read before the statement, never after: a commit
between the two would otherwise leave rows read before it kept under the token that announced it (PostgreSQL's
READ COMMITTED, the service's level: each statement sees what was committed before it started).

A row the database does not hold is kept as absent too: evidence that brings its own collateral, on a verifier whose
vendors cannot be reached, needs rows that stay absent, and reading them again before every decision would save
nothing. Absent is answered exactly as the statement would answer it: the row is missing, so the caller fetches it
(an optional one after its back-off), and the store's commit replaces the token.

Without a token (a broker that is not Redis, as in the embedded SQLite profile; Redis failing) nothing is kept or
used: every decision reads the database. Kept rows also expire after :data:`ROW_TTL_SECONDS`, which bounds staleness
if a replacement was lost to a Redis outage in the writing process alone (or to a writer the hooks do not see); at
most :data:`~verifier.limits.COLLATERAL_ROWS_CACHED` are kept, least recently used dropped first.

Nothing here judges freshness: the caller (:func:`verifier.worker.vendor_documents.needs_and_documents`) judges each
row, kept or read, at the decision's ``now``, so a row that became due is fetched as before. The SQL is the
repository's (:func:`verifier.collateral.repository.read_rows`); nothing here writes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import TextClause, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from verifier.broker.invalidation import bump_collateral, read_collateral_generation
from verifier.collateral.documents import RowKey
from verifier.collateral.repository import CachedRow, read_rows
from verifier.config import Settings
from verifier.db.models import CachedCollateral
from verifier.limits import COLLATERAL_ROWS_CACHED

ROW_TTL_SECONDS: Final = 60.0
_TABLE: Final = CachedCollateral.__tablename__
_CHANGED: Final = "keyward.collateral_changed"


class CollateralRows:
    """The rows of one database kept by this process, current under one broker's collateral generation token.
    Thread-safe (a threads pool's decisions share it)."""

    def __init__(
        self,
        broker_url: str,
        key_prefix: str,
        *,
        max_entries: int = COLLATERAL_ROWS_CACHED,
        ttl_seconds: float = ROW_TTL_SECONDS,
    ) -> None:
        self._broker_url, self._key_prefix = broker_url, key_prefix
        self._entries: OrderedDict[RowKey, tuple[str, float, CachedRow | None]] = OrderedDict()
        self._max, self._ttl = max_entries, ttl_seconds
        self._lock = threading.Lock()

    def read(self, session: Session, keys: Iterable[RowKey]) -> dict[RowKey, CachedRow]:
        """:func:`~verifier.collateral.repository.read_rows`, answered from the kept rows where they are current:
        one ``GET`` of the token, then the statement (in ``session``) for the rows not kept under it, if any; what
        it finds, and which of them the database does not hold, is kept under that token."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        generation = read_collateral_generation(self._broker_url, self._key_prefix)
        if generation is None:
            return read_rows(session, wanted)
        found = self._kept(wanted, generation)
        missing = [k for k in wanted if k not in found]
        if missing:
            read = read_rows(session, missing)
            answered: dict[RowKey, CachedRow | None] = {k: read.get(k) for k in missing}
            self._keep(answered, generation)
            found.update(answered)
        return {k: row for k in wanted if (row := found[k]) is not None}

    def _kept(self, keys: list[RowKey], generation: str) -> dict[RowKey, CachedRow | None]:
        clock = time.monotonic()
        found: dict[RowKey, CachedRow | None] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    continue
                tag, filled, row = entry
                if tag == generation and clock - filled <= self._ttl:
                    found[key] = row
                    self._entries.move_to_end(key)
        return found

    def _keep(self, rows: dict[RowKey, CachedRow | None], generation: str) -> None:
        clock = time.monotonic()
        with self._lock:
            for key, row in rows.items():
                self._entries[key] = (generation, clock, row)
                self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_rows: dict[tuple[Any, ...], CollateralRows] = {}
_rows_lock = threading.Lock()


def _database_key(url: str | URL) -> tuple[Any, ...]:
    u = make_url(url)
    return (u.get_backend_name(), u.host, u.port, u.database)


def collateral_rows(settings: Settings) -> CollateralRows | None:
    """This process's kept rows for ``settings``' database and broker (None: the broker is not Redis, so there is
    no token and nothing to keep). Also :func:`watch`\\ es ``settings``, so this process's own writes replace the
    token."""
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    key = (*_database_key(settings.database_url), settings.broker_url, settings.broker_key_prefix)
    with _rows_lock:
        rows = _rows.get(key)
        if rows is not None:
            return rows
        rows = _rows[key] = CollateralRows(settings.broker_url, settings.broker_key_prefix)
    watch(settings)
    return rows


# -- invalidation: replace the token after each commit that changes collateral_cache -------------------------------

_targets: set[tuple[str, str]] = set()
_targets_lock = threading.Lock()
_installed = False


def watch(settings: Settings) -> None:
    """In this process, replace the collateral generation token of ``settings``' broker after every commit that
    changes ``collateral_cache`` (idempotent; the hooks are installed once per process). Every watched broker's
    token is replaced, whichever database the commit was on: a needless replacement costs a worker one statement."""
    with _targets_lock:
        _targets.add((settings.broker_url, settings.broker_key_prefix))
    _install()


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
    if any(isinstance(o, CachedCollateral) for group in (session.new, session.dirty, session.deleted) for o in group):
        session.info[_CHANGED] = True


def _on_execute(state: ORMExecuteState) -> None:
    # INSERT / UPDATE / DELETE statements through the session (no unit of work sees them), and text naming the table.
    statement = state.statement
    if state.is_update or state.is_delete or state.is_insert:
        changed = getattr(getattr(statement, "table", None), "name", None) == _TABLE
    else:
        text = statement.text.lower() if isinstance(statement, TextClause) else ""
        changed = _TABLE in text and not text.lstrip().startswith("select")
    if changed:
        state.session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if not session.info.pop(_CHANGED, False):
        return
    with _targets_lock:
        targets = set(_targets)
    for broker_url, prefix in targets:
        bump_collateral(broker_url, prefix)
    with _rows_lock:
        kept = list(_rows.values())
    for rows in kept:
        rows.clear()  # this process need not wait for its own token to be read again


def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
