"""The in-process collateral cache (:class:`~verifier.collateral.documents.CollateralCache`): an Intel item parsed,
its collateral chosen and the quote verified and appraised give the same evaluation with and without it, on the
real vectors and on simulated evidence with cached documents; a changed document is never answered from it; every
validity window is still checked against the decision's ``now``; and each of its maps stays within its bound."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.support.vectors import INTEL_CASES, IntelCase
from verifier.collateral.documents import INTEL, CollateralCache, Document, RowKey, intel_keys
from verifier.evidence.dcap import parse_quote
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import EvidenceItem, Verifying
from verifier.platforms.registry import ParsedItem, parse_item
from verifier.simulation.intel_options import CollateralOptions
from verifier.simulation.intel_pki import SIM_NOW, Evidence, QuoteOptions, default_pki
from verifier.trust.intel_collateral import signed_member
from verifier.trust.store import TrustStore, load_trust_store

POLICY: dict[str, Any] = {
    "accepted_tcb_statuses": ["UpToDate", "OutOfDate", "SWHardeningNeeded", "ConfigurationNeeded"]
}


def _item(quote: bytes, collateral: str | None, kind: str = "intel-tdx") -> EvidenceItem:
    return EvidenceItem.model_validate(
        {"type": kind, "evidence": base64.b64encode(quote).decode(), "collateral": collateral}
    )


def _evaluate(
    item: EvidenceItem,
    documents: dict[RowKey, Document],
    trust: TrustStore,
    now: datetime,
    cache: CollateralCache | None,
) -> Evaluation:
    parsed = parse_item(item, cache)
    assert isinstance(parsed, ParsedItem)
    return parsed.evaluate(documents, dict(POLICY), Verifying(trust, now, collateral_cache=cache))


def _same(
    item: EvidenceItem, documents: dict[RowKey, Document], trust: TrustStore, now: datetime, cache: CollateralCache
) -> Evaluation:
    """The evaluation without a cache, checked equal to two with it (the first fills it, the second hits)."""
    plain = _evaluate(item, documents, trust, now, None)
    assert _evaluate(item, documents, trust, now, cache).to_json() == plain.to_json()
    assert _evaluate(item, documents, trust, now, cache).to_json() == plain.to_json()
    return plain


def _rows(ev: Evidence) -> dict[RowKey, Document]:
    """The four cache rows of a simulated quote's collateral, as PCS serves them."""
    pcs = ev.pcs
    keys = intel_keys(parse_quote(ev.quote))
    bodies = (
        Document(pcs.tcb_info_body, pcs.tcb_info_issuer_chain),
        Document(pcs.qe_identity_body, pcs.qe_identity_issuer_chain),
        Document(pcs.pck_crl, pcs.pck_crl_issuer_chain),
        Document(pcs.root_ca_crl, None),
    )
    return {(INTEL, kind, key): doc for (kind, key), doc in zip(keys.rows(), bodies, strict=True)}


@pytest.fixture(scope="module")
def real_trust() -> TrustStore:
    return load_trust_store()


@pytest.mark.parametrize("case", INTEL_CASES, ids=[c.id for c in INTEL_CASES])
def test_collateral_cache_real_vectors_same_evaluation(case: IntelCase, real_trust: TrustStore) -> None:
    quote = case.quote.read_bytes()
    kind = "intel-tdx" if parse_quote(quote).is_tdx else "intel-sgx"
    item = _item(quote, case.collateral.read_text(), kind)
    cache = CollateralCache()
    plain = _same(item, {}, real_trust, case.now, cache)
    assert plain.verified == (case.expected_status is not None)
    assert len(cache.supplied) == 1


@pytest.mark.parametrize("supplied", [True, False], ids=["supplied-and-cached", "cached-only"])
def test_collateral_cache_simulated_same_evaluation(supplied: bool) -> None:
    pki = default_pki()
    ev = pki.build(QuoteOptions())
    cache = CollateralCache()
    item = _item(ev.quote, ev.collateral_json if supplied else None)
    plain = _same(item, _rows(ev), ev.trust_store, SIM_NOW, cache)
    assert plain.accepted, plain.reasons
    # Supplied older than the cache: the cached copies are chosen, with and without the cache.
    newer = pki.build(QuoteOptions(), CollateralOptions(tcb_evaluation_data_number=18))
    chosen = _same(item, _rows(newer), ev.trust_store, SIM_NOW, cache)
    assert chosen.collateral["tcb_eval_number"] == 18
    # Nothing cached and nothing supplied: missing, with and without the cache.
    assert (
        _same(_item(ev.quote, None), {}, ev.trust_store, SIM_NOW, cache).reasons[0].code == "intel.collateral.missing"
    )


