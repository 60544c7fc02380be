"""The worker's kept collateral rows (verifier/worker/collateral_rows.py) on real PostgreSQL and Redis: a warm
decision issues no statement on ``collateral_cache``; every commit that changes the table replaces the collateral
generation token, and a decision after it reads the rows again and verifies with what was stored; a kept row that
became due is still fetched; without Redis the database is read; a token replaced between the ``GET`` and the
statement leaves nothing stale kept under the new one; a row the database lacks is kept as absent until a commit
stores it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, select, text
from sqlalchemy.orm import Session

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX, seed, service_settings, store_pending_tdx
from tests.support.tools import ROOT
from verifier.broker.invalidation import collateral_generation_key
from verifier.broker.notify import redis_client
from verifier.collateral.documents import Wanted
from verifier.collateral.repository import INTEL, drop_document, put_document
from verifier.config import Settings
from verifier.db.models import Attestation, AttestationStatus, CachedCollateral
from verifier.db.session import engine_for, session_scope
from verifier.simulation.intel_options import CollateralOptions
from verifier.simulation.intel_pki import SIM_NOW, QuoteOptions, default_pki
from verifier.testing.databases import scratch_database
from verifier.testing.fake_vendor_services import FakeVendorServices
from verifier.testing.fleet import seed_fleet
from verifier.trust.intel_collateral import signed_member
from verifier.worker import base, collateral_rows, refresh, tasks
from verifier.worker.collateral_rows import CollateralRows
from verifier.worker.refresh import due_documents
from verifier.worker.vendor_documents import Fetched, store_fetched


@dataclass
class Stack:
    engine: Engine
    settings: Settings
    server: FakeVendorServices
    entitlement_id: uuid.UUID
    monkeypatch: pytest.MonkeyPatch


def _clear_cache(engine: Engine) -> None:
    with Session(engine) as s:
        s.execute(delete(CachedCollateral))
        s.commit()


def _token() -> bytes | None:
    value = redis_client(TEST_BROKER).get(collateral_generation_key(TEST_KEY_PREFIX))
    return value if isinstance(value, bytes) else None


@pytest.fixture
def stack(database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    _clear_cache(engine)
    with FakeVendorServices() as server:
        server.add_intel(default_pki().build(QuoteOptions()))
        settings = service_settings(database_url, pcs_base_url=server.base_url, kds_base_url=server.base_url)
        seeded = seed(engine, settings, seats=20)
        try:
            yield Stack(engine, settings, server, seeded.entitlement_id, monkeypatch)
        finally:
            _clear_cache(engine)


def _decide(stack: Stack, settings: Settings | None = None) -> tuple[Attestation, int]:
    """Decide a new pending TDX attestation (no collateral sent) in process, as the worker does; returns it decided
    and the statements the worker issued on ``collateral_cache``."""
    settings = settings or stack.settings
    att_id = store_pending_tdx(
        stack.engine, settings, stack.entitlement_id, deployment=f"rows-{uuid.uuid4().hex[:8]}", with_collateral=False
    )
    for module in (tasks, base, refresh):
        stack.monkeypatch.setattr(module, "get_settings", lambda: settings)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    worker_engine = engine_for(settings.database_url)
    event.listen(worker_engine, "before_cursor_execute", seen)
    try:
        tasks.decide_task(str(att_id))
    finally:
        event.remove(worker_engine, "before_cursor_execute", seen)
    with Session(stack.engine) as s:
        att = s.get(Attestation, att_id)
        assert att is not None
    return att, sum("FROM collateral_cache" in s for s in statements)


def _codes(att: Attestation) -> list[str]:
    return [str(r.get("code")) for r in (att.verdict or {}).get("reasons", [])]


def _warm(stack: Stack) -> None:
    """Fetch the collateral (the store replaces the token), then read it once: now kept."""
    cold, _ = _decide(stack)
    assert cold.status == AttestationStatus.ACCEPTED, _codes(cold)
    warm, statements = _decide(stack)
    assert warm.status == AttestationStatus.ACCEPTED, _codes(warm)
    assert statements == 1


# ----------------------------------------------------------------------------------------------------------
# Decisions


def test_decide_task_warm_decision_reads_no_collateral_rows(stack: Stack) -> None:
    _warm(stack)
    decided, statements = _decide(stack)
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert statements == 0
    assert len(stack.server.requests) == 4  # fetched once, by the first decision


def test_decide_task_row_stored_elsewhere_read_again_and_verified_with(stack: Stack) -> None:
    """A newer TCB Info stored by another session (an OutOfDate platform) replaces the token: the next decision
    reads the rows again and verifies with the new document."""
    _warm(stack)
    before = _token()
    newer = default_pki().build(
        QuoteOptions(), CollateralOptions(tcb_evaluation_data_number=18, top_tcb_status="OutOfDate")
    )
    fmspc = json.loads(signed_member(newer.pcs.tcb_info_body, "tcbInfo")[0])["fmspc"].lower()
    with Session(stack.engine) as s:
        put_document(
            s,
            INTEL,
            "tcb_info",
            f"tdx:{fmspc}",
            newer.pcs.tcb_info_body,
            issuer_chain=newer.pcs.tcb_info_issuer_chain,
            fetched_at=SIM_NOW,
            next_update=None,
        )
        s.commit()
    assert _token() != before
    decided, statements = _decide(stack)
    assert statements == 1
    assert decided.status == AttestationStatus.REJECTED
    assert any("tcb" in code for code in _codes(decided)), _codes(decided)


def test_decide_task_kept_row_due_is_fetched(stack: Stack) -> None:
    """Freshness is judged on kept rows at the decision's time: revocation and TCB data older than the maximum
    age are fetched again before the decision."""
    _warm(stack)
    stack.server.requests.clear()
    later = stack.settings.model_copy(
        update={"simulation_time": SIM_NOW + timedelta(minutes=2), "collateral_max_age_seconds": 60.0}
    )
    decided, _ = _decide(stack, later)
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    assert len(stack.server.requests) == 4  # TCB Info, QE Identity and both CRLs, all due


def test_decide_task_redis_unreachable_reads_database(stack: Stack) -> None:
    stack.monkeypatch.setattr(collateral_rows, "_targets", set(collateral_rows._targets))  # undone after the test
    _warm(stack)
    down = stack.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    for _ in range(2):
        decided, statements = _decide(stack, down)
        assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
        assert statements == 1


# ----------------------------------------------------------------------------------------------------------
# Every writer replaces the token


def _row(engine: Engine, key: str, body: bytes = b"body", *, next_update: Any = SIM_NOW + timedelta(days=1)) -> None:
    with Session(engine) as s:
        s.add(
            CachedCollateral(
                vendor=INTEL, kind="qe_identity", key=key, body=body, fetched_at=SIM_NOW, next_update=next_update
            )
        )
        s.commit()


@pytest.fixture
def watched(database_url: str, engine: Engine) -> Iterator[Settings]:
    settings = service_settings(database_url)
    _clear_cache(engine)
    yield settings
    _clear_cache(engine)


def test_store_fetched_replaces_token(watched: Settings) -> None:
    """The prefetch's and the periodic refresh's store."""
    before = _token()
    fetched = Fetched(Wanted(INTEL, "qe_identity", "tdx"), b"qe", None, SIM_NOW + timedelta(days=1))
    assert store_fetched(lambda: session_scope(watched), [fetched], SIM_NOW) == ("intel/qe_identity/tdx",)
    assert _token() != before


def test_drop_document_replaces_token(watched: Settings, engine: Engine) -> None:
    """The periodic refresh drops rows that can never verify."""
    _row(engine, "tdx")
    before = _token()
    with session_scope(watched) as s:
        row = s.scalars(select(CachedCollateral)).one()
        drop_document(s, row)
    assert _token() != before


def test_due_documents_next_update_filled_replaces_token(watched: Settings, engine: Engine) -> None:
    """The periodic refresh writes the next update it reads from a body onto a row stored without one."""
    body = default_pki().build(QuoteOptions()).pcs.qe_identity_body
    _row(engine, "tdx", body, next_update=None)
    before = _token()
    with session_scope(watched) as s:
        due_documents(s, SIM_NOW, freshness=refresh.DEFAULT_FRESHNESS, limit=10)
    assert _token() != before


def test_session_delete_statement_replaces_token(watched: Settings, engine: Engine) -> None:
    """A Core statement through a session (tests and tools emptying the cache): no unit of work sees it."""
    _row(engine, "tdx")
    before = _token()
    with session_scope(watched) as s:
        s.execute(delete(CachedCollateral).where(CachedCollateral.key == "tdx"))
    assert _token() != before


def test_session_text_statement_replaces_token(watched: Settings, engine: Engine) -> None:
    _row(engine, "tdx")
    before = _token()
    with session_scope(watched) as s:
        s.execute(text("UPDATE collateral_cache SET body = :b WHERE key = 'tdx'"), {"b": b"other"})
    assert _token() != before


def test_rolled_back_write_keeps_token(watched: Settings) -> None:
    before = _token()
    with Session(engine_for(watched.database_url)) as s:
        s.add(CachedCollateral(vendor=INTEL, kind="qe_identity", key="tdx", body=b"x", fetched_at=SIM_NOW))
        s.flush()
        s.rollback()
    assert _token() == before


def test_seed_fleet_replaces_token() -> None:
    """The dashboard benchmark's fleet seeder (Core INSERTs in batches)."""
    service_settings("postgresql+psycopg://unused/unused")  # this process watches the test broker
    with scratch_database("keyward_rows_fleet") as url:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        eng = create_engine(url)
        try:
            before = _token()
            seed_fleet(eng, now=SIM_NOW, deployments=4, attestations=8, customers=1)
            assert _token() != before
        finally:
            eng.dispose()


