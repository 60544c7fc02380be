"""Vendor documents for verification: which of the cache rows parsed evidence needs (its platform's rule,
:attr:`verifier.platforms.registry.ParsedItem.needs`) are missing or due, fetching them from Intel PCS/PCCS or AMD
KDS, and storing them as served (worker side: this is where the network is). Storing runs in the caller's
transaction, or in one the caller's transaction owner opens (:data:`~verifier.db.session.Transaction`): nothing
here commits or rolls back.

Nothing is verified here: a fetched document is stored as served and verified when a decision reads it, so a bad
document can only cause a rejection; storing never rolls a cached document back
(:func:`verifier.collateral.repository.put_document`). Whether a cached document is due follows one rule,
:func:`verifier.collateral.freshness.is_due`, for the prefetch before a decision and for the periodic refresh
(:mod:`verifier.worker.refresh`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

import httpx
from cryptography import x509
from cryptography.x509 import ocsp
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from verifier.collateral.documents import (
    AMD,
    INTEL,
    NVIDIA,
    NVIDIA_OCSP,
    NVIDIA_RIM,
    NVIDIA_RIM_MISSING_BODY,
    NVIDIA_RIM_OCSP,
    Document,
    RowKey,
    Wanted,
    parse_rim_ocsp_bundle,
    rim_ocsp_bundle,
)
from verifier.collateral.fetchers import AmdKdsClient, CaKind, FetchError, IntelPcsClient, Tee
from verifier.collateral.freshness import Freshness, is_due
from verifier.collateral.nvidia_fetchers import (
    NvidiaOcspClient,
    NvidiaRimClient,
    RimNotFound,
    rim_chain_pairs,
    rim_signing_certificates,
)
from verifier.collateral.repository import cached_documents, documents_of, put_document, read_rows
from verifier.config import Settings
from verifier.db.models import CachedCollateral
from verifier.db.session import Transaction
from verifier.errors import Code, KeywardError
from verifier.evidence.snp import SigningKeyName, decode_tcb
from verifier.platforms.registry import Parsed, ParsedItem
from verifier.trust.amd_certs import load_leaf
from verifier.trust.ocsp import cert_id_key
from verifier.worker.collateral_rows import CollateralRows

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
    (NVIDIA, NVIDIA_RIM),
    (NVIDIA, NVIDIA_OCSP),
    (NVIDIA, NVIDIA_RIM_OCSP),
}
#: A cached RIM is asked for again this long after it was fetched (or when its signing certificate expires, if
#: sooner): RIM ids are not content (nvidia-gpu.md P6), and NVIDIA re-signs RIMs whose L4 signer expires.
NVIDIA_RIM_REFRESH: Final = timedelta(days=7)
#: The RIM service's "no such RIM" is kept this long (:data:`~verifier.collateral.documents.NVIDIA_RIM_MISSING_BODY`):
#: decisions meanwhile report the RIM missing at once; after it, the next one asks again (NVIDIA publishes RIMs
#: for shipped versions late, nvidia-gpu.md P8).
NVIDIA_RIM_MISSING_TTL: Final = timedelta(hours=1)
#: The signed member of a PCS JSON document whose ``nextUpdate`` says when the document is due.
_SIGNED_MEMBER: Final = {"tcb_info": "tcbInfo", "qe_identity": "enclaveIdentity"}
#: After a failed fetch of a document the evidence also brings (``optional``), this process does not ask for it
#: again for this many seconds: a verifier without egress to the vendor (an air-gapped one whose attesters send
#: their collateral) would otherwise wait out a failing connection before every decision.
OPTIONAL_FETCH_BACKOFF_SECONDS: Final = 300.0
_optional_backoff: dict[str, float] = {}  # str(Wanted) -> time.monotonic() before which it is not fetched


@dataclass(frozen=True, slots=True)
class VendorClients:
    intel: IntelPcsClient
    amd: AmdKdsClient
    nvidia_rim: NvidiaRimClient | None = None  # None: NVIDIA rows cannot be fetched (ValueError)
    nvidia_ocsp: NvidiaOcspClient | None = None


@lru_cache(maxsize=4)
def _shared_http(timeout: float) -> httpx.Client:
    """One HTTP client per process and timeout (thread-safe, keeps vendor connections alive). Building one costs
    ~30 ms (its TLS context), which every decision would otherwise pay even when nothing needs fetching."""
    return httpx.Client(timeout=timeout)


@contextmanager
def vendor_clients(settings: Settings) -> Iterator[VendorClients]:
    """PCS/PCCS, KDS and NVIDIA RIM/OCSP clients on the process's shared HTTP client with the configured
    timeout."""
    root_crl = settings.pcs_root_ca_crl_url
    if root_crl is None and settings.pcs_base_url.rstrip("/") == INTEL_PCS_URL:
        root_crl = INTEL_ROOT_CA_CRL_URL  # Intel PCS has no rootcacrl path (PCCS has); Intel's CDP serves DER
    http = _shared_http(settings.collateral_fetch_timeout)
    api_key = None if settings.nvidia_api_key is None else settings.nvidia_api_key.get_secret_value()
    yield VendorClients(
        IntelPcsClient(settings.pcs_base_url, http, root_ca_crl_url=root_crl),
        AmdKdsClient(settings.kds_base_url, http),
        NvidiaRimClient(settings.nvidia_rim_url, http, api_key=api_key),
        NvidiaOcspClient(settings.nvidia_ocsp_url, http, api_key=api_key),
    )


@dataclass(frozen=True, slots=True)
class Fetched:
    wanted: Wanted
    body: bytes
    issuer_chain: str | None
    next_update: datetime


@dataclass(frozen=True, slots=True)
class FetchReport:
    """What one prefetch or refresh run stored (``"vendor/kind/key"``; a fetched document older than the cached
    one is not stored) and which fetches failed: ``failures`` for documents the decision needs,
    ``optional_failures`` for those the evidence also brings (never a reason to retry)."""

    stored: tuple[str, ...] = ()
    failures: tuple[FetchError, ...] = ()
    optional_failures: tuple[FetchError, ...] = ()

    @property
    def retryable(self) -> FetchError | None:
        """The first failure worth trying again later (429, 5xx, timeout, unreachable), if any."""
        return next((f for f in self.failures if f.retryable), None)


# ----------------------------------------------------------------------------------------------------------
# Documents: what evidence needs, when a document is due, fetching and storing


def document_next_update(kind: str, body: bytes) -> datetime | None:
    """When a document is due for replacement, read from the document itself: TCB Info / QE Identity
    ``nextUpdate``, a CRL's (Intel or AMD) nextUpdate, a VCEK's notAfter; an NVIDIA OCSP response's nextUpdate,
    the earliest nextUpdate of a RIM's chain responses, the earliest notAfter of the certificates a RIM embeds.
    None when the body does not say (unreadable; a stored "no such RIM", whose row says its own)."""
    try:
        if kind == NVIDIA_RIM:
            return _rim_not_after(body)
        if kind == NVIDIA_OCSP:
            return _ocsp_next_update(body)
        if kind == NVIDIA_RIM_OCSP:
            responses = parse_rim_ocsp_bundle(body)
            updates = [_ocsp_next_update(der) for der in responses.values()]
            return None if not updates or None in updates else min(u for u in updates if u is not None)
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


def _rim_not_after(xml: bytes) -> datetime | None:
    """The earliest notAfter of the certificates a RIM embeds (nothing trusted); None for a stored "no such RIM"."""
    if xml == NVIDIA_RIM_MISSING_BODY:
        return None
    return min(c.not_valid_after_utc for c in rim_signing_certificates(xml))


def _ocsp_next_update(der: bytes) -> datetime | None:
    response = ocsp.load_der_ocsp_response(der)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return None
    return response.next_update_utc


def due(row: CachedCollateral, now: datetime, freshness: Freshness) -> bool:
    """Whether a cached row should be fetched again at ``now`` (:func:`~verifier.collateral.freshness.is_due`); a
    row stored without a next update gets it from its body."""
    expires = row.next_update or document_next_update(row.kind, row.body)
    return is_due(row.kind, row.fetched_at, expires, now, freshness)


def collateral_needs(session: Session, evidence: Iterable[Parsed], now: datetime, freshness: Freshness) -> list[Wanted]:
    """The cache rows the parsed ``evidence`` will be verified with (each item's
    :attr:`~verifier.platforms.registry.ParsedItem.needs`, the rule the decision reads by) that a vendor can serve
    and that are missing, unreadable or due at ``now`` (:func:`due`), each once: those the decision needs first,
    then the optional ones, each in evidence order (a row one item needs and another brings is needed). Items too
    malformed to evaluate need nothing; the decision rejects them."""
    return needs_and_documents(session, evidence, now, freshness)[0]


def needs_and_documents(
    session: Session,
    evidence: Iterable[Parsed],
    now: datetime,
    freshness: Freshness,
    kept: CollateralRows | None = None,
) -> tuple[list[Wanted], dict[RowKey, Document]]:
    """:func:`collateral_needs`, and every cached document the evidence needs (fetchable or not: exactly what the
    decision reads, :func:`verifier.attestation.items.read_needs`), both from one statement, or none when ``kept``
    (the worker's kept rows, :mod:`verifier.worker.collateral_rows`) holds them all under the current token. When
    nothing needs fetching, a decision in the same transaction verifies with these documents instead of reading
    them again. Freshness is judged here, on kept rows as on rows just read."""
    wants: dict[str, Wanted] = {}
    rows: list[RowKey] = []
    for item in evidence:
        if not isinstance(item, ParsedItem):
            continue
        for wanted in item.needs:
            rows.append(wanted.row)
            if not wanted.fetchable:
                continue
            seen = wants.get(str(wanted))
            if seen is None or (seen.optional and not wanted.optional):
                wants[str(wanted)] = wanted
    cached = read_rows(session, rows) if kept is None else kept.read(session, rows)  # one statement, or none
    needs: dict[str, Wanted] = {}
    for name, wanted in wants.items():
        row = cached.get(wanted.row)
        expires = None if row is None else row.next_update or document_next_update(row.kind, row.body)
        if row is None or is_due(row.kind, row.fetched_at, expires, now, freshness):
            needs[name] = wanted
    # Needed first: a vendor that fails an optional fetch is asked nothing more in that run.
    return sorted(needs.values(), key=lambda w: w.optional), documents_of(cached)


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


def fetch_document(
    clients: VendorClients, wanted: Wanted, *, now: datetime | None = None, rims: Mapping[str, bytes] | None = None
) -> Fetched:
    """GET one document from its vendor service and read when it is due. Raises :class:`FetchError` (also for a
    body that does not say when it expires, which would never verify), or ValueError for a key it cannot ask for.
    NVIDIA rows (:func:`_fetch_nvidia`) take ``now`` (a RIM's refresh, a "no such RIM" kept) and ``rims``: RIM
    bodies at hand by id (cached, or fetched earlier in the same run), read before the RIM service is asked."""
    if wanted.vendor == NVIDIA:
        return _fetch_nvidia(clients, wanted, now, rims or {})
    pcs, kds = clients.intel, clients.amd
    what = (wanted.vendor, wanted.kind)
    chain: str | None = None
    code = Code.INTEL_COLLATERAL_UNAVAILABLE
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
        url, code = kds.crl_url(wanted.product, _signing_key(wanted.key)), Code.SNP_CRL_UNAVAILABLE
        body = kds.fetch_crl(wanted.product, _signing_key(wanted.key))
    elif what == (AMD, "vcek") and wanted.product is not None:
        chip_hex, tcb_hex = wanted.key.split(":", 1)
        chip_id, tcb = bytes.fromhex(chip_hex), decode_tcb(bytes.fromhex(tcb_hex), wanted.product)
        url, code = kds.vcek_url(wanted.product, chip_id, tcb), Code.SNP_LEAF_UNAVAILABLE
        body = kds.fetch_vcek(wanted.product, chip_id, tcb)
    else:
        raise ValueError(f"no vendor service serves {wanted}")
    next_update = document_next_update(wanted.kind, body)
    if next_update is None:
        raise FetchError(code, f"{wanted}: the served document does not say when it expires", url=url, status=200)
    return Fetched(wanted, body, chain, next_update)


def _fetch_nvidia(clients: VendorClients, wanted: Wanted, now: datetime | None, rims: Mapping[str, bytes]) -> Fetched:
    """One NVIDIA row (nvidia-gpu.md §3-§4), next update as follows:

    * ``rim``: the RIM XML, fetched again after :data:`NVIDIA_RIM_REFRESH` or when its earliest signing certificate
      expires, whichever is sooner (an already expired signer: after the refresh period). An unknown id
      (:class:`RimNotFound`) is stored as :data:`~verifier.collateral.documents.NVIDIA_RIM_MISSING_BODY` for
      :data:`NVIDIA_RIM_MISSING_TTL` when ``now`` is given; without ``now`` it is raised.
    * ``ocsp``: the DER response for the CertID key, until its nextUpdate.
    * ``rim-ocsp``: the responses for each link of the RIM's embedded chain (L4-L3, L3-L2, L2-root), read from
      ``rims`` or else from the RIM service, until the earliest nextUpdate; all or nothing.
    """
    rim_client, ocsp_client, kind, key = clients.nvidia_rim, clients.nvidia_ocsp, wanted.kind, wanted.key
    if kind == NVIDIA_RIM and rim_client is not None:
        url = rim_client.rim_url(key)
        try:
            xml = rim_client.fetch_rim(key)
        except RimNotFound:
            if now is None:
                raise
            return Fetched(wanted, NVIDIA_RIM_MISSING_BODY, None, now + NVIDIA_RIM_MISSING_TTL)
        expires = document_next_update(kind, xml)
        if expires is None:
            raise FetchError(
                Code.NVIDIA_RIM_UNAVAILABLE,
                f"{wanted}: the served RIM embeds no readable signing chain",
                url=url,
                status=200,
            )
        if now is not None:
            expires = min(expires, now + NVIDIA_RIM_REFRESH) if expires > now else now + NVIDIA_RIM_REFRESH
        return Fetched(wanted, xml, None, expires)
    if kind == NVIDIA_OCSP and ocsp_client is not None:
        der = ocsp_client.fetch(key)
        return Fetched(wanted, der, None, _expiring(kind, der, ocsp_client.url, wanted))
    if kind == NVIDIA_RIM_OCSP and rim_client is not None and ocsp_client is not None:
        url = rim_client.rim_url(key)
        cached = rims.get(key)
        xml = rim_client.fetch_rim(key) if cached is None else cached
        if xml == NVIDIA_RIM_MISSING_BODY:
            raise RimNotFound(key, url=url)
        try:
            keys = [cert_id_key(cert, issuer) for cert, issuer in rim_chain_pairs(rim_signing_certificates(xml))]
        except (KeywardError, ValueError) as e:
            raise FetchError(
                Code.NVIDIA_OCSP_UNAVAILABLE, f"{wanted}: the RIM's signing chain cannot be read", url=url, status=200
            ) from e
        body = rim_ocsp_bundle({k: ocsp_client.fetch(k) for k in keys})
        return Fetched(wanted, body, None, _expiring(kind, body, ocsp_client.url, wanted))
    raise ValueError(f"no vendor service serves {wanted}")


def _expiring(kind: str, body: bytes, url: str, wanted: Wanted) -> datetime:
    next_update = document_next_update(kind, body)
    if next_update is None:
        raise FetchError(
            Code.NVIDIA_OCSP_UNAVAILABLE,
            f"{wanted}: the served response does not say when it expires",
            url=url,
            status=200,
        )
    return next_update


def fetch_documents(
    clients: VendorClients,
    wanted: Sequence[Wanted],
    *,
    now: datetime | None = None,
    rims: Mapping[str, bytes] | None = None,
) -> tuple[list[Fetched], list[tuple[Wanted, FetchError]]]:
    """Fetch each document; a vendor that answers 429/5xx or cannot be reached is asked nothing more this time.
    Returns what was fetched and, for each failed fetch, what was wanted and why it failed. The OCSP responses of
    RIM signing chains come last, read from ``rims`` (cached RIM bodies by id) or from the RIMs fetched before."""
    fetched: list[Fetched] = []
    failures: list[tuple[Wanted, FetchError]] = []
    unavailable: set[str] = set()
    known = dict(rims or {})
    for w in sorted(wanted, key=lambda w: w.vendor == NVIDIA and w.kind == NVIDIA_RIM_OCSP):  # stable
        if w.vendor in unavailable:
            continue
        try:
            got = fetch_document(clients, w, now=now, rims=known)
            fetched.append(got)
            if (w.vendor, w.kind) == (NVIDIA, NVIDIA_RIM):
                known[w.key] = got.body
        except FetchError as e:
            log.warning("collateral fetch failed: %s: %s", w, e)
            failures.append((w, e))
            if e.retryable:
                unavailable.add(w.vendor)
        except (ValueError, KeywardError) as e:  # a key no vendor URL can be built from
            log.warning("collateral %s cannot be fetched: %s", w, e)
    return fetched, failures


def store_documents(session: Session, fetched: Sequence[Fetched], now: datetime) -> tuple[str, ...]:
    """Store the fetched documents in ``session``'s transaction (the caller's: nothing here commits); returns those
    stored. A document older than the cached one is not stored (:func:`put_document` logs it). IntegrityError: a
    row another worker inserted meanwhile (:func:`store_fetched` stores again in a new transaction)."""
    stored: list[str] = []
    for f in fetched:
        w = f.wanted
        row = put_document(
            session,
            w.vendor,
            w.kind,
            w.key,
            f.body,
            issuer_chain=f.issuer_chain,
            fetched_at=now,
            next_update=f.next_update,
        )
        if row.body == f.body:
            stored.append(str(w))
    return tuple(stored)


def store_fetched(transaction: Transaction, fetched: Sequence[Fetched], now: datetime) -> tuple[str, ...]:
    """:func:`store_documents` in a ``transaction`` of its own, opened by its owner; a row another worker inserted
    meanwhile makes it store again in a new one, where that row is replaced instead."""
    if not fetched:
        return ()
    # IntegrityError: the same (vendor, kind, key) inserted concurrently; stored again below, where it updates.
    with suppress(IntegrityError), transaction() as session:
        return store_documents(session, fetched, now)
    with transaction() as session:
        return store_documents(session, fetched, now)


def _cached_rims(transaction: Transaction, wanted: Sequence[Wanted]) -> dict[str, bytes]:
    """The cached RIMs whose signing chains' OCSP responses are ``wanted`` (read in a ``transaction`` of its own,
    ended before any vendor is asked), so those are asked for the chain of the RIM the decision reads."""
    ids = [w.key for w in wanted if (w.vendor, w.kind) == (NVIDIA, NVIDIA_RIM_OCSP)]
    if not ids:
        return {}
    with transaction() as session:
        rows = cached_documents(session, [(NVIDIA, NVIDIA_RIM, rim_id) for rim_id in ids])
        return {key: row.body for (_v, _k, key), row in rows.items()}


def fetchable(wanted: Sequence[Wanted]) -> list[Wanted]:
    """``wanted`` less the optional documents whose last fetch failed within :data:`OPTIONAL_FETCH_BACKOFF_SECONDS`
    (in this process)."""
    clock = time.monotonic()
    return [w for w in wanted if not w.optional or _optional_backoff.get(str(w), 0.0) <= clock]


def fetch_and_store(
    transaction: Transaction, clients: VendorClients, wanted: Sequence[Wanted], now: datetime
) -> FetchReport:
    """Fetch ``wanted`` (no transaction is open meanwhile) and store what came back in a ``transaction`` of its own
    (:func:`store_fetched`); the report says what was stored and what failed."""
    wanted = fetchable(wanted)
    if not wanted:
        return FetchReport()
    fetched, failures = fetch_documents(clients, wanted, now=now, rims=_cached_rims(transaction, wanted))
    for w, _ in failures:
        if w.optional:
            _optional_backoff[str(w)] = time.monotonic() + OPTIONAL_FETCH_BACKOFF_SECONDS
    for f in fetched:
        _optional_backoff.pop(str(f.wanted), None)
    return FetchReport(
        store_fetched(transaction, fetched, now),
        tuple(e for w, e in failures if not w.optional),
        tuple(e for w, e in failures if w.optional),
    )
