"""Evidence without collateral, decided by a real ``celery worker`` process that fetches the collateral first.

The worker (real Redis, real PostgreSQL) is pointed at FakeVendorServices, a local HTTP server speaking the PCS v4
and KDS API shapes, through ``KEYWARD_PCS_BASE_URL`` / ``KEYWARD_KDS_BASE_URL``. Retries are configured short
(``KEYWARD_COLLATERAL_RETRY_DELAY``) so every wait below is bounded by a deadline of seconds.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwk
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from tests.support.service import (
    TEST_BROKER,
    allow_snp,
    pending_tdx_attestation,
    seed,
    service_settings,
    start_worker,
    stop_worker,
)
from verifier.attestation.challenges import issue_challenge
from verifier.collateral.repository import INTEL, put_document
from verifier.config import Settings
from verifier.db.models import (
    Attestation,
    AttestationStatus,
    CachedCollateral,
)
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk
from verifier.simulation.amd_pki import ReportOptions, default_amd_pki
from verifier.simulation.intel_pki import SIM_NOW, CollateralOptions, QuoteOptions, default_pki
from verifier.testing.fake_vendor_services import FakeVendorServices

RETRIES = 2
DEADLINE = 30.0  # seconds for any one decision (a few short retries included)


@dataclass
class Stack:
    engine: Engine
    settings: Settings
    server: FakeVendorServices
    entitlement_id: uuid.UUID
    version_id: uuid.UUID


def _clear_cache(engine: Engine) -> None:
    with Session(engine) as s:
        s.execute(delete(CachedCollateral))
        s.commit()


@pytest.fixture(scope="module")
def stack(database_url: str, engine: Engine) -> Iterator[Stack]:
    broker = TEST_BROKER
    settings = service_settings(database_url)
    seeded = seed(engine, settings, seats=20)
    version_id = allow_snp(engine, seeded.entitlement_id)
    with FakeVendorServices() as server:
        worker = start_worker(
            database_url,
            broker,
            KEYWARD_PCS_BASE_URL=server.base_url,
            KEYWARD_KDS_BASE_URL=server.base_url,
            KEYWARD_COLLATERAL_FETCH_TIMEOUT="5",
            KEYWARD_COLLATERAL_FETCH_RETRIES=str(RETRIES),
            KEYWARD_COLLATERAL_RETRY_DELAY="0.2",
        )
        try:
            yield Stack(engine, settings, server, seeded.entitlement_id, version_id)
        finally:
            stop_worker(worker)
            _clear_cache(engine)


@pytest.fixture
def vendor(stack: Stack) -> Iterator[FakeVendorServices]:
    """The fake vendor services, empty, with an empty collateral cache (the worker commits what it fetches)."""
    stack.server.reset()
    _clear_cache(stack.engine)
    yield stack.server
    stack.server.reset()


def _nonce_and_key(stack: Stack) -> tuple[bytes, dict[str, Any]]:
    nonce = issue_challenge(stack.settings.challenge_secret.get_secret_value().encode(), SIM_NOW).nonce
    return nonce, dict(jwk.ECKey.generate_key("P-256").as_dict(private=False))


def _submit(stack: Stack, att: Attestation) -> uuid.UUID:
    from verifier.worker.tasks import decide_task

    with Session(stack.engine) as s:
        s.add(att)
        s.commit()
        att_id = att.id
    decide_task.delay(str(att_id))
    return att_id


def _submit_tdx(stack: Stack) -> uuid.UUID:
    nonce, key = _nonce_and_key(stack)
    att = pending_tdx_attestation(
        stack.entitlement_id,
        stack.version_id,
        nonce=nonce,
        enclave_jwk=key,
        deployment=f"fetch-{uuid.uuid4().hex[:8]}",
        with_collateral=False,
        created_at=datetime.now(UTC),  # as the API stores it; the worker decides on the simulation clock
    )
    return _submit(stack, att)


def _wait_decided(stack: Stack, att_id: uuid.UUID) -> Attestation:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with Session(stack.engine) as s:
            att = s.get(Attestation, att_id)
            assert att is not None
            if att.status != AttestationStatus.PENDING:
                return att
        time.sleep(0.1)
    raise AssertionError(f"attestation {att_id} still pending after {DEADLINE}s")


def _codes(att: Attestation) -> list[str]:
    assert att.verdict is not None
    return [r["code"] for r in att.verdict["reasons"]]


def _count(server: FakeVendorServices, prefix: str) -> int:
    return sum(1 for r in server.requests if r.startswith(prefix))


TCB_PATH = "/tdx/certification/v4/tcb?"


def test_worker_fetches_intel_collateral_then_accepts(stack: Stack, vendor: FakeVendorServices) -> None:
    vendor.add_intel(default_pki().build(QuoteOptions()))

    decided = _wait_decided(stack, _submit_tdx(stack))

    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert decided.wrapped_key is not None
    assert len(vendor.requests) == 4
    with Session(stack.engine) as s:
        assert {r.kind for r in s.scalars(select(CachedCollateral))} == {
            "tcb_info",
            "qe_identity",
            "pck_crl",
            "root_ca_crl",
        }
    # A second request from the same platform is decided from the cache: nobody is asked again.
    again = _wait_decided(stack, _submit_tdx(stack))
    assert again.status == AttestationStatus.ACCEPTED, _codes(again)
    assert len(vendor.requests) == 4


def test_worker_fetches_vcek_from_kds_then_accepts(stack: Stack, vendor: FakeVendorServices) -> None:
    nonce, key = _nonce_and_key(stack)
    ev = default_amd_pki().build(ReportOptions(report_data=expected_report_data(nonce, parse_enclave_jwk(key))))
    vendor.add_amd(ev)
    att = Attestation(
        entitlement_id=stack.entitlement_id,
        model_version_id=stack.version_id,
        deployment_name=f"snp-{uuid.uuid4().hex[:8]}",
        kind="attest",
        platforms=["amd-sev-snp"],
        status=AttestationStatus.PENDING,
        nonce=nonce,
        enclave_jwk=key,
        created_at=datetime.now(UTC),
        evidence=[{"type": "amd-sev-snp", "evidence": base64.b64encode(ev.report).decode()}],
    )

    decided = _wait_decided(stack, _submit(stack, att))

    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    # The chain's CRL and the chip's VCEK, each fetched once.
    assert len(vendor.requests) == 2
    assert vendor.requests[0] == "/vcek/v1/Genoa/crl"
    assert vendor.requests[1].startswith("/vcek/v1/Genoa/")
    assert decided.collateral is not None
    assert decided.collateral["amd-sev-snp"]["crl_checked"] is True


def test_worker_unknown_fmspc_rejected_without_retry(stack: Stack, vendor: FakeVendorServices) -> None:
    # Nothing registered: PCS answers 404, which no retry can mend.
    decided = _wait_decided(stack, _submit_tdx(stack))

    assert decided.status == AttestationStatus.REJECTED
    assert _codes(decided) == ["intel.collateral.missing"]
    assert _count(vendor, TCB_PATH) == 1


def test_worker_retries_after_503_with_retry_after_then_accepts(stack: Stack, vendor: FakeVendorServices) -> None:
    vendor.add_intel(default_pki().build(QuoteOptions()))
    vendor.fail_next(503, retry_after="1")
    started = time.monotonic()

    decided = _wait_decided(stack, _submit_tdx(stack))

    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert _count(vendor, TCB_PATH) == 2  # the 503, then the retry
    assert len(vendor.requests) == 5
    assert time.monotonic() - started >= 1.0  # Retry-After honoured (the back-off alone would be 0.2 s)


def test_worker_outage_decided_after_last_retry(stack: Stack, vendor: FakeVendorServices) -> None:
    vendor.add_intel(default_pki().build(QuoteOptions()))
    vendor.fail_next(503, count=100, retry_after="0")

    decided = _wait_decided(stack, _submit_tdx(stack))

    assert decided.status == AttestationStatus.REJECTED
    assert _codes(decided) == ["intel.collateral.missing"]
    assert _count(vendor, TCB_PATH) == 1 + RETRIES  # PCS asked once per attempt, then decided anyway


def test_worker_beat_task_refreshes_ageing_document(stack: Stack, vendor: FakeVendorServices) -> None:
    old = default_pki().build(QuoteOptions())
    new = default_pki().build(QuoteOptions(), CollateralOptions(tcb_evaluation_data_number=18))
    vendor.add_intel(new)
    fmspc = old.platform.fmspc.hex()
    with Session(stack.engine) as s:
        # TCB Info: its nextUpdate 3 hours away, fetched before the 24-hour window opened. QE Identity: fresh.
        for kind, key, body, chain, hours, fetched_hours_ago in (
            ("tcb_info", f"tdx:{fmspc}", old.pcs.tcb_info_body, old.pcs.tcb_info_issuer_chain, 3, 22),
            ("qe_identity", "tdx", old.pcs.qe_identity_body, old.pcs.qe_identity_issuer_chain, 24 * 20, 0),
        ):
            next_update = SIM_NOW + timedelta(hours=hours)
            fetched_at = SIM_NOW - timedelta(hours=fetched_hours_ago)
            put_document(s, INTEL, kind, key, body, issuer_chain=chain, fetched_at=fetched_at, next_update=next_update)
        s.commit()
    from verifier.worker.refresh import refresh_collateral_task

    refresh_collateral_task.delay()

    def cached(kind: str) -> bytes:
        with Session(stack.engine) as s:
            return s.scalars(select(CachedCollateral.body).where(CachedCollateral.kind == kind)).one()

    _wait_for(lambda: cached("tcb_info") == new.pcs.tcb_info_body)
    assert cached("qe_identity") == old.pcs.qe_identity_body  # fresh for 20 days: left alone
    assert vendor.requests == [f"{TCB_PATH}fmspc={fmspc.upper()}"]


def _wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"not true after {DEADLINE}s"
        time.sleep(0.1)
