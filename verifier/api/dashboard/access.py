"""Access to the dashboard: the sign-in page and form, sign-out, and the signed-in landing page (the overview).

Stable paths (other tools drive them): ``GET``/``POST /dashboard/login`` (fields ``username``, ``password`` and
the hidden ``csrf_token``), ``POST /dashboard/logout``, ``GET /dashboard/``. HTTP only: the rules are in
:mod:`verifier.staff.service`. A refused sign-in is an answer, not an error: the view returns it, so the request's
transaction commits the failure count and the audit event.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from verifier.api.dashboard.deps import (
    FormDep,
    StaffDep,
    client_address,
    current_staff,
    login_cookie,
    now,
    secure_cookies,
    session_cookie,
)
from verifier.api.dashboard.overview import overview_page
from verifier.api.dashboard.rendering import base_path, render
from verifier.api.deps import SessionDep, SettingsDep
from verifier.config import Settings
from verifier.staff.service import (
    LOGIN_FORM_MAX_AGE,
    LoginOutcome,
    LoginPolicy,
    SessionPolicy,
    SignedIn,
    issue_login_form_token,
    login_form_key,
    login_form_token_valid,
    sign_in,
    sign_out,
)

router = APIRouter()

MESSAGES: Final = {
    LoginOutcome.INVALID: "Wrong username or password.",
    LoginOutcome.LOCKED: "This account is locked after too many failed sign-ins. Try again in {minutes}.",
    LoginOutcome.THROTTLED: "Too many failed sign-ins from your address. Try again in {minutes}.",
}
STATUS: Final = {LoginOutcome.INVALID: 401, LoginOutcome.LOCKED: 429, LoginOutcome.THROTTLED: 429}
FORM_EXPIRED: Final = "The sign-in form expired or was not sent from this page. Please sign in again."


def _minutes(delta: timedelta) -> str:
    minutes = max(1, math.ceil(delta.total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _safe_next(request: Request, target: str) -> str:
    """Where to go after signing in: a dashboard path only (never another site), else the landing page."""
    base = base_path(request)
    home = base + "/"
    unsafe = "//" in target or "\\" in target or target.startswith(base + "/login")
    return target if target.startswith(home) and not unsafe else home


def _login_page(
    request: Request,
    settings: Settings,
    *,
    status_code: int = 200,
    error: str | None = None,
    username: str = "",
    next_path: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    """The sign-in form with a fresh pre-session CSRF token (its signed cookie set on the response)."""
    key = login_form_key(settings.credential_pepper.get_secret_value().encode())
    cookie, token = issue_login_form_token(key, now())
    response = render(
        request,
        "login.html",
        status_code=status_code,
        headers=headers,
        csrf_token=token,
        error=error,
        username=username,
        next_path=_safe_next(request, next_path),
    )
    response.set_cookie(
        login_cookie(settings),
        cookie,
        max_age=int(LOGIN_FORM_MAX_AGE.total_seconds()),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/login", name="login")
def login_form(
    request: Request,
    settings: SettingsDep,
    signed_in: SignedIn | None = Depends(current_staff),  # noqa: B008 - FastAPI's dependency idiom
    next: str = "",
) -> Response:
    if signed_in is not None:
        return RedirectResponse(_safe_next(request, next), status_code=303)
    return _login_page(request, settings, next_path=next)


@router.post("/login")
def login(request: Request, settings: SettingsDep, session: SessionDep, form: FormDep) -> Response:
    username = form.get("username", "").strip()[:200]
    next_path = form.get("next", "")
    key = login_form_key(settings.credential_pepper.get_secret_value().encode())
    if not login_form_token_valid(key, request.cookies.get(login_cookie(settings)), form.get("csrf_token"), now()):
        return _login_page(
            request, settings, status_code=403, error=FORM_EXPIRED, username=username, next_path=next_path
        )
    result = sign_in(
        session,
        username,
        form.get("password", ""),
        address=client_address(request),
        now=now(),
        policy=LoginPolicy.from_settings(settings),
        session_policy=SessionPolicy.from_settings(settings),
    )
    if result.outcome is not LoginOutcome.SIGNED_IN or result.token is None:
        wait = result.retry_after or timedelta(0)
        headers = {"Retry-After": str(math.ceil(wait.total_seconds()))} if result.retry_after else None
        error = MESSAGES[result.outcome].format(minutes=_minutes(wait))
        return _login_page(
            request,
            settings,
            status_code=STATUS[result.outcome],
            error=error,
            username=username,
            next_path=next_path,
            headers=headers,
        )
    response = RedirectResponse(_safe_next(request, next_path), status_code=303)
    response.delete_cookie(login_cookie(settings), path="/", secure=secure_cookies(settings), httponly=True)
    response.set_cookie(
        session_cookie(settings),
        result.token,
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="strict",
    )  # a browser-session cookie: the server ends the session at its idle or absolute expiry anyway
    return response


@router.post("/logout")
def logout(request: Request, settings: SettingsDep, session: SessionDep, signed_in: StaffDep) -> Response:
    sign_out(session, signed_in, address=client_address(request), now=now())
    response = RedirectResponse(base_path(request) + "/login", status_code=303)
    response.delete_cookie(
        session_cookie(settings), path="/", secure=secure_cookies(settings), httponly=True, samesite="strict"
    )
    return response


@router.get("/", name="home")
def home(
    request: Request, signed_in: StaffDep, session: SessionDep, settings: SettingsDep, period: str = "24h"
) -> Response:
    """The landing page: the overview (:mod:`verifier.api.dashboard.overview`)."""
    return overview_page(request, signed_in, session, settings, period)
