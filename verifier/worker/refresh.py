"""Worker-side collateral refresh: fill the vendor-collateral cache before a decision, and keep it fresh.

Two entry points, both in the worker, neither fetching inside a transaction (nothing here commits or rolls back:
the task base :class:`~verifier.worker.base.KeywardTask` opens and ends every transaction):

* The prefetch, the decide task's step before its decision (:mod:`verifier.worker.tasks`). For every evidence item,
  parsed once for the prefetch and the decision, it takes the cache rows its platform says verification will read
  (:attr:`verifier.platforms.registry.ParsedItem.needs`, the one rule the decision reads by; Intel: TCB Info, QE
  Identity, CRLs; AMD: the chain's CRL, the VCEK without ``vcek`` or ``cert_table``). Rows the item brings its own
  copy of (``collateral``, ``crl``) are read too, since the decision verifies the newer copy; failing to fetch those
  never puts a decision off. :func:`collateral_to_fetch` asks the cache in one statement, inside the decision's
  transaction on the row the task has locked, or in none when the worker keeps the rows under the current
  collateral generation token (:mod:`verifier.worker.collateral_rows`): when all are there and fresh the decision
  goes on in that transaction. Otherwise the task ends it and :func:`prefetch` fetches the missing, unreadable or
  due documents from Intel PCS/PCCS or AMD KDS and stores them in a transaction of their own, before the task opens
  the decision's again. A fetch failure is never a decision: while a vendor answers 429/5xx or cannot be reached the
  task is retried later (exponential back-off, never sooner than Retry-After, at most ``collateral_fetch_retries``
  times) and then decided with what the cache holds; any other failure (404: an unknown FMSPC or chip) is decided at
  once, and the decision rejects with its stable collateral-missing code.
* :func:`refresh_collateral`, the ``keyward.refresh_collateral`` beat task: cached documents that are due are fetched
  again, a bounded number per run, soonest nextUpdate first. A failure is logged and the cached copy kept;
  verification re-checks every validity window anyway.

Both use one rule for "due" (:func:`verifier.collateral.freshness.is_due`): past nextUpdate; revocation or TCB data
fetched ``collateral_max_age_seconds`` ago or longer; or within ``collateral_refresh_ahead_hours`` of nextUpdate and
not fetched since that window opened. A fetched document older than the cached one is never stored.

Nothing is verified here, and nothing here decides: a fetched document is stored as served and verified when a
decision reads it (:mod:`verifier.worker.vendor_documents` says what each item needs and fetches it). Evidence too
malformed to say what it needs is skipped; the decision rejects it. No database transaction stays open while a
vendor is asked (the embedded SQLite profile takes its write lock per transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from verifier.collateral import repository as cache
from verifier.collateral.documents import AMD, NVIDIA, NVIDIA_RIM_MISSING_BODY, Document, RowKey, Wanted, leaf_product
from verifier.collateral.freshness import AGEING_KINDS, Freshness, is_due
from verifier.config import Settings, current_time, get_settings
from verifier.db.models import Attestation, AttestationStatus, CachedCollateral
from verifier.db.session import Transaction
from verifier.evidence.snp import PRODUCTS
from verifier.platforms.registry import Parsed, parse_evidence
from verifier.worker.base import KeywardTask
from verifier.worker.celery_app import celery_app
from verifier.worker.collateral_rows import CollateralRows, collateral_rows, watch
from verifier.worker.vendor_documents import (
    REFRESHABLE,
    FetchReport,
    VendorClients,
    document_next_update,
    due,
    fetch_and_store,
    fetchable,
    needs_and_documents,
    vendor_clients,
)

log = logging.getLogger(__name__)
#: The rule with the default settings (tests and callers without settings).
DEFAULT_FRESHNESS = Freshness()
# ----------------------------------------------------------------------------------------------------------
# Before a decision


def retry_delay(attempt: int, retry_after: float | None, settings: Settings) -> float:
    """Seconds before retry ``attempt`` (0 first): exponential back-off, never less than the vendor's Retry-After,
    at most ``collateral_retry_max_delay``."""
    backoff = settings.collateral_retry_delay * 2.0 ** min(attempt, 30)
    return min(settings.collateral_retry_max_delay, max(backoff, retry_after or 0.0))


def _retry_delay_for(report: FetchReport, attestation_id: str, attempt: int, settings: Settings) -> float | None:
    failure = report.retryable
    if failure is None:
        return None
    if attempt >= settings.collateral_fetch_retries:
        log.warning(
            "attestation %s: collateral still unavailable after %d retries; deciding with the cache as it is",
            attestation_id,
            attempt,
        )
        return None
    return retry_delay(attempt, failure.retry_after, settings)


def prefetch_needs(
    session: Session,
    att: Attestation,
    now: datetime,
    freshness: Freshness = DEFAULT_FRESHNESS,
    evidence: Sequence[Parsed] | None = None,
) -> list[Wanted]:
    """:func:`prefetch_check`'s needs."""
    return prefetch_check(session, att, now, freshness, evidence)[0]


