"""The attestation page in a real browser (headless chromium via Playwright) against the app served by uvicorn on
PostgreSQL, on attestations made by the real decision: sign in, open a rejected attestation and see the failed
check with expected vs actual; no console error and no Content-Security-Policy violation. Screenshots of an
accepted TDX attestation, a rejected one (MRTD mismatch), and TDX with GPUs (accepted, and GPU 1 rejected) go to
var/screenshots/ (git-ignored)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from tests.integration.dashboard.attestation_world import WRONG_MRTD, Decided, decide_world
from tests.support.browser import open_page, screenshot
from tests.support.dashboard import StaffLogin, create_staff
from verifier.db.models import StaffRole
from verifier.simulation.intel_quote_builder import TdReport


@pytest.fixture(scope="module")
def decided(engine: Engine) -> Decided:
    return decide_world(engine)


@pytest.fixture(scope="module")
def viewer(engine: Engine) -> StaffLogin:
    return create_staff(engine, StaffRole.VIEWER, prefix="att-browser")


def _sign_in(page: Page, served: str, login: StaffLogin, target: str) -> None:
    page.goto(served + target)  # signed out: the sign-in page, which returns here
    page.fill("#username", login.username)
    page.fill("#password", login.password)
    page.click("button[type=submit]")
    assert page.url == served + target


def test_browser_rejected_attestation_shows_the_failed_check_with_expected_vs_actual(
    browser: Browser, served: str, decided: Decided, viewer: StaffLogin
) -> None:
    page, watch = open_page(browser)
    _sign_in(page, served, viewer, f"/attestations/{decided.rejected_mrtd}")

    answer = page.text_content("section.answer") or ""
    assert f"MRTD differs from the reference set '{decided.model} 1.2 · intel-tdx'" in answer
    failed = page.locator("section.evaluation tr.check-failed")
    assert failed.count() == 1
    row = failed.first.text_content() or ""
    assert "Measurements vs reference values" in row
    assert TdReport().mrtd.hex() in row  # expected
    assert WRONG_MRTD.hex() in row  # actual
    screenshot(page, "attestation-rejected-mrtd")
    watch.assert_clean()


@pytest.mark.parametrize(
    ("which", "name"),
    [
        ("accepted", "attestation-accepted-tdx"),
        ("gpus", "attestation-tdx-gpus"),
        ("gpu_rejected", "attestation-gpu-rejected"),
    ],
    ids=["accepted-tdx", "tdx-gpus", "gpu-rejected"],
)
def test_browser_attestation_pages_render_cleanly(
    browser: Browser, served: str, decided: Decided, viewer: StaffLogin, which: str, name: str
) -> None:
    page, watch = open_page(browser)
    _sign_in(page, served, viewer, f"/attestations/{getattr(decided, which)}")
    assert page.is_visible("text=decoded, not verified here")
    screenshot(page, name)
    watch.assert_clean()
