"""Worker-side collateral refresh: fill the vendor-collateral cache before a decision, and keep it fresh.

Two entry points, both in the worker, neither fetching inside a decision's transaction:

* :func:`prefetch_locked_or_retry`, called by the decide task before it decides, on the attestation row it has
  locked. For every evidence item that carries no collateral of its own (Intel: no ``collateral``; AMD: no ``vcek``
  and no ``cert_table``, exactly as :mod:`verifier.attestation.flows` reads them) it finds the cache rows
  verification will read. When all are there and fresh the decision goes on in the same transaction; otherwise the
  transaction is ended, the missing, unreadable or stale documents are fetched from Intel PCS/PCCS or AMD KDS and
  stored in a transaction of their own. A fetch failure is never a decision: while a vendor answers 429/5xx or
  cannot be reached the task is retried later (exponential back-off, never sooner than Retry-After, at most
  ``collateral_fetch_retries`` times) and then decided with what the cache holds; any other failure (404: an
  unknown FMSPC or chip) is decided at once, and the decision rejects with its stable collateral-missing code.
* :func:`refresh_collateral`, the ``keyward.refresh_collateral`` beat task: cached documents due for their next
  update within ``collateral_refresh_ahead_hours`` (or past it) are fetched again, a bounded number per run. A
  failure is logged and the cached copy kept; verification re-checks every validity window anyway.

Nothing is verified here, and nothing here decides: a fetched document is stored as served and verified when a
decision reads it. Evidence too malformed to say what it needs is skipped; the decision rejects it. No database
transaction stays open while a vendor is asked (the embedded SQLite profile takes its write lock per
transaction). A VCEK's "next update" is its notAfter; KDS issues one per chip and REPORTED_TCB.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import httpx
from cryptography import x509
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from verifier.api.deps import engine_for
from verifier.attestation.flows import INTEL_PLATFORMS
from verifier.collateral.cache import (
    AMD,
    INTEL,
    amd_crl_key,
    cached_document,
    intel_keys,
    leaf_product,
    put_document,
    snp_crl_target,
    vcek_key,
)
from verifier.collateral.fetchers import AmdKdsClient, CaKind, FetchError, IntelPcsClient, Tee
from verifier.config import Settings, current_time, get_settings
from verifier.db.models import Attestation, AttestationStatus, CachedCollateral
from verifier.errors import Code, KeywardError
from verifier.evidence.snp import PRODUCTS, Product, SigningKeyName, decode_tcb, parse_snp_report, product_from_cpuid
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.trust.amd_certs import load_leaf
from verifier.worker.celery_app import celery_app

log = logging.getLogger(__name__)

INTEL_PCS_URL: Final = "https://api.trustedservices.intel.com"
INTEL_ROOT_CA_CRL_URL: Final = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
#: The (vendor, kind) of the cache rows this module knows how to fetch.
REFRESHABLE: Final = {
    (INTEL, "tcb_info"),
    (INTEL, "qe_identity"),
    (INTEL, "pck_crl"),
    (INTEL, "root_ca_crl"),
    (AMD, "vcek"),
    (AMD, "crl"),
}
#: The signed member of a PCS JSON document whose ``nextUpdate`` says when the document is due.
_SIGNED_MEMBER: Final = {"tcb_info": "tcbInfo", "qe_identity": "enclaveIdentity"}


@dataclass(frozen=True, slots=True)
class VendorClients:
    intel: IntelPcsClient
    amd: AmdKdsClient


@lru_cache(maxsize=4)
def _shared_http(timeout: float) -> httpx.Client:
    """One HTTP client per process and timeout (thread-safe, keeps vendor connections alive). Building one costs
    ~30 ms (its TLS context), which every decision would otherwise pay even when nothing needs fetching."""
    return httpx.Client(timeout=timeout)


@contextmanager
def vendor_clients(settings: Settings) -> Iterator[VendorClients]:
    """PCS/PCCS and KDS clients on the process's shared HTTP client with the configured timeout."""
    root_crl = settings.pcs_root_ca_crl_url
    if root_crl is None and settings.pcs_base_url.rstrip("/") == INTEL_PCS_URL:
        root_crl = INTEL_ROOT_CA_CRL_URL  # Intel PCS has no rootcacrl path (PCCS has); Intel's CDP serves DER
    http = _shared_http(settings.collateral_fetch_timeout)
    yield VendorClients(
        IntelPcsClient(settings.pcs_base_url, http, root_ca_crl_url=root_crl),
        AmdKdsClient(settings.kds_base_url, http),
    )


