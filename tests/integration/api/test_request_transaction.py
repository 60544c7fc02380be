"""The API's transaction owner (:mod:`verifier.api.deps`) on real PostgreSQL, through the real app with a few test
routes: the request commits when the endpoint returns, before the answer starts (another connection sees the row
by then); an endpoint that raises after writing, or whose response cannot be rendered, leaves nothing; a clash
found only at COMMIT is a structured 409.

A spy around the app looks into the database, from a connection of its own, when the response starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifier.api.deps import SessionDep
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import Customer, CustomerStatus
from verifier.errors import Code, NotFound


def _customer(name: str) -> Customer:
    return Customer(name=name, status=CustomerStatus.ACTIVE, created_at=datetime.now(UTC))


def _stored(engine: Engine, name: str) -> bool:
    with Session(engine) as s:
        return s.scalar(select(Customer.id).where(Customer.name == name)) is not None


def _routes(app: FastAPI) -> None:
    def write(name: str, then: str, session: SessionDep) -> dict[str, Any]:
        session.add(_customer(name))
        if then == "clash":  # not flushed: the unique violation surfaces only when the dependency commits
            return {"name": name}
        session.flush()
        if then == "keyward":
            raise NotFound(Code.RESOURCE_NOT_FOUND, "after the write")
        if then == "crash":
            raise RuntimeError("after the write")
        if then == "unrenderable":  # serialization gives up near 255 levels: the response cannot be rendered
            deep: Any = name
            for _ in range(300):
                deep = [deep]
            return {"name": deep}
        return {"name": name}

    app.add_api_route("/test/customers/{name}", write, methods=["POST"])


def _spy(app: ASGIApp, engine: Engine, seen: list[bool]) -> ASGIApp:
    """``app``, noting whether the request's customer is stored when the response starts."""

    async def spied(scope: Scope, receive: Receive, send: Send) -> None:
        async def spy_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                name = scope["path"].rsplit("/", 1)[-1]
                seen.append(await anyio.to_thread.run_sync(_stored, engine, name))
            await send(message)

        await app(scope, receive, spy_send if scope["type"] == "http" else send)

    return spied


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def seen() -> list[bool]:
    return []


@pytest.fixture
def client(settings: Settings, engine: Engine, seen: list[bool]) -> Iterator[TestClient]:
    app = create_app(settings)
    _routes(app)
    with TestClient(_spy(app, engine, seen), raise_server_exceptions=False) as c:
        yield c


def _name() -> str:
    return f"tx-{uuid.uuid4().hex[:12]}"


def test_request_transaction_committed_before_the_answer_starts(
    client: TestClient, engine: Engine, seen: list[bool]
) -> None:
    name = _name()
    response = client.post(f"/test/customers/{name}", params={"then": "ok"})

    assert response.status_code == 200, response.text
    assert seen == [True]


@pytest.mark.parametrize(
    ("then", "status", "code"),
    [("keyward", 404, "resource.not_found"), ("crash", 500, None), ("unrenderable", 500, None)],
    ids=["keyward-error", "unexpected-exception", "response-cannot-be-rendered"],
)
def test_request_transaction_endpoint_raises_after_writing_leaves_nothing(
    client: TestClient, engine: Engine, seen: list[bool], then: str, status: int, code: str | None
) -> None:
    name = _name()
    response = client.post(f"/test/customers/{name}", params={"then": then})

    assert response.status_code == status
    if code is not None:
        assert response.json()["error"]["code"] == code
    assert seen == [False]
    assert not _stored(engine, name)


def test_request_transaction_clash_at_commit_is_a_structured_409(client: TestClient, engine: Engine) -> None:
    name = _name()
    with Session(engine) as s:
        s.add(_customer(name))
        s.commit()

    response = client.post(f"/test/customers/{name}", params={"then": "clash"})

    assert response.status_code == 409, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["code"], error["fault"]) == ("resource.conflict", "request")


