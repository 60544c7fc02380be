"""The collateral cache on real PostgreSQL: storing never rolls a document back, and collateral sent with evidence
is weighed against the cache document by document (``intel_collateral_for``, ``amd_crl_for``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tests.support.dated_collateral import (
    amd_crl,
    pck_crl,
    pcs_body,
    pcs_chain_header,
    qe_identity,
    root_ca_crl,
    supplied,
    tcb_info,
    with_documents,
)
from verifier.collateral.documents import IntelKeys, intel_keys, snp_crl_target
from verifier.collateral.repository import (
    AMD,
    INTEL,
    amd_crl_for,
    amd_crl_from_cache,
    amd_crl_key,
    intel_collateral_for,
    intel_collateral_from_cache,
    put_document,
)
from verifier.collateral.selection import IssuedCrl, SignedJson
from verifier.db.models import CachedCollateral
from verifier.errors import Code, KeywardError
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import Product, SigningKeyName, parse_snp_report
from verifier.platforms.amd_snp import verify_snp_report
from verifier.platforms.intel_dcap import verify_quote
from verifier.simulation.amd_pki import SERIALS, AmdEvidence, CrlOptions, ReportOptions, default_amd_pki
from verifier.simulation.intel_pki import SIM_NOW, Evidence, QuoteOptions, default_pki
from verifier.trust.intel_collateral import Collateral

NOW = SIM_NOW
DAY = timedelta(days=1)
KINDS = ("tcb_info", "qe_identity", "pck_crl", "root_ca_crl")


@pytest.fixture(autouse=True)
def empty_cache(session: Session) -> None:
    session.execute(delete(CachedCollateral))


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return default_pki().build(QuoteOptions())


def _key(ev: Evidence, kind: str) -> str:
    return {"tcb_info": f"tdx:{ev.platform.fmspc.hex()}", "qe_identity": "tdx", "pck_crl": ev.pcs.ca}.get(kind, "root")


def _put_intel(
    session: Session, ev: Evidence, kind: str, doc: SignedJson | IssuedCrl, fetched_at: datetime = NOW
) -> CachedCollateral:
    """Store ``doc`` as the PCS/PCCS response for ``ev``'s ``kind`` row."""
    chain = pcs_chain_header(doc.issuer_chain) if doc.issuer_chain else None
    body = _served(kind, doc)
    return put_document(
        session, INTEL, kind, _key(ev, kind), body, issuer_chain=chain, fetched_at=fetched_at, next_update=None
    )


def _served(kind: str, doc: SignedJson | IssuedCrl) -> bytes:
    if isinstance(doc, IssuedCrl):
        return doc.der
    return pcs_body("tcbInfo" if kind == "tcb_info" else "enclaveIdentity", doc)


def _docs(ev: Evidence, *, issued: datetime, number: int) -> dict[str, SignedJson | IssuedCrl]:
    return {
        "tcb_info": tcb_info(ev, issued=issued, number=number),
        "qe_identity": qe_identity(ev, issued=issued, number=number),
        "pck_crl": pck_crl(ev, issued=issued, number=number),
        "root_ca_crl": root_ca_crl(issued=issued, number=number),
    }


def _cache_all(session: Session, ev: Evidence, collateral: Collateral) -> None:
    _put_intel(session, ev, "tcb_info", SignedJson(*_signed(collateral, "tcb_info")))
    _put_intel(session, ev, "qe_identity", SignedJson(*_signed(collateral, "qe_identity")))
    _put_intel(session, ev, "pck_crl", IssuedCrl(collateral.pck_crl, collateral.pck_crl_issuer_chain))
    _put_intel(session, ev, "root_ca_crl", IssuedCrl(collateral.root_ca_crl))


def _signed(c: Collateral, kind: str) -> tuple[bytes, bytes, tuple[bytes, ...]]:
    if kind == "tcb_info":
        return c.tcb_info_raw, c.tcb_info_signature, c.tcb_info_issuer_chain
    return c.qe_identity_raw, c.qe_identity_signature, c.qe_identity_issuer_chain


# ----------------------------------------------------------------------------------------------------------
# put_document: no rollback


