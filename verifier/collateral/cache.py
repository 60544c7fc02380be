"""The vendor-collateral cache in the database: what verification reads when evidence arrives without collateral.

Rows are vendor documents *as served* (``CachedCollateral``): Intel PCS responses (body + issuer-chain header)
keyed by TEE, FMSPC and PCK CA; AMD VCEKs keyed by CHIP_ID and REPORTED_TCB; AMD CRLs keyed by chain and product.
Worker-side fetchers (Intel PCS / PCCS, AMD KDS) write them with :func:`put_document`, which never replaces a
cached TCB Info, QE Identity or CRL with an older one (a stale PCCS or a replayed response cannot roll the cache
back). Verification reads them here and still verifies every signature, chain and validity window, so a poisoned
cache can only cause a rejection, never an acceptance. Collateral sent with the evidence is weighed against the
cache document by document (:func:`intel_collateral_for`, :func:`amd_crl_for`; the rules are
:mod:`verifier.collateral.selection`): the newer copy is verified, so an attester cannot hide a revocation or a
TCB recovery the cache already holds behind an older, still valid document.
Takes the caller's session; never commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from verifier.collateral.selection import (
    IntelDocuments,
    IssuedCrl,
    SignedJson,
    Source,
    select_amd_crl,
    select_intel_collateral,
    served_document_version,
)
from verifier.db.models import CachedCollateral
from verifier.errors import Code, EvidenceMalformed, KeywardError
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import (
    GUID_VCEK,
    GUID_VLEK,
    PRODUCTS,
    Product,
    SigningKeyName,
    SnpReport,
    parse_cert_table,
    parse_snp_report,
    product_from_cpuid,
)
from verifier.trust.amd_certs import load_leaf, parse_amd_extensions
from verifier.trust.chains import common_name, load_der_certificate
from verifier.trust.intel_collateral import (
    Collateral,
    collateral_from_pcs,
    crl_der,
    issuer_chain_header,
    pem_certificates,
    signed_member,
)
from verifier.trust.intel_pck import parse_pck_extensions
from verifier.trust.store import TrustStore

log = logging.getLogger(__name__)

INTEL, AMD = "intel", "amd"


@dataclass(frozen=True, slots=True)
class IntelKeys:
    tee: str  # "sgx" | "tdx"
    fmspc: str  # 12 lower-case hex
    ca: str  # "platform" | "processor"

    @property
    def tcb_info(self) -> str:
        return f"{self.tee}:{self.fmspc}"

    def rows(self) -> tuple[tuple[str, str], ...]:
        """The (kind, key) of the four cached documents a quote is verified with; the one place keys are made."""
        return (("tcb_info", self.tcb_info), ("qe_identity", self.tee), ("pck_crl", self.ca), ("root_ca_crl", "root"))


def intel_keys(quote_bytes: bytes) -> IntelKeys:
    """Which collateral a quote needs, read from the quote and its PCK certificate (nothing verified here)."""
    quote = parse_quote(quote_bytes)
    ders = pem_certificates(quote.signature_data.certification.pck_chain_pem, what="PCK chain")
    leaf, inter = (
        load_der_certificate(d, Code.INTEL_PCK_CHAIN_MALFORMED, "PCK chain certificate", EvidenceMalformed)
        for d in ders[:2]
    )
    platform = common_name(inter.subject).endswith("Platform CA")
    ext = parse_pck_extensions(leaf, platform_ca=platform)
    return IntelKeys("tdx" if quote.is_tdx else "sgx", ext.fmspc.hex(), "platform" if platform else "processor")


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


def _intel_rows(session: Session, k: IntelKeys) -> tuple[CachedCollateral | None, ...]:
    """The four cached rows of :meth:`IntelKeys.rows` in that order (None where absent), in one statement."""
    keys = [(INTEL, kind, key) for kind, key in k.rows()]
    found = cached_documents(session, keys)
    return tuple(found.get(row) for row in keys)


def intel_collateral_from_cache(session: Session, quote_bytes: bytes) -> Collateral | None:
    """Assemble a :class:`Collateral` for this quote from cached PCS responses, or None if anything is missing
    (or the quote is too malformed to say what it needs: the verifier then reports that)."""
    try:
        k = intel_keys(quote_bytes)
    except (KeywardError, ValueError):
        return None
    tcb, qe, pck_crl, root_crl = _intel_rows(session, k)
    if tcb is None or qe is None or pck_crl is None or root_crl is None:
        return None
    return collateral_from_pcs(
        tcb_info_body=tcb.body,
        tcb_info_issuer_chain=tcb.issuer_chain or "",
        qe_identity_body=qe.body,
        qe_identity_issuer_chain=qe.issuer_chain or "",
        pck_crl=pck_crl.body,
        root_ca_crl=root_crl.body,
        pck_crl_issuer_chain=pck_crl.issuer_chain,
    )


def intel_collateral_for(session: Session, quote_bytes: bytes, supplied: Collateral | None) -> Collateral | None:
    """The collateral to verify ``quote_bytes`` with, given the collateral sent with it (already parsed; None when
    none was sent): per document, the newer of the supplied and the cached copy
    (:func:`~verifier.collateral.selection.select_intel_collateral`), each with its own issuer chain. Without
    supplied collateral, the cache's (:func:`intel_collateral_from_cache`). A supplied document that cannot be
    read is kept, so verification rejects it with its code as before; so is everything supplied for a quote too
    malformed to say which cache rows it needs."""
    if supplied is None:
        return intel_collateral_from_cache(session, quote_bytes)
    try:
        k = intel_keys(quote_bytes)
    except (KeywardError, ValueError):
        return supplied
    tcb, qe, pck_crl, root_crl = _intel_rows(session, k)
    cached = IntelDocuments(
        tcb_info=_cached_signed(tcb, "tcbInfo"),
        qe_identity=_cached_signed(qe, "enclaveIdentity"),
        pck_crl=_cached_crl(pck_crl, with_chain=True),
        root_ca_crl=_cached_crl(root_crl, with_chain=False),
    )
    selection = select_intel_collateral(supplied, cached)
    for choice in selection.choices:
        if choice.source is Source.CACHED:
            log.info("quote collateral: %s from the cache, not as supplied: %s", choice.slot, choice.reason)
    return selection.collateral


def _cached_signed(row: CachedCollateral | None, member: str) -> SignedJson | None:
    """A cached PCS JSON response as the signed bytes, signature and issuer chain; None if absent or unreadable."""
    if row is None:
        return None
    try:
        raw, signature = signed_member(row.body, member)
        chain = issuer_chain_header(row.issuer_chain or "", what=f"{member} issuer chain")
    except KeywardError:
        return None
    return SignedJson(raw, signature, chain)


def _cached_crl(row: CachedCollateral | None, *, with_chain: bool) -> IssuedCrl | None:
    """A cached CRL as DER with its issuer chain (PCK CRL; empty when not stored); None if absent or unreadable."""
    if row is None:
        return None
    try:
        der = crl_der(row.body, what=f"cached {row.kind}")
        chain = (
            issuer_chain_header(row.issuer_chain, what="PCK CRL issuer chain")
            if with_chain and row.issuer_chain
            else ()
        )
    except KeywardError:
        return None
    return IssuedCrl(der, chain)


def vcek_key(chip_id: bytes, reported_tcb: bytes) -> str:
    """Cache key of a VCEK: KDS issues one per (chip, REPORTED_TCB); never key by certificate hash (re-issued)."""
    return f"{chip_id.hex()}:{reported_tcb.hex()}"


def vcek_from_cache(session: Session, report_bytes: bytes) -> bytes | None:
    try:
        report = parse_snp_report(report_bytes)
    except KeywardError:
        return None
    row = cached_document(session, AMD, "vcek", vcek_key(report.chip_id, report.reported_tcb))
    return row.body if row is not None else None


def amd_crl_key(product: Product, signing_key: SigningKeyName) -> str:
    """Cache key of an AMD CRL: KDS serves one per product for each chain (``vcek:milan``, ``vlek:genoa``)."""
    return f"{signing_key}:{product}"


def leaf_product(leaf_der: bytes) -> Product | None:
    """The product a VCEK/VLEK names in its productName extension (``Milan-B0`` -> ``milan``); None if unreadable
    or unknown. Nothing is verified here."""
    try:
        name = parse_amd_extensions(load_leaf(leaf_der)).product_name.split("-")[0].lower()
    except KeywardError:
        return None
    return next((p for p in PRODUCTS if p == name), None)


def snp_crl_target(
    report: SnpReport, leaf_der: bytes | None, cert_table: bytes | None
) -> tuple[Product, SigningKeyName] | None:
    """Which AMD CRL a report is checked with: its product (CPUID, or for a v2 report the productName of the leaf
    supplied directly or in the certificate table) and its signing-key chain. None when that cannot be said; the
    verification then rejects the report for its own reason, or for the missing CRL."""
    kind: SigningKeyName
    if report.signing_key_name == "vcek":
        kind, guid = "vcek", GUID_VCEK
    elif report.signing_key_name == "vlek":
        kind, guid = "vlek", GUID_VLEK
    else:
        return None
    try:
        product = product_from_cpuid(report)
        if product is None and leaf_der is None and cert_table is not None:
            leaf_der = parse_cert_table(cert_table).get(guid)
    except KeywardError:
        return None
    if product is None and leaf_der is not None:
        product = leaf_product(leaf_der)
    return None if product is None else (product, kind)


def _amd_crl_slot(
    session: Session, report_bytes: bytes, leaf_der: bytes | None, cert_table: bytes | None
) -> tuple[Product, SigningKeyName, bytes | None] | None:
    """The report's product and chain, and the cached CRL for them (None if not cached); None when the report is
    too malformed to say its product and chain."""
    try:
        report = parse_snp_report(report_bytes)
    except KeywardError:
        return None
    target = snp_crl_target(report, leaf_der, cert_table)
    if target is None:
        return None
    row = cached_document(session, AMD, "crl", amd_crl_key(*target))
    return (*target, row.body if row is not None else None)


def amd_crl_from_cache(
    session: Session, report_bytes: bytes, leaf_der: bytes | None, cert_table: bytes | None
) -> bytes | None:
    """The cached AMD CRL for this report's product and chain, or None (unknown, malformed or not cached)."""
    slot = _amd_crl_slot(session, report_bytes, leaf_der, cert_table)
    return None if slot is None else slot[2]


