"""The dashboard tests' fixtures: headless chromium from the browser harness (tests/support/browser.py)."""

from tests.support.browser import browser

__all__ = ["browser"]