@dataclass(frozen=True, slots=True)
class Wanted:
    """One cache row to fetch. Intel keys say everything (``tdx:<fmspc>``, ``tdx``, ``platform``, ``root``); a
    VCEK key (``<chip_id>:<reported_tcb>``) also needs the product, which KDS URLs name; so does an AMD CRL key
    (``vcek:<product>``, ``vlek:<product>``)."""

    vendor: str
    kind: str
    key: str
    product: Product | None = None

    def __str__(self) -> str:
        return f"{self.vendor}/{self.kind}/{self.key}"


@dataclass(frozen=True, slots=True)
class Fetched:
    wanted: Wanted
    body: bytes
    issuer_chain: str | None
    next_update: datetime


@dataclass(frozen=True, slots=True)
class FetchReport:
    """What one prefetch or refresh run stored (``"vendor/kind/key"``) and which fetches failed."""

    stored: tuple[str, ...] = ()
    failures: tuple[FetchError, ...] = ()

    @property
    def retryable(self) -> FetchError | None:
        """The first failure worth trying again later (429, 5xx, timeout, unreachable), if any."""
        return next((f for f in self.failures if f.retryable), None)


# ----------------------------------------------------------------------------------------------------------
# Documents: what evidence needs, when a document is due, fetching and storing


def document_next_update(kind: str, body: bytes) -> datetime | None:
    """When a document is due for replacement, read from the document itself: TCB Info / QE Identity
    ``nextUpdate``, a CRL's (Intel or AMD) nextUpdate, a VCEK's notAfter. None when the body does not say
    (unreadable)."""
    try:
        if kind in _SIGNED_MEMBER:
            value = datetime.fromisoformat(str(json.loads(body)[_SIGNED_MEMBER[kind]]["nextUpdate"]))
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if kind in ("pck_crl", "root_ca_crl", "crl"):
            return x509.load_der_x509_crl(body).next_update_utc
        if kind == "vcek":
            return load_leaf(body).not_after
    except (ValueError, KeyError, TypeError, RecursionError, KeywardError):
        return None
    return None


def _due(row: CachedCollateral, at: datetime) -> bool:
    expires = row.next_update or document_next_update(row.kind, row.body)
    return expires is None or expires <= at


