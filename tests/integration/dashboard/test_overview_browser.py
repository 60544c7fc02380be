"""The overview and audit log pages in a real browser (headless chromium via Playwright) on a small seeded fleet
(:func:`verifier.testing.fleet.seed_fleet`) in a database of its own: the charts draw (Chart.js, vendored) with no
console error and no Content-Security-Policy violation, their tables fold away once drawn, the audit page shows a
verified chain, and one edited audit row shows where the chain breaks. Screenshots under var/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.orm import Session

from tests.support.browser import open_page, screenshot, serve, sign_in
from tests.support.dashboard import StaffLogin, create_staff
from tests.support.databases import migrated_database
from verifier.app import create_app
from verifier.audit.log import AuditTag, Entry, record_events
from verifier.config import Settings
from verifier.db.models import AuditEvent, StaffRole
from verifier.db.session import engine_for
from verifier.testing.fleet import seed_fleet


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[str, Engine]]:
    with migrated_database("keyward_overview_browser") as url:
        engine = create_engine(url)
        now = datetime.now(UTC)
        seed_fleet(engine, now=now, deployments=60, attestations=1200, customers=8)
        with Session(engine) as s:  # a few audit events besides the staff accounts'
            entries = [
                Entry(AuditTag.LEASE_REVOKED, "staff:olivia", "lease", "5f1c0e7e-2b1d-4a7a-9d55-1c2b3a4d5e6f",
                      {"reason": "customer request", "deployment": "fleet-prod-00012"}),
                Entry(AuditTag.CUSTOMER_STATUS_CHANGED, "staff:amir", "customer", "fleet-customer-003",
                      {"from": "active", "to": "suspended"}),
                Entry(AuditTag.CREDENTIAL_ISSUED, "admin:bootstrap", "credential", "c-8842", {"scopes": ["enclave"]}),
            ]  # fmt: skip
            record_events(s, entries, at=now)
            s.commit()
        yield url, engine
        engine.dispose()
        engine_for(url).dispose()


@pytest.fixture(scope="module")
def served(fleet: tuple[str, Engine]) -> Iterator[str]:
    with serve(create_app(Settings(database_url=fleet[0]))) as base_url:
        yield base_url + "/dashboard"


@pytest.fixture(scope="module")
def admin(fleet: tuple[str, Engine]) -> StaffLogin:
    return create_staff(fleet[1], StaffRole.ADMIN, prefix="olivia")


def test_browser_overview_draws_the_charts_cleanly(browser: Browser, served: str, admin: StaffLogin) -> None:
    page, watch = open_page(browser, width=1360, height=900)
    sign_in(page, served, admin)

    for chart in ("timeline", "reasons", "tcb", "collateral"):
        assert page.is_visible(f"#chart-{chart}"), chart
    assert page.evaluate("() => document.querySelectorAll('details.numbers[open]').length") == 0
    assert page.evaluate("() => typeof Chart !== 'undefined' && Object.keys(Chart.instances).length") == 4
    screenshot(page, "overview")
    watch.assert_clean()
    assert watch.csp_violations() == []


def test_browser_overview_lists_deployments_behind_the_evaluation_number(
    browser: Browser, served: str, admin: StaffLogin
) -> None:
    page, watch = open_page(browser, width=1360, height=900)
    sign_in(page, served, admin)

    page.click("text=Live deployments on a TCB evaluation number about to stop being accepted")

    rows = page.locator("details.warning-group[open]:has-text('evaluation number') tbody tr")
    assert rows.count() > 0
    assert rows.first.locator("td.num .tag-warn").text_content() == "#17"
    assert page.is_visible("text=#18")
    screenshot(page, "overview-eval-number")
    watch.assert_clean()
    assert watch.csp_violations() == []


def test_browser_overview_30_days(browser: Browser, served: str, admin: StaffLogin) -> None:
    page, watch = open_page(browser, width=1360, height=900)
    sign_in(page, served, admin)

    page.click("text=Last 30 days")

    assert page.url == served + "/?period=30d"
    assert page.is_visible("#chart-timeline")
    screenshot(page, "overview-30d")
    watch.assert_clean()


def test_browser_overview_without_javascript_shows_the_tables(browser: Browser, served: str, admin: StaffLogin) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    sign_in(page, served, admin)

    assert page.is_hidden("#chart-timeline")
    assert page.is_visible("text=Rejections by reason code")
    assert page.locator("details.numbers[open] table").count() == 4
    screenshot(page, "overview-no-js")
    context.close()


def test_browser_audit_shows_a_verified_chain(browser: Browser, served: str, admin: StaffLogin) -> None:
    page, watch = open_page(browser, width=1360, height=900)
    sign_in(page, served, admin)

    page.click("nav.nav >> text=Audit log")

    assert page.url == served + "/audit"
    assert page.text_content("#chain-title") == "The hash chain verifies"
    page.select_option("#tag", "admin:lease:revoked")
    page.click("text=Filter")
    assert page.locator("tbody tr").count() == 1
    page.click("text=Clear")
    screenshot(page, "audit")
    watch.assert_clean()


def test_browser_audit_says_what_its_checkpoint_cannot_see(browser: Browser, served: str, admin: StaffLogin) -> None:
    page, watch = open_page(browser, width=1360, height=900)
    sign_in(page, served, admin)
    page.goto(served + "/audit")  # the process has verified the chain in full by now

    page.reload()

    assert page.text_content("#chain-title") == "The hash chain verifies"
    assert page.is_visible("p.chain-note")
    page.click("text=Verify the whole chain now")
    assert page.url == served + "/audit?verify=full"
    assert page.is_hidden("p.chain-note")
    page.goto(served + "/audit?tag=admin:lease:revoked")  # a short page to look at
    assert page.is_visible("p.chain-note")
    screenshot(page, "audit-checkpoint")
    watch.assert_clean()
    assert watch.csp_violations() == []


def test_browser_audit_shows_where_an_edited_chain_breaks(
    browser: Browser, served: str, admin: StaffLogin, fleet: tuple[str, Engine]
) -> None:
    """Last in this module: it breaks the module database's chain for good."""
    page, watch = open_page(browser, width=1360, height=900)
    sign_in(page, served, admin)
    with Session(fleet[1]) as s:
        edited = s.scalars(select(AuditEvent.id).where(AuditEvent.tag == AuditTag.LEASE_REVOKED.value)).one()
        s.execute(update(AuditEvent).where(AuditEvent.id == edited).values(data={"reason": "nothing to see"}))
        s.commit()

    # A full check: the served process verified the chain earlier, and an edit below its checkpoint shows only then.
    page.goto(served + "/audit?verify=full")

    assert page.text_content("#chain-title") == f"The hash chain breaks at event #{edited}"
    assert page.is_visible("tr.row-broken")
    screenshot(page, "audit-broken")
    watch.assert_clean()
