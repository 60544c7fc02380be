"""Entitlement rules and seat accounting on real PostgreSQL, through the functions the decision runs
(:func:`lock_entitlement`, :func:`check_entitlement_rules`, :func:`reserve_seat`, :func:`take_seat` and the lease
service's :func:`issue_lease`), including 100 concurrent seat requests, a seat being one live lease per deployment
(a new lease supersedes the old), and a customer's suspension racing a decision."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from tests.support.factories import (
    T0,
    delete_entitlement_tree,
    make_customer,
    make_entitlement,
    make_lease,
    make_model,
    make_model_version,
)
from verifier.attestation.leases import NewLease, issue_lease, lease_times, revoke_live_leases
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import (
    Customer,
    CustomerStatus,
    Deployment,
    Entitlement,
    EntitlementStatus,
    Lease,
    LeaseStatus,
    ModelVersion,
)
from verifier.entitlement.service import check_entitlement_rules, lock_entitlement, reserve_seat, take_seat
from verifier.errors import Code, NotEntitled


@dataclass(frozen=True, slots=True)
class Request:
    platform: str | list[str] = "tdx"
    model_version: str = "1.0"
    gpus: int = 1


def _check(session: Session, entitlement: Entitlement, request: Request) -> Entitlement:
    """What a decision does: lock the entitlement (its customer's status checked), then apply the rules."""
    locked = lock_entitlement(session, entitlement.id)
    check_entitlement_rules(
        locked, platform=request.platform, model_version=request.model_version, gpus=request.gpus, now=T0
    )
    return locked


def _seat(session: Session, entitlement: Entitlement, name: str, *, now: Any = T0) -> Deployment:
    """What a decision does for a new lease's seat: lock, reserve, take; the deployment as stored now."""
    locked = lock_entitlement(session, entitlement.id)
    seat = reserve_seat(session, locked, name, now=now)
    take_seat(session, locked.id, name, seat, now=now)
    return session.get_one(Deployment, seat.deployment_id, populate_existing=True)


def _issue(session: Session, entitlement: Entitlement, name: str, version: ModelVersion, *, now: Any = T0) -> Lease:
    """A decision's whole seat step with the lease service: lock, reserve, issue the lease (taking the seat)."""
    locked = lock_entitlement(session, entitlement.id)
    seat = reserve_seat(session, locked, name, now=now)
    expires_at, renew_after = lease_times(now, locked.lease_ttl_seconds)
    return issue_lease(
        session,
        NewLease(
            lease_id=uuid.uuid4(),
            entitlement_id=locked.id,
            deployment_name=name,
            seat=seat,
            model_version_id=version.id,
            thumbprint=uuid.uuid4().hex,
            now=now,
            expires_at=expires_at,
            renew_after=renew_after,
        ),
    ).lease


# -- lock_entitlement + check_entitlement_rules -----------------------------------------------------------------


def test_entitlement_rules_accept_covered_request(session: Session) -> None:
    entitlement = make_entitlement(session, allowed_versions=["1.0", "1.1"], max_gpus=8)
    assert _check(session, entitlement, Request(platform=["tdx", "nvidia"], gpus=8)) is entitlement


def test_entitlement_rules_empty_versions_allow_every_version(session: Session) -> None:
    entitlement = make_entitlement(session, allowed_versions=[])
    assert _check(session, entitlement, Request(model_version="9.9-anything")) is entitlement


def test_entitlement_rules_valid_until_none_never_expires(session: Session) -> None:
    entitlement = make_entitlement(session, valid_until=None)
    assert _check(session, entitlement, Request()) is entitlement


def test_lock_entitlement_not_found(session: Session) -> None:
    with pytest.raises(NotEntitled) as exc:
        lock_entitlement(session, uuid.uuid4())
    assert exc.value.code is Code.ENTITLEMENT_NOT_FOUND
    assert exc.value.http_status == 403


def test_lock_entitlement_customer_suspended(session: Session) -> None:
    customer = make_customer(session)
    entitlement = make_entitlement(session, customer=customer)
    customer.status = CustomerStatus.SUSPENDED
    session.flush()
    with pytest.raises(NotEntitled) as exc:
        _check(session, entitlement, Request())
    assert exc.value.code is Code.ENTITLEMENT_CUSTOMER_SUSPENDED
    assert (exc.value.expected, exc.value.actual) == ("active", "suspended")


# One defect at a time: each case breaks exactly one rule of an otherwise covered request.
_DEFECTS: list[tuple[dict[str, Any], Request, Code]] = [
    ({"status": EntitlementStatus.SUSPENDED}, Request(), Code.ENTITLEMENT_INACTIVE),
    ({"status": EntitlementStatus.REVOKED}, Request(), Code.ENTITLEMENT_INACTIVE),
    ({"valid_from": T0 + timedelta(seconds=1)}, Request(), Code.ENTITLEMENT_NOT_YET_VALID),
    ({"valid_until": T0}, Request(), Code.ENTITLEMENT_EXPIRED),
    ({"valid_until": T0 - timedelta(days=1)}, Request(), Code.ENTITLEMENT_EXPIRED),
    ({"allowed_platforms": ["snp"]}, Request(platform="tdx"), Code.ENTITLEMENT_PLATFORM_NOT_ALLOWED),
    ({"allowed_platforms": ["tdx"]}, Request(platform=["tdx", "nvidia"]), Code.ENTITLEMENT_PLATFORM_NOT_ALLOWED),
    ({"allowed_platforms": ["tdx"]}, Request(platform=[]), Code.ENTITLEMENT_PLATFORM_NOT_ALLOWED),
    ({"allowed_versions": ["1.0"]}, Request(model_version="1.1"), Code.ENTITLEMENT_VERSION_NOT_ALLOWED),
    ({"max_gpus": 4}, Request(gpus=5), Code.ENTITLEMENT_GPUS_EXCEEDED),
    ({"max_gpus": 0}, Request(gpus=1), Code.ENTITLEMENT_GPUS_EXCEEDED),
]


@pytest.mark.parametrize(
    ("entitlement_kwargs", "request_", "code"),
    _DEFECTS,
    ids=[
        "suspended",
        "revoked",
        "not-yet-valid",
        "expires-now",
        "expired",
        "platform",
        "one-of-two-platforms",
        "no-platform",
        "version",
        "gpus",
        "gpus-none-allowed",
    ],
)
def test_entitlement_rules_reject(
    session: Session, entitlement_kwargs: dict[str, Any], request_: Request, code: Code
) -> None:
    base: dict[str, Any] = {"allowed_platforms": ["tdx", "nvidia"], "allowed_versions": ["1.0"], "max_gpus": 8}
    entitlement = make_entitlement(session, **(base | entitlement_kwargs))
    with pytest.raises(NotEntitled) as exc:
        _check(session, entitlement, request_)
    assert exc.value.code is code


# -- reserve_seat + take_seat (one session) ---------------------------------------------------------------------


@pytest.fixture
def seat_setup(session: Session) -> tuple[Session, Entitlement, Callable[..., Lease]]:
    """A 2-seat entitlement and a helper that takes a seat for a deployment and gives it a lease."""
    model = make_model(session)
    mv = make_model_version(session, model)
    entitlement = make_entitlement(session, model=model, seats=2)

    def lease(name: str, **kwargs: Any) -> Lease:
        return make_lease(session, _seat(session, entitlement, name), mv, **kwargs)

    return session, entitlement, lease


def _seats_exhausted(session: Session, entitlement: Entitlement, name: str) -> None:
    with pytest.raises(NotEntitled) as exc:
        _seat(session, entitlement, name)
    assert exc.value.code is Code.ENTITLEMENT_SEATS_EXHAUSTED


def test_seat_creates_then_touches_deployment(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, _ = seat_setup
    first = _seat(session, entitlement, "edge-1")
    assert (first.first_attested_at, first.last_attested_at) == (T0, T0)
    again = _seat(session, entitlement, "edge-1", now=T0 + timedelta(minutes=1))
    assert again.id == first.id
    assert (again.first_attested_at, again.last_attested_at) == (T0, T0 + timedelta(minutes=1))


def test_seat_exhausted_when_every_seat_is_held(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, lease = seat_setup
    lease("a")
    lease("b")
    _seats_exhausted(session, entitlement, "c")
    # The rejection created no deployment.
    mine = select(Deployment).where(Deployment.entitlement_id == entitlement.id, Deployment.name == "c")
    assert session.scalar(mine) is None  # (other tests commit deployments of their own named "c")


def test_seat_holder_keeps_its_seat(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, lease = seat_setup
    lease("a")
    lease("b")
    assert _seat(session, entitlement, "a").name == "a"


def _status(session: Session, lease: Lease) -> tuple[LeaseStatus, Any]:
    session.refresh(lease)
    return lease.status, lease.ended_at


def test_seat_new_lease_supersedes_the_deployments_lease(
    seat_setup: tuple[Session, Entitlement, Any],
) -> None:
    session, entitlement, lease = seat_setup
    first = lease("a")
    second = lease("a")  # a second enclave under the same deployment: it replaces the first
    assert _status(session, first) == (LeaseStatus.REVOKED, T0)
    assert _status(session, second) == (LeaseStatus.LIVE, None)
    live = session.scalars(select(Lease.id).where(Lease.entitlement_id == entitlement.id, Lease.status == "live"))
    assert list(live) == [second.id]
    # "a" holds one seat of two, whatever it went through: "b" gets the other, "c" none.
    lease("b")
    _seats_exhausted(session, entitlement, "c")


def test_take_seat_returns_superseded_leases_only_of_its_deployment(
    seat_setup: tuple[Session, Entitlement, Any],
) -> None:
    session, entitlement, lease = seat_setup
    old = lease("a")
    overdue = lease("a", ttl=timedelta(seconds=-1))  # live but past expires_at: the expiry job's, not superseded
    other = lease("b")
    newer = lease("a", ttl=timedelta(minutes=30))
    # Two live leases under "a" (as stored before a deployment meant one enclave): a new lease supersedes both.
    session.execute(update(Lease).where(Lease.id == old.id).values(status=LeaseStatus.LIVE, ended_at=None))
    locked = lock_entitlement(session, entitlement.id)
    seat = reserve_seat(session, locked, "a", now=T0)
    assert not seat.new
    superseded = take_seat(session, entitlement.id, "a", seat, now=T0 + timedelta(seconds=1))
    assert sorted(superseded) == sorted([old.id, newer.id])
    assert _status(session, overdue)[0] is LeaseStatus.LIVE
    assert _status(session, other) == (LeaseStatus.LIVE, None)
    assert _status(session, newer) == (LeaseStatus.REVOKED, T0 + timedelta(seconds=1))
    # A new deployment supersedes nothing.
    fresh = reserve_seat(session, locked, "z", now=T0)
    assert fresh.new
    assert take_seat(session, entitlement.id, "z", fresh, now=T0) == []


def test_seat_supersedes_on_sqlite(tmp_path: Path) -> None:
    """The embedded profile: take_seat's two statements in place of PostgreSQL's one (through issue_lease)."""
    url = f"sqlite:///{tmp_path / 'keyward.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as s, s.begin():
            model = make_model(s)
            mv = make_model_version(s, model)
            entitlement = make_entitlement(s, model=model, seats=1)
            first = _issue(s, entitlement, "a", mv)
            second = _issue(s, entitlement, "a", mv, now=T0 + timedelta(minutes=1))
            first = s.get_one(Lease, first.id)  # issued by a Core statement: not the session's
            assert first.status is LeaseStatus.REVOKED
            assert second.status is LeaseStatus.LIVE
            with pytest.raises(NotEntitled) as exc:
                _seat(s, entitlement, "b")
            assert exc.value.code is Code.ENTITLEMENT_SEATS_EXHAUSTED
            s.get_one(Customer, entitlement.customer_id).status = CustomerStatus.SUSPENDED
            with pytest.raises(NotEntitled) as exc:
                _seat(s, entitlement, "a")
            assert exc.value.code is Code.ENTITLEMENT_CUSTOMER_SUSPENDED
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl": timedelta(seconds=-1)},
        {"ttl": timedelta(0)},
        {"status": LeaseStatus.RELEASED},
        {"status": LeaseStatus.REVOKED},
        {"status": LeaseStatus.EXPIRED},
    ],
    ids=["expired-by-time", "expires-now", "released", "revoked", "expired-status"],
)
def test_seat_ignores_dead_leases(seat_setup: tuple[Session, Entitlement, Any], kwargs: Any) -> None:
    session, entitlement, lease = seat_setup
    lease("a")
    lease("b", **kwargs)
    assert _seat(session, entitlement, "c").name == "c"


def test_seat_rejects_suspended_entitlement(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, _ = seat_setup
    entitlement.status = EntitlementStatus.SUSPENDED
    with pytest.raises(NotEntitled) as exc:
        _seat(session, entitlement, "a")
    assert exc.value.code is Code.ENTITLEMENT_INACTIVE


# -- the seat step under concurrency ----------------------------------------------------------------------------


def test_seat_rejects_suspended_customer(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, _ = seat_setup
    session.get_one(Customer, entitlement.customer_id).status = CustomerStatus.SUSPENDED
    with pytest.raises(NotEntitled) as exc:
        _seat(session, entitlement, "a")
    assert exc.value.code is Code.ENTITLEMENT_CUSTOMER_SUSPENDED
    assert session.scalar(select(Deployment).where(Deployment.entitlement_id == entitlement.id)) is None


def test_seat_concurrent_100_requests_10_seats(engine: Engine) -> None:
    """100 workers, each with its own connection, race for 10 seats: exactly 10 win and hold live leases."""
    workers, seats = 100, 10
    with Session(engine, expire_on_commit=False) as s, s.begin():
        model = make_model(s)
        mv = make_model_version(s, model)
        entitlement = make_entitlement(s, model=model, seats=seats)
    try:
        barrier = threading.Barrier(workers, timeout=30)

        def attempt(i: int) -> str:
            barrier.wait()
            with Session(engine, expire_on_commit=False) as s:
                try:
                    with s.begin():
                        _issue(s, entitlement, f"deployment-{i:03d}", mv)
                except NotEntitled as e:
                    return e.code.value
            return "ok"

        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = Counter(pool.map(attempt, range(workers)))

        assert outcomes == {"ok": seats, Code.ENTITLEMENT_SEATS_EXHAUSTED.value: workers - seats}
        with Session(engine) as s:
            live = s.scalar(
                select(func.count())
                .select_from(Lease)
                .where(Lease.entitlement_id == entitlement.id, Lease.status == LeaseStatus.LIVE)
            )
            holders = s.scalar(
                select(func.count(func.distinct(Lease.deployment_id))).where(Lease.entitlement_id == entitlement.id)
            )
            deployments = s.scalar(
                select(func.count()).select_from(Deployment).where(Deployment.entitlement_id == entitlement.id)
            )
        assert (live, holders, deployments) == (seats, seats, seats)
    finally:
        with Session(engine) as s, s.begin():
            delete_entitlement_tree(s, entitlement, mv)


def test_seat_concurrent_enclaves_of_one_deployment_leave_one_live_lease(engine: Engine) -> None:
    """10 enclaves of one deployment race for a 1-seat entitlement: each takes the seat from the one before, and
    exactly one live lease is left."""
    workers = 10
    with Session(engine, expire_on_commit=False) as s, s.begin():
        model = make_model(s)
        mv = make_model_version(s, model)
        entitlement = make_entitlement(s, model=model, seats=1)
    try:
        barrier = threading.Barrier(workers, timeout=30)

        def attempt(_: int) -> str:
            barrier.wait()
            with Session(engine, expire_on_commit=False) as s:
                try:
                    with s.begin():
                        _issue(s, entitlement, "same", mv)
                except NotEntitled as e:
                    return e.code.value
            return "ok"

        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = Counter(pool.map(attempt, range(workers)))

        assert outcomes == {"ok": workers}
        with Session(engine) as s:
            statuses = Counter(s.scalars(select(Lease.status).where(Lease.entitlement_id == entitlement.id)))
        assert statuses == {LeaseStatus.LIVE: 1, LeaseStatus.REVOKED: workers - 1}
    finally:
        with Session(engine) as s, s.begin():
            delete_entitlement_tree(s, entitlement, mv)


def _blocked(thread: threading.Thread) -> bool:
    thread.join(timeout=0.5)
    return thread.is_alive()


def test_lock_entitlement_customer_suspension_races_a_decision(engine: Engine) -> None:
    """A suspension waits for a decision holding the entitlement lock and then revokes its lease; a decision that
    starts while a suspension is uncommitted waits for it and then sees the customer suspended (not its snapshot's
    active: the customer row is locked FOR SHARE, so PostgreSQL re-reads it after the wait)."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        model = make_model(s)
        mv = make_model_version(s, model)
        entitlement = make_entitlement(s, model=model, seats=1)
    customer_id = entitlement.customer_id
    revoked: list[str] = []
    outcome: list[str] = []

    def suspend() -> None:
        with Session(engine) as s, s.begin():
            s.scalars(
                select(Customer).where(Customer.id == customer_id).with_for_update()
            ).one().status = CustomerStatus.SUSPENDED
            s.flush()
            entries = revoke_live_leases(s, entitlement_id=entitlement.id, now=T0, actor="test", reason="test")
            revoked.extend(e.subject_id for e in entries)

    def decide() -> None:
        with Session(engine) as s, s.begin():
            try:
                lock_entitlement(s, entitlement.id)
                outcome.append("ok")
            except NotEntitled as e:
                outcome.append(e.code.value)

    try:
        # 1. A decision holds the locks and issues a lease; the suspension waits for its commit, then revokes it.
        with Session(engine, expire_on_commit=False) as s:
            with s.begin():
                lock_entitlement(s, entitlement.id)
                suspender = threading.Thread(target=suspend)
                suspender.start()
                assert _blocked(suspender)
                lease = _issue(s, entitlement, "a", mv)
            suspender.join(timeout=10)
        assert revoked == [str(lease.id)]
        # 2. Reinstated; a suspension holds the customer row uncommitted while a decision starts: the decision
        #    waits, then is rejected.
        with Session(engine) as s, s.begin():
            s.get_one(Customer, customer_id).status = CustomerStatus.ACTIVE
        with Session(engine) as s:
            with s.begin():
                s.scalars(
                    select(Customer).where(Customer.id == customer_id).with_for_update()
                ).one().status = CustomerStatus.SUSPENDED
                s.flush()
                decider = threading.Thread(target=decide)
                decider.start()
                assert _blocked(decider)
            decider.join(timeout=10)
        assert outcome == [Code.ENTITLEMENT_CUSTOMER_SUSPENDED.value]
    finally:
        with Session(engine) as s, s.begin():
            delete_entitlement_tree(s, entitlement, mv)
