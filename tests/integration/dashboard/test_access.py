"""Dashboard access over HTTP against real PostgreSQL: sign-in (right and wrong password, unknown user, lockout,
the per-address throttle, the form's CSRF token), sessions (cookie flags, only a hash stored, idle and absolute
expiry, a disabled user), sign-out, the CSRF check and roles of :func:`staff_user`, and the security headers of
every dashboard response, errors included.

Requests go through a TestClient on the real app, whose requests commit; each test signs in from its own client
address (the per-address throttle counts across tests), and accounts get unique names.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from tests.support.dashboard import DASHBOARD, StaffLogin, create_staff, csrf_token, post_login
from verifier.api.dashboard import create_dashboard
from verifier.api.dashboard.deps import staff_user
from verifier.api.dashboard.rendering import CONTENT_SECURITY_POLICY
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import AuditEvent, StaffRole, StaffSession, StaffStatus, StaffUser
from verifier.staff.service import SignedIn

MAX_FAILURES = 3
ADDRESS_MAX_FAILURES = 5


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        staff_login_max_failures=MAX_FAILURES,
        staff_login_address_max_failures=ADDRESS_MAX_FAILURES,
        staff_session_idle_seconds=600,
        staff_session_max_seconds=3600,
    )


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


def _address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


@pytest.fixture
def make_client(app: FastAPI) -> Iterator[Callable[..., TestClient]]:
    """TestClients on the app, each from its own client address unless given one; closed at the end."""
    clients: list[TestClient] = []

    def make(address: str | None = None, *, target: FastAPI = app, **kwargs: object) -> TestClient:
        client = TestClient(target, client=(address or _address(), 50000), follow_redirects=False, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def viewer(engine: Engine) -> StaffLogin:
    return create_staff(engine, StaffRole.VIEWER)


def _signed_in(client: TestClient, login: StaffLogin) -> TestClient:
    response = post_login(client, login.username, login.password)
    assert response.status_code == 303, response.text
    return client


def _events(engine: Engine, tag: str, actor: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.tag == tag, AuditEvent.actor == actor)))


def _user(engine: Engine, username: str) -> StaffUser:
    with Session(engine) as s:
        return s.scalars(select(StaffUser).where(StaffUser.username == username)).one()


def _sessions(engine: Engine, username: str) -> list[StaffSession]:
    with Session(engine) as s:
        query = select(StaffSession).join(StaffUser).where(StaffUser.username == username)
        return list(s.scalars(query))


# -- sign-in ----------------------------------------------------------------------------------------------------


def test_login_right_password_redirects_home_with_a_session_cookie(
    client: TestClient, viewer: StaffLogin, engine: Engine
) -> None:
    response = post_login(client, viewer.username, viewer.password)

    assert (response.status_code, response.headers["location"]) == (303, f"{DASHBOARD}/")
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("keyward_session="))
    assert {"HttpOnly", "Path=/", "SameSite=strict"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie  # development runs on plain HTTP
    home = client.get(f"{DASHBOARD}/")
    assert home.status_code == 200
    assert viewer.username in home.text
    assert "viewer" in home.text
    assert len(_events(engine, "dashboard:staff:login_succeeded", f"staff:{viewer.username}")) == 1


def test_login_stores_only_the_token_hash(client: TestClient, viewer: StaffLogin, engine: Engine) -> None:
    _signed_in(client, viewer)
    token = client.cookies["keyward_session"]

    [row] = _sessions(engine, viewer.username)
    assert row.token_hash == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in row.token_hash


def test_login_wrong_password_is_401_and_audited(client: TestClient, viewer: StaffLogin, engine: Engine) -> None:
    response = post_login(client, viewer.username, "not the password")

    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert "keyward_session" not in client.cookies
    assert _user(engine, viewer.username).failed_logins == 1
    [event] = _events(engine, "dashboard:staff:login_failed", f"staff:{viewer.username}")
    assert event.data["reason"] == "wrong_password"


def test_login_unknown_user_answers_like_a_wrong_password(client: TestClient, engine: Engine) -> None:
    response = post_login(client, f"nobody-{uuid.uuid4().hex[:8]}", "not the password")

    assert response.status_code == 401
    assert "Wrong username or password." in response.text


def test_login_locks_the_account_after_max_failures(
    make_client: Callable[..., TestClient], viewer: StaffLogin, engine: Engine
) -> None:
    client = make_client()
    statuses = [post_login(client, viewer.username, f"wrong-{i}").status_code for i in range(MAX_FAILURES)]
    right = post_login(make_client(), viewer.username, viewer.password)  # the right password, from elsewhere

    assert statuses == [401] * (MAX_FAILURES - 1) + [429]
    assert right.status_code == 429
    assert "This account is locked" in right.text
    assert int(right.headers["retry-after"]) > 0
    assert _user(engine, viewer.username).locked_until is not None
    assert len(_events(engine, "dashboard:staff:locked_out", f"staff:{viewer.username}")) == 1


def test_login_lockout_ends_after_its_time(client: TestClient, viewer: StaffLogin, engine: Engine) -> None:
    for i in range(MAX_FAILURES):
        post_login(client, viewer.username, f"wrong-{i}")
    with Session(engine) as s:  # the lockout ran out
        s.execute(update(StaffUser).where(StaffUser.username == viewer.username).values(locked_until=None))
        s.commit()

    assert post_login(client, viewer.username, viewer.password).status_code == 303


def test_login_throttled_per_client_address_across_usernames(
    make_client: Callable[..., TestClient], engine: Engine
) -> None:
    address = _address()
    sprayer = make_client(address)
    sprayed = [f"nobody-{uuid.uuid4().hex[:8]}" for _ in range(ADDRESS_MAX_FAILURES)]
    statuses = [post_login(sprayer, name, "Password123!").status_code for name in sprayed]
    real = create_staff(engine, StaffRole.VIEWER)

    throttled = post_login(sprayer, real.username, real.password)
    elsewhere = post_login(make_client(), real.username, real.password)

    assert statuses == [401] * ADDRESS_MAX_FAILURES
    assert throttled.status_code == 429
    assert "Too many failed sign-ins from your address" in throttled.text
    assert elsewhere.status_code == 303
    assert _user(engine, real.username).failed_logins == 0  # refused before the account was looked at


def test_login_without_csrf_token_is_403(client: TestClient, viewer: StaffLogin) -> None:
    client.get(f"{DASHBOARD}/login")  # the form's cookie, but no token in the POST
    data = {"username": viewer.username, "password": viewer.password}

    response = client.post(f"{DASHBOARD}/login", data=data)

    assert response.status_code == 403
    assert "keyward_session" not in client.cookies


def test_login_with_another_forms_token_is_403(make_client: Callable[..., TestClient], viewer: StaffLogin) -> None:
    other = make_client()
    token = csrf_token(other.get(f"{DASHBOARD}/login").text)
    client = make_client()
    client.get(f"{DASHBOARD}/login")
    data = {"username": viewer.username, "password": viewer.password, "csrf_token": token}

    assert client.post(f"{DASHBOARD}/login", data=data).status_code == 403


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/v1/admin/customers", "/dashboard/\\evil.example"]
)
def test_login_next_outside_the_dashboard_goes_home(client: TestClient, viewer: StaffLogin, target: str) -> None:
    response = post_login(client, viewer.username, viewer.password, next=target)
    assert response.headers["location"] == f"{DASHBOARD}/"


def test_login_page_when_signed_in_redirects_home(client: TestClient, viewer: StaffLogin) -> None:
    _signed_in(client, viewer)
    response = client.get(f"{DASHBOARD}/login")
    assert (response.status_code, response.headers["location"]) == (303, f"{DASHBOARD}/")


# -- sessions and sign-out ----------------------------------------------------------------------------------------


def test_home_without_session_redirects_to_login(client: TestClient) -> None:
    response = client.get(f"{DASHBOARD}/")
    assert (response.status_code, response.headers["location"]) == (303, f"{DASHBOARD}/login")


@pytest.mark.parametrize(
    ("column", "age"),
    [("last_seen_at", timedelta(seconds=601)), ("created_at", timedelta(seconds=3601))],
    ids=["idle", "absolute"],
)
def test_expired_session_redirects_to_login(
    client: TestClient, viewer: StaffLogin, engine: Engine, column: str, age: timedelta
) -> None:
    _signed_in(client, viewer)
    [row] = _sessions(engine, viewer.username)
    with Session(engine) as s:
        s.execute(update(StaffSession).where(StaffSession.id == row.id).values({column: getattr(row, column) - age}))
        s.commit()

    response = client.get(f"{DASHBOARD}/")

    assert (response.status_code, response.headers["location"]) == (303, f"{DASHBOARD}/login")


def test_disabled_user_session_stops_working(client: TestClient, viewer: StaffLogin, engine: Engine) -> None:
    _signed_in(client, viewer)
    with Session(engine) as s:
        s.execute(update(StaffUser).where(StaffUser.username == viewer.username).values(status=StaffStatus.DISABLED))
        s.commit()

    assert client.get(f"{DASHBOARD}/").status_code == 303


def test_logout_deletes_the_session(make_client: Callable[..., TestClient], viewer: StaffLogin, engine: Engine) -> None:
    client = _signed_in(make_client(), viewer)
    token = client.cookies["keyward_session"]

    response = client.post(f"{DASHBOARD}/logout", data={"csrf_token": csrf_token(client.get(f"{DASHBOARD}/").text)})

    assert (response.status_code, response.headers["location"]) == (303, f"{DASHBOARD}/login")
    assert _sessions(engine, viewer.username) == []
    replay = make_client(cookies={"keyward_session": token})  # the old cookie, kept by someone
    assert replay.get(f"{DASHBOARD}/").status_code == 303
    assert len(_events(engine, "dashboard:staff:logged_out", f"staff:{viewer.username}")) == 1


def test_logout_without_csrf_token_is_403_and_keeps_the_session(client: TestClient, viewer: StaffLogin) -> None:
    _signed_in(client, viewer)

    response = client.post(f"{DASHBOARD}/logout", data={"csrf_token": "guessed"})

    assert response.status_code == 403
    assert client.get(f"{DASHBOARD}/").status_code == 200


def test_post_without_session_is_401(client: TestClient) -> None:
    response = client.post(f"{DASHBOARD}/logout", data={"csrf_token": "x"})
    assert response.status_code == 401
    assert "text/html" in response.headers["content-type"]


def test_production_cookies_are_secure_and_host_prefixed(
    make_client: Callable[..., TestClient], database_url: str, viewer: StaffLogin
) -> None:
    # model_construct: the production profile's own checks (secrets, Redis, vendor roots) are not the point here
    production = Settings.model_construct(environment="production", database_url=database_url)
    client = make_client(target=create_app(production), base_url="https://testserver")

    response = post_login(client, viewer.username, viewer.password)

    cookie = next(c for c in response.headers.get_list("set-cookie") if "keyward_session=" in c)
    assert cookie.startswith("__Host-keyward_session=")
    assert "Secure" in cookie
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert client.get(f"{DASHBOARD}/").status_code == 200


# -- roles and CSRF of staff_user(), on test-only routes --------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_app(settings: Settings) -> FastAPI:
    """The dashboard with test-only routes: an admin-only POST and GET, a POST any signed-in user may send, and
    one that fails unexpectedly; mounted at /dashboard like the real one."""
    dashboard = create_dashboard(settings)

    @dashboard.post("/test/admin-only")
    def admin_only(signed_in: Annotated[SignedIn, Depends(staff_user(StaffRole.ADMIN))]) -> PlainTextResponse:
        return PlainTextResponse(f"done by {signed_in.actor}")

    @dashboard.get("/test/operator-page")
    def operator_page(_: Annotated[SignedIn, Depends(staff_user(StaffRole.OPERATOR))]) -> PlainTextResponse:
        return PlainTextResponse("operator page")

    @dashboard.post("/test/any")
    def any_staff(_: Annotated[SignedIn, Depends(staff_user())]) -> PlainTextResponse:
        return PlainTextResponse("ok")

    @dashboard.get("/test/boom")
    def boom() -> PlainTextResponse:
        raise RuntimeError("a bug")

    outer = FastAPI()
    outer.mount(DASHBOARD, dashboard)
    return outer


def _guarded_client(make_client: Callable[..., TestClient], guarded_app: FastAPI, login: StaffLogin) -> TestClient:
    return _signed_in(make_client(target=guarded_app), login)


@pytest.mark.parametrize(
    ("role", "status"), [(StaffRole.VIEWER, 403), (StaffRole.OPERATOR, 403), (StaffRole.ADMIN, 200)]
)
def test_staff_user_admin_only_post_by_role(
    make_client: Callable[..., TestClient], guarded_app: FastAPI, engine: Engine, role: StaffRole, status: int
) -> None:
    client = _guarded_client(make_client, guarded_app, create_staff(engine, role))
    token = csrf_token(client.get(f"{DASHBOARD}/").text)

    response = client.post(f"{DASHBOARD}/test/admin-only", data={"csrf_token": token})

    assert response.status_code == status, response.text


@pytest.mark.parametrize(("role", "status"), [(StaffRole.VIEWER, 403), (StaffRole.OPERATOR, 200)])
def test_staff_user_role_guarded_page_by_role(
    make_client: Callable[..., TestClient], guarded_app: FastAPI, engine: Engine, role: StaffRole, status: int
) -> None:
    client = _guarded_client(make_client, guarded_app, create_staff(engine, role))
    assert client.get(f"{DASHBOARD}/test/operator-page").status_code == status


@pytest.mark.parametrize("data", [{}, {"csrf_token": ""}, {"csrf_token": "guessed"}], ids=["missing", "empty", "wrong"])
def test_staff_user_post_without_the_sessions_csrf_token_is_403(
    make_client: Callable[..., TestClient], guarded_app: FastAPI, engine: Engine, data: dict[str, str]
) -> None:
    client = _guarded_client(make_client, guarded_app, create_staff(engine, StaffRole.ADMIN))
    response = client.post(f"{DASHBOARD}/test/any", data=data)
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_staff_user_post_as_json_has_no_csrf_token_and_is_403(
    make_client: Callable[..., TestClient], guarded_app: FastAPI, engine: Engine
) -> None:
    client = _guarded_client(make_client, guarded_app, create_staff(engine, StaffRole.ADMIN))
    token = csrf_token(client.get(f"{DASHBOARD}/").text)
    assert client.post(f"{DASHBOARD}/test/any", json={"csrf_token": token}).status_code == 403


def test_staff_user_another_sessions_csrf_token_is_403(
    make_client: Callable[..., TestClient], guarded_app: FastAPI, engine: Engine
) -> None:
    login = create_staff(engine, StaffRole.ADMIN)
    first = _guarded_client(make_client, guarded_app, login)
    second = _guarded_client(make_client, guarded_app, login)
    token = csrf_token(first.get(f"{DASHBOARD}/").text)

    assert second.post(f"{DASHBOARD}/test/any", data={"csrf_token": token}).status_code == 403
    assert first.post(f"{DASHBOARD}/test/any", data={"csrf_token": token}).status_code == 200


# -- headers on every dashboard response ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "signed_in", "status"),
    [
        ("GET", "/login", False, 200),
        ("GET", "/", True, 200),
        ("GET", "/", False, 303),
        ("GET", "/no-such-page", False, 404),
        ("GET", "/no-such-page", True, 404),
        ("POST", "/logout", False, 401),
        ("POST", "/logout", True, 403),  # no CSRF token
        ("POST", "/login", False, 403),  # no CSRF token
        ("PUT", "/login", False, 405),
        ("GET", "/test/operator-page", True, 403),
        ("GET", "/test/boom", True, 500),
    ],
    ids=str,
)
def test_dashboard_response_has_security_headers(
    make_client: Callable[..., TestClient],
    guarded_app: FastAPI,
    viewer: StaffLogin,
    method: str,
    path: str,
    signed_in: bool,
    status: int,
) -> None:
    client = make_client(target=guarded_app, raise_server_exceptions=False)
    if signed_in:
        _signed_in(client, viewer)

    response = client.request(method, DASHBOARD + path, data={"x": "y"} if method != "GET" else None)

    assert response.status_code == status
    headers = response.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (headers["x-frame-options"], headers["x-content-type-options"]) == ("DENY", "nosniff")
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cache-control"] == "no-store"
    if status != 303:
        assert headers["content-type"].startswith("text/html")
        assert "Traceback" not in response.text
        for inline in ("<style", " style=", " onclick="):
            assert inline not in response.text
        for script in re.findall(r"<script([^>]*)>", response.text):  # files, or JSON data that never runs
            assert " src=" in script or 'type="application/json"' in script, script


def test_dashboard_static_file_has_security_headers_and_may_be_cached(client: TestClient) -> None:
    response = client.get(f"{DASHBOARD}/static/dashboard.css")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in response.headers.get("cache-control", "")
