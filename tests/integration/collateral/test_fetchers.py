"""Worker-side collateral fetchers against a real local HTTP server speaking the PCS/PCCS and KDS API shapes, on the
production path: an item's needs (its platform's rule) -> ``fetch_document``/``fetch_documents`` ->
``store_documents``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from verifier.collateral import fetchers
from verifier.collateral.documents import AMD, Wanted, intel_keys
from verifier.collateral.fetchers import AmdKdsClient, FetchError, IntelPcsClient
from verifier.collateral.repository import intel_collateral_from_cache, vcek_from_cache, vcek_key
from verifier.db.models import CachedCollateral
from verifier.errors import Code
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import decode_tcb, parse_snp_report
from verifier.platforms.intel_dcap import verify_quote
from verifier.platforms.item import EvidenceItem
from verifier.platforms.registry import ParsedItem, parse_item
from verifier.simulation.amd_pki import ReportOptions, default_amd_pki
from verifier.simulation.intel_pki import QuoteOptions, default_pki
from verifier.testing.fake_vendor_services import FakeVendorServices
from verifier.worker.vendor_documents import VendorClients, fetch_document, fetch_documents, store_documents

FETCHED_AT = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def empty_cache(session: Session) -> None:
    """Each test starts from an empty collateral cache: suites that run before this one commit documents (and the
    cache never rolls back to an older one). Deleted inside the test's transaction, so rolled back with it."""
    session.execute(delete(CachedCollateral))


@pytest.fixture
def server() -> Iterator[FakeVendorServices]:
    with FakeVendorServices() as s:
        yield s


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def _rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CachedCollateral)) or 0


def _clients(server: FakeVendorServices, http: httpx.Client) -> VendorClients:
    return VendorClients(IntelPcsClient(server.base_url, http), AmdKdsClient(server.base_url, http))


def _parsed(kind: str, evidence: bytes) -> ParsedItem[object]:
    return parse_item(EvidenceItem(type=kind, evidence=base64.b64encode(evidence).decode()))


def _vcek_wanted(report: bytes) -> Wanted:
    (wanted,) = (w for w in _parsed("amd-sev-snp", report).needs if w.kind == "vcek")
    return wanted


@pytest.mark.parametrize(
    ("tee", "version", "ca"), [("tdx", 4, "platform"), ("sgx", 3, "processor"), ("tdx", 5, "processor")]
)
def test_fetch_intel_documents_fill_cache_and_verify(
    session: Session, server: FakeVendorServices, http: httpx.Client, tee: str, version: int, ca: str
) -> None:
    ev = default_pki().build(QuoteOptions(tee=tee, version=version, pck_ca=ca))  # type: ignore[arg-type]
    server.add_intel(ev)
    keys = intel_keys(parse_quote(ev.quote))
    assert intel_collateral_from_cache(session, keys) is None

    fetched, failures = fetch_documents(_clients(server, http), _parsed(f"intel-{tee}", ev.quote).needs)
    written = store_documents(session, fetched, FETCHED_AT)

    fmspc = ev.platform.fmspc.hex()
    assert failures == []
    assert written == tuple(
        f"intel/{row}" for row in (f"tcb_info/{tee}:{fmspc}", f"qe_identity/{tee}", f"pck_crl/{ca}", "root_ca_crl/root")
    )
    assert _rows(session) == 4
    assert server.requests == [
        f"/{tee}/certification/v4/tcb?fmspc={fmspc.upper()}",
        f"/{tee}/certification/v4/qe/identity",
        f"/sgx/certification/v4/pckcrl?ca={ca}&encoding=der",
        "/sgx/certification/v4/rootcacrl",
    ]
    tcb_row = session.scalars(select(CachedCollateral).where(CachedCollateral.kind == "tcb_info")).one()
    assert tcb_row.body == ev.pcs.tcb_info_body
    assert tcb_row.issuer_chain == ev.pcs.tcb_info_issuer_chain
    assert tcb_row.next_update is not None
    assert tcb_row.next_update > ev.now
    root_row = session.scalars(select(CachedCollateral).where(CachedCollateral.kind == "root_ca_crl")).one()
    assert root_row.body == ev.pcs.root_ca_crl  # PCCS hex decoded to DER

    collateral = intel_collateral_from_cache(session, keys)
    assert collateral is not None
    v = verify_quote(parse_quote(ev.quote), collateral, ev.trust_store, ev.now)
    assert v.tcb.status == "UpToDate"


def test_root_crl_from_intel_cdp_der(server: FakeVendorServices, http: httpx.Client) -> None:
    ev = default_pki().build(QuoteOptions(tee="tdx", version=4))
    server.add_intel(ev)
    pcs = IntelPcsClient(server.base_url, http, root_ca_crl_url=server.base_url + "/IntelSGXRootCA.der")
    assert pcs.fetch_root_ca_crl() == ev.pcs.root_ca_crl
    assert server.requests == ["/IntelSGXRootCA.der"]


def test_intel_429_raises_and_stores_nothing(session: Session, server: FakeVendorServices, http: httpx.Client) -> None:
    ev = default_pki().build(QuoteOptions(tee="tdx", version=4))
    server.add_intel(ev)
    server.status_override = 429
    fetched, failures = fetch_documents(_clients(server, http), _parsed("intel-tdx", ev.quote).needs)
    assert store_documents(session, fetched, FETCHED_AT) == ()
    [(_, error)] = failures  # a vendor answering 429 is asked nothing more this time
    assert error.code is Code.INTEL_COLLATERAL_UNAVAILABLE
    assert error.status == 429
    assert error.retryable
    assert error.retry_after == 60.0
    assert _rows(session) == 0