@pytest.mark.parametrize("kind", KINDS)
def test_put_document_older_refused(
    session: Session, ev: Evidence, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    newer = _docs(ev, issued=NOW - DAY, number=18)[kind]
    older = _docs(ev, issued=NOW - 20 * DAY, number=17)[kind]
    stored = _put_intel(session, ev, kind, newer, fetched_at=NOW - DAY)
    body = stored.body

    with caplog.at_level(logging.WARNING, logger="verifier.collateral.repository"):
        row = _put_intel(session, ev, kind, older, fetched_at=NOW)

    assert (row.body, row.fetched_at) == (body, NOW - DAY)
    assert "not rolling back" in caplog.text


@pytest.mark.parametrize("kind", KINDS)
def test_put_document_newer_replaces(session: Session, ev: Evidence, kind: str) -> None:
    older = _docs(ev, issued=NOW - 20 * DAY, number=17)[kind]
    newer = _docs(ev, issued=NOW - DAY, number=18)[kind]
    _put_intel(session, ev, kind, older, fetched_at=NOW - DAY)
    _put_intel(session, ev, kind, newer, fetched_at=NOW)

    row = session.scalars(select(CachedCollateral).where(CachedCollateral.kind == kind)).one()
    assert (row.body, row.fetched_at) == (_served(kind, newer), NOW)


@pytest.mark.parametrize("kind", KINDS)
def test_put_document_same_version_replaces(session: Session, ev: Evidence, kind: str) -> None:
    doc = _docs(ev, issued=NOW - DAY, number=18)[kind]
    _put_intel(session, ev, kind, doc, fetched_at=NOW - DAY)
    assert _put_intel(session, ev, kind, doc, fetched_at=NOW).fetched_at == NOW


def test_put_document_same_crl_version_other_content_replaces(session: Session, ev: Evidence) -> None:
    first = pck_crl(ev, issued=NOW - DAY, number=3)
    again = pck_crl(ev, issued=NOW - DAY, number=3, revoked=(ev.pck_chain[0].serial_number,))
    _put_intel(session, ev, "pck_crl", first)
    assert _put_intel(session, ev, "pck_crl", again).body == again.der


def test_put_document_unreadable_never_replaces_readable(session: Session, ev: Evidence) -> None:
    good = _put_intel(session, ev, "tcb_info", tcb_info(ev, issued=NOW - DAY)).body
    row = put_document(
        session, INTEL, "tcb_info", _key(ev, "tcb_info"), b"{}", issuer_chain=None, fetched_at=NOW, next_update=None
    )
    assert row.body == good


def test_put_document_amd_crl_older_refused_vcek_always_replaced(session: Session) -> None:
    newer, older = amd_crl("genoa", issued=NOW - DAY), amd_crl("genoa", issued=NOW - 20 * DAY)
    put_document(session, AMD, "crl", "vcek:genoa", newer, issuer_chain=None, fetched_at=NOW, next_update=None)
    row = put_document(session, AMD, "crl", "vcek:genoa", older, issuer_chain=None, fetched_at=NOW, next_update=None)
    assert row.body == newer
    put_document(session, AMD, "vcek", "00:00", b"first", issuer_chain=None, fetched_at=NOW, next_update=None)
    row = put_document(session, AMD, "vcek", "00:00", b"second", issuer_chain=None, fetched_at=NOW, next_update=None)
    assert row.body == b"second"


# ----------------------------------------------------------------------------------------------------------
# intel_collateral_for


def _keys(quote: bytes) -> IntelKeys | None:
    """The keys the decision has for a quote: None when it does not parse (its parsed item says so)."""
    try:
        return intel_keys(parse_quote(quote))
    except KeywardError:
        return None


def _target(report: bytes, leaf: bytes | None) -> tuple[Product, SigningKeyName] | None:
    try:
        return snp_crl_target(parse_snp_report(report), leaf, None)
    except KeywardError:
        return None


@pytest.mark.parametrize("kind", KINDS)
def test_intel_collateral_for_older_supplied_loses_to_cache(session: Session, ev: Evidence, kind: str) -> None:
    own = supplied(ev)
    _cache_all(session, ev, own)
    newer = _docs(ev, issued=NOW - DAY, number=18)[kind]
    _put_intel(session, ev, kind, newer)

    chosen = intel_collateral_for(session, _keys(ev.quote), own)

    assert chosen == intel_collateral_from_cache(session, intel_keys(parse_quote(ev.quote)))
    assert chosen != own


@pytest.mark.parametrize("kind", KINDS)
def test_intel_collateral_for_newer_supplied_wins(session: Session, ev: Evidence, kind: str) -> None:
    own = supplied(ev)
    _cache_all(session, ev, own)
    doc = _docs(ev, issued=NOW - DAY, number=18)[kind]
    change = {"tcb_info": "tcb", "qe_identity": "qe", "pck_crl": "pck", "root_ca_crl": "root"}[kind]
    newer = with_documents(own, **{change: doc})  # type: ignore[arg-type]

    assert intel_collateral_for(session, _keys(ev.quote), newer) == newer


def test_intel_collateral_for_cache_empty_uses_supplied(session: Session, ev: Evidence) -> None:
    assert intel_collateral_for(session, _keys(ev.quote), supplied(ev)) == supplied(ev)


def test_intel_collateral_for_nothing_supplied_reads_cache(session: Session, ev: Evidence) -> None:
    assert intel_collateral_for(session, _keys(ev.quote), None) is None
    _cache_all(session, ev, supplied(ev))
    assert intel_collateral_for(session, _keys(ev.quote), None) == supplied(ev)


def test_intel_collateral_for_malformed_quote_keeps_supplied(session: Session, ev: Evidence) -> None:
    _cache_all(session, ev, with_documents(supplied(ev), pck=pck_crl(ev, issued=NOW - DAY, number=2)))
    assert intel_collateral_for(session, _keys(ev.quote[:600]), supplied(ev)) == supplied(ev)


def test_intel_collateral_for_unreadable_cached_document_replaced_by_supplied(session: Session, ev: Evidence) -> None:
    newer = with_documents(supplied(ev), qe=qe_identity(ev, issued=NOW - DAY, number=18))
    _cache_all(session, ev, newer)
    session.scalars(select(CachedCollateral).where(CachedCollateral.kind == "tcb_info")).one().body = b"garbage"
    session.flush()

    chosen = intel_collateral_for(session, _keys(ev.quote), supplied(ev))

    assert chosen is not None
    assert chosen.tcb_info_raw == supplied(ev).tcb_info_raw
    assert chosen.qe_identity_raw == newer.qe_identity_raw


def test_intel_collateral_for_cached_revocation_not_hidden(session: Session, ev: Evidence) -> None:
    """The auditor's rider repro through the cache: the PCK was revoked after the CRL the attester sends."""
    revoked = pck_crl(ev, issued=NOW - DAY, number=2, revoked=(ev.pck_chain[0].serial_number,))
    _cache_all(session, ev, with_documents(supplied(ev), pck=revoked))

    chosen = intel_collateral_for(session, _keys(ev.quote), supplied(ev))

    assert chosen is not None
    with pytest.raises(KeywardError) as e:
        verify_quote(parse_quote(ev.quote), chosen, ev.trust_store, NOW)
    assert e.value.code == Code.INTEL_PCK_REVOKED


# ----------------------------------------------------------------------------------------------------------
# amd_crl_for

ASVK = SERIALS["genoa", "asvk"]


@pytest.fixture(scope="module")
def vlek() -> AmdEvidence:
    """A VLEK report whose chain's CRL (as KDS serves it, issued 5 days before NOW) lists its ASVK."""
    ev = default_amd_pki().build(ReportOptions(signing_key="vlek"), crl=CrlOptions(revoked_serials=(ASVK,)))
    assert ev.crl_der is not None
    return ev


def _cache_crl(session: Session, chain: str, crl: bytes) -> None:
    put_document(session, AMD, "crl", f"{chain}:genoa", crl, issuer_chain=None, fetched_at=NOW, next_update=None)


def _crl_for(session: Session, ev: AmdEvidence, crl: bytes | None) -> bytes | None:
    return amd_crl_for(session, _target(ev.report, ev.leaf_der), crl, ev.trust_store)


def test_amd_crl_for_older_supplied_loses_to_cache(session: Session, vlek: AmdEvidence) -> None:
    """The auditor's t2 repro through the cache."""
    assert vlek.crl_der is not None
    _cache_crl(session, "vlek", vlek.crl_der)
    older = amd_crl("genoa", issued=NOW - 20 * DAY, lifetime=21 * DAY)

    chosen = _crl_for(session, vlek, older)

    assert chosen == vlek.crl_der
    with pytest.raises(KeywardError) as e:
        verify_snp_report(parse_snp_report(vlek.report), vlek.leaf_der, vlek.trust_store, NOW, crl_der=chosen)
    assert e.value.code == Code.SNP_CHAIN_REVOKED


def test_amd_crl_for_other_chain_crl_refused(session: Session, vlek: AmdEvidence) -> None:
    """Only the VCEK chain's CRL is cached; the supplied one names the VCEK chain: not used for a VLEK report."""
    _cache_crl(session, "vcek", default_amd_pki().crl("genoa"))
    other = amd_crl("genoa", issued=NOW - DAY, names_chain="vcek")
    assert _crl_for(session, vlek, other) is None


def test_amd_crl_for_unnamed_supplied_used_when_chain_not_cached(session: Session, vlek: AmdEvidence) -> None:
    _cache_crl(session, "vcek", default_amd_pki().crl("genoa"))  # the other chain's: not this report's key
    crl = amd_crl("genoa", issued=NOW - 20 * DAY, lifetime=21 * DAY)
    assert _crl_for(session, vlek, crl) == crl


def test_amd_crl_for_nothing_supplied_reads_cache(session: Session, vlek: AmdEvidence) -> None:
    assert vlek.crl_der is not None
    assert _crl_for(session, vlek, None) is None
    _cache_crl(session, "vlek", vlek.crl_der)
    assert _crl_for(session, vlek, None) == vlek.crl_der == amd_crl_from_cache(session, _target(vlek.report, None))
    assert amd_crl_key("genoa", "vlek") == "vlek:genoa"


def test_amd_crl_for_malformed_report_keeps_supplied(session: Session, vlek: AmdEvidence) -> None:
    assert vlek.crl_der is not None
    _cache_crl(session, "vlek", vlek.crl_der)
    crl = amd_crl("genoa", issued=NOW - 20 * DAY, lifetime=21 * DAY)
    assert amd_crl_for(session, _target(vlek.report[:100], vlek.leaf_der), crl, vlek.trust_store) == crl