def _decoded(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _item_wants(item: object) -> tuple[Wanted, ...]:
    """The cache rows the decision will read for one evidence item; () if it brings its own or is malformed."""
    if not isinstance(item, dict):
        return ()
    kind = item.get("type")
    evidence = _decoded(item.get("evidence"))
    if evidence is None:
        return ()
    try:
        if kind in INTEL_PLATFORMS and not item.get("collateral"):
            return tuple(Wanted(INTEL, kind, key) for kind, key in intel_keys(evidence).rows())
        if kind == PLATFORM_SNP:
            return _snp_wants(item, evidence)
    except (KeywardError, ValueError):
        return ()
    return ()


def _snp_wants(item: dict[str, Any], evidence: bytes) -> tuple[Wanted, ...]:
    """An SEV-SNP item needs its chain's AMD CRL unless it brings one, and its VCEK from KDS unless it brings a
    leaf (``vcek`` or ``cert_table``). VLEKs are not on KDS; a v2 report has no CPUID to name the product KDS
    wants, unless the leaf it brings names it."""
    report = parse_snp_report(evidence)
    wants: list[Wanted] = []
    leaf, table = _decoded(item.get("vcek")), _decoded(item.get("cert_table"))
    if not item.get("crl"):
        target = snp_crl_target(report, leaf, table)
        if target is not None:
            wants.append(Wanted(AMD, "crl", amd_crl_key(*target), target[0]))
    product = product_from_cpuid(report)
    if not item.get("vcek") and not item.get("cert_table") and report.signing_key_name == "vcek" and product:
        decode_tcb(report.reported_tcb, product)  # reserved bytes checked before any URL is built
        wants.append(Wanted(AMD, "vcek", vcek_key(report.chip_id, report.reported_tcb), product))
    return tuple(wants)


def collateral_needs(session: Session, evidence: Iterable[object], now: datetime) -> list[Wanted]:
    """The cache rows ``evidence`` will be verified with that are missing, unreadable or past their next update
    at ``now``, each once, in evidence order."""
    needs: dict[str, Wanted] = {}
    for item in evidence:
        for wanted in _item_wants(item):
            row = cached_document(session, wanted.vendor, wanted.kind, wanted.key)
            if row is None or _due(row, now):
                needs.setdefault(str(wanted), wanted)
    return list(needs.values())


def _tee(value: str) -> Tee:
    if value == "tdx":
        return "tdx"
    if value == "sgx":
        return "sgx"
    raise ValueError(f"unknown TEE {value!r}")


def _ca(value: str) -> CaKind:
    if value == "platform":
        return "platform"
    if value == "processor":
        return "processor"
    raise ValueError(f"unknown PCK CA {value!r}")


def _signing_key(crl_key: str) -> SigningKeyName:
    kind = crl_key.split(":", 1)[0]
    if kind == "vcek":
        return "vcek"
    if kind == "vlek":
        return "vlek"
    raise ValueError(f"unknown AMD chain {kind!r}")


def fetch_document(clients: VendorClients, wanted: Wanted) -> Fetched:
    """GET one document from its vendor service and read when it is due. Raises :class:`FetchError` (also for a
    body that does not say when it expires, which would never verify), or ValueError for a key it cannot ask for."""
    pcs, kds = clients.intel, clients.amd
    what = (wanted.vendor, wanted.kind)
    chain: str | None = None
    code = Code.INTEL_COLLATERAL_MISSING
    if what == (INTEL, "tcb_info"):
        tee, fmspc = wanted.key.split(":", 1)
        url = pcs.tcb_info_url(_tee(tee), fmspc)
        body, chain = pcs.fetch_tcb_info(_tee(tee), fmspc)
    elif what == (INTEL, "qe_identity"):
        url = pcs.qe_identity_url(_tee(wanted.key))
        body, chain = pcs.fetch_qe_identity(_tee(wanted.key))
    elif what == (INTEL, "pck_crl"):
        url = pcs.pck_crl_url(_ca(wanted.key))
        body, chain = pcs.fetch_pck_crl(_ca(wanted.key))
    elif what == (INTEL, "root_ca_crl"):
        url = pcs.root_ca_crl_url
        body = pcs.fetch_root_ca_crl()
    elif what == (AMD, "crl") and wanted.product is not None:
        url, code = kds.crl_url(wanted.product, _signing_key(wanted.key)), Code.SNP_CRL_MISSING
        body = kds.fetch_crl(wanted.product, _signing_key(wanted.key))
    elif what == (AMD, "vcek") and wanted.product is not None:
        chip_hex, tcb_hex = wanted.key.split(":", 1)
        chip_id, tcb = bytes.fromhex(chip_hex), decode_tcb(bytes.fromhex(tcb_hex), wanted.product)
        url, code = kds.vcek_url(wanted.product, chip_id, tcb), Code.SNP_LEAF_MISSING
        body = kds.fetch_vcek(wanted.product, chip_id, tcb)
    else:
        raise ValueError(f"no vendor service serves {wanted}")
    next_update = document_next_update(wanted.kind, body)
    if next_update is None:
        raise FetchError(code, f"{wanted}: the served document does not say when it expires", url=url, status=200)
    return Fetched(wanted, body, chain, next_update)


def fetch_documents(clients: VendorClients, wanted: Sequence[Wanted]) -> tuple[list[Fetched], list[FetchError]]:
    """Fetch each document; a vendor that answers 429/5xx or cannot be reached is asked nothing more this time."""
    fetched: list[Fetched] = []
    failures: list[FetchError] = []
    unavailable: set[str] = set()
    for w in wanted:
        if w.vendor in unavailable:
            continue
        try:
            fetched.append(fetch_document(clients, w))
        except FetchError as e:
            log.warning("collateral fetch failed: %s: %s", w, e)
            failures.append(e)
            if e.retryable:
                unavailable.add(w.vendor)
        except (ValueError, KeywardError) as e:  # a key no vendor URL can be built from
            log.warning("collateral %s cannot be fetched: %s", w, e)
    return fetched, failures


def store_documents(session: Session, fetched: Sequence[Fetched], now: datetime) -> tuple[str, ...]:
    """Store the fetched documents and commit. A row another worker inserted meanwhile is replaced instead."""
    for attempt in range(2):
        try:
            for f in fetched:
                w = f.wanted
                put_document(
                    session,
                    w.vendor,
                    w.kind,
                    w.key,
                    f.body,
                    issuer_chain=f.issuer_chain,
                    fetched_at=now,
                    next_update=f.next_update,
                )
            session.commit()
            break
        except IntegrityError:  # the same (vendor, kind, key) inserted concurrently: now it updates
            session.rollback()
            if attempt:
                raise
    return tuple(str(f.wanted) for f in fetched)


# ----------------------------------------------------------------------------------------------------------
# Before a decision


def prefetch_for(session: Session, attestation_id: uuid.UUID, clients: VendorClients, now: datetime) -> FetchReport:
    """Fetch and store what a pending attestation's evidence needs and the cache lacks. Owns ``session``'s
    transactions: the read is committed before any vendor is asked, the documents are stored and committed."""
    att = session.get(Attestation, attestation_id)
    needs = collateral_needs(session, att.evidence, now) if att and att.status == AttestationStatus.PENDING else []
    session.commit()
    if not needs:
        return FetchReport()
    fetched, failures = fetch_documents(clients, needs)
    return FetchReport(store_documents(session, fetched, now), tuple(failures))


def retry_delay(attempt: int, retry_after: float | None, settings: Settings) -> float:
    """Seconds before retry ``attempt`` (0 first): exponential back-off, never less than the vendor's Retry-After,
    at most ``collateral_retry_max_delay``."""
    backoff = settings.collateral_retry_delay * 2.0 ** min(attempt, 30)
    return min(settings.collateral_retry_max_delay, max(backoff, retry_after or 0.0))


def prefetch(attestation_id: str, attempt: int, settings: Settings) -> float | None:
    """Prefetch for one attestation in its own transactions. Returns the seconds to wait before trying again
    (a vendor is unavailable and retries are left), or None: decide now."""
    if not settings.collateral_fetch:
        return None
    factory = sessionmaker(bind=engine_for(settings.database_url), expire_on_commit=False)
    with factory() as session, vendor_clients(settings) as clients:
        report = prefetch_for(session, uuid.UUID(attestation_id), clients, current_time(settings))
    return _retry_delay_for(report, attestation_id, attempt, settings)


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


def prefetch_locked_or_retry(task: Any, session: Session, att: Attestation, settings: Settings) -> bool:
    """For the decide task (``bind=True``), which holds ``att``'s row lock in ``session``'s transaction: what the
    pending attestation's evidence needs and the cache lacks. Nothing (evidence that brings its collateral, or a
    warm cache): False, and the transaction goes on to the decision (no second read of the attestation).
    Otherwise the transaction is rolled back, since no transaction stays open while a vendor is asked, the
    documents are fetched and stored, and True says the caller must lock the row again; Celery's ``Retry`` is
    raised instead when the decision should wait for a vendor (``task.request.retries`` counts the attempts)."""
    if not settings.collateral_fetch or att.status != AttestationStatus.PENDING:
        return False
    now = current_time(settings)
    needs = collateral_needs(session, att.evidence, now)
    if not needs:
        return False
    session.rollback()
    with vendor_clients(settings) as clients:
        fetched, failures = fetch_documents(clients, needs)
        report = FetchReport(store_documents(session, fetched, now), tuple(failures))
    delay = _retry_delay_for(report, str(att.id), task.request.retries, settings)
    if delay is not None:
        raise task.retry(countdown=delay, max_retries=settings.collateral_fetch_retries)
    return True


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


def refresh_cache(
    session: Session, clients: VendorClients, now: datetime, *, ahead: timedelta, limit: int
) -> FetchReport:
    """Fetch again the cached documents due for their next update before ``now + ahead``, at most ``limit``
    looked at, soonest first. Rows stored without a next update get it from their body (read once). A cached
    VCEK that is not a readable certificate is dropped: it can never verify, and the next attestation from that
    chip fetches it again. Failures keep the cached copy. Owns ``session``'s transactions."""
    horizon = now + ahead
    kinds = or_(*(and_(CachedCollateral.vendor == v, CachedCollateral.kind == k) for v, k in sorted(REFRESHABLE)))
    rows = session.scalars(
        select(CachedCollateral)
        .where(kinds, or_(CachedCollateral.next_update.is_(None), CachedCollateral.next_update <= horizon))
        .order_by(CachedCollateral.next_update.asc().nulls_first(), CachedCollateral.fetched_at)
        .limit(limit)
    ).all()
    due: list[Wanted] = []
    for row in rows:
        if row.next_update is None:
            row.next_update = document_next_update(row.kind, row.body)
        if row.next_update is not None and row.next_update > horizon:
            continue
        wanted = _wanted_for_row(row)
        if wanted is None:
            log.warning("dropping cached %s/%s/%s: no product to fetch it for", row.vendor, row.kind, row.key)
            session.delete(row)
            continue
        due.append(wanted)
    session.commit()
    fetched, failures = fetch_documents(clients, due)
    return FetchReport(store_documents(session, fetched, now), tuple(failures))


def refresh_collateral() -> int:
    """Beat task body: refresh ageing cached collateral; returns how many documents were stored."""
    settings = get_settings()
    if not settings.collateral_fetch:
        return 0
    factory = sessionmaker(bind=engine_for(settings.database_url), expire_on_commit=False)
    with factory() as session, vendor_clients(settings) as clients:
        report = refresh_cache(
            session,
            clients,
            current_time(settings),
            ahead=timedelta(hours=settings.collateral_refresh_ahead_hours),
            limit=settings.collateral_refresh_batch,
        )
    log.info("collateral refresh: %d stored, %d failed", len(report.stored), len(report.failures))
    return len(report.stored)


refresh_collateral_task = celery_app.task(name="keyward.refresh_collateral")(refresh_collateral)
