"""The overview's warning of live deployments judged with an older TCB evaluation data number than the collateral
cache's newest for their FMSPC, on a database of its own (the warning reads the whole cache); the decision keeping
the number and TCB Info on the deployment; and the migration filling them from stored decisions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.orm import Session

from tests.integration.attestation import test_flows as flows
from tests.integration.dashboard.world import make_deployment
from tests.support.databases import migrated_database
from tests.support.factories import make_entitlement, make_lease, make_model, make_model_version
from tests.support.tools import ROOT
from verifier.attestation.flows import decide_attestation
from verifier.clock import Clock
from verifier.dashboard.service import EvalNumberWarning, newest_eval_numbers, overview
from verifier.db.models import Attestation, CachedCollateral, Deployment, LeaseStatus
from verifier.testing.databases import scratch_database
from verifier.testing.fleet import qe_identity_body, seed_fleet, tcb_info_body

NOW = datetime(2031, 7, 1, 12, 0, tzinfo=UTC)
TDX_A, TDX_B, SGX_A = "b0c06f000000", "b0c06f000001", "00906ed50000"

world = flows.world  # the fixture


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """This module's own database (the ``session`` fixture runs on it)."""
    with migrated_database("keyward_eval_numbers") as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


def _cache(session: Session, kind: str, key: str, body: bytes) -> None:
    session.add(
        CachedCollateral(
            vendor="intel", kind=kind, key=key, body=body, fetched_at=NOW, next_update=NOW + timedelta(days=30)
        )
    )


def _cached_world(session: Session) -> None:
    """TCB Infos: TDX_A #18, TDX_B #17, SGX_A #19; QE Identities: TD_QE #18, QE #18 (so SGX_A's newest is #18);
    and an unreadable TCB Info (left out)."""
    _cache(session, "tcb_info", f"tdx:{TDX_A}", tcb_info_body("TDX", TDX_A, 18, NOW))
    _cache(session, "tcb_info", f"tdx:{TDX_B}", tcb_info_body("TDX", TDX_B, 17, NOW))
    _cache(session, "tcb_info", f"sgx:{SGX_A}", tcb_info_body("SGX", SGX_A, 19, NOW))
    _cache(session, "tcb_info", "tdx:ffffffffffff", b"not a PCS response")
    _cache(session, "qe_identity", "tdx", qe_identity_body("TD_QE", 18, NOW))
    _cache(session, "qe_identity", "sgx", qe_identity_body("QE", 18, NOW))
    session.flush()


def _live(session: Session, name: str, number: int | None, tcb_info: str | None, *, live: bool = True) -> Deployment:
    model = make_model(session)
    version = make_model_version(session, model)
    entitlement = make_entitlement(session, model=model, seats=3, valid_until=NOW + timedelta(days=100))
    dep = make_deployment(session, entitlement, name, tcb_status="UpToDate")
    dep.tcb_eval_number, dep.tcb_info_id = number, tcb_info
    lease = make_lease(session, dep, version, now=NOW - timedelta(minutes=5))
    if not live:
        lease.status = LeaseStatus.REVOKED
    dep.lease_id = lease.id
    session.flush()
    return dep


def _warned(session: Session) -> dict[str, tuple[str | None, int, int]]:
    return {w.deployment: (w.tcb_info, w.judged_with, w.newest) for w in overview(session, NOW).eval_number_warnings}


def test_newest_eval_numbers_per_tcb_info_bounded_by_its_qe_identity(session: Session) -> None:
    _cached_world(session)
    assert newest_eval_numbers(session) == {f"TDX:{TDX_A}": 18, f"TDX:{TDX_B}": 17, f"SGX:{SGX_A}": 18}


def test_overview_warns_of_a_live_deployment_behind_its_fmspc(session: Session) -> None:
    _cached_world(session)
    _live(session, "behind", 17, f"TDX:{TDX_A}")
    assert _warned(session) == {"behind": (f"TDX:{TDX_A}", 17, 18)}


