"""Worker-side collateral refresh in process: prefetch before a decision and the periodic refresh, on real PostgreSQL
against a real local HTTP server speaking the PCS v4 and KDS API shapes (FakeVendorServices)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tests.support.factories import make_entitlement, make_model, make_model_version
from verifier.attestation.flows import lock_attestation
from verifier.collateral.documents import intel_keys, snp_crl_target
from verifier.collateral.freshness import Freshness
from verifier.collateral.repository import (
    AMD,
    INTEL,
    amd_crl_from_cache,
    intel_collateral_from_cache,
    put_document,
    vcek_from_cache,
    vcek_key,
)
from verifier.config import Settings
from verifier.db.models import Attestation, AttestationStatus, CachedCollateral
from verifier.db.session import Transaction
from verifier.errors import Code
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import parse_snp_report
from verifier.platforms.intel_dcap import verify_quote
from verifier.platforms.registry import parse_evidence
from verifier.simulation.amd_pki import AmdEvidence, ReportOptions, default_amd_pki
from verifier.simulation.intel_pki import SIM_NOW, CollateralOptions, Evidence, QuoteOptions, default_pki
from verifier.testing.fake_vendor_services import FakeVendorServices
from verifier.trust.amd_certs import load_leaf
from verifier.worker import vendor_documents
from verifier.worker.refresh import collateral_to_fetch, prefetch_needs, refresh_cache, retry_delay
from verifier.worker.vendor_documents import (
    FetchReport,
    VendorClients,
    collateral_needs,
    document_next_update,
    fetch_and_store,
    vendor_clients,
)

NOW = SIM_NOW
DAY = timedelta(days=1)
#: The freshness rule most tests use: documents cached by ``_cache_intel`` (fetched 5 days before NOW) are not too
#: old for it, so only their nextUpdate makes them due. Tests of the age rule say their own.
RULE = Freshness(ahead=DAY, max_age=7 * DAY)


@pytest.fixture(scope="module")
def vendor_server() -> Iterator[FakeVendorServices]:
    with FakeVendorServices() as s:
        yield s


@pytest.fixture
def server(vendor_server: FakeVendorServices) -> FakeVendorServices:
    vendor_server.reset()
    return vendor_server


@pytest.fixture
def clients(server: FakeVendorServices) -> Iterator[VendorClients]:
    settings = Settings(pcs_base_url=server.base_url, kds_base_url=server.base_url, collateral_fetch_timeout=5.0)
    with vendor_clients(settings) as c:
        yield c


@pytest.fixture(autouse=True)
def empty_cache(session: Session) -> Iterator[None]:
    session.execute(delete(CachedCollateral))
    vendor_documents._optional_backoff.clear()  # per process: each test starts with no failed optional fetch
    yield
    vendor_documents._optional_backoff.clear()


def _tdx() -> Evidence:
    return default_pki().build(QuoteOptions())


def _snp(**options: Any) -> AmdEvidence:
    return default_amd_pki().build(ReportOptions(**options))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _intel_item(ev: Evidence, **extra: str) -> dict[str, str]:
    return {"type": "intel-tdx", "evidence": _b64(ev.quote), **extra}


def _snp_item(ev: AmdEvidence, **extra: str) -> dict[str, str]:
    return {"type": "amd-sev-snp", "evidence": _b64(ev.report), **extra}


def _pending(session: Session, *items: object, status: AttestationStatus = AttestationStatus.PENDING) -> Attestation:
    model = make_model(session)
    entitlement = make_entitlement(session, model=model)
    version = make_model_version(session, model)
    att = Attestation(
        entitlement_id=entitlement.id,
        model_version_id=version.id,
        deployment_name="prefetch",
        kind="attest",
        platforms=["intel-tdx"],
        status=status,
        nonce=bytes(32),
        enclave_jwk={},
        created_at=NOW,
        evidence=list(items),
    )
    session.add(att)
    session.flush()
    return att


def _transactions(session: Session) -> Transaction:
    """The task base's transactions, as savepoints of the test's session (its outer transaction is rolled back)."""

    @contextmanager
    def transaction() -> Iterator[Session]:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()

    return transaction


def _prefetch(
    session: Session, attestation_id: uuid.UUID, clients: VendorClients, now: Any, freshness: Freshness
) -> FetchReport:
    """The decide task's prefetch on the attestation committed and locked as the task finds it: the check in the
    decision's transaction (:func:`prefetch_needs`); when something is needed, that transaction ends and what is
    fetched is stored in one of its own (:func:`fetch_and_store`, as :func:`~verifier.worker.refresh.prefetch`
    does). An empty report when nothing was needed."""
    session.commit()
    needs = prefetch_needs(session, lock_attestation(session, attestation_id), now, freshness)
    if not needs:
        return FetchReport()
    session.commit()
    return fetch_and_store(_transactions(session), clients, needs, now)


def _intel_path_keys(ev: Evidence) -> Any:
    return intel_keys(parse_quote(ev.quote))


def _crl_target(ev: AmdEvidence) -> Any:
    return snp_crl_target(parse_snp_report(ev.report), None, None)


def _intel_paths(ev: Evidence) -> list[str]:
    fmspc, ca = ev.platform.fmspc.hex().upper(), ev.pcs.ca
    return [
        f"/tdx/certification/v4/tcb?fmspc={fmspc}",
        "/tdx/certification/v4/qe/identity",
        f"/sgx/certification/v4/pckcrl?ca={ca}&encoding=der",
        "/sgx/certification/v4/rootcacrl",
    ]


def _intel_rows(ev: Evidence) -> tuple[str, ...]:
    fmspc = ev.platform.fmspc.hex()
    return (
        f"intel/tcb_info/tdx:{fmspc}",
        "intel/qe_identity/tdx",
        f"intel/pck_crl/{ev.pcs.ca}",
        "intel/root_ca_crl/root",
    )


def _row(session: Session, kind: str) -> CachedCollateral:
    return session.scalars(select(CachedCollateral).where(CachedCollateral.kind == kind)).one()


def _cache_intel(session: Session, ev: Evidence, **next_updates: Any) -> None:
    """Cache ``ev``'s PCS documents as served; next_update per kind from ``next_updates`` (default: the body's)."""
    pcs, fmspc = ev.pcs, ev.platform.fmspc.hex()
    for kind, key, body, chain in (
        ("tcb_info", f"tdx:{fmspc}", pcs.tcb_info_body, pcs.tcb_info_issuer_chain),
        ("qe_identity", "tdx", pcs.qe_identity_body, pcs.qe_identity_issuer_chain),
        ("pck_crl", pcs.ca, pcs.pck_crl, pcs.pck_crl_issuer_chain),
        ("root_ca_crl", "root", pcs.root_ca_crl, None),
    ):
        next_update = next_updates.get(kind, document_next_update(kind, body))
        put_document(
            session, INTEL, kind, key, body, issuer_chain=chain, fetched_at=NOW - 5 * DAY, next_update=next_update
        )


# ----------------------------------------------------------------------------------------------------------
# Prefetch before a decision


def test_prefetch_for_intel_fills_cache_that_verifies(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    att = _pending(session, _intel_item(ev))

    report = _prefetch(session, att.id, clients, NOW, RULE)

    assert report == FetchReport(stored=_intel_rows(ev))
    assert server.requests == _intel_paths(ev)
    for kind in ("tcb_info", "qe_identity", "pck_crl", "root_ca_crl"):
        row = _row(session, kind)
        assert row.fetched_at == NOW
        assert row.next_update == document_next_update(kind, row.body)
        assert row.next_update is not None
        assert row.next_update > NOW
    collateral = intel_collateral_from_cache(session, _intel_path_keys(ev))
    assert collateral is not None
    assert verify_quote(parse_quote(ev.quote), collateral, ev.trust_store, NOW).tcb.status == "UpToDate"


def test_prefetch_for_snp_fetches_vcek_from_kds(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _snp()
    server.add_amd(ev)
    report_fields = parse_snp_report(ev.report)
    att = _pending(session, _snp_item(ev))

    report = _prefetch(session, att.id, clients, NOW, RULE)

    key = vcek_key(report_fields.chip_id, report_fields.reported_tcb)
    assert report == FetchReport(stored=("amd/crl/vcek:genoa", f"amd/vcek/{key}"))
    assert server.requests[0] == "/vcek/v1/Genoa/crl"
    assert server.requests[1].startswith(f"/vcek/v1/Genoa/{report_fields.chip_id.hex()}?")
    assert len(server.requests) == 2
    assert vcek_from_cache(session, vcek_key(*_chip_and_tcb(ev))) == ev.leaf_der
    assert _row(session, "vcek").next_update == load_leaf(ev.leaf_der).not_after
    assert ev.crl_der is not None
    assert amd_crl_from_cache(session, _crl_target(ev)) == ev.crl_der
    assert _row(session, "crl").next_update == x509.load_der_x509_crl(ev.crl_der).next_update_utc


def test_prefetch_for_fresh_cache_asks_nothing(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev, amd = _tdx(), _snp()
    server.add_intel(ev)
    server.add_amd(amd)
    _prefetch(session, _pending(session, _intel_item(ev), _snp_item(amd)).id, clients, NOW, RULE)
    asked = list(server.requests)

    again = _prefetch(session, _pending(session, _intel_item(ev), _snp_item(amd)).id, clients, NOW, RULE)

    assert again == FetchReport()
    assert server.requests == asked


@pytest.mark.parametrize("kind", ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl"])
def test_prefetch_for_document_past_next_update_fetched_again(
    session: Session, server: FakeVendorServices, clients: VendorClients, kind: str
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev, **{kind: NOW - timedelta(minutes=1)})

    report = _prefetch(session, _pending(session, _intel_item(ev)).id, clients, NOW, RULE)

    index = ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl"].index(kind)
    assert report.stored == (_intel_rows(ev)[index],)
    assert server.requests == [_intel_paths(ev)[index]]
    assert _row(session, kind).next_update == document_next_update(kind, _row(session, kind).body)


def test_prefetch_for_crl_without_stored_next_update_read_from_body(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev, pck_crl=None, root_ca_crl=None)  # as rows stored without a next update

    assert _prefetch(session, _pending(session, _intel_item(ev)).id, clients, NOW, RULE) == FetchReport()
    assert server.requests == []
    # Past the PCK CRL's own nextUpdate (25 days after SIM_NOW) it is due again.
    later = _prefetch(session, _pending(session, _intel_item(ev)).id, clients, NOW + 26 * DAY, RULE)
    assert f"intel/pck_crl/{ev.pcs.ca}" in later.stored


OWN_COLLATERAL = [
    pytest.param(
        lambda: _intel_item(_tdx(), collateral=_tdx().collateral_json),
        lambda: _intel_rows(_tdx()),
        id="intel-collateral",
    ),
    pytest.param(
        lambda: _snp_item(_snp(), vcek=_b64(_snp().leaf_der), crl=_crl(_snp())),
        lambda: ("amd/crl/vcek:genoa",),
        id="snp-vcek",
    ),
    pytest.param(
        lambda: _snp_item(_snp(), cert_table=_b64(_snp().cert_table), crl=_crl(_snp())),
        lambda: ("amd/crl/vcek:genoa",),
        id="snp-cert-table",
    ),
]


@pytest.mark.parametrize(("item", "rows"), OWN_COLLATERAL)
def test_prefetch_for_evidence_with_own_collateral_fetches_cached_copy_too(
    session: Session, server: FakeVendorServices, clients: VendorClients, item: Any, rows: Any
) -> None:
    """The decision verifies the newer of the supplied and the cached copy, so the cache is filled for it too."""
    server.add_intel(_tdx())
    server.add_amd(_snp())
    assert _prefetch(session, _pending(session, item()).id, clients, NOW, RULE) == FetchReport(stored=rows())


@pytest.mark.parametrize(("item", "rows"), OWN_COLLATERAL)
def test_prefetch_for_evidence_with_own_collateral_outage_never_delays(
    session: Session, server: FakeVendorServices, clients: VendorClients, item: Any, rows: Any
) -> None:
    server.add_intel(_tdx())
    server.add_amd(_snp())
    server.fail_next(503, retry_after="7")

    report = _prefetch(session, _pending(session, item()).id, clients, NOW, RULE)

    assert report.retryable is None
    assert report.failures == ()
    assert [f.status for f in report.optional_failures] == [503]
    assert len(server.requests) == 1  # the vendor is asked nothing more in this run


@pytest.mark.parametrize(("item", "rows"), OWN_COLLATERAL)
def test_prefetch_for_evidence_with_own_collateral_after_outage_backs_off(
    session: Session, server: FakeVendorServices, clients: VendorClients, item: Any, rows: Any
) -> None:
    """A verifier without egress: a failed optional fetch is not tried again before every decision."""
    server.add_intel(_tdx())
    server.add_amd(_snp())
    server.fail_next(503)
    (_failed,) = _prefetch(session, _pending(session, item()).id, clients, NOW, RULE).optional_failures
    failed_url = server.requests[0]

    # Within the back-off the failed document is not asked for again (the others, skipped after the failure in
    # the first run, are fetched now).
    second = _prefetch(session, _pending(session, item()).id, clients, NOW, RULE)
    assert second.optional_failures == ()
    assert failed_url not in server.requests[1:]
    assert set(second.stored) < set(rows())

    vendor_documents._optional_backoff.clear()  # the back-off has passed
    third = _prefetch(session, _pending(session, item()).id, clients, NOW, RULE)
    assert set(third.stored) == set(rows()) - set(second.stored)


def test_collateral_needs_needed_before_optional_and_needed_wins(session: Session) -> None:
    ev, amd = _tdx(), _snp()
    own = _intel_item(ev, collateral=ev.collateral_json)

    needs = collateral_needs(session, parse_evidence([own, _snp_item(amd, crl=_crl(amd)), _intel_item(ev)]), NOW, RULE)

    assert [(str(w), w.optional) for w in needs] == [
        *((row, False) for row in _intel_rows(ev)),  # the third item needs what the first brings
        (f"amd/vcek/{vcek_key(*_chip_and_tcb(amd))}", False),
        ("amd/crl/vcek:genoa", True),  # optional ones last
    ]


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(lambda: "not an object", id="item-not-object"),
        pytest.param(lambda: {"type": "intel-tdx"}, id="no-evidence"),
        pytest.param(lambda: {"type": "intel-tdx", "evidence": 7}, id="evidence-not-string"),
        pytest.param(lambda: {"type": "intel-tdx", "evidence": "not base64!"}, id="evidence-not-base64"),
        pytest.param(lambda: {"type": "intel-tdx", "evidence": _b64(_tdx().quote[:600])}, id="quote-truncated"),
        pytest.param(lambda: {"type": "intel-tdx", "evidence": _b64(bytes(2000))}, id="quote-zeros"),
        pytest.param(lambda: {"type": "amd-sev-snp", "evidence": _b64(_snp().report[:1000])}, id="report-truncated"),
        pytest.param(lambda: _snp_item(_snp(version=2)), id="report-v2-no-cpuid"),
        pytest.param(lambda: {"type": "nvidia-h100", "evidence": _b64(b"gpu")}, id="type-unsupported"),
    ],
)
def test_prefetch_for_malformed_or_unfetchable_evidence_asks_nothing(
    session: Session, server: FakeVendorServices, clients: VendorClients, item: Any
) -> None:
    assert _prefetch(session, _pending(session, item()).id, clients, NOW, RULE) == FetchReport()
    assert server.requests == []


def _crl(ev: AmdEvidence) -> str:
    assert ev.crl_der is not None
    return _b64(ev.crl_der)


@pytest.mark.parametrize("own", ["vcek", "cert_table"])
def test_prefetch_for_snp_bringing_its_leaf_fetches_only_the_crl(
    session: Session, server: FakeVendorServices, clients: VendorClients, own: str
) -> None:
    ev = _snp()
    server.add_amd(ev)
    item = _snp_item(ev, **{own: _b64(ev.leaf_der if own == "vcek" else ev.cert_table)})
    report = _prefetch(session, _pending(session, item).id, clients, NOW, RULE)
    assert report == FetchReport(stored=("amd/crl/vcek:genoa",))
    assert server.requests == ["/vcek/v1/Genoa/crl"]


def test_prefetch_for_vlek_report_fetches_the_vlek_chain_crl(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    """A VLEK is not on KDS (it comes with the evidence or from the CSP); its chain's CRL is."""
    ev = _snp(signing_key="vlek")
    server.add_amd(ev)
    report = _prefetch(session, _pending(session, _snp_item(ev)).id, clients, NOW, RULE)
    assert report == FetchReport(stored=("amd/crl/vlek:genoa",))
    assert server.requests == ["/vlek/v1/Genoa/crl"]
    assert amd_crl_from_cache(session, _crl_target(ev)) == ev.crl_der


