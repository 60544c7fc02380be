"""NVIDIA collateral in the worker on the production path, against a real local HTTP server speaking the RIM
service and OCSP API shapes (FakeVendorServices) and real PostgreSQL: Wanted rows -> ``fetch_and_store`` (the
prefetch's and the refresh's fetch) -> cache rows -> the data a decision reads (``nvidia_rim``, ``nvidia_ocsp``).
RIM and RIM-chain OCSP responses are real NVIDIA data (tests/vectors/nvidia/PROVENANCE-rim-ocsp.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from sqlalchemy import delete
from sqlalchemy.orm import Session

from verifier.collateral.documents import (
    NVIDIA_RIM_MISSING_BODY,
    Wanted,
    nvidia_ocsp,
    nvidia_rim,
    wanted_ocsp,
    wanted_rim,
    wanted_rim_ocsp,
)
from verifier.collateral.freshness import Freshness
from verifier.collateral.nvidia_fetchers import ocsp_response_key
from verifier.collateral.repository import cached_document, put_document, read_documents
from verifier.config import Settings
from verifier.db.models import CachedCollateral
from verifier.db.session import Transaction
from verifier.errors import Code
from verifier.testing.fake_vendor_services import FakeVendorServices
from verifier.trust.ocsp import cert_id_key
from verifier.worker import vendor_documents
from verifier.worker.refresh import refresh_cache
from verifier.worker.vendor_documents import (
    NVIDIA_RIM_MISSING_TTL,
    NVIDIA_RIM_REFRESH,
    VendorClients,
    fetch_and_store,
    vendor_clients,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nvidia"
DRIVER_RIM_ID = "NV_GPU_DRIVER_GH100_550.90.07"
VBIOS_RIM_ID = "NV_GPU_VBIOS_1010_0200_882_96009F0001"
DRIVER_RIM = (VECTORS / "rim" / f"{DRIVER_RIM_ID}.xml").read_bytes()
VBIOS_RIM = (VECTORS / "rim" / f"{VBIOS_RIM_ID}.xml").read_bytes()
RIM_CHAIN_OCSP = [
    (VECTORS / "ocsp" / f"{name}.ocsp.der").read_bytes()
    for name in ("test_gpu_driver_rim_l4", "test_gpu_driver_rim_l3", "test_gpu_rim_l2")
]
#: While the real RIM-chain responses were current (thisUpdate 2025-10-24T11:32:21Z, 24 h).
NOW = datetime(2025, 10, 24, 12, 0, tzinfo=UTC)
RULE = Freshness(ahead=timedelta(hours=1), max_age=timedelta(days=1))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name("throwaway ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(signer, hashes.SHA384())
    )


CA_KEY = ec.generate_private_key(ec.SECP384R1())
CA = _cert("throwaway ca", CA_KEY, CA_KEY)
DEVICE = _cert("GH100 A01 GSP BROM (test)", ec.generate_private_key(ec.SECP384R1()), CA_KEY)


def _device_response(this_update: datetime = NOW, hours: int = 24) -> bytes:
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=DEVICE,
            issuer=CA,
            algorithm=hashes.SHA384(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=this_update,
            next_update=this_update + timedelta(hours=hours),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, CA)
        .sign(CA_KEY, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )


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
    settings = Settings(
        nvidia_rim_url=server.base_url,
        nvidia_ocsp_url=server.base_url,
        nvidia_api_key=SecretStr("svc-key"),
        collateral_fetch_timeout=5.0,
    )
    with vendor_clients(settings) as c:
        yield c


@pytest.fixture(autouse=True)
def empty_cache(session: Session) -> Iterator[None]:
    session.execute(delete(CachedCollateral))
    vendor_documents._optional_backoff.clear()
    yield
    vendor_documents._optional_backoff.clear()


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


def _serve_rim_chain_ocsp(server: FakeVendorServices) -> None:
    for der in RIM_CHAIN_OCSP:
        server.add_nvidia_ocsp(ocsp_response_key(der) or "", der)


def _row(session: Session, wanted: Wanted) -> CachedCollateral:
    row = cached_document(session, *wanted.row)
    assert row is not None
    return row


def test_fetch_and_store_rims_and_their_chain_ocsp_fill_cache(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    server.add_nvidia_rim(VBIOS_RIM_ID, VBIOS_RIM)
    _serve_rim_chain_ocsp(server)
    wanted = [wanted_rim_ocsp(DRIVER_RIM_ID), wanted_rim(DRIVER_RIM_ID), wanted_rim(VBIOS_RIM_ID)]
    report = fetch_and_store(_transactions(session), clients, wanted, NOW)
    assert set(report.stored) == {str(w) for w in wanted}
    assert report.failures == ()
    documents = read_documents(session, wanted)
    assert nvidia_rim(DRIVER_RIM_ID, documents).xml == DRIVER_RIM
    assert nvidia_rim(VBIOS_RIM_ID, documents).xml == VBIOS_RIM
    assert nvidia_ocsp([], [DRIVER_RIM_ID], documents) == {ocsp_response_key(d): d for d in RIM_CHAIN_OCSP}
    # The chain's OCSP was asked for the RIM fetched in the same run: the RIM service was asked once per RIM.
    assert server.requests.count(f"/v1/rim/{DRIVER_RIM_ID}") == 1
    assert set(server.authorizations) == {"Bearer svc-key"}


def test_fetch_and_store_rim_next_update_capped_by_refresh_period(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    fetch_and_store(_transactions(session), clients, [wanted_rim(DRIVER_RIM_ID)], NOW)
    assert _row(session, wanted_rim(DRIVER_RIM_ID)).next_update == NOW + NVIDIA_RIM_REFRESH


def test_fetch_and_store_rim_signer_expiring_soon_due_at_expiry(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    signer_expiry = datetime(2026, 6, 1, 2, 8, 29, tzinfo=UTC)  # the driver RIM's L4 notAfter
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    fetch_and_store(_transactions(session), clients, [wanted_rim(DRIVER_RIM_ID)], signer_expiry - timedelta(days=2))
    assert _row(session, wanted_rim(DRIVER_RIM_ID)).next_update == signer_expiry


def test_fetch_and_store_rim_signer_expired_asked_again_after_refresh_period(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    later = datetime(2027, 1, 1, tzinfo=UTC)
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    fetch_and_store(_transactions(session), clients, [wanted_rim(DRIVER_RIM_ID)], later)
    assert _row(session, wanted_rim(DRIVER_RIM_ID)).next_update == later + NVIDIA_RIM_REFRESH


def test_fetch_and_store_rim_not_found_stored_as_missing_for_a_while(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    report = fetch_and_store(_transactions(session), clients, [wanted_rim(DRIVER_RIM_ID)], NOW)
    assert report.failures == ()
    assert report.stored == (str(wanted_rim(DRIVER_RIM_ID)),)
    row = _row(session, wanted_rim(DRIVER_RIM_ID))
    assert (row.body, row.next_update) == (NVIDIA_RIM_MISSING_BODY, NOW + NVIDIA_RIM_MISSING_TTL)
    assert nvidia_rim(DRIVER_RIM_ID, read_documents(session, [wanted_rim(DRIVER_RIM_ID)])).missing


def test_fetch_and_store_rim_service_outage_stores_nothing_and_is_retryable(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    server.fail_next(503, retry_after="3")
    report = fetch_and_store(_transactions(session), clients, [wanted_rim(DRIVER_RIM_ID)], NOW)
    assert report.stored == ()
    failure = report.retryable
    assert failure is not None
    assert (failure.code, failure.retry_after) == (Code.NVIDIA_RIM_UNAVAILABLE, 3.0)
    assert nvidia_rim(DRIVER_RIM_ID, read_documents(session, [wanted_rim(DRIVER_RIM_ID)])).unavailable


def test_fetch_and_store_rim_with_wrong_sha256_stores_nothing(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM, sha256="00" * 32)
    report = fetch_and_store(_transactions(session), clients, [wanted_rim(DRIVER_RIM_ID)], NOW)
    assert report.stored == ()
    assert [(f.code, f.retryable) for f in report.failures] == [(Code.NVIDIA_RIM_UNAVAILABLE, False)]
    assert cached_document(session, *wanted_rim(DRIVER_RIM_ID).row) is None


def test_fetch_and_store_device_ocsp_by_certid_key(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    der = _device_response()
    server.add_nvidia_ocsp(DEVICE, der, CA)
    key = cert_id_key(DEVICE, CA)
    report = fetch_and_store(_transactions(session), clients, [wanted_ocsp(key)], NOW)
    assert report.stored == (str(wanted_ocsp(key)),)
    assert _row(session, wanted_ocsp(key)).next_update == NOW + timedelta(hours=24)
    assert nvidia_ocsp([key], [], read_documents(session, [wanted_ocsp(key)])) == {key: der}
    (request,) = (ocsp.load_der_ocsp_request(body) for body in server.ocsp_requests)
    assert isinstance(request.hash_algorithm, hashes.SHA384)
    assert len(request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce) == 32


def test_fetch_and_store_unknown_certificate_unauthorized_stores_nothing(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    key = cert_id_key(DEVICE, CA)
    report = fetch_and_store(_transactions(session), clients, [wanted_ocsp(key)], NOW)
    assert report.stored == ()
    assert [(f.code, f.retryable) for f in report.failures] == [(Code.NVIDIA_OCSP_UNAVAILABLE, False)]
    assert "UNAUTHORIZED" in report.failures[0].message


def test_fetch_and_store_rim_chain_ocsp_reads_the_cached_rim(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    put_document(
        session, "nvidia", "rim", DRIVER_RIM_ID, DRIVER_RIM, issuer_chain=None, fetched_at=NOW, next_update=None
    )
    _serve_rim_chain_ocsp(server)  # the RIM service knows no RIM: only the cached one can be read
    report = fetch_and_store(_transactions(session), clients, [wanted_rim_ocsp(DRIVER_RIM_ID)], NOW)
    assert report.stored == (str(wanted_rim_ocsp(DRIVER_RIM_ID)),)
    assert not any(path.startswith("/v1/rim") for path in server.requests)
    earliest = min(ocsp.load_der_ocsp_response(d).next_update_utc or NOW for d in RIM_CHAIN_OCSP)
    assert _row(session, wanted_rim_ocsp(DRIVER_RIM_ID)).next_update == earliest


def test_fetch_and_store_rim_chain_ocsp_all_or_nothing(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    for der in RIM_CHAIN_OCSP[:2]:  # the L2 CA's status is not served
        server.add_nvidia_ocsp(ocsp_response_key(der) or "", der)
    report = fetch_and_store(_transactions(session), clients, [wanted_rim_ocsp(DRIVER_RIM_ID)], NOW)
    assert report.stored == ()
    assert cached_document(session, *wanted_rim_ocsp(DRIVER_RIM_ID).row) is None


def test_fetch_and_store_rim_chain_ocsp_for_missing_rim_not_retryable(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    put_document(
        session,
        "nvidia",
        "rim",
        DRIVER_RIM_ID,
        NVIDIA_RIM_MISSING_BODY,
        issuer_chain=None,
        fetched_at=NOW,
        next_update=NOW + NVIDIA_RIM_MISSING_TTL,
    )
    report = fetch_and_store(_transactions(session), clients, [wanted_rim_ocsp(DRIVER_RIM_ID)], NOW)
    assert report.stored == ()
    assert [(f.status, f.retryable) for f in report.failures] == [(404, False)]
    assert server.ocsp_requests == []


def test_refresh_cache_fetches_due_nvidia_rows_only(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    key = cert_id_key(DEVICE, CA)
    old, fresh = _device_response(NOW - timedelta(hours=23)), _device_response(NOW)
    put_document(
        session,
        "nvidia",
        "ocsp",
        key,
        old,
        issuer_chain=None,
        fetched_at=NOW - timedelta(hours=23),
        next_update=NOW + timedelta(hours=1),
    )
    put_document(
        session,
        "nvidia",
        "rim",
        DRIVER_RIM_ID,
        DRIVER_RIM,
        issuer_chain=None,
        fetched_at=NOW,
        next_update=NOW + NVIDIA_RIM_REFRESH,
    )
    server.add_nvidia_ocsp(DEVICE, fresh, CA)
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    report = refresh_cache(_transactions(session), clients, NOW + timedelta(minutes=30), freshness=RULE, limit=10)
    assert report.stored == (str(wanted_ocsp(key)),)
    assert _row(session, wanted_ocsp(key)).body == fresh
    assert not any(path.startswith("/v1/rim") for path in server.requests)


def test_refresh_cache_missing_rim_dropped_after_its_ttl_not_asked_again(
    session: Session, server: FakeVendorServices, clients: VendorClients
) -> None:
    """A "no such RIM" row is not refreshed: RIM ids come from reports not yet verified, so anyone may make the
    cache hold some. Once due it is dropped, and the next attestation naming that RIM asks NVIDIA again."""
    put_document(
        session,
        "nvidia",
        "rim",
        DRIVER_RIM_ID,
        NVIDIA_RIM_MISSING_BODY,
        issuer_chain=None,
        fetched_at=NOW,
        next_update=NOW + NVIDIA_RIM_MISSING_TTL,
    )
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)  # NVIDIA has published it since
    early = refresh_cache(_transactions(session), clients, NOW + timedelta(minutes=1), freshness=RULE, limit=10)
    assert early.stored == ()
    assert nvidia_rim(DRIVER_RIM_ID, read_documents(session, [wanted_rim(DRIVER_RIM_ID)])).missing
    later = NOW + NVIDIA_RIM_MISSING_TTL
    report = refresh_cache(_transactions(session), clients, later, freshness=RULE, limit=10)
    assert report.stored == ()
    assert not any(path.startswith("/v1/rim") for path in server.requests)
    assert nvidia_rim(DRIVER_RIM_ID, read_documents(session, [wanted_rim(DRIVER_RIM_ID)])).unavailable  # gone


def test_vendor_clients_without_nvidia_key_send_no_authorization(server: FakeVendorServices) -> None:
    settings = Settings(nvidia_rim_url=server.base_url, nvidia_ocsp_url=server.base_url)
    server.add_nvidia_rim(DRIVER_RIM_ID, DRIVER_RIM)
    with vendor_clients(settings) as clients:
        assert clients.nvidia_rim is not None
        assert clients.nvidia_rim.fetch_rim(DRIVER_RIM_ID) == DRIVER_RIM
    assert server.authorizations == [None]


def test_settings_nvidia_service_defaults() -> None:
    settings = Settings()
    assert (settings.nvidia_rim_url, settings.nvidia_ocsp_url, settings.nvidia_api_key) == (
        "https://rim.attestation.nvidia.com",
        "https://ocsp.ndis.nvidia.com",
        None,
    )