# ----------------------------------------------------------------------------------------------------------
# The kept rows themselves


def test_collateral_rows_token_replaced_after_the_statement_keeps_nothing_stale(
    watched: Settings, engine: Engine
) -> None:
    """Another process stores a row (and replaces the token) after the ``GET`` and the statement that read the
    old row: that row was kept under the token read before, so the next read sees the new one."""
    _row(engine, "tdx", b"old")
    kept = CollateralRows(watched.broker_url, watched.broker_key_prefix)
    keys = [(INTEL, "qe_identity", "tdx")]
    worker_engine = engine_for(watched.database_url)
    raced: list[bool] = []

    def store_meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM collateral_cache" in statement and not raced:
            raced.append(True)
            with session_scope(watched) as s:
                s.scalars(select(CachedCollateral)).one().body = b"new"

    event.listen(worker_engine, "after_cursor_execute", store_meanwhile)
    try:
        with Session(worker_engine) as s:
            assert kept.read(s, keys)[keys[0]].body == b"old"
    finally:
        event.remove(worker_engine, "after_cursor_execute", store_meanwhile)
    assert raced == [True]
    with Session(worker_engine) as s:
        assert kept.read(s, keys)[keys[0]].body == b"new"


def test_collateral_rows_kept_under_current_token_read_no_statement(watched: Settings, engine: Engine) -> None:
    _row(engine, "tdx", b"kept")
    kept = CollateralRows(watched.broker_url, watched.broker_key_prefix)
    keys = [(INTEL, "qe_identity", "tdx"), (INTEL, "qe_identity", "sgx")]  # the second is absent
    statements: list[str] = []
    worker_engine = engine_for(watched.database_url)

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with Session(worker_engine) as s:
        kept.read(s, keys[:1])
        event.listen(worker_engine, "before_cursor_execute", seen)
        try:
            assert kept.read(s, keys[:1])[keys[0]].body == b"kept"
            assert statements == []
            assert set(kept.read(s, keys)) == {keys[0]}
            assert len(statements) == 1
            assert set(kept.read(s, keys)) == {keys[0]}  # absent is kept too
            assert len(statements) == 1
        finally:
            event.remove(worker_engine, "before_cursor_execute", seen)


def test_collateral_rows_bounded(watched: Settings, engine: Engine) -> None:
    for key in ("a", "b", "c"):
        _row(engine, key)
    kept = CollateralRows(watched.broker_url, watched.broker_key_prefix, max_entries=2)
    with Session(engine_for(watched.database_url)) as s:
        assert len(kept.read(s, [(INTEL, "qe_identity", k) for k in ("a", "b", "c")])) == 3
    assert len(kept) == 2


def test_collateral_rows_kept_absent_row_read_once_stored(watched: Settings, engine: Engine) -> None:
    kept = CollateralRows(watched.broker_url, watched.broker_key_prefix)
    keys = [(INTEL, "qe_identity", "tdx")]
    worker_engine = engine_for(watched.database_url)
    with Session(worker_engine) as s:
        assert kept.read(s, keys) == {}
    _row(engine, "tdx", b"stored")
    with Session(worker_engine) as s:
        assert kept.read(s, keys)[keys[0]].body == b"stored"
