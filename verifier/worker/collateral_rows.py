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
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy.orm import Session

from verifier.broker.invalidation import GenerationCache, bump_collateral, read_collateral_generation
from verifier.collateral.documents import RowKey
from verifier.collateral.repository import CachedRow, read_rows
from verifier.config import Settings
from verifier.db.commit_watch import CommitWatch, database_key
from verifier.db.models import CachedCollateral
from verifier.limits import COLLATERAL_ROWS_CACHED

ROW_TTL_SECONDS: Final = 60.0


class CollateralRows:
    """The rows of one database kept by this process, current under one broker's collateral generation token
    (a :class:`~verifier.broker.invalidation.GenerationCache` of key -> (the row, or None: absent)). Thread-safe (a
    threads pool's decisions share it)."""

    def __init__(
        self,
        broker_url: str,
        key_prefix: str,
        *,
        max_entries: int = COLLATERAL_ROWS_CACHED,
        ttl_seconds: float = ROW_TTL_SECONDS,
    ) -> None:
        self._broker_url, self._key_prefix = broker_url, key_prefix
        self._kept: GenerationCache[tuple[CachedRow | None]] = GenerationCache(max_entries, ttl_seconds)

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
        found: dict[RowKey, CachedRow | None] = {}
        for key in wanted:
            kept = self._kept.get(key, generation)
            if kept is not None:
                found[key] = kept[0]
        missing = [k for k in wanted if k not in found]
        if missing:
            read = read_rows(session, missing)
            for key in missing:
                found[key] = read.get(key)
                self._kept.put(key, generation, (found[key],))
        return {k: row for k in wanted if (row := found[k]) is not None}

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()


_rows: dict[tuple[Any, ...], CollateralRows] = {}
_rows_lock = threading.Lock()


def collateral_rows(settings: Settings) -> CollateralRows | None:
    """This process's kept rows for ``settings``' database and broker (None: the broker is not Redis, so there is
    no token and nothing to keep). Also :func:`watch`\\ es ``settings``, so this process's own writes replace the
    token."""
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    key = (*database_key(settings.database_url), settings.broker_url, settings.broker_key_prefix)
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


def watch(settings: Settings) -> None:
    """In this process, replace the collateral generation token of ``settings``' broker after every commit that
    changes ``collateral_cache`` (idempotent; the hooks are installed once per process). Every watched broker's
    token is replaced, whichever database the commit was on: a needless replacement costs a worker one statement."""
    with _targets_lock:
        _targets.add((settings.broker_url, settings.broker_key_prefix))
    _WATCH.install()


def _changed(_session: Session) -> None:
    with _targets_lock:
        targets = set(_targets)
    for broker_url, prefix in targets:
        bump_collateral(broker_url, prefix)
    with _rows_lock:
        kept = list(_rows.values())
    for rows in kept:
        rows.clear()  # this process need not wait for its own token to be read again


#: Text statements count too: the test harness and tools empty or edit the table with text SQL, and no read-only
#: text statement names it in a WITH.
_WATCH: Final = CommitWatch("collateral", (CachedCollateral,), _changed, text_statements=True)
