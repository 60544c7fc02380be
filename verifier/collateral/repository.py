"""The vendor-collateral cache in the database: what verification reads when evidence arrives without collateral.

Rows are vendor documents *as served* (``CachedCollateral``): Intel PCS responses (body + issuer-chain header)
keyed by TEE, FMSPC and PCK CA; AMD VCEKs keyed by CHIP_ID and REPORTED_TCB; AMD CRLs keyed by chain and product.
Worker-side fetchers (Intel PCS / PCCS, AMD KDS) write them with :func:`put_document`, which never replaces a
cached TCB Info, QE Identity or CRL with an older one (a stale PCCS or a replayed response cannot roll the cache
back). Verification reads them here and still verifies every signature, chain and validity window, so a poisoned
cache can only cause a rejection, never an acceptance. Collateral sent with the evidence is weighed against the
cache document by document (:func:`intel_collateral_for`, :func:`amd_crl_for`; the rules are
:mod:`verifier.collateral.selection`): the newer copy is verified, so an attester cannot hide a revocation or a
TCB recovery the cache already holds behind an older, still valid document. The periodic refresh's candidates
(:func:`refresh_candidates`) are read here too; the rule for "due" is :mod:`verifier.collateral.freshness`.
Takes keys, never evidence: the keys come from the parsed item (:mod:`verifier.collateral.documents`, which also
assembles collateral from the rows). Takes the caller's session; never commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Row, and_, bindparam, or_, select, tuple_
from sqlalchemy.orm import Session

from verifier.collateral.documents import (
    AMD,
    INTEL,
    Document,
    IntelKeys,
    RowKey,
    Wanted,
    amd_crl,
    amd_crl_key,
    intel_collateral,
    leaf_product,
    snp_crl_target,
    vcek_key,
)
from verifier.collateral.selection import served_document_version
from verifier.db.models import CachedCollateral
from verifier.evidence.snp import Product, SigningKeyName
from verifier.trust.intel_collateral import Collateral
from verifier.trust.store import TrustStore

__all__ = [
    "AMD",
    "INTEL",
    "IntelKeys",
    "amd_crl_for",
    "amd_crl_from_cache",
    "amd_crl_key",
    "cached_document",
    "cached_documents",
    "documents_by_id",
    "documents_of",
    "drop_document",
    "intel_collateral_for",
    "intel_collateral_from_cache",
    "leaf_product",
    "put_document",
    "read_documents",
    "read_rows",
    "refresh_candidates",
    "snp_crl_target",
    "vcek_from_cache",
    "vcek_key",
]

log = logging.getLogger(__name__)


def put_document(
    session: Session,
    vendor: str,
    kind: str,
    key: str,
    body: bytes,
    *,
    issuer_chain: str | None,
    fetched_at: datetime,
    next_update: datetime | None,
) -> CachedCollateral:
    """Insert or replace one cached document, unless that would roll it back.

    A cached TCB Info, QE Identity or CRL is replaced only by the same or a newer version
    (:func:`~verifier.collateral.selection.served_document_version`: evaluation number then issueDate, thisUpdate
    then CRL Number); an older one, or one whose version cannot be read replacing one whose can, is refused and
    logged, and the row is returned unchanged (its ``fetched_at`` too: the document is no fresher than before, so
    it stays due). Rows of other kinds (VCEKs), and cached bodies that cannot be read, are always replaced."""
    row = cached_document(session, vendor, kind, key)
    if row is None:
        row = CachedCollateral(
            vendor=vendor,
            kind=kind,
            key=key,
            body=body,
            issuer_chain=issuer_chain,
            fetched_at=fetched_at,
            next_update=next_update,
        )
        session.add(row)
    elif _rolls_back(row, body):
        return row
    else:
        row.body, row.issuer_chain, row.fetched_at, row.next_update = body, issuer_chain, fetched_at, next_update
    session.flush()
    return row


def _rolls_back(row: CachedCollateral, body: bytes) -> bool:
    if body == row.body:
        return False
    cached = served_document_version(row.kind, row.body)
    if cached is None:
        return False
    new = served_document_version(row.kind, body)
    if new is None:
        log.warning(
            "not replacing cached %s/%s/%s (%s) with a document whose version cannot be read",
            row.vendor,
            row.kind,
            row.key,
            cached,
        )
        return True
    if new.subject == cached.subject and cached.newer_than(new):
        log.warning(
            "not rolling back cached %s/%s/%s: %s is older than the cached %s",
            row.vendor,
            row.kind,
            row.key,
            new,
            cached,
        )
        return True
    return False


def cached_document(session: Session, vendor: str, kind: str, key: str) -> CachedCollateral | None:
    """The cached row (vendor, kind, key), or None."""
    return session.scalars(
        select(CachedCollateral).where(
            CachedCollateral.vendor == vendor, CachedCollateral.kind == kind, CachedCollateral.key == key
        )
    ).first()


def cached_documents(
    session: Session, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], CachedCollateral]:
    """The cached rows among ``keys`` ((vendor, kind, key) each), in one statement; absent ones are left out."""
    if not keys:
        return {}
    columns = tuple_(CachedCollateral.vendor, CachedCollateral.kind, CachedCollateral.key)
    return {(r.vendor, r.kind, r.key): r for r in session.scalars(select(CachedCollateral).where(columns.in_(keys)))}


#: The cached rows among a list of (vendor, kind, key): built once (an expanding IN, compiled once per list length),
#: columns only (no ORM entities: a decision reads them, it never writes them).
_READ_ROWS = select(
    CachedCollateral.vendor,
    CachedCollateral.kind,
    CachedCollateral.key,
    CachedCollateral.body,
    CachedCollateral.issuer_chain,
    CachedCollateral.fetched_at,
    CachedCollateral.next_update,
).where(
    tuple_(CachedCollateral.vendor, CachedCollateral.kind, CachedCollateral.key).in_(bindparam("rows", expanding=True))
)

#: One cached row as read for a decision: (vendor, kind, key, body, issuer_chain, fetched_at, next_update).
CachedRow = Row[tuple[str, str, str, bytes, str | None, datetime, datetime | None]]


def read_rows(session: Session, keys: Iterable[RowKey]) -> dict[RowKey, CachedRow]:
    """The cached rows among ``keys`` (each once), in one statement, with what freshness needs (``fetched_at``,
    ``next_update``) and what verification reads (``body``, ``issuer_chain``); absent ones are left out."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    result = session.execute(_READ_ROWS, {"rows": wanted})
    return {(r.vendor, r.kind, r.key): r for r in result}  # type: ignore[misc]


