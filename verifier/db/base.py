"""Declarative base with a MetaData naming convention, so Alembic autogenerates stable constraint names."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import DateTime, Dialect, Enum, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that is UTC-aware in Python on every backend. PostgreSQL keeps the zone; SQLite
    (the embedded development profile) stores text without one, so values are normalised to UTC on the way in and
    marked UTC on the way out. Naive datetimes are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every timestamp must carry a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every timestamp is timezone-aware (UTC in, UTC out) on PostgreSQL and SQLite alike.
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


def str_enum(enum: type[StrEnum]) -> Enum:
    """A portable enum column that stores the member *values* (``"active"``), not the Python names."""
    return Enum(
        enum, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e], validate_strings=True
    )