def test_prefetch_for_decided_attestation_asks_nothing(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    att = _pending(session, _intel_item(ev), status=AttestationStatus.REJECTED)
    assert _prefetch(session, att.id, clients, NOW, RULE) == FetchReport()
    assert server.requests == []


def test_prefetch_for_unknown_fmspc_not_retryable(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()  # not registered: PCS answers 404 for the FMSPC (and the rest)

    report = _prefetch(session, _pending(session, _intel_item(ev)).id, clients, NOW, RULE)

    assert report.stored == ()
    assert [f.status for f in report.failures] == [404, 404, 404, 404]
    assert {f.code for f in report.failures} == {Code.INTEL_COLLATERAL_UNAVAILABLE}
    assert report.retryable is None


def test_prefetch_for_outage_retryable_and_vendor_asked_once(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev, amd = _tdx(), _snp()
    server.add_intel(ev)
    server.add_amd(amd)
    server.fail_next(503, retry_after="7")
    att = _pending(session, _intel_item(ev), _snp_item(amd))

    report = _prefetch(session, att.id, clients, NOW, RULE)

    # PCS is asked nothing more after its 503; KDS is another vendor and still answers (CRL, then VCEK).
    assert server.requests[0] == _intel_paths(ev)[0]
    assert server.requests[1] == "/vcek/v1/Genoa/crl"
    assert server.requests[2].startswith("/vcek/v1/Genoa/")
    assert len(server.requests) == 3
    failure = report.retryable
    assert failure is not None
    assert (failure.status, failure.retry_after) == (503, 7.0)
    assert report.stored == ("amd/crl/vcek:genoa", f"amd/vcek/{vcek_key(*_chip_and_tcb(amd))}")
    # The outage ends: the next attempt fetches only what is still missing.
    again = _prefetch(session, att.id, clients, NOW, RULE)
    assert again == FetchReport(stored=_intel_rows(ev))


def _chip_and_tcb(ev: AmdEvidence) -> tuple[bytes, bytes]:
    report = parse_snp_report(ev.report)
    return report.chip_id, report.reported_tcb


def test_prefetch_disabled_decides_at_once(session: Session, server: FakeVendorServices) -> None:
    server.add_intel(ev := _tdx())
    att = _pending(session, _intel_item(ev))
    settings = Settings(collateral_fetch=False, pcs_base_url=server.base_url, database_url="postgresql://unused/x")
    assert collateral_to_fetch(session, att, settings, NOW, parse_evidence(att.evidence)) == []
    assert server.requests == []
    assert session.in_transaction()


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (0, None, 5.0),
        (1, None, 10.0),
        (3, None, 40.0),
        (0, 60.0, 60.0),
        (2, 1.0, 20.0),
        (9, None, 600.0),
        (0, 1e6, 600.0),
    ],
    ids=["first", "second", "fourth", "retry-after-longer", "backoff-longer", "capped", "retry-after-capped"],
)
def test_retry_delay_backoff_honours_retry_after(attempt: int, retry_after: float | None, expected: float) -> None:
    settings = Settings(collateral_retry_delay=5.0, collateral_retry_max_delay=600.0)
    assert retry_delay(attempt, retry_after, settings) == expected


@pytest.mark.parametrize("kind", ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl", "vcek"])
@pytest.mark.parametrize(
    "body", [b"", b"{}", b'{"tcbInfo":{"nextUpdate":"soon"}}', b"[" * 100_000, b"\x30\x03\x02\x01\x00"]
)
def test_document_next_update_unreadable_is_none(kind: str, body: bytes) -> None:
    assert document_next_update(kind, body) is None


def test_vendor_clients_root_crl_from_intel_cdp_only_for_intel_pcs() -> None:
    with vendor_clients(Settings()) as c:
        assert c.intel.root_ca_crl_url == "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
    with vendor_clients(Settings(pcs_base_url="https://pccs.example:8081")) as c:
        assert c.intel.root_ca_crl_url == "https://pccs.example:8081/sgx/certification/v4/rootcacrl"
    with vendor_clients(Settings(pcs_base_url="https://pccs.example", pcs_root_ca_crl_url="https://crl.example")) as c:
        assert c.intel.root_ca_crl_url == "https://crl.example"


# ----------------------------------------------------------------------------------------------------------
# Periodic refresh


@pytest.mark.parametrize(
    ("next_update", "refreshed"),
    [(NOW - DAY, True), (NOW + timedelta(hours=2), True), (NOW + 2 * DAY, False)],
    ids=["past", "within-window", "fresh"],
)
def test_refresh_cache_replaces_ageing_document_only(
    session: Session, server: FakeVendorServices, clients: VendorClients, next_update: Any, refreshed: bool
) -> None:
    old, new = _tdx(), default_pki().build(QuoteOptions(), CollateralOptions(tcb_evaluation_data_number=18))
    assert new.pcs.tcb_info_body != old.pcs.tcb_info_body
    server.add_intel(new)
    _cache_intel(session, old, tcb_info=next_update)  # the other documents are fresh (20+ days)

    report = refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=100)

    row = _row(session, "tcb_info")
    if refreshed:
        assert report == FetchReport(stored=(_intel_rows(old)[0],))
        assert server.requests == [_intel_paths(old)[0]]
        assert (row.body, row.issuer_chain, row.fetched_at) == (
            new.pcs.tcb_info_body,
            new.pcs.tcb_info_issuer_chain,
            NOW,
        )
        assert row.next_update == NOW + 20 * DAY
    else:
        assert report == FetchReport()
        assert server.requests == []
        assert (row.body, row.next_update) == (old.pcs.tcb_info_body, next_update)
    assert _row(session, "qe_identity").fetched_at == NOW - 5 * DAY


def test_refresh_cache_failure_keeps_cached_copy(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev, tcb_info=NOW + timedelta(hours=1), qe_identity=NOW + timedelta(hours=1))
    server.fail_next(503)

    report = refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=100)

    assert report.stored == ()
    assert [f.status for f in report.failures] == [503]
    assert len(server.requests) == 1  # PCS is not asked again in the same run
    assert _row(session, "tcb_info").body == ev.pcs.tcb_info_body
    assert _row(session, "tcb_info").fetched_at == NOW - 5 * DAY
    assert _row(session, "tcb_info").next_update == NOW + timedelta(hours=1)


