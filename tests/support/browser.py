"""The browser harness of the dashboard tests: the app served by a real uvicorn, Debian's chromium driven by
Playwright (headless; Playwright's own browser downloads are not used), a watch that fails a test on any console
error, page error or Content-Security-Policy violation, and screenshots under ``var/screenshots/`` (git-ignored),
which is how the layout is judged.

    def test_x(browser: Browser, served: str) -> None:
        page, watch = open_page(browser)
        page.goto(served + "/dashboard/login")
        screenshot(page, "login")
        watch.assert_clean()

Tests using :func:`browser` are skipped, saying why, only where ``/usr/bin/chromium`` is missing (CI installs it:
``scripts/browser.sh``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.support.dashboard import StaffLogin
from tests.support.tools import ROOT

CHROMIUM: Final = Path("/usr/bin/chromium")
SCREENSHOTS: Final = ROOT / "var" / "screenshots"
#: Every Content-Security-Policy violation of the page, as a console error the watch sees (installed before any
#: script of the page runs; Playwright's init scripts are not subject to the page's CSP).
_CSP_LISTENER: Final = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free local port, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless chromium for the whole test session."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian's chromium package; scripts/browser.sh installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@dataclass
class PageWatch:
    """What went wrong in a page: console errors (CSP violations among them), uncaught page errors."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "CSP violation" in e or "Content Security Policy" in e]

    def assert_clean(self) -> None:
        assert self.errors == [], "the page logged errors:\n" + "\n".join(self.errors)


def open_page(browser: Browser, *, width: int = 1280, height: int = 800) -> tuple[Page, PageWatch]:
    """A new page in its own context (own cookies), watched by a :class:`PageWatch`."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(_CSP_LISTENER)
    page = context.new_page()
    watch = PageWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    return page, watch


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``var/screenshots/<name>.png``; returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, served: str, login: StaffLogin) -> None:
    """Sign ``login`` in through the dashboard's form (``served``: its base URL) and wait for the overview."""
    page.goto(served + "/login")
    page.fill("#username", login.username)
    page.fill("#password", login.password)
    page.click("button[type=submit]")
    page.wait_for_url(served + "/")
