"""Dashboard access in a real browser (headless chromium via Playwright) against the app served by uvicorn on
PostgreSQL: sign in through the form and land on the dashboard, a locked-out sign-in shows why, sign out; no
console error and no Content-Security-Policy violation on the sign-in and landing pages. Screenshots go to
var/screenshots/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from tests.support.browser import PageWatch, open_page, screenshot, serve
from tests.support.dashboard import StaffLogin, create_staff
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import StaffRole

MAX_FAILURES = 3


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[str]:
    # Every page comes from 127.0.0.1: the per-address throttle must stay out of the way of these tests.
    settings = Settings(
        database_url=database_url, staff_login_max_failures=MAX_FAILURES, staff_login_address_max_failures=1000
    )
    with serve(create_app(settings)) as base_url:
        yield base_url + "/dashboard"


@pytest.fixture
def admin(engine: Engine) -> StaffLogin:
    return create_staff(engine, StaffRole.ADMIN, prefix="ada")


def _sign_in(page: Page, served: str, login: StaffLogin, password: str | None = None) -> None:
    page.goto(served + "/login")
    page.fill("#username", login.username)
    page.fill("#password", password or login.password)
    page.click("button[type=submit]")


def test_browser_login_lands_on_the_dashboard(browser: Browser, served: str, admin: StaffLogin) -> None:
    page, watch = open_page(browser)
    page.goto(served + "/")  # not signed in: the sign-in page
    assert page.url == served + "/login"
    screenshot(page, "login")

    _sign_in(page, served, admin)

    assert page.url == served + "/"
    assert page.text_content("h1") == "Overview"
    assert page.text_content(".who") == admin.username
    assert page.is_visible("text=Sign out")
    screenshot(page, "home")
    watch.assert_clean()


def test_browser_locked_out_login_shows_the_lockout_message(browser: Browser, served: str, engine: Engine) -> None:
    login = create_staff(engine, StaffRole.VIEWER, prefix="locked")
    page, watch = open_page(browser)
    for i in range(MAX_FAILURES):
        _sign_in(page, served, login, password=f"wrong password {i}")

    _sign_in(page, served, login)  # the right password, too late

    alert = page.text_content("[role=alert]") or ""
    assert "This account is locked after too many failed sign-ins" in alert
    assert page.url == served + "/login"
    screenshot(page, "login-locked")
    console = [e for e in watch.errors if "status of 401" not in e and "status of 429" not in e]
    assert console == [], console  # the refused sign-ins' statuses are the only console lines


def test_browser_logout_returns_to_the_sign_in_page(browser: Browser, served: str, admin: StaffLogin) -> None:
    page, watch = open_page(browser)
    _sign_in(page, served, admin)

    page.click("text=Sign out")

    assert page.url == served + "/login"
    page.goto(served + "/")
    assert page.url == served + "/login"
    watch.assert_clean()


def test_browser_watch_sees_a_csp_violation(browser: Browser, served: str) -> None:
    """The harness itself: an inline style added to a dashboard page is refused by the CSP and reported."""
    page, watch = open_page(browser)
    page.goto(served + "/login")
    page.evaluate("() => { const s = document.createElement('style'); s.textContent = 'body{}'; "
                  "document.head.appendChild(s); }")  # fmt: skip
    page.wait_for_timeout(200)
    assert watch.csp_violations(), watch.errors
    assert isinstance(watch, PageWatch)