def prefetch_check(
    session: Session,
    att: Attestation,
    now: datetime,
    freshness: Freshness = DEFAULT_FRESHNESS,
    evidence: Sequence[Parsed] | None = None,
    kept: CollateralRows | None = None,
) -> tuple[list[Wanted], dict[RowKey, Document] | None]:
    """Step 1 of the prefetch, in the decision's transaction (``att``'s row locked in ``session``): what the pending
    ``att`` needs that the cache lacks or holds due, read in one statement. Empty when nothing is (evidence that
    brings its collateral, a warm cache, a decided attestation): the decision goes on in that transaction. Optional
    documents whose fetch just failed are left out, so a verifier without egress does not give up its row lock (and
    read the row again) before every decision for nothing. ``evidence``: ``att.evidence`` already parsed.

    Also returns the cached documents the evidence needs, read by the same statement: when nothing is to be
    fetched, the decision in this transaction verifies with them (None: nothing was read). ``kept``: the worker's
    kept rows, used instead of the statement where they are current (:mod:`verifier.worker.collateral_rows`)."""
    if att.status != AttestationStatus.PENDING:
        return [], None
    items = parse_evidence(att.evidence) if evidence is None else evidence
    needs, documents = needs_and_documents(session, items, now, freshness, kept)
    return fetchable(needs), documents


def collateral_to_fetch(
    session: Session, att: Attestation, settings: Settings, now: datetime, evidence: Sequence[Parsed]
) -> list[Wanted]:
    """:func:`prefetch_needs` with the configured freshness rule, for the decide task; empty when collateral
    fetching is off (``collateral_fetch``: nothing is read then)."""
    return collateral_check(session, att, settings, now, evidence)[0]


def collateral_check(
    session: Session, att: Attestation, settings: Settings, now: datetime, evidence: Sequence[Parsed]
) -> tuple[list[Wanted], dict[RowKey, Document] | None]:
    """:func:`collateral_to_fetch`, and the cached documents read for it (None when nothing was read: collateral
    fetching is off, or the attestation is decided). The rows come from this process's kept rows where they are
    current under the collateral generation token (:func:`~verifier.worker.collateral_rows.collateral_rows`), so a
    warm decision reads none from the database."""
    if not settings.collateral_fetch:
        return [], None
    kept = collateral_rows(settings)
    return prefetch_check(session, att, now, Freshness.from_settings(settings), evidence, kept)


def prefetch(
    task: KeywardTask, needs: Sequence[Wanted], now: datetime, settings: Settings, attestation_id: str
) -> FetchReport:
    """Step 2, after the transaction that found ``needs`` has ended and before the decision's opens: fetch them from
    the configured vendors (no transaction open meanwhile) and store them in a transaction of the ``task``'s own.
    Raises Celery's ``Retry`` when the decision should wait for a vendor: a retryable failure, and fewer than
    ``collateral_fetch_retries`` attempts so far (``task.request.retries``)."""
    with vendor_clients(settings) as clients:
        report = fetch_and_store(task.transaction, clients, needs, now)
    delay = _retry_delay_for(report, attestation_id, task.request.retries, settings)
    if delay is not None:
        raise task.retry(countdown=delay, max_retries=settings.collateral_fetch_retries)
    return report


