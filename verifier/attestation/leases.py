"""The lease lifecycle, in one place: issue, renew, supersede, release, revoke (one lease or every live lease of an
entitlement or customer) and expire.

* **issue** (:func:`issue_lease`): take the deployment's seat (reserved under the entitlement lock by
  :func:`~verifier.entitlement.service.reserve_seat`) and add a ``live`` lease; taking the seat **supersedes** the
  deployment's earlier live leases (``revoked``; :func:`~verifier.entitlement.service.take_seat`), so one seat
  never covers two running enclaves. :func:`lease_times` gives its ``expires_at`` and ``renew_after``. The
  decision takes the seat with :func:`seat_new_lease` and writes the lease in the statement that records the
  attestation (:func:`verifier.attestation.repository.record_decision`).
* **renew** (:func:`renewable_lease`, then :func:`renew_lease`): only a live, unexpired lease of the same
  entitlement, from the same enclave key (``lease.not_renewable`` otherwise); the decision writes the new times
  with its record, as for a new lease.
* **release** (:func:`release_lease`): the enclave gives its seat back; idempotent for an ended lease.
* **revoke** (:func:`revoke_lease`, :func:`revoke_live_leases`): staff end one live lease, or every live lease of a
  deployment, an entitlement or a customer whose status changed; the scope is typed ids, never a SQL predicate.
* **expire** (:func:`expire_leases`): beat marks live leases past ``expires_at`` ``expired``.

Each state change is audited (the decision records its issue, renewal and supersession events itself, with its
own). Takes the caller's session and ``now``; never commits. The SQL is in :mod:`verifier.attestation.repository`
and :mod:`verifier.entitlement.repository`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from verifier.attestation import repository
from verifier.audit.log import AuditTag, Entry, record_event
from verifier.db.models import Lease, LeaseStatus
from verifier.entitlement import repository as entitlement_repository
from verifier.entitlement.service import Seat, take_seat
from verifier.errors import Code, Conflict, NotFound


def lease_times(now: datetime, ttl_seconds: int) -> tuple[datetime, datetime]:
    """(``expires_at``, ``renew_after``) of a lease issued or renewed at ``now``: the TTL, and two thirds of it."""
    ttl = timedelta(seconds=ttl_seconds)
    return now + ttl, now + ttl * 2 / 3


@dataclass(frozen=True, slots=True)
class IssuedLease:
    """A new lease, and the deployment's earlier live leases it superseded (for the caller's audit events)."""

    lease: Lease
    superseded: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class NewLease:
    """A new ``live`` lease on a reserved ``seat`` (:func:`~verifier.entitlement.service.reserve_seat`), issued at
    ``now`` for the enclave key whose RFC 7638 thumbprint is ``thumbprint``."""

    lease_id: uuid.UUID
    entitlement_id: uuid.UUID
    deployment_name: str
    seat: Seat
    model_version_id: uuid.UUID
    thumbprint: str
    now: datetime
    expires_at: datetime
    renew_after: datetime
    gpus: int = 0


def issue_lease(session: Session, new: NewLease) -> IssuedLease:
    """Take the seat (create the deployment, or touch it and supersede its live leases) and insert the ``live``
    lease (:func:`seat_new_lease`, then one INSERT; sent now, the lease untracked by the session). Call it under
    the entitlement lock that reserved the seat, once nothing can reject any more."""
    row, superseded = seat_new_lease(session, new)
    return IssuedLease(repository.insert_lease(session, row), superseded)


def seat_new_lease(session: Session, new: NewLease) -> tuple[dict[str, Any], list[uuid.UUID]]:
    """:func:`issue_lease` but for the lease's INSERT, which the caller sends with its own writes (the decision:
    :func:`verifier.attestation.repository.record_decision`, in the same statement as the attestation naming it):
    the seat taken now, and (the new ``live`` lease's row, the superseded leases' ids)."""
    superseded = take_seat(session, new.entitlement_id, new.deployment_name, new.seat, now=new.now)
    row = {
        "id": new.lease_id,
        "entitlement_id": new.entitlement_id,
        "deployment_id": new.seat.deployment_id,
        "model_version_id": new.model_version_id,
        "enclave_key_thumbprint": new.thumbprint,
        "gpus": new.gpus,
        "status": LeaseStatus.LIVE,
        "issued_at": new.now,
        "expires_at": new.expires_at,
        "renew_after": new.renew_after,
        "ended_at": None,
    }
    return row, superseded


def renewable_lease(
    session: Session, lease_id: uuid.UUID | None, *, entitlement_id: uuid.UUID, thumbprint: str, now: datetime
) -> Lease:
    """The lease a renewal extends, its row locked ``FOR UPDATE`` and read afresh: it must exist under
    ``entitlement_id``, be live and unexpired, and belong to the enclave key ``thumbprint``; ``lease.not_renewable``
    otherwise."""
    lease = repository.lock_lease(session, lease_id) if lease_id else None
    if lease is None or lease.entitlement_id != entitlement_id:
        raise Conflict(Code.LEASE_NOT_RENEWABLE, "no such lease")
    if lease.status != LeaseStatus.LIVE or lease.expires_at <= now:
        raise Conflict(
            Code.LEASE_NOT_RENEWABLE,
            "the lease is not live (revoked, released or expired)",
            expected="live",
            actual=lease.status.value,
        )
    if lease.enclave_key_thumbprint != thumbprint:
        raise Conflict(
            Code.LEASE_NOT_RENEWABLE,
            "renewal must come from the lease's enclave key",
            expected=lease.enclave_key_thumbprint,
            actual=thumbprint,
        )
    return lease


def renew_lease(session: Session, lease: Lease, *, expires_at: datetime, renew_after: datetime) -> Lease:
    """Extend ``lease`` (from :func:`renewable_lease`, in this transaction): written now (one UPDATE)."""
    repository.extend_lease(session, lease, expires_at=expires_at, renew_after=renew_after)
    return lease


@dataclass(frozen=True, slots=True)
class LeaseForRenewal:
    """What a renewal request is stored with: the lease's entitlement, model version and deployment name."""

    lease_id: uuid.UUID
    entitlement_id: uuid.UUID
    model_version_id: uuid.UUID
    deployment_name: str


