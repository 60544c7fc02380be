"""What the dashboard's customer pages show: the customers list (search by name, keyset pages) and one customer's
page (its entitlements with their seats, validity and warnings, its licence keys, the audit events about it), and
the choices an entitlement form offers (models with their versions, policies). Frozen dataclasses a page renders.

Seats are counted as the entitlement service counts them when it decides (:mod:`verifier.entitlement.service`): a
seat is a deployment holding a ``live`` lease that has not expired yet. A customer's seats allowed are those of its
``active`` entitlements.

Every function takes the caller's session first and reads only, through :mod:`.repository`; none commits. Not
here: HTTP, access control, templates, nor any write (customers and entitlements are changed by
:mod:`verifier.entitlement.licensing`, licence keys by :mod:`verifier.auth.credentials`).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

from verifier.dashboard.customers import repository
from verifier.db.models import ApiCredential, CustomerStatus, EntitlementStatus
from verifier.errors import Code, NotFound, UsageError

__all__ = [
    "EXPIRY_WARNING",
    "SEAT_RATIO",
    "Activity",
    "CustomerDetail",
    "CustomerPage",
    "CustomerRow",
    "EntitlementHeading",
    "EntitlementView",
    "FormChoices",
    "KeyView",
    "ModelChoice",
    "PolicyChoice",
    "customer_detail",
    "customer_entitlement",
    "customer_entitlement_heading",
    "customer_licence_key",
    "decode_cursor",
    "encode_cursor",
    "form_choices",
    "list_customers",
    "seat_percent",
]

#: An active entitlement ending within this is highlighted (as on the overview).
EXPIRY_WARNING: Final = timedelta(days=14)
#: An active entitlement using at least this share of its seats is highlighted (as on the overview).
SEAT_RATIO: Final = 0.9
MAX_PAGE: Final = 200
_KEYS: Final = 500  # licence keys on a customer's page
_ACTIVITY: Final = 30  # audit events on a customer's page
_CHOICES: Final = 2000  # model/version rows and policies an entitlement form offers


# -- the list -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: uuid.UUID
    name: str
    status: CustomerStatus
    created_at: datetime
    entitlements: int
    active_entitlements: int
    seats_allowed: int  # of its active entitlements
    seats_used: int  # deployments holding a live, unexpired lease
    live_leases: int

    @property
    def seat_percent(self) -> int:
        return seat_percent(self.seats_used, self.seats_allowed)


@dataclass(frozen=True, slots=True)
class CustomerPage:
    rows: tuple[CustomerRow, ...]
    next_cursor: str | None  # None on the last page


def seat_percent(used: int, allowed: int) -> int:
    """``used`` of ``allowed`` in percent, rounded up to a multiple of 5 and capped at 100 (the bar's width class);
    any use of no seats is full."""
    if used <= 0:
        return 0
    if allowed <= 0:
        return 100
    fifths = -(-used * 20 // allowed)  # ceil(used / allowed * 20)
    return min(100, fifths * 5)


def encode_cursor(name: str, ident: uuid.UUID) -> str:
    """The opaque cursor of the list's row (``name``, ``ident``): base64url JSON, no padding."""
    raw = json.dumps(["customers", name, str(ident)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    """The key a cursor of :func:`encode_cursor` holds; ``request.invalid`` for anything else."""
    bad = "the page cursor is not one this list gave"
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as e:
        raise UsageError(Code.REQUEST_INVALID, bad, actual="not base64url JSON") from e
    try:
        kind, name, ident = doc
        if kind != "customers" or not isinstance(name, str):
            raise TypeError(kind)
        return name, uuid.UUID(ident)
    except (TypeError, ValueError, AttributeError) as e:
        raise UsageError(Code.REQUEST_INVALID, bad, actual="malformed key") from e


def list_customers(
    session: Session, now: datetime, *, search: str | None = None, cursor: str | None = None, limit: int = 50
) -> CustomerPage:
    """Customers whose name contains ``search``, by name, ``limit`` (at most :data:`MAX_PAGE`) after the row
    ``cursor`` names (from a previous page's ``next_cursor``; ``request.invalid`` for any other), with their counts
    at ``now``."""
    limit = max(1, min(limit, MAX_PAGE))
    after = decode_cursor(cursor) if cursor else None
    rows = repository.customer_rows(session, now, search=search or None, after=after, limit=limit + 1)
    shown = [
        CustomerRow(
            id=c.id,
            name=c.name,
            status=c.status,
            created_at=c.created_at,
            entitlements=int(n),
            active_entitlements=int(active),
            seats_allowed=int(allowed),
            seats_used=int(used),
            live_leases=int(leases),
        )
        for c, n, active, allowed, used, leases in rows[:limit]
    ]
    more = len(rows) > limit
    return CustomerPage(tuple(shown), encode_cursor(shown[-1].name, shown[-1].id) if more else None)


# -- one customer -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyView:
    id: uuid.UUID
    key_id: str  # the public prefix of the key
    label: str
    entitlement_id: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class EntitlementView:
    id: uuid.UUID
    model_id: uuid.UUID
    model: str
    allowed_versions: tuple[str, ...]  # empty: every version
    allowed_platforms: tuple[str, ...]
    seats: int
    seats_used: int
    live_leases: int
    deployments: int
    max_gpus: int
    lease_ttl_seconds: int
    policy_id: uuid.UUID | None
    policy: str | None
    status: EntitlementStatus
    valid_from: datetime
    valid_until: datetime | None
    created_at: datetime
    keys: tuple[KeyView, ...]
    not_yet_valid: bool
    ended: bool  # past valid_until
    ending_soon: bool  # active, ends within EXPIRY_WARNING
    near_seat_limit: bool  # active, uses at least SEAT_RATIO of its seats

    @property
    def seat_percent(self) -> int:
        return seat_percent(self.seats_used, self.seats)

    @property
    def live_keys(self) -> int:
        return sum(1 for k in self.keys if k.revoked_at is None)


@dataclass(frozen=True, slots=True)
class Activity:
    id: int
    at: datetime
    tag: str
    actor: str
    subject_type: str
    subject_id: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CustomerDetail:
    id: uuid.UUID
    name: str
    status: CustomerStatus
    created_at: datetime
    entitlements: tuple[EntitlementView, ...]
    activity: tuple[Activity, ...]  # newest first: about the customer, its entitlements and licence keys

    @property
    def seats_allowed(self) -> int:
        return sum(e.seats for e in self.entitlements if e.status == EntitlementStatus.ACTIVE)

    @property
    def seats_used(self) -> int:
        return sum(e.seats_used for e in self.entitlements)

    @property
    def live_leases(self) -> int:
        return sum(e.live_leases for e in self.entitlements)

    @property
    def deployments(self) -> int:
        return sum(e.deployments for e in self.entitlements)

    @property
    def seat_percent(self) -> int:
        return seat_percent(self.seats_used, self.seats_allowed)


def _key(row: ApiCredential) -> KeyView:
    return KeyView(row.id, row.key_id, row.label, row.entitlement_id, row.created_at, row.revoked_at)


def customer_detail(session: Session, customer_id: uuid.UUID, now: datetime) -> CustomerDetail:
    """The customer at ``now``; ``resource.not_found`` if there is none."""
    found = repository.customer(session, customer_id)
    if found is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "customer not found", actual=customer_id)
    keys: dict[uuid.UUID | None, list[KeyView]] = {}
    for row in repository.licence_keys(session, customer_id, limit=_KEYS):
        keys.setdefault(row.entitlement_id, []).append(_key(row))
    entitlements = []
    for e, model, policy, used, leases, deployments in repository.entitlement_rows(session, customer_id, now):
        active = e.status == EntitlementStatus.ACTIVE
        ended = e.valid_until is not None and e.valid_until <= now
        ending = e.valid_until is not None and e.valid_until <= now + EXPIRY_WARNING
        entitlements.append(
            EntitlementView(
                id=e.id,
                model_id=e.model_id,
                model=model,
                allowed_versions=tuple(e.allowed_versions),
                allowed_platforms=tuple(e.allowed_platforms),
                seats=e.seats,
                seats_used=int(used),
                live_leases=int(leases),
                deployments=int(deployments),
                max_gpus=e.max_gpus,
                lease_ttl_seconds=e.lease_ttl_seconds,
                policy_id=e.policy_id,
                policy=policy,
                status=e.status,
                valid_from=e.valid_from,
                valid_until=e.valid_until,
                created_at=e.created_at,
                keys=tuple(keys.get(e.id, ())),
                not_yet_valid=now < e.valid_from,
                ended=ended,
                ending_soon=active and not ended and ending,
                near_seat_limit=active and int(used) >= e.seats * SEAT_RATIO,
            )
        )
    subjects = [("customer", str(customer_id))]
    subjects += [("entitlement", str(e.id)) for e in entitlements]
    subjects += [("credential", str(k.id)) for e in entitlements for k in e.keys]
    activity = tuple(
        Activity(ev.id, ev.at, ev.tag, ev.actor, ev.subject_type, ev.subject_id, dict(ev.data or {}))
        for ev in repository.audit_events_about(session, subjects, limit=_ACTIVITY)
    )
    return CustomerDetail(found.id, found.name, found.status, found.created_at, tuple(entitlements), activity)


def customer_entitlement(session: Session, customer_id: uuid.UUID, entitlement_id: uuid.UUID) -> uuid.UUID:
    """``entitlement_id`` if it is one of the customer's; ``resource.not_found`` otherwise (a form of one customer's
    page never acts on another customer's entitlement)."""
    found = repository.entitlement(session, entitlement_id)
    if found is None or found.customer_id != customer_id:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "the customer has no such entitlement", actual=entitlement_id)
    return found.id


@dataclass(frozen=True, slots=True)
class EntitlementHeading:
    """Which entitlement a form edits: its model (never changed) and its status now."""

    id: uuid.UUID
    model_id: uuid.UUID
    model: str
    status: EntitlementStatus


def customer_entitlement_heading(
    session: Session, customer_id: uuid.UUID, entitlement_id: uuid.UUID
) -> EntitlementHeading:
    """The customer's entitlement ``entitlement_id`` as a form names it; ``resource.not_found`` if it is not one
    of the customer's."""
    found = repository.entitlement(session, entitlement_id)
    if found is None or found.customer_id != customer_id:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "the customer has no such entitlement", actual=entitlement_id)
    model = repository.model_name(session, found.model_id) or str(found.model_id)
    return EntitlementHeading(found.id, found.model_id, model, found.status)


