"""Entities from Core rows: the session's own instance refreshed in place, else an untracked one; values set as
loaded leave nothing for a flush to write."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.factories import make_model
from verifier.db.models import Model
from verifier.db.rows import entity, set_loaded, table


def test_entity_refreshes_the_sessions_instance(session: Session) -> None:
    model = make_model(session)
    row = session.execute(select(table(Model)).where(table(Model).c.id == model.id)).one()
    got = entity(session, Model, {**row._mapping, "description": "as read"})
    assert got is model
    assert model.description == "as read"
    assert not session.dirty  # a loaded value, not a change


def test_entity_untracked_when_the_session_holds_none(session: Session) -> None:
    model = make_model(session)
    session.expunge(model)
    got = entity(session, Model, {"id": model.id, "name": model.name})
    assert got is not model
    assert (got.id, got.name) == (model.id, model.name)
    assert got not in session
    set_loaded(got, {"name": "renamed"})
    session.flush()
    assert session.scalar(select(Model.name).where(Model.id == model.id)) == model.name  # nothing written
