"""Column helpers shared by the models: UUID primary keys, UTC timestamps, enums stored as strings, and an index
column written per dialect."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from sqlalchemy import ColumnElement, String, Uuid
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import mapped_column
from sqlalchemy.sql.visitors import InternalTraversal

UuidPk = Annotated[uuid.UUID, mapped_column(Uuid, primary_key=True, default=uuid.uuid4)]
Timestamp = Annotated[datetime, mapped_column()]  # DateTime(timezone=True) via Base.type_annotation_map
Name = Annotated[str, mapped_column(String(200))]


class NewestFirst(ColumnElement[Any]):
    """An index column ``<name> DESC NULLS LAST``: newest first, NULL (never set) last. PostgreSQL gets exactly
    that; SQLite, whose CREATE INDEX refuses NULLS LAST and which orders NULL lowest anyway, gets ``<name> DESC``
    (so ``Base.metadata.create_all`` works on both, as the migrations do)."""

    inherit_cache = True
    _traverse_internals = [("name", InternalTraversal.dp_string)]  # noqa: RUF012 - SQLAlchemy's cache key

    def __init__(self, name: str) -> None:
        self.name = name


@compiles(NewestFirst)
def _newest_first(element: NewestFirst, compiler: Any, **_: Any) -> str:
    return f"{element.name} DESC"


@compiles(NewestFirst, "postgresql")
def _newest_first_postgresql(element: NewestFirst, compiler: Any, **_: Any) -> str:
    return f"{element.name} DESC NULLS LAST"
