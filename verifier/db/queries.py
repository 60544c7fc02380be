"""Generic row helpers the domain repositories share: a row by id or a 404, an insert whose unique-constraint clash
is a 409, and the one list shape (optional filters -> WHERE -> ORDER BY -> LIMIT/OFFSET page).

Every helper takes the caller's session and flushes at most: none commits or rolls back the caller's transaction.
An insert that clashes is undone with its own SAVEPOINT, so the request's transaction stays usable; a clash found
only when the owner commits is a 409 too (:func:`clash_is_conflict`, which the API's request dependency commits in).
Not here: any table's statements (each domain's ``repository.py``) and rendering rows (the API's schemas).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import InstrumentedAttribute, Session

from verifier.errors import Code, Conflict, NotFound

_T = TypeVar("_T")

#: What SQLAlchemy raises when the database cannot be reached or answer right now (down, restarting, the pool
#: exhausted): the API and the dashboard answer these with a retryable 503 (named here so that neither imports
#: SQLAlchemy for it).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, SQLAlchemyTimeoutError)


def get_or_404(
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


@contextmanager
def clash_is_conflict(message: str) -> Iterator[None]:
    """An integrity violation (a unique or foreign-key constraint) raised in the block becomes a 409
    ``resource.conflict`` with ``message``."""
    try:
        yield
    except IntegrityError as e:
        raise Conflict(Code.RESOURCE_CONFLICT, message) from e


def insert_unique(session: Session, row: object, what: str) -> None:
    """Add and flush ``row`` inside a SAVEPOINT; a unique-constraint clash undoes only that savepoint and becomes a
    409 ``resource.conflict`` (``what`` already exists). The caller's transaction and its earlier writes stay."""
    with clash_is_conflict(f"{what} already exists"), session.begin_nested():
        session.add(row)


def equals(column: InstrumentedAttribute[Any], value: object | None) -> ColumnElement[bool] | None:
    """``column = value``, or no filter (None) when ``value`` is None: an optional query parameter."""
    return None if value is None else column == value


def page(
    session: Session,
    query: Select[_T],
    *,
    where: Iterable[ColumnElement[bool] | None] = (),
    limit: int,
    offset: int,
) -> list[_T]:
    """One page of ``query`` (already ordered) filtered by the ``where`` conditions that are not None."""
    conditions = [c for c in where if c is not None]
    return list(session.scalars(query.where(*conditions).limit(limit).offset(offset)))
