"""The deployments pages in a real browser (headless chromium via Playwright) against the app served by uvicorn on
PostgreSQL: an operator signs in, finds a seeded deployment in the list through the search form, opens it, revokes
its lease through the confirmed form and sees the new state and the revocation on the timeline; a viewer's page has
no action form. No console error and no Content-Security-Policy violation on any of these pages. Screenshots go to
var/screenshots/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.integration.dashboard.deployments_world import SeededDeployments, remove_deployments, seed_deployments
from tests.support.browser import open_page, screenshot, sign_in
from tests.support.dashboard import create_staff
from verifier.db.models import Lease, LeaseStatus, StaffRole


@pytest.fixture
def seeded(engine: Engine) -> Iterator[SeededDeployments]:
    seeded = seed_deployments(engine, datetime.now(UTC))
    yield seeded
    remove_deployments(engine, seeded)


def test_browser_operator_revokes_a_lease_from_the_deployment_page(
    browser: Browser, served: str, engine: Engine, seeded: SeededDeployments
) -> None:
    operator = create_staff(engine, StaffRole.OPERATOR, prefix="olga")
    page, watch = open_page(browser, width=1400)
    sign_in(page, served, operator)

    page.click("nav >> text=Deployments")
    page.fill("#q", seeded.token)
    page.click("text=Apply")
    assert page.is_visible(f"text={seeded.live.name}")
    assert page.locator("table.deployments tbody tr").count() == 4
    screenshot(page, "deployments")

    page.click(f"text={seeded.live.name}")
    page.wait_for_url(f"{served}/deployments/{seeded.live.id}")
    assert page.text_content("h1") == seeded.live.name
    screenshot(page, "deployment")

    page.check("form[action$='/revoke-lease'] input[name=confirm]")
    page.click("text=Revoke lease")

    page.wait_for_url(f"{served}/deployments/{seeded.live.id}?done=revoked")
    assert "The lease was revoked" in (page.text_content("[role=status]") or "")
    assert page.is_visible(".timeline >> text=Lease revoked")
    assert page.is_visible(f".timeline >> text=by staff:{operator.username}")
    assert page.is_hidden("form[action$='/revoke-lease']")
    with Session(engine) as s:
        assert s.get_one(Lease, seeded.live.lease_id).status == LeaseStatus.REVOKED
    screenshot(page, "deployment-revoked")
    watch.assert_clean()


def test_browser_viewer_sees_the_pages_without_actions(
    browser: Browser, served: str, engine: Engine, seeded: SeededDeployments
) -> None:
    viewer = create_staff(engine, StaffRole.VIEWER, prefix="vera")
    page, watch = open_page(browser)
    sign_in(page, served, viewer)

    page.goto(f"{served}/deployments?q={seeded.token}&lease=live")
    assert page.locator("table.deployments tbody tr").count() == 2
    page.goto(f"{served}/deployments/{seeded.gpu.id}")
    assert page.is_visible("text=SWHardeningNeeded")
    assert page.locator("form.action").count() == 0
    page.goto(f"{served}/deployments?q=nothing-{seeded.token}")
    assert page.is_visible("text=No deployment matches these filters")
    screenshot(page, "deployments-empty")
    watch.assert_clean()
