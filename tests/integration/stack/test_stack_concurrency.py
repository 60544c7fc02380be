"""Seats hold through the whole stack: 100 enclaves attest at once over HTTP (uvicorn with 2 API worker processes)
to 2 Celery worker processes, real PostgreSQL and Redis, against a 10-seat entitlement."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.support.service import TEST_BROKER, purge_test_broker
from verifier.client import AttestationRejected, KeywardClient, Lease, SimulatedProvider
from verifier.db.models import Attestation, AttestationStatus, Entitlement, LeaseStatus
from verifier.db.models import Lease as LeaseRow
from verifier.testing.demo_data import DemoData, seed_demo
from verifier.testing.devstack import DevStack, StackConfig

ENCLAVES, SEATS = 100, 10


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevStack, DemoData]]:
    purge_test_broker()
    workdir = tmp_path_factory.mktemp("stack")
    config = StackConfig(
        workdir=workdir,
        database_url=database_url,
        broker_url=TEST_BROKER,
        api_workers=2,
        worker_processes=2,
        beat=False,
        # Seats are under test, not the per-licence request rate: 100 enclaves polling one licence's decisions
        # go past its default 600 requests a minute (tests/integration/api/test_licence_quotas.py tests that).
        extra_env={"KEYWARD_LICENCE_REQUESTS_PER_MINUTE": "0"},
    )
    with DevStack(config) as running:
        running.wait_until_up()
        with httpx.Client(base_url=running.base_url, timeout=30.0) as http:
            demo = seed_demo(http, running.bootstrap_admin(), workdir, seats=SEATS, suffix=uuid.uuid4().hex[:8])
        yield running, demo


def _attest(stack: DevStack, demo: DemoData, i: int) -> Lease | AttestationRejected:
    with KeywardClient(stack.base_url, demo.licence, poll_interval=0.05) as client:
        try:
            return client.attest(model=demo.model, deployment=f"node-{i}", provider=SimulatedProvider(), deadline=120)
        except AttestationRejected as rejected:
            return rejected


def test_stack_concurrent_attestations_never_exceed_seats(stack: tuple[DevStack, DemoData], engine: Engine) -> None:
    running, demo = stack
    with ThreadPoolExecutor(max_workers=ENCLAVES) as pool:
        outcomes = list(pool.map(lambda i: _attest(running, demo, i), range(ENCLAVES)))

    leases = [o for o in outcomes if isinstance(o, Lease)]
    rejections = [o for o in outcomes if isinstance(o, AttestationRejected)]
    assert len(leases) == SEATS
    assert len(rejections) == ENCLAVES - SEATS
    assert {tuple(r.code for r in o.reasons) for o in rejections} == {("entitlement.seats_exhausted",)}
    with Session(engine) as s:
        entitlement_id = uuid.UUID(demo.entitlement_id)
        live = s.scalar(
            select(func.count())
            .select_from(LeaseRow)
            .where(LeaseRow.entitlement_id == entitlement_id, LeaseRow.status == LeaseStatus.LIVE)
        )
        by_status = dict(
            s.execute(
                select(Attestation.status, func.count())
                .where(Attestation.entitlement_id == entitlement_id)
                .group_by(Attestation.status)
            ).all()
        )
        assert s.get(Entitlement, entitlement_id) is not None
    assert live == SEATS
    assert by_status == {AttestationStatus.ACCEPTED: SEATS, AttestationStatus.REJECTED: ENCLAVES - SEATS}