def amd_crl_for(
    session: Session,
    report_bytes: bytes,
    leaf_der: bytes | None,
    cert_table: bytes | None,
    supplied: bytes | None,
    trust: TrustStore,
) -> bytes | None:
    """The AMD CRL to verify this report with, given the CRL sent with it (DER; None when none was sent): the
    cached CRL of the report's product and chain (:func:`amd_crl_key`) unless the supplied one wins by the rules
    of :func:`~verifier.collateral.selection.select_amd_crl` (it must be the ARK's, not name the other chain, and
    beat the cached one, or the cache must have none). Without a supplied CRL, the cache's. When the report is
    too malformed to say its product and chain, the supplied CRL as it is (verification rejects the report)."""
    slot = _amd_crl_slot(session, report_bytes, leaf_der, cert_table)
    if slot is None:
        return supplied
    product, chain, cached = slot
    if supplied is None:
        return cached
    try:
        ark_subject: x509.Name | None = trust.root(f"amd.{product}.ark").certificate.subject
    except KeywardError:
        ark_subject = None  # no pinned ARK: verification rejects the report whatever the CRL
    choice = select_amd_crl(supplied, cached, chain=chain, ark_subject=ark_subject)
    if choice.source is Source.CACHED:
        log.info("AMD CRL for %s/%s from the cache, not as supplied: %s", chain, product, choice.reason)
    return choice.value