def test_refresh_cache_bounded_soonest_first(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev, tcb_info=NOW + timedelta(hours=3), qe_identity=NOW + timedelta(hours=1))

    report = refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=1)

    assert report.stored == ("intel/qe_identity/tdx",)
    assert refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=1).stored == (_intel_rows(ev)[0],)


def test_refresh_cache_reads_missing_next_update_from_body_once(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev, amd = _tdx(), _snp()
    _cache_intel(session, ev, tcb_info=None, qe_identity=None, pck_crl=None, root_ca_crl=None)
    chip, tcb = _chip_and_tcb(amd)
    put_document(
        session, AMD, "vcek", vcek_key(chip, tcb), amd.leaf_der, issuer_chain=None, fetched_at=NOW, next_update=None
    )

    assert refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=100) == FetchReport()

    assert server.requests == []
    assert _row(session, "pck_crl").next_update == NOW + 25 * DAY
    assert _row(session, "vcek").next_update == load_leaf(amd.leaf_der).not_after


def test_refresh_cache_ageing_vcek_fetched_again(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    amd = _snp(product="milan")
    server.add_amd(amd)
    chip, tcb = _chip_and_tcb(amd)
    put_document(
        session, AMD, "vcek", vcek_key(chip, tcb), amd.leaf_der, issuer_chain=None, fetched_at=NOW, next_update=None
    )
    not_after = load_leaf(amd.leaf_der).not_after

    report = refresh_cache(_transactions(session), clients, not_after - timedelta(hours=1), freshness=RULE, limit=100)

    assert report.stored == (f"amd/vcek/{vcek_key(chip, tcb)}",)
    assert len(server.requests) == 1
    assert server.requests[0].startswith(f"/vcek/v1/Milan/{chip.hex()}?")


def test_refresh_cache_drops_unreadable_vcek(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    put_document(
        session, AMD, "vcek", "00:00", b"not a certificate", issuer_chain=None, fetched_at=NOW, next_update=None
    )

    assert refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=100) == FetchReport()

    assert session.scalars(select(CachedCollateral)).all() == []
    assert server.requests == []


def test_refresh_cache_unreadable_intel_document_fetched_again(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev)
    row = _row(session, "qe_identity")
    row.body, row.next_update = b"garbage", None
    session.flush()

    report = refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=100)

    assert report.stored == ("intel/qe_identity/tdx",)
    assert _row(session, "qe_identity").body == ev.pcs.qe_identity_body


