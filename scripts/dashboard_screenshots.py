"""The README's dashboard screenshots, made the same way every time: a scratch PostgreSQL database with a small seeded
fleet (:func:`verifier.testing.fleet.seed_fleet`) and one customer's real decisions (simulated TDX with simulated
H100s, one rejected for its MRTD: the browser tests' world), the app served by uvicorn, Debian's chromium driven by
Playwright, signed in as a viewer. Written as JPEG (small enough to commit) to ``docs/images/``.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/images]

Needs PostgreSQL (``.ci/run`` or ``scripts/services.sh`` starts it) and ``/usr/bin/chromium`` (``scripts/browser.sh``).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KEYWARD_BROKER_KEY_PREFIX", "keyward-screenshots:")  # the test helpers' namespace in Redis

from tests.integration.dashboard.attestation_world import decide_world  # noqa: E402
from tests.support.browser import CHROMIUM, serve  # noqa: E402
from tests.support.dashboard import create_staff  # noqa: E402
from tests.support.databases import migrated_database  # noqa: E402
from verifier.app import create_app  # noqa: E402
from verifier.config import Settings  # noqa: E402
from verifier.db.models import StaffRole  # noqa: E402
from verifier.db.session import engine_for  # noqa: E402
from verifier.testing.fleet import seed_fleet  # noqa: E402

WIDTH, HEIGHT = 1360, 900
QUALITY = 72  # JPEG quality: text stays sharp, each image ~100-250 KB


def _shoot(page: Page, path: Path, *, max_height: int) -> None:
    height = min(max_height, int(page.evaluate("() => document.documentElement.scrollHeight")))
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": height}
    if path.suffix == ".png":  # --png: lossless, to look at
        page.screenshot(path=str(path), full_page=True, clip=clip)
    else:
        page.screenshot(path=str(path), type="jpeg", quality=QUALITY, full_page=True, clip=clip)
    print(f"{path}: {path.stat().st_size // 1024} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--png", action="store_true", help="lossless PNG instead of JPEG (to look at, not to commit)")
    args = parser.parse_args()
    suffix = ".png" if args.png else ".jpg"
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/browser.sh")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with migrated_database("keyward_screenshots") as url:
        engine = create_engine(url)
        seed_fleet(engine, now=datetime.now(UTC), deployments=120, attestations=4000, customers=12)
        decided = decide_world(engine)
        viewer = create_staff(engine, StaffRole.VIEWER, prefix="support")
        try:
            with serve(create_app(Settings(database_url=url))) as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
                page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                page.goto(base + "/dashboard/login")
                page.fill("#username", viewer.username)
                page.fill("#password", viewer.password)
                page.click("button[type=submit]")
                page.wait_for_url(base + "/dashboard/")
                page.wait_for_function("() => typeof Chart !== 'undefined' && Object.keys(Chart.instances).length > 0")
                page.wait_for_timeout(500)  # the charts' entry animation
                _shoot(page, out / f"dashboard-overview{suffix}", max_height=1500)
                page.goto(f"{base}/dashboard/attestations/{decided.rejected_mrtd}")
                _shoot(page, out / f"dashboard-attestation{suffix}", max_height=1300)
                browser.close()
        finally:
            engine.dispose()
            engine_for(url).dispose()


if __name__ == "__main__":
    main()
