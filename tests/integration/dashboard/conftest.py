"""The dashboard tests' fixtures: headless chromium from the browser harness (tests/support/browser.py), the app
served by uvicorn on the session's database (``served``; a module with a database of its own overrides it), and
TestClients signed in as a new staff account of a given role (the requesting module provides ``app``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.support.browser import browser, serve
from tests.support.dashboard import StaffLogin, create_staff, post_login
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import StaffRole

__all__ = ["browser", "served", "signed_in"]


@pytest.fixture
def signed_in(app: FastAPI, engine: Engine) -> Iterator[Callable[[StaffRole], TestClient]]:
    """A TestClient signed in as a new account of the given role, each from an address of its own (so the per-address
    sign-in throttle of one test never meets another's)."""
    clients: list[TestClient] = []
    subnet = uuid.uuid4().int % 250

    def make(role: StaffRole) -> TestClient:
        login: StaffLogin = create_staff(engine, role)
        address = f"10.{subnet}.{len(clients)}.{uuid.uuid4().int % 250}"
        client = TestClient(app, client=(address, 50000), follow_redirects=False)
        clients.append(client)
        assert post_login(client, login.username, login.password).status_code == 303
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[str]:
    """The base URL of the dashboard, served by uvicorn (the per-address sign-in throttle out of the way: every
    page comes from 127.0.0.1)."""
    settings = Settings(database_url=database_url, staff_login_address_max_failures=1000)
    with serve(create_app(settings)) as base_url:
        yield base_url + "/dashboard"