def test_refresh_cache_refetches_an_ageing_amd_crl(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    """An AMD CRL close to its nextUpdate is fetched again from its chain's KDS URL and replaced."""
    ev = _snp()
    assert ev.crl_der is not None
    server.add_amd_crl("genoa", "vcek", ev.crl_der)
    put_document(
        session,
        AMD,
        "crl",
        "vcek:genoa",
        b"an older CRL",
        issuer_chain=None,
        fetched_at=NOW - 5 * DAY,
        next_update=NOW + timedelta(hours=1),
    )

    report = refresh_cache(_transactions(session), clients, NOW, freshness=RULE, limit=100)

    assert report == FetchReport(stored=("amd/crl/vcek:genoa",))
    assert server.requests == ["/vcek/v1/Genoa/crl"]
    row = _row(session, "crl")
    assert (row.body, row.fetched_at) == (ev.crl_der, NOW)
    assert row.next_update == x509.load_der_x509_crl(ev.crl_der).next_update_utc


# ----------------------------------------------------------------------------------------------------------
# Freshness: one rule for both (maximum age since fetched; once inside the window before nextUpdate)

INTEL_KINDS = ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl"]
HOUR = timedelta(hours=1)


def _only_aged(session: Session, kind: str, fetched_at: Any) -> None:
    """Every cached Intel row fetched an hour ago, except ``kind``: at ``fetched_at``."""
    for k in INTEL_KINDS:
        _row(session, k).fetched_at = fetched_at if k == kind else NOW - HOUR
    session.flush()


@pytest.mark.parametrize("kind", INTEL_KINDS)
def test_prefetch_for_document_fetched_over_max_age_ago_fetched_again(
    session: Session, server: FakeVendorServices, clients: VendorClients, kind: str
) -> None:
    """Inside its nextUpdate (20 days or more away) but fetched 25 hours ago: due under the default rule."""
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev)
    _only_aged(session, kind, NOW - 25 * HOUR)

    report = _prefetch(session, _pending(session, _intel_item(ev)).id, clients, NOW, Freshness())

    index = INTEL_KINDS.index(kind)
    assert report == FetchReport(stored=(_intel_rows(ev)[index],))
    assert server.requests == [_intel_paths(ev)[index]]
    assert _row(session, kind).fetched_at == NOW


