"""What every admin router shares: the paging parameters, the endpoint's clock, the acting staff member's audit
name, and the check of a time parameter (a timezone, and an instant both databases hold). HTTP only: the rules
and the SQL are in the domain services."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from verifier.api.inputs import in_utc, instant_problem
from verifier.auth.records import Principal
from verifier.errors import Code, UsageError

#: Where the admin API lives; each admin router carries it.
PREFIX = "/v1/admin"
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]  # bounded: the database takes a 64-bit OFFSET at most


def now() -> datetime:
    """The endpoint's clock, read once per request."""
    return datetime.now(UTC)


def actor(admin: Principal) -> str:
    """How the audit log names the staff member behind ``admin``."""
    return f"admin:{admin.key_id}"


def aware(value: datetime, name: str) -> datetime:
    """The time parameter ``name`` in UTC; ``usage.invalid`` naming it unless it has a timezone and lies within the
    instants both databases hold (:func:`verifier.api.inputs.instant_problem`)."""
    if problem := instant_problem(value):
        raise UsageError(Code.USAGE_INVALID, f"{name} {problem}", actual=value.isoformat())
    return in_utc(value)