def test_collateral_cache_changed_document_is_never_served() -> None:
    pki = default_pki()
    ev = pki.build(QuoteOptions())
    rows = _rows(ev)
    cache = CollateralCache()
    item = _item(ev.quote, None)
    assert _same(item, rows, ev.trust_store, SIM_NOW, cache).accepted
    # The cached TCB Info with one signed byte changed (same row key): verified afresh, and rejected.
    (tcb_key,) = (k for k in rows if k[1] == "tcb_info")
    raw, signature = signed_member(rows[tcb_key].body, "tcbInfo")
    tampered = raw.replace(b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":99')
    assert tampered != raw
    body = json.dumps({"tcbInfo": "@", "signature": signature.hex()}, separators=(",", ":")).encode()
    changed = {**rows, tcb_key: Document(body.replace(b'"@"', tampered), rows[tcb_key].issuer_chain)}
    rejected = _same(item, changed, ev.trust_store, SIM_NOW, cache)
    assert not rejected.verified
    assert rejected.reasons[0].code == "intel.collateral.tcb_info_signature_invalid"
    # Another issuer chain for the same body is another document too.
    rechained = {**rows, tcb_key: Document(rows[tcb_key].body, f"{rows[tcb_key].issuer_chain}%0A")}
    _same(item, rechained, ev.trust_store, SIM_NOW, cache)
    # A supplied collateral with one byte changed is parsed afresh (another digest).
    text = ev.collateral_json
    assert _same(_item(ev.quote, text), {}, ev.trust_store, SIM_NOW, cache).accepted
    altered = json.loads(text)
    altered["tcb_info_signature"] = "00" * 64
    bad = _same(_item(ev.quote, json.dumps(altered)), {}, ev.trust_store, SIM_NOW, cache)
    assert bad.reasons[0].code == "intel.collateral.tcb_info_signature_invalid"


def test_collateral_cache_expiry_checked_at_every_decision() -> None:
    ev = default_pki().build(QuoteOptions())
    rows = _rows(ev)
    cache = CollateralCache()
    item = _item(ev.quote, ev.collateral_json)
    assert _same(item, rows, ev.trust_store, SIM_NOW, cache).accepted
    later = SIM_NOW + timedelta(days=400)  # past every nextUpdate of the simulated collateral
    expired = _same(item, rows, ev.trust_store, later, cache)
    assert not expired.verified
    assert expired.reasons[0].code.startswith("intel.")
    assert "expired" in expired.reasons[0].code or "not_valid" in expired.reasons[0].code
    # And the cache still answers the window it is valid in.
    assert _same(item, rows, ev.trust_store, SIM_NOW, cache).accepted


def test_collateral_cache_bounded() -> None:
    pki = default_pki()
    cache = CollateralCache(max_entries=2)
    for number in range(17, 22):
        ev = pki.build(QuoteOptions(), CollateralOptions(tcb_evaluation_data_number=number))
        _same(_item(ev.quote, ev.collateral_json), _rows(ev), ev.trust_store, SIM_NOW, cache)
        assert len(cache.supplied) <= 2
        assert len(cache.pck) <= 2
        assert len(cache.intel) <= 2
    assert len(cache.supplied) == 2
    assert len(cache.intel) == 2


def test_collateral_cache_amd_crl_choice_same_evaluation() -> None:
    from verifier.collateral.documents import AMD, amd_crl_key
    from verifier.simulation.amd_options import CrlOptions
    from verifier.simulation.amd_pki import default_amd_pki

    pki = default_amd_pki()
    ev = pki.build()
    assert ev.crl_der is not None
    other = pki.build(crl=CrlOptions(revoked_serials=(0x1234,)))  # another CRL of the same ARK
    assert other.crl_der is not None
    assert other.crl_der != ev.crl_der
    item = EvidenceItem.model_validate(
        {
            "type": "amd-sev-snp",
            "evidence": base64.b64encode(ev.report).decode(),
            "vcek": base64.b64encode(ev.leaf_der).decode(),
            "crl": base64.b64encode(ev.crl_der).decode(),
        }
    )
    row = (AMD, "crl", amd_crl_key(ev.product, "vcek"))
    cache = CollateralCache()

    def same(documents: dict[RowKey, Document]) -> Evaluation:
        plain = parse_item(item)
        assert isinstance(plain, ParsedItem)
        expected = plain.evaluate(documents, {}, Verifying(ev.trust_store, ev.now)).to_json()
        for _ in range(2):
            cached = parse_item(item, cache)
            assert isinstance(cached, ParsedItem)
            got = cached.evaluate(documents, {}, Verifying(ev.trust_store, ev.now, collateral_cache=cache))
            assert got.to_json() == expected
        return got

    assert same({}).verified  # nothing cached: the supplied CRL
    assert same({row: Document(ev.crl_der, None)}).verified
    assert same({row: Document(other.crl_der, None)}).verified  # a changed cached CRL: chosen afresh
    assert len(cache.amd_crl) == 3  # one choice per (supplied, cached) pair: none cached, and two distinct CRLs