def test_intel_unknown_fmspc_is_404_and_stores_nothing(
    session: Session, server: FakeVendorServices, http: httpx.Client
) -> None:
    ev = default_pki().build(QuoteOptions(tee="tdx", version=4))  # not registered
    (tcb_info, *_) = _parsed("intel-tdx", ev.quote).needs
    with pytest.raises(FetchError) as info:
        fetch_document(_clients(server, http), tcb_info)
    assert info.value.status == 404
    assert not info.value.retryable
    assert _rows(session) == 0


def test_oversized_and_unreachable(server: FakeVendorServices) -> None:
    ev = default_pki().build(QuoteOptions(tee="sgx", version=3))
    server.add_intel(ev)
    with httpx.Client(timeout=5.0) as c:
        pcs = IntelPcsClient(server.base_url, c)
        body, _ = fetchers._get(c, pcs.qe_identity_url("sgx"), Code.INTEL_COLLATERAL_UNAVAILABLE, "x")
        with pytest.raises(FetchError, match="larger than"):
            fetchers._get(
                c, pcs.qe_identity_url("sgx"), Code.INTEL_COLLATERAL_UNAVAILABLE, "x", max_bytes=len(body) - 1
            )
    server.close()
    with httpx.Client(timeout=1.0) as c, pytest.raises(FetchError) as info:
        IntelPcsClient(server.base_url, c).fetch_qe_identity("sgx")
    assert info.value.status is None
    assert info.value.retryable


@pytest.mark.parametrize(("product", "hwid_len"), [("genoa", 128), ("turin", 16), ("milan", 128)])
def test_fetch_vcek_stores_kds_answer(
    session: Session, server: FakeVendorServices, http: httpx.Client, product: str, hwid_len: int
) -> None:
    ev = default_amd_pki().build(ReportOptions(product=product, version=5))  # type: ignore[arg-type]
    server.add_amd(ev)
    report = parse_snp_report(ev.report)
    key = vcek_key(report.chip_id, report.reported_tcb)
    assert vcek_from_cache(session, key) is None

    wanted = _vcek_wanted(ev.report)
    stored = store_documents(session, [fetch_document(_clients(server, http), wanted)], FETCHED_AT)

    assert (wanted.key, wanted.product, stored) == (key, product, (f"amd/vcek/{key}",))
    assert vcek_from_cache(session, key) == ev.leaf_der
    tcb = decode_tcb(report.reported_tcb, ev.options.product)
    name = product.capitalize()
    hwid = report.chip_id.hex()[:hwid_len]
    spls = f"blSPL={tcb.bootloader}&teeSPL={tcb.tee}&snpSPL={tcb.snp}&ucodeSPL={tcb.microcode}"
    if product == "turin":
        spls = f"fmcSPL={tcb.fmc}&" + spls
    assert server.requests == [f"/vcek/v1/{name}/{hwid}?{spls}"]
    assert len(server.requests[0].split("/")[4].split("?")[0]) == hwid_len


def test_fetch_vcek_v2_needs_a_product(session: Session, server: FakeVendorServices, http: httpx.Client) -> None:
    """A v2 report has no CPUID: its VCEK is read from the cache but KDS cannot be asked for it, until a product is
    known (the periodic refresh takes it from a cached leaf)."""
    ev = default_amd_pki().build(ReportOptions(product="milan", version=2))
    server.add_amd(ev)
    wanted = _vcek_wanted(ev.report)
    assert (wanted.product, wanted.fetchable) == (None, False)
    fetched, failures = fetch_documents(_clients(server, http), [wanted])
    assert (fetched, failures, server.requests, _rows(session)) == ([], [], [], 0)
    with_product = Wanted(AMD, "vcek", wanted.key, "milan")
    store_documents(session, [fetch_document(_clients(server, http), with_product)], FETCHED_AT)
    assert vcek_from_cache(session, wanted.key) == ev.leaf_der


def test_kds_429_raises_and_stores_nothing(session: Session, server: FakeVendorServices, http: httpx.Client) -> None:
    ev = default_amd_pki().build(ReportOptions(product="genoa", version=5))
    server.add_amd(ev)
    server.status_override = 429
    wanted = _vcek_wanted(ev.report)
    with pytest.raises(FetchError) as info:
        fetch_document(_clients(server, http), wanted)
    assert info.value.code is Code.SNP_LEAF_UNAVAILABLE
    assert info.value.status == 429
    assert _rows(session) == 0
    assert vcek_from_cache(session, wanted.key) is None


@pytest.mark.parametrize(("product", "chain"), [("genoa", "vcek"), ("milan", "vlek"), ("turin", "vcek")])
def test_kds_fetch_crl_by_product_and_chain(
    server: FakeVendorServices, http: httpx.Client, product: str, chain: str
) -> None:
    ev = default_amd_pki().build(ReportOptions(product=product, signing_key=chain, version=5))  # type: ignore[arg-type]
    assert ev.crl_der is not None
    server.add_amd(ev)
    kds = AmdKdsClient(server.base_url, http)
    assert kds.fetch_crl(product, chain) == ev.crl_der  # type: ignore[arg-type]
    assert server.requests == [f"/{chain}/v1/{product.capitalize()}/crl"]


@pytest.mark.parametrize(("status", "body"), [(404, None), (200, b"<html>not a CRL</html>")])
def test_kds_fetch_crl_missing_or_not_der(
    server: FakeVendorServices, http: httpx.Client, status: int, body: bytes | None
) -> None:
    if body is not None:
        server.add_amd_crl("genoa", "vcek", body)
    with pytest.raises(FetchError) as info:
        AmdKdsClient(server.base_url, http).fetch_crl("genoa", "vcek")
    assert info.value.code is Code.SNP_CRL_UNAVAILABLE
    assert info.value.status == status
