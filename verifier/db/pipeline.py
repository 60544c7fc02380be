"""Writes sent together: statements whose results nobody reads, queued on the connection and sent to PostgreSQL in
one round trip (psycopg's pipeline mode) instead of one each.

The server still runs them one after another, in order, each under its own snapshot (READ COMMITTED), in the
caller's transaction: a lock one statement takes is held before the next one starts, exactly as when each waited
for the one before. Only the client stops waiting between them. Inside the block no result may be read (SQLAlchemy
sees no rows before the pipeline syncs): a statement that returns what the caller needs runs before the block.

A failure surfaces where psycopg reports it: at a later statement of the block (already wrapped by SQLAlchemy) or
when the block ends; there it is wrapped here into the same :mod:`sqlalchemy.exc` class, so callers (the decision's
``except SQLAlchemyError``, the worker's retry on ``OperationalError``) see one error tree either way. On SQLite
(the embedded profile) the block changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


@contextmanager
def sent_together(session: Session) -> Iterator[bool]:
    """Send the statements ``session`` executes inside the block in one round trip (PostgreSQL; see the module
    docstring), when the block ends; nothing inside may read a result. Yields whether they are (False: SQLite)."""
    connection = session.connection()
    pooled = connection.connection
    driver = pooled.driver_connection
    if not isinstance(driver, psycopg.Connection):
        yield False
        return
    try:
        with driver.pipeline():
            yield True
    except psycopg.Error as e:  # raised by the pipeline's final sync, not through SQLAlchemy
        disconnected = connection.dialect.is_disconnect(cast("Any", e), pooled, None)
        if disconnected:
            connection.invalidate(e)
        raise DBAPIError.instance(
            None, None, e, psycopg.Error, hide_parameters=True, connection_invalidated=disconnected
        ) from e


__all__ = ["sent_together"]