def test_prefetch_for_amd_crl_fetched_over_max_age_ago_fetched_again(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _snp()
    assert ev.crl_der is not None
    server.add_amd(ev)
    next_update = document_next_update("crl", ev.crl_der)
    put_document(
        session, AMD, "crl", "vcek:genoa", ev.crl_der, issuer_chain=None, fetched_at=NOW - 25 * HOUR, next_update=None
    )
    item = _snp_item(ev, vcek=_b64(ev.leaf_der))
    assert next_update is not None
    assert next_update > NOW + 20 * DAY

    report = _prefetch(session, _pending(session, item).id, clients, NOW, Freshness())

    assert report == FetchReport(stored=("amd/crl/vcek:genoa",))
    assert _row(session, "crl").fetched_at == NOW


@pytest.mark.parametrize(
    ("fetched_ago", "fetched"),
    [(23 * HOUR, True), (HOUR, False)],
    ids=["fetched-before-window-opened", "fetched-inside-window"],
)
def test_prefetch_for_document_in_window_fetched_once(
    session: Session, server: FakeVendorServices, clients: VendorClients, fetched_ago: Any, fetched: bool
) -> None:
    """nextUpdate 2 hours away, window 24 hours: the window opened 22 hours ago. A copy fetched since then is
    not fetched again before every decision (the vendor would serve the same one)."""
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev, tcb_info=NOW + 2 * HOUR)
    _only_aged(session, "tcb_info", NOW - fetched_ago)

    report = _prefetch(session, _pending(session, _intel_item(ev)).id, clients, NOW, Freshness())

    assert report == FetchReport(stored=(_intel_rows(ev)[0],) if fetched else ())


