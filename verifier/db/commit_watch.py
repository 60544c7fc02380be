"""Something to run after every commit that changed given tables: what keeps the in-process caches current (the
credentials and licence catalog, :mod:`verifier.auth.cache`; the worker's collateral rows,
:mod:`verifier.worker.collateral_rows`), each of which replaces its Redis generation token then.

A :class:`CommitWatch` installs SQLAlchemy session hooks once per process. A transaction counts as changing a table
when a flush wrote an instance of one of its mapped classes, or when the session executed an INSERT, UPDATE or
DELETE statement on it (bulk statements no flush sees), and, for a watch that asks for it, a text statement naming
it that is not a SELECT (only for tables that no read-only text statement names in a WITH: such a statement would
count as a change). Its callback runs after that transaction commits, never after a rollback. A write on a bare
connection, outside any session, is not seen: the code writing those tables writes through sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import TextClause, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction


def database_key(url: str | URL) -> tuple[Any, ...]:
    """One database, however its URL is spelled (driver, credentials and options aside)."""
    u = make_url(url)
    return (u.get_backend_name(), u.host, u.port, u.database)


class CommitWatch:
    """Run ``on_commit(session)`` after each commit whose transaction changed one of ``models``' tables."""

    def __init__(
        self,
        name: str,
        models: tuple[type[Any], ...],
        on_commit: Callable[[Session], None],
        *,
        text_statements: bool = False,
    ) -> None:
        self._models: Final = models
        self._text_statements: Final = text_statements
        self._tables: Final = frozenset(m.__tablename__ for m in models)
        self._on_commit = on_commit
        self._flag: Final = f"keyward.changed.{name}"
        self._installed = False

    def install(self) -> None:
        """Install the session hooks (once; later calls do nothing)."""
        if self._installed:
            return
        self._installed = True
        event.listen(Session, "after_flush", self._after_flush)
        event.listen(Session, "do_orm_execute", self._on_execute)
        event.listen(Session, "after_commit", self._after_commit)
        event.listen(Session, "after_rollback", self._after_rollback)

    def remove(self) -> None:
        """Remove the session hooks (a test's own watch)."""
        if not self._installed:
            return
        self._installed = False
        event.remove(Session, "after_flush", self._after_flush)
        event.remove(Session, "do_orm_execute", self._on_execute)
        event.remove(Session, "after_commit", self._after_commit)
        event.remove(Session, "after_rollback", self._after_rollback)

    def _after_flush(self, session: Session, _: UOWTransaction) -> None:
        # In after_flush, new/dirty/deleted still list what this flush wrote.
        if any(isinstance(o, self._models) for group in (session.new, session.dirty, session.deleted) for o in group):
            session.info[self._flag] = True

    def _on_execute(self, state: ORMExecuteState) -> None:
        statement = state.statement
        if state.is_update or state.is_delete or state.is_insert:
            changed = getattr(getattr(statement, "table", None), "name", None) in self._tables
        elif self._text_statements and isinstance(statement, TextClause):
            text = statement.text.lower()
            changed = not text.lstrip().startswith("select") and any(t in text for t in self._tables)
        else:
            changed = False
        if changed:
            state.session.info[self._flag] = True

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(self._flag, False):
            self._on_commit(session)

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(self._flag, None)


__all__ = ["CommitWatch", "database_key"]
