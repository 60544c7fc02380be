"""Helpers shared by the admin routers: clock, lookups, inserts with conflict mapping, paging, model keys."""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import Query
from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from verifier.config import Settings
from verifier.db.models import (
    ApiCredential,
    ModelKey,
    ModelVersion,
    RecordStatus,
)
from verifier.errors import Code, Conflict, NotFound, UsageError
from verifier.keywrap.kek import model_key_context
from verifier.wiring import kek_for

_T = TypeVar("_T")
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]  # bounded: the database takes a 64-bit OFFSET at most

#: Allowed reference-value status changes (a draft may also be abandoned straight to retired).
_RV_TRANSITIONS: dict[RecordStatus, frozenset[RecordStatus]] = {
    RecordStatus.DRAFT: frozenset({RecordStatus.ACTIVE, RecordStatus.RETIRED}),
    RecordStatus.ACTIVE: frozenset({RecordStatus.RETIRED}),
    RecordStatus.RETIRED: frozenset(),
}


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(admin: ApiCredential) -> str:
    return f"admin:{admin.key_id}"


def _get(
    session: Session,
    cls: type[_T],
    ident: uuid.UUID,
    what: str,
    code: Code = Code.RESOURCE_NOT_FOUND,
    *,
    lock: bool = False,
) -> _T:
    """The row, or a 404 ``code``; ``lock``: locked ``FOR UPDATE`` until the transaction ends and read afresh."""
    row = session.get(cls, ident, with_for_update=lock or None, populate_existing=lock)
    if row is None:
        raise NotFound(code, f"{what} not found", actual=ident)
    return row


def _insert(session: Session, row: object, what: str) -> None:
    """Add and flush ``row``; a unique-constraint clash becomes a 409."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError as e:
        session.rollback()
        raise Conflict(Code.RESOURCE_CONFLICT, f"{what} already exists") from e


def _dek(dek_b64: str | None) -> bytes:
    if dek_b64 is None:
        return os.urandom(32)
    try:
        dek = base64.b64decode(dek_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError(Code.USAGE_INVALID, "dek_b64 is not base64") from e
    if len(dek) != 32:
        raise UsageError(Code.USAGE_INVALID, "a model DEK must be 32 bytes", expected=32, actual=len(dek))
    return dek


def _new_key(session: Session, settings: Settings, version: ModelVersion, dek: bytes, now: datetime) -> ModelKey:
    kek = kek_for(settings)
    key = ModelKey(
        model_version_id=version.id,
        kek_id=kek.kek_id,
        wrapped_dek=kek.wrap(dek, context=model_key_context(str(version.id))),
        created_at=now,
        retired_at=None,
    )
    session.add(key)
    session.flush()
    return key


def _page(session: Session, query: Select[_T], limit: int, offset: int) -> list[_T]:
    return list(session.scalars(query.limit(limit).offset(offset)))


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise UsageError(Code.USAGE_INVALID, f"{name} needs a timezone (e.g. 2026-01-01T00:00:00Z)", actual=value)
    return value