# ----------------------------------------------------------------------------------------------------------
# Periodic refresh


def _wanted_for_row(row: CachedCollateral) -> Wanted | None:
    if row.vendor != AMD:
        return Wanted(row.vendor, row.kind, row.key)
    if row.kind == "crl":
        name = row.key.split(":", 1)[-1]
        product = next((p for p in PRODUCTS if p == name), None)
    else:
        product = leaf_product(row.body)
    return None if product is None else Wanted(row.vendor, row.kind, row.key, product)


def due_documents(session: Session, now: datetime, *, freshness: Freshness, limit: int) -> list[Wanted]:
    """The cached documents due at ``now`` (:func:`~verifier.worker.vendor_documents.due`), at most ``limit``,
    soonest nextUpdate first, in ``session``'s transaction. Rows stored without a next update get it from their body
    (read once). A cached VCEK that is not a readable certificate is dropped: it can never verify, and the next
    attestation from that chip fetches it again. So is NVIDIA's "no such RIM" once due (the next attestation naming
    that RIM asks again).

    The candidates are narrowed in SQL (no next update, one within ``freshness.ahead``, or revocation/TCB data
    fetched ``freshness.max_age`` ago), reading no bodies; the exact rule is applied to them before any body is
    loaded, so rows not due (fetched again inside the window already) do not take the batch's places."""
    candidates = cache.refresh_candidates(
        session,
        REFRESHABLE,
        next_update_by=now + freshness.ahead,
        ageing_kinds=AGEING_KINDS,
        fetched_by=now - freshness.max_age,
    )
    ids = [c.id for c in candidates if is_due(c.kind, c.fetched_at, c.next_update, now, freshness)][:limit]
    rows = cache.documents_by_id(session, ids)
    wanted_rows: list[Wanted] = []
    for row in (rows[i] for i in ids if i in rows):
        if row.next_update is None:
            row.next_update = document_next_update(row.kind, row.body)
        if not due(row, now, freshness):
            continue
        if row.vendor == NVIDIA and row.body == NVIDIA_RIM_MISSING_BODY:
            # NVIDIA's "no such RIM", due: dropped rather than asked again forever. RIM ids come from reports not
            # yet verified, so anyone may make the cache hold some; the next attestation naming one fetches it.
            cache.drop_document(session, row)
            continue
        wanted = _wanted_for_row(row)
        if wanted is None:
            log.warning("dropping cached %s/%s/%s: no product to fetch it for", row.vendor, row.kind, row.key)
            cache.drop_document(session, row)
            continue
        wanted_rows.append(wanted)
    return wanted_rows


def refresh_cache(
    transaction: Transaction, clients: VendorClients, now: datetime, *, freshness: Freshness, limit: int
) -> FetchReport:
    """Fetch again the cached documents due at ``now`` (:func:`due_documents`, in a ``transaction`` of its own),
    and store what came back in another (none is open while a vendor is asked). Failures keep the cached copy."""
    with transaction() as session:
        wanted = due_documents(session, now, freshness=freshness, limit=limit)
    return fetch_and_store(transaction, clients, wanted, now)


def refresh_collateral(task: KeywardTask) -> int:
    """Beat task body: refresh ageing cached collateral in the task's transactions; returns how many documents were
    stored."""
    settings = get_settings()
    if not settings.collateral_fetch:
        return 0
    watch(settings)  # what is stored replaces the collateral generation token: workers read it again
    with vendor_clients(settings) as clients:
        report = refresh_cache(
            task.transaction,
            clients,
            current_time(settings),
            freshness=Freshness.from_settings(settings),
            limit=settings.collateral_refresh_batch,
        )
    log.info("collateral refresh: %d stored, %d failed", len(report.stored), len(report.failures))
    return len(report.stored)


refresh_collateral_task = celery_app.task(base=KeywardTask, bind=True, name="keyward.refresh_collateral")(
    refresh_collateral
)