def test_refresh_cache_document_fetched_over_max_age_ago_fetched_again(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    old, new = _tdx(), default_pki().build(QuoteOptions(), CollateralOptions(tcb_evaluation_data_number=18))
    server.add_intel(new)
    _cache_intel(session, old)  # every nextUpdate 20 days or more away
    _only_aged(session, "tcb_info", NOW - 25 * HOUR)

    report = refresh_cache(_transactions(session), clients, NOW, freshness=Freshness(), limit=100)

    assert report == FetchReport(stored=(_intel_rows(old)[0],))
    assert _row(session, "tcb_info").body == new.pcs.tcb_info_body


def test_refresh_cache_document_fetched_inside_window_left_alone(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    ev = _tdx()
    server.add_intel(ev)
    _cache_intel(session, ev, tcb_info=NOW + 2 * HOUR, qe_identity=NOW + 3 * HOUR)
    _only_aged(session, "qe_identity", NOW - 23 * HOUR)  # tcb_info fetched an hour ago, inside its window

    report = refresh_cache(_transactions(session), clients, NOW, freshness=Freshness(), limit=1)

    assert report == FetchReport(stored=("intel/qe_identity/tdx",))  # the batch's place is not taken by tcb_info


def test_refresh_cache_vcek_never_aged(session: Session, server: FakeVendorServices, clients: VendorClients) -> None:
    amd = _snp(product="milan")
    server.add_amd(amd)
    chip, tcb = _chip_and_tcb(amd)
    put_document(
        session,
        AMD,
        "vcek",
        vcek_key(chip, tcb),
        amd.leaf_der,
        issuer_chain=None,
        fetched_at=NOW - 400 * DAY,
        next_update=None,
    )

    assert refresh_cache(_transactions(session), clients, NOW, freshness=Freshness(), limit=100) == FetchReport()
    assert server.requests == []


def test_prefetch_for_stale_vendor_document_never_rolls_cache_back(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    """A stale PCCS (or a replayed response) serves an older TCB Info than the cached one: it is not stored."""
    newer, stale = default_pki().build(QuoteOptions(), CollateralOptions(tcb_evaluation_data_number=18)), _tdx()
    server.add_intel(stale)
    _cache_intel(session, newer)
    _only_aged(session, "tcb_info", NOW - 25 * HOUR)

    report = _prefetch(session, _pending(session, _intel_item(stale)).id, clients, NOW, Freshness())

    assert report == FetchReport()
    assert server.requests == [_intel_paths(stale)[0]]
    row = _row(session, "tcb_info")
    assert (row.body, row.fetched_at) == (newer.pcs.tcb_info_body, NOW - 25 * HOUR)


def test_collateral_to_fetch_while_optional_fetches_back_off_is_nothing(
    session: Session, server: FakeVendorServices
) -> None:
    """Evidence that brings its collateral, every copy's fetch just failed: the decide task keeps its row lock and
    decides at once in that transaction, instead of ending it and locking the row again for nothing."""
    ev = _tdx()
    att = _pending(session, _intel_item(ev, collateral=ev.collateral_json))
    wanted = collateral_needs(session, parse_evidence(att.evidence), NOW, RULE)
    assert wanted
    assert all(w.optional for w in wanted)
    for w in wanted:
        vendor_documents._optional_backoff[str(w)] = time.monotonic() + 60
    settings = Settings(pcs_base_url=server.base_url, kds_base_url=server.base_url)

    assert collateral_to_fetch(session, att, settings, NOW, parse_evidence(att.evidence)) == []
    assert server.requests == []
    assert att in session
    assert session.in_transaction()
