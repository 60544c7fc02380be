"""Helpers for dashboard tests over HTTP: staff accounts committed straight to the database, and signing in
through the real form (its pre-session CSRF token included)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from verifier.db.models import StaffRole
from verifier.staff.service import create_staff_user

DASHBOARD = "/dashboard"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class StaffLogin:
    username: str
    password: str
    role: StaffRole


def create_staff(engine: Engine, role: StaffRole = StaffRole.VIEWER, *, prefix: str = "staff") -> StaffLogin:
    """A new active account with a unique name, committed (the app under test reads it on its own connection)."""
    login = StaffLogin(f"{prefix}-{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}", role)
    with Session(engine) as s:
        create_staff_user(s, login.username, login.password, role, actor="test", now=datetime.now(UTC))
        s.commit()
    return login


def csrf_token(html: str) -> str:
    """The first form's ``csrf_token`` in a page."""
    found = _CSRF.search(html)
    assert found is not None, "no csrf_token in the page"
    return found.group(1)


def post_login(client: TestClient, username: str, password: str, **extra: str) -> httpx2.Response:
    """GET the sign-in form, then POST it (with its CSRF token) as a browser would; the POST's response."""
    form = client.get(f"{DASHBOARD}/login")
    assert form.status_code == 200, form.text
    data = {"username": username, "password": password, "csrf_token": csrf_token(form.text), **extra}
    return client.post(f"{DASHBOARD}/login", data=data)