@pytest.mark.parametrize(
    ("number", "tcb_info", "live"),
    [
        (18, f"TDX:{TDX_A}", True),  # on the newest
        (17, f"TDX:{TDX_B}", True),  # its FMSPC's newest is 17
        (18, f"SGX:{SGX_A}", True),  # the TCB Info is at 19 but the QE Identity holds new decisions at 18
        (16, "TDX:ffffffffffff", True),  # its TCB Info cannot be read: nothing to compare with
        (16, "TDX:0123456789ab", True),  # no TCB Info cached for its FMSPC
        (16, f"TDX:{TDX_A}", False),  # no live lease
        (None, None, True),  # not judged with Intel evidence
    ],
    ids=["current", "fmspc-newest-equal", "qe-identity-bound", "unreadable", "uncached", "not-live", "not-intel"],
)
def test_overview_does_not_warn(session: Session, number: int | None, tcb_info: str | None, live: bool) -> None:
    _cached_world(session)
    _live(session, "quiet", number, tcb_info, live=live)
    assert _warned(session) == {}


def test_overview_compares_fleet_wide_without_a_recorded_fmspc(session: Session) -> None:
    _cached_world(session)
    _live(session, "unrecorded", 17, None)
    [warning] = overview(session, NOW).eval_number_warnings
    assert (warning.tcb_info, warning.judged_with, warning.newest, warning.fleet_wide) == (None, 17, 18, True)


def test_overview_warns_of_nothing_without_cached_tcb_infos(session: Session) -> None:
    _live(session, "behind", 1, f"TDX:{TDX_A}")
    _live(session, "unrecorded", 1, None)
    assert _warned(session) == {}


def test_overview_eval_warning_names_its_fmspc_and_both_numbers(session: Session) -> None:
    _cached_world(session)
    dep = _live(session, "behind", 17, f"TDX:{TDX_A}")
    [warning] = overview(session, NOW).eval_number_warnings
    assert warning == EvalNumberWarning(dep.id, "behind", warning.customer, f"TDX:{TDX_A}", 17, 18)
    assert warning.fmspc == TDX_A


# -- kept by the decision -----------------------------------------------------------------------------------------


def test_record_acceptance_keeps_the_eval_number_and_tcb_info(session: Session, world: flows.World) -> None:
    att, _ = flows._submit(session, world)
    decided = decide_attestation(session, att.id, world.ctx, Clock.fixed(flows.NOW))
    summary = decided.collateral["intel-tdx"] if decided.collateral else {}
    session.expire_all()
    dep = session.scalars(select(Deployment).where(Deployment.id == decided.deployment_id)).one()
    assert dep.tcb_eval_number == summary["tcb_eval_number"]
    assert dep.tcb_info_id == f"TDX:{summary['fmspc'].lower()}"


# -- the migration ------------------------------------------------------------------------------------------------


def test_migration_backfills_the_eval_number_from_the_newest_acceptance() -> None:
    with scratch_database("keyward_eval_backfill") as url:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        eng = create_engine(url)
        try:
            seed_fleet(eng, now=NOW, deployments=12, attestations=120, customers=2)
            with Session(eng) as s:
                newest = s.execute(
                    select(Attestation.deployment_id, Attestation.collateral)
                    .where(Attestation.status == "accepted")
                    .order_by(Attestation.decided_at)
                ).all()
                expected: dict[Any, Any] = dict(newest)  # the last (newest) acceptance of each wins
                s.execute(update(Deployment).values(tcb_eval_number=None, tcb_info_id=None))
                s.commit()
            command.downgrade(cfg, "d15days00001")
            command.upgrade(cfg, "head")
            with Session(eng) as s:
                got = {d.id: (d.tcb_eval_number, d.tcb_info_id) for d in s.scalars(select(Deployment))}
        finally:
            eng.dispose()
    for dep_id, collateral in expected.items():
        intel = [(p, c) for p, c in collateral.items() if p in ("intel-tdx", "intel-sgx")]
        if not intel:
            assert got[dep_id] == (None, None)
            continue
        platform, item = intel[0]
        tee = "TDX" if platform == "intel-tdx" else "SGX"
        assert got[dep_id] == (item["tcb_eval_number"], f"{tee}:{item['fmspc']}" if item["fmspc"] else None)
    assert any(n is not None for n, _ in got.values())
