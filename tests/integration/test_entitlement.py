"""Entitlement rules and seat accounting on real PostgreSQL, including 100 concurrent seat requests."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.support.factories import (
    T0,
    delete_entitlement_tree,
    make_entitlement,
    make_lease,
    make_model,
    make_model_version,
)
from verifier.db.models import Deployment, Entitlement, EntitlementStatus, Lease, LeaseStatus
from verifier.entitlement import acquire_seat, check_entitlement
from verifier.errors import Code, NotEntitled


@dataclass(frozen=True, slots=True)
class Request:
    platform: str | list[str] = "tdx"
    model_version: str = "1.0"
    gpus: int = 1


def _check(session: Session, entitlement: Entitlement, request: Request) -> Entitlement:
    return check_entitlement(
        session,
        entitlement.id,
        platform=request.platform,
        model_version=request.model_version,
        gpus=request.gpus,
        now=T0,
    )


# -- check_entitlement ------------------------------------------------------------------------------------------


def test_check_entitlement_accepts_covered_request(session: Session) -> None:
    entitlement = make_entitlement(session, allowed_versions=["1.0", "1.1"], max_gpus=8)
    assert _check(session, entitlement, Request(platform=["tdx", "nvidia"], gpus=8)) is entitlement


def test_check_entitlement_empty_versions_allow_every_version(session: Session) -> None:
    entitlement = make_entitlement(session, allowed_versions=[])
    assert _check(session, entitlement, Request(model_version="9.9-anything")) is entitlement


def test_check_entitlement_valid_until_none_never_expires(session: Session) -> None:
    entitlement = make_entitlement(session, valid_until=None)
    assert _check(session, entitlement, Request()) is entitlement


def test_check_entitlement_not_found(session: Session) -> None:
    with pytest.raises(NotEntitled) as exc:
        check_entitlement(session, uuid.uuid4(), platform="tdx", model_version="1.0", gpus=0, now=T0)
    assert exc.value.code is Code.ENTITLEMENT_NOT_FOUND
    assert exc.value.http_status == 403


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
def test_check_entitlement_rejects(
    session: Session, entitlement_kwargs: dict[str, Any], request_: Request, code: Code
) -> None:
    base: dict[str, Any] = {"allowed_platforms": ["tdx", "nvidia"], "allowed_versions": ["1.0"], "max_gpus": 8}
    entitlement = make_entitlement(session, **(base | entitlement_kwargs))
    with pytest.raises(NotEntitled) as exc:
        _check(session, entitlement, request_)
    assert exc.value.code is code


# -- acquire_seat (one session) ---------------------------------------------------------------------------------


@pytest.fixture
def seat_setup(session: Session) -> tuple[Session, Entitlement, Callable[..., Lease]]:
    """A 2-seat entitlement and a helper that acquires a seat for a deployment and gives it a lease."""
    model = make_model(session)
    mv = make_model_version(session, model)
    entitlement = make_entitlement(session, model=model, seats=2)

    def lease(name: str, **kwargs: Any) -> Lease:
        deployment = acquire_seat(session, entitlement, name, now=T0)
        return make_lease(session, deployment, mv, **kwargs)

    return session, entitlement, lease


def _seats_exhausted(session: Session, entitlement: Entitlement, name: str) -> None:
    with pytest.raises(NotEntitled) as exc:
        acquire_seat(session, entitlement, name, now=T0)
    assert exc.value.code is Code.ENTITLEMENT_SEATS_EXHAUSTED


def test_acquire_seat_creates_then_touches_deployment(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, _ = seat_setup
    first = acquire_seat(session, entitlement, "edge-1", now=T0)
    assert (first.first_attested_at, first.last_attested_at) == (T0, T0)
    again = acquire_seat(session, entitlement, "edge-1", now=T0 + timedelta(minutes=1))
    assert again.id == first.id
    assert (again.first_attested_at, again.last_attested_at) == (T0, T0 + timedelta(minutes=1))


def test_acquire_seat_exhausted_when_every_seat_is_held(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, lease = seat_setup
    lease("a")
    lease("b")
    _seats_exhausted(session, entitlement, "c")
    # The rejection created no deployment.
    assert session.scalar(select(Deployment).where(Deployment.name == "c")) is None


def test_acquire_seat_holder_keeps_its_seat(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, lease = seat_setup
    lease("a")
    lease("b")
    assert acquire_seat(session, entitlement, "a", now=T0).name == "a"


def test_acquire_seat_counts_deployments_not_leases(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, lease = seat_setup
    lease("a")
    lease("a")
    lease("a")
    assert acquire_seat(session, entitlement, "b", now=T0).name == "b"


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
def test_acquire_seat_ignores_dead_leases(seat_setup: tuple[Session, Entitlement, Any], kwargs: Any) -> None:
    session, entitlement, lease = seat_setup
    lease("a")
    lease("b", **kwargs)
    assert acquire_seat(session, entitlement, "c", now=T0).name == "c"


def test_acquire_seat_rejects_suspended_entitlement(seat_setup: tuple[Session, Entitlement, Any]) -> None:
    session, entitlement, _ = seat_setup
    entitlement.status = EntitlementStatus.SUSPENDED
    with pytest.raises(NotEntitled) as exc:
        acquire_seat(session, entitlement, "a", now=T0)
    assert exc.value.code is Code.ENTITLEMENT_INACTIVE


# -- acquire_seat under concurrency ----------------------------------------------------------------------------


def test_acquire_seat_concurrent_100_requests_10_seats(engine: Engine) -> None:
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
                        deployment = acquire_seat(s, entitlement, f"deployment-{i:03d}", now=T0)
                        make_lease(s, deployment, mv)
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
