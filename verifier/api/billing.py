"""The billing API (``billing-read`` credentials only): entitlements and exact usage per period.

HTTP only: parameters, the credential's customer scope, cursors and rendering; the figures come from
:mod:`verifier.billing`. Parameters arrive as strings and are parsed here, so every bad one is a 400
``billing.query.invalid`` (a bad cursor ``billing.cursor.invalid``), never a 422. Reference: ``docs/billing.md``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from verifier.auth.records import Principal
from verifier.billing.entitlements import get_entitlement, list_entitlements
from verifier.billing.usage import Granularity, UsageQuery, UsageRow, compute_usage, exact_seconds, rounded_hours
from verifier.config import current_time
from verifier.db.models import EntitlementStatus
from verifier.errors import Code, Forbidden, NotFound, UsageError

from .deps import BillingDep, SessionDep, SettingsDep

router = APIRouter(prefix="/v1/billing", tags=["billing"])

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_CURSOR_CHARS = 200
Param = Annotated[str | None, Query()]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NamedOut(_Out):
    id: uuid.UUID
    name: str


class EntitlementOut(_Out):
    id: uuid.UUID
    customer: NamedOut
    model: NamedOut
    seats: int
    max_gpus: int
    allowed_platforms: list[str]
    allowed_versions: list[str]
    valid_from: datetime
    valid_until: datetime | None
    status: EntitlementStatus
    live_leases: int


class EntitlementPage(BaseModel):
    items: list[EntitlementOut]
    next_cursor: str | None


class UsageOut(BaseModel):
    entitlement_id: uuid.UUID
    customer_id: uuid.UUID
    period_start: datetime
    period_end: datetime
    closed: bool = Field(description="true once period_end + 5 minutes <= now: the figures never change again")
    lease_seconds: str = Field(description="attested lease time, exact decimal seconds (6 places)")
    gpu_seconds: str = Field(description="sum of attested lease time x GPUs, exact decimal seconds (6 places)")
    gpu_hours: str = Field(description="gpu_seconds / 3600 rounded half-even to 6 places; sum gpu_seconds instead")
    deployments: int = Field(description="distinct deployments with attested lease time in the period")
    attestations_accepted: int
    attestations_rejected: int
    renewals_accepted: int
    renewals_rejected: int


class UsagePage(BaseModel):
    items: list[UsageOut]
    next_cursor: str | None


@router.get("/entitlements")
def entitlements(
    credential: BillingDep,
    session: SessionDep,
    settings: SettingsDep,
    customer: Param = None,
    cursor: Param = None,
    limit: Param = None,
) -> EntitlementPage:
    """Entitlements in id order, of one customer if ``customer`` is given."""
    size = _limit(limit)
    after = _uuid(_decode(cursor, "e", 1)[0], "cursor", Code.BILLING_CURSOR_INVALID) if cursor else None
    rows = list_entitlements(
        session,
        now=current_time(settings),
        customer_id=_scope(credential, customer),
        after=after,
        limit=size + 1,
    )
    more = len(rows) > size
    return EntitlementPage(
        items=[EntitlementOut.model_validate(r) for r in rows[:size]],
        next_cursor=_encode("e", str(rows[size - 1].id)) if more else None,
    )


@router.get("/entitlements/{entitlement_id}")
def entitlement(
    entitlement_id: str, credential: BillingDep, session: SessionDep, settings: SettingsDep
) -> EntitlementOut:
    ident = _uuid(entitlement_id, "entitlement id")
    found = get_entitlement(session, ident, now=current_time(settings), customer_id=credential.customer_id)
    if found is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "entitlement not found", actual=ident)
    return EntitlementOut.model_validate(found)


@router.get("/usage")
def usage(
    credential: BillingDep,
    session: SessionDep,
    settings: SettingsDep,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with a timezone; inclusive")] = None,
    to: Annotated[str | None, Query(description="ISO 8601 with a timezone; exclusive")] = None,
    granularity: Annotated[str | None, Query(description="hour | day (default); UTC boundaries")] = None,
    customer: Param = None,
    entitlement: Param = None,
    cursor: Param = None,
    limit: Param = None,
) -> UsagePage:
    """Usage rows per (period, entitlement) in ``[from, to)``, in period then entitlement id order."""
    query = UsageQuery(
        start=_time(start, "from"),
        end=_time(to, "to"),
        granularity=_granularity(granularity),
        customer_id=_scope(credential, customer),
        entitlement_id=None if entitlement is None else _uuid(entitlement, "entitlement"),
    )
    size = _limit(limit)
    after = _usage_cursor(cursor) if cursor else None
    rows = compute_usage(session, query, now=current_time(settings), after=after, limit=size + 1)
    last = rows[size - 1] if len(rows) > size else None
    return UsagePage(
        items=[_usage_out(r) for r in rows[:size]],
        next_cursor=_encode("u", last.period.start.isoformat(), str(last.entitlement_id)) if last else None,
    )


def _usage_out(row: UsageRow) -> UsageOut:
    return UsageOut(
        entitlement_id=row.entitlement_id,
        customer_id=row.customer_id,
        period_start=row.period.start,
        period_end=row.period.end,
        closed=row.closed,
        lease_seconds=exact_seconds(row.lease_us),
        gpu_seconds=exact_seconds(row.gpu_us),
        gpu_hours=rounded_hours(row.gpu_us),
        deployments=len(row.deployment_ids),
        attestations_accepted=row.attestations_accepted,
        attestations_rejected=row.attestations_rejected,
        renewals_accepted=row.renewals_accepted,
        renewals_rejected=row.renewals_rejected,
    )


# -- parameters -----------------------------------------------------------------------------------------------


def _invalid(message: str, actual: str | None = None, code: Code = Code.BILLING_QUERY_INVALID) -> UsageError:
    return UsageError(code, message, actual=None if actual is None else actual[:64])


def _scope(credential: Principal, value: str | None) -> uuid.UUID | None:
    """The customer filter: a billing credential issued for one customer sees that customer only."""
    customer = None if value is None else _uuid(value, "customer")
    if credential.customer_id is None:
        return customer
    if customer is not None and customer != credential.customer_id:
        raise Forbidden(Code.AUTH_FORBIDDEN, "this billing credential is limited to one customer", actual=value)
    return credential.customer_id


def _uuid(value: str, name: str, code: Code = Code.BILLING_QUERY_INVALID) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as e:
        raise _invalid(f"{name} must be a UUID", value, code) from e


def _time(value: str | None, name: str) -> datetime:
    if value is None:
        raise _invalid(f"{name} is required (ISO 8601 with a timezone, e.g. 2026-01-01T00:00:00Z)")
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise _invalid(f"{name} is not ISO 8601 (write a '+' offset as %2B, or use Z)", value) from e


def _granularity(value: str | None) -> Granularity:
    try:
        return Granularity(value or Granularity.DAY)
    except ValueError as e:
        raise _invalid("granularity must be hour or day", value) from e


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    size = int(value) if value.isascii() and value.isdigit() and len(value) <= 4 else 0
    if not 1 <= size <= MAX_LIMIT:
        raise _invalid(f"limit must be an integer from 1 to {MAX_LIMIT}", value)
    return size


# -- cursors: base64url (no padding) of "kind|key parts", opaque to clients -----------------------------------


def _encode(kind: str, *parts: str) -> str:
    return base64.urlsafe_b64encode("|".join((kind, *parts)).encode()).decode().rstrip("=")


def _decode(cursor: str, kind: str, count: int) -> list[str]:
    """The ``count`` key parts of a cursor of ``kind``; anything else is ``billing.cursor.invalid``."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        found, *parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (ValueError, binascii.Error) as e:
        raise _invalid("cursor is not one this API issued", code=Code.BILLING_CURSOR_INVALID) from e
    if found != kind or len(parts) != count:
        raise _invalid("cursor is not one this API issued", code=Code.BILLING_CURSOR_INVALID)
    return parts


def _usage_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    start, ident = _decode(cursor, "u", 2)
    try:
        after = datetime.fromisoformat(start), uuid.UUID(ident)
    except ValueError as e:
        raise _invalid("cursor is not one this API issued", code=Code.BILLING_CURSOR_INVALID) from e
    if after[0].tzinfo is None:
        raise _invalid("cursor is not one this API issued", code=Code.BILLING_CURSOR_INVALID)
    return after