def lease_for_renewal(session: Session, lease_id: uuid.UUID, *, entitlement_id: uuid.UUID | None) -> LeaseForRenewal:
    """The lease a licence asks to renew (``lease.not_found`` unless it is the licence's entitlement's). Whether it
    may renew is decided by the worker (:func:`renewable_lease`)."""
    lease = repository.get_lease(session, lease_id)
    if lease is None or lease.entitlement_id != entitlement_id:
        raise NotFound(Code.LEASE_NOT_FOUND, "no such lease for this licence")
    name = entitlement_repository.deployment_name(session, lease.deployment_id)
    return LeaseForRenewal(lease.id, lease.entitlement_id, lease.model_version_id, name or "")


def release_lease(
    session: Session, lease_id: uuid.UUID, *, entitlement_id: uuid.UUID | None, actor: str, now: datetime
) -> None:
    """The enclave gives its seat back: a live lease of the licence's entitlement becomes ``released`` (audited
    ``enclave:lease:released``); an ended one is left as it is. ``lease.not_found`` for another licence's lease."""
    lease = repository.get_lease(session, lease_id, lock=True)
    if lease is None or lease.entitlement_id != entitlement_id:
        raise NotFound(Code.LEASE_NOT_FOUND, "no such lease for this licence")
    if lease.status != LeaseStatus.LIVE:
        return
    lease.status, lease.ended_at = LeaseStatus.RELEASED, now
    record_event(
        session,
        tag=AuditTag.LEASE_RELEASED,
        actor=actor,
        subject_type="lease",
        subject_id=str(lease.id),
        data={},
        at=now,
    )


def revoke_lease(session: Session, lease_id: uuid.UUID, *, actor: str, now: datetime) -> Lease:
    """Staff end one live lease now (``revoked``; its seat frees and it cannot be renewed), audited
    ``admin:lease:revoked``. ``resource.not_found`` if there is none, ``resource.conflict`` unless it is live."""
    lease = repository.lock_lease_afresh(session, lease_id)
    if lease is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "lease not found", actual=lease_id)
    if lease.status != LeaseStatus.LIVE:
        raise Conflict(
            Code.RESOURCE_CONFLICT, "only a live lease can be revoked", expected="live", actual=lease.status.value
        )
    lease.status = LeaseStatus.REVOKED
    lease.ended_at = now
    session.flush()
    record_event(
        session,
        tag=AuditTag.LEASE_REVOKED,
        actor=actor,
        subject_type="lease",
        subject_id=str(lease.id),
        data={"entitlement_id": lease.entitlement_id, "deployment_id": lease.deployment_id},
        at=now,
    )
    return lease


def revoke_live_leases(
    session: Session,
    *,
    entitlement_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    deployment_id: uuid.UUID | None = None,
    now: datetime,
    actor: str,
    reason: str,
) -> list[Entry]:
    """Revoke every ``live`` lease of one deployment, of one entitlement, or of every entitlement of one customer
    (give exactly one), in one UPDATE (``status = revoked``, ``ended_at = now``); their renewals then fail
    ``lease.not_renewable``. A live lease already past ``expires_at`` (not yet marked by :func:`expire_leases`) is
    revoked too: billing caps its time at ``expires_at`` either way, and the admin's clock need not be the
    worker's. Returns one
    ``admin:lease:revoked`` audit entry per lease (data: entitlement, deployment, ``reason``), in lease id order,
    for the caller to record with its own event.

    Call it after locking what the leases hang off (the entitlement or customer row whose status just changed;
    for a deployment, its entitlement's row, which every decision for it locks):
    a decision in flight holds that lock until it commits, so its new lease is already visible here, and a later
    decision sees the new status."""
    if sum(scope is not None for scope in (entitlement_id, customer_id, deployment_id)) != 1:
        raise ValueError("revoke the live leases of one deployment, of one entitlement or of one customer")
    revoked = repository.revoke_live(
        session, entitlement_id=entitlement_id, customer_id=customer_id, deployment_id=deployment_id, now=now
    )
    return [
        Entry(
            AuditTag.LEASE_REVOKED,
            actor,
            "lease",
            str(lease_id),
            {"entitlement_id": lease_entitlement, "deployment_id": deployment_id, "reason": reason},
        )
        for lease_id, lease_entitlement, deployment_id in sorted(revoked, key=lambda r: str(r[0]))
    ]


def expire_leases(session: Session, now: datetime, *, batch: int = 500) -> int:
    """Mark live leases whose time is up as expired (freeing their seats), each audited ``beat:lease:expired``;
    returns how many (at most ``batch`` per call; rows another transaction holds are skipped)."""
    due = repository.lock_due_leases(session, now, batch=batch)
    for lease in due:
        lease.status, lease.ended_at = LeaseStatus.EXPIRED, now
        record_event(
            session,
            tag=AuditTag.LEASE_EXPIRED,
            actor="beat",
            subject_type="lease",
            subject_id=str(lease.id),
            at=now,
            data={"expires_at": lease.expires_at.isoformat()},
        )
    session.flush()
    return len(due)