def documents_of(rows: dict[RowKey, CachedRow]) -> dict[RowKey, Document]:
    """The documents of rows read by :func:`read_rows`."""
    return {k: Document(r.body, r.issuer_chain) for k, r in rows.items()}


def read_documents(session: Session, wanted: Iterable[Wanted]) -> dict[RowKey, Document]:
    """The cached documents among ``wanted``, in one statement, by :attr:`Wanted.row`; absent ones are left out."""
    return documents_of(read_rows(session, (w.row for w in wanted)))


def _intel_documents(session: Session, keys: IntelKeys) -> dict[RowKey, Document]:
    return read_documents(session, (Wanted(INTEL, kind, key) for kind, key in keys.rows()))


def intel_collateral_from_cache(session: Session, keys: IntelKeys) -> Collateral | None:
    """A :class:`Collateral` for a quote with these keys from cached PCS responses, or None if anything is missing."""
    return intel_collateral(keys, _intel_documents(session, keys), None)


def intel_collateral_for(session: Session, keys: IntelKeys | None, supplied: Collateral | None) -> Collateral | None:
    """The collateral to verify a quote with these keys with, given the collateral sent with it
    (:func:`~verifier.collateral.documents.intel_collateral`: per document the newer of supplied and cached).
    ``keys`` None: the quote is too malformed to say which rows it needs; the supplied collateral as it is."""
    documents = {} if keys is None else _intel_documents(session, keys)
    return intel_collateral(keys, documents, supplied)


def vcek_from_cache(session: Session, key: str) -> bytes | None:
    """The cached VCEK under :func:`vcek_key`, or None."""
    row = cached_document(session, AMD, "vcek", key)
    return row.body if row is not None else None


def _crl_documents(session: Session, target: tuple[Product, SigningKeyName] | None) -> dict[RowKey, Document]:
    if target is None:
        return {}
    return read_documents(session, [Wanted(AMD, "crl", amd_crl_key(*target), target[0])])


def amd_crl_from_cache(session: Session, target: tuple[Product, SigningKeyName] | None) -> bytes | None:
    """The cached AMD CRL for a product and chain (:func:`snp_crl_target`), or None (unknown or not cached)."""
    row = None if target is None else cached_document(session, AMD, "crl", amd_crl_key(*target))
    return row.body if row is not None else None


def amd_crl_for(
    session: Session,
    target: tuple[Product, SigningKeyName] | None,
    supplied: bytes | None,
    trust: TrustStore,
) -> bytes | None:
    """The AMD CRL to verify a report with: :func:`~verifier.collateral.documents.amd_crl` on the cached CRL of
    ``target`` (the report's product and chain, :func:`snp_crl_target`; None when it cannot be said)."""
    return amd_crl(target, _crl_documents(session, target), supplied, trust)


def refresh_candidates(
    session: Session,
    kinds: Iterable[tuple[str, str]],
    *,
    next_update_by: datetime,
    ageing_kinds: Iterable[str],
    fetched_by: datetime,
) -> Sequence[Row[uuid.UUID, str, datetime, datetime | None]]:
    """The rows of the (vendor, kind) pairs ``kinds`` that may be due, reading no bodies: ``(id, kind, fetched_at,
    next_update)`` of those with no next update, one by ``next_update_by``, or of ``ageing_kinds`` fetched by
    ``fetched_by``; those without a next update first, then soonest next update, then oldest fetch."""
    of_kind = or_(*(and_(CachedCollateral.vendor == v, CachedCollateral.kind == k) for v, k in sorted(kinds)))
    aged = and_(CachedCollateral.kind.in_(sorted(ageing_kinds)), CachedCollateral.fetched_at <= fetched_by)
    due = or_(CachedCollateral.next_update.is_(None), CachedCollateral.next_update <= next_update_by, aged)
    return session.execute(
        select(CachedCollateral.id, CachedCollateral.kind, CachedCollateral.fetched_at, CachedCollateral.next_update)
        .where(of_kind, due)
        .order_by(CachedCollateral.next_update.asc().nulls_first(), CachedCollateral.fetched_at)
    ).all()


def documents_by_id(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, CachedCollateral]:
    """The cached rows with these ids, in one statement; absent ones are left out."""
    return {r.id: r for r in session.scalars(select(CachedCollateral).where(CachedCollateral.id.in_(ids)))}


def drop_document(session: Session, row: CachedCollateral) -> None:
    """Delete a cached row (one that can never verify; the next attestation that needs it fetches it again)."""
    session.delete(row)
