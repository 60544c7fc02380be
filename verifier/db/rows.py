"""Entities from Core rows: what a hot path reads with a prebuilt Core statement, handed on as the mapped class its
callers already know, without the session's unit of work.

:func:`entity` fills an instance of a mapped class with a row's columns as loaded values. The session's own instance
of that row, if it holds one, is refreshed in place (what ``populate_existing`` does for an ORM read), so an object
a caller already has sees what was read; otherwise the instance is new and the session does not track it: it
costs no identity-map entry, no attribute history and no flush, and writing to it writes nothing. Changes go
through the repositories' statements, which then set the values they wrote with :func:`set_loaded`.

Not here: any statement (each domain's ``repository.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_dict, set_committed_value
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.util import identity_key

_T = TypeVar("_T")


def table(cls: type[Any]) -> Table:
    """The table a mapped class is mapped to (for Core statements on it)."""
    return cast("Table", cls.__table__)


def entity(session: Session, cls: type[_T], values: Mapping[Any, Any]) -> _T:
    """An instance of ``cls`` holding ``values`` (attribute name -> value, the primary key ``id`` among them) as
    loaded: the session's instance of that row refreshed, or a new one the session does not track."""
    held = session.identity_map.get(identity_key(cls, values["id"])) if session.identity_map else None
    if held is not None:
        set_loaded(held, values)
        return held
    fresh: _T = cls.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]  # mapped classes have it
    instance_dict(fresh).update(values)  # a new state: every value is loaded, none is a change
    return fresh


def set_loaded(instance: object, values: Mapping[str, Any]) -> None:
    """Set ``values`` on ``instance`` as loaded values (no change for a flush to write): what a statement just
    wrote, or read."""
    if instance_state(instance).session_id is None:
        instance_dict(instance).update(values)  # untracked: nothing to commit
        return
    for key, value in values.items():
        set_committed_value(instance, key, value)