def customer_licence_key(session: Session, customer_id: uuid.UUID, credential_id: uuid.UUID) -> KeyView:
    """The customer's licence key ``credential_id``; ``resource.not_found`` if it is not one of its licence keys."""
    found = repository.licence_key(session, credential_id)
    if found is None or found.customer_id != customer_id or found.entitlement_id is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "the customer has no such licence key", actual=credential_id)
    return _key(found)


# -- what an entitlement form offers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelChoice:
    id: uuid.UUID
    name: str
    versions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyChoice:
    id: uuid.UUID
    name: str
    platform: str


@dataclass(frozen=True, slots=True)
class FormChoices:
    models: tuple[ModelChoice, ...]
    policies: tuple[PolicyChoice, ...]

    def model(self, ident: uuid.UUID) -> ModelChoice | None:
        return next((m for m in self.models if m.id == ident), None)

    def policy(self, ident: uuid.UUID) -> PolicyChoice | None:
        return next((p for p in self.policies if p.id == ident), None)


def form_choices(session: Session) -> FormChoices:
    """The models (with their versions) and the appraisal policies an entitlement may name, by name."""
    models: dict[uuid.UUID, tuple[str, list[str]]] = {}
    for ident, name, version in repository.model_versions(session, limit=_CHOICES):
        _, versions = models.setdefault(ident, (name, []))
        if version is not None:
            versions.append(version)
    return FormChoices(
        models=tuple(ModelChoice(i, name, tuple(v)) for i, (name, v) in models.items()),
        policies=tuple(PolicyChoice(*row) for row in repository.policies(session, limit=_CHOICES)),
    )
