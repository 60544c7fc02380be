"""The staff dashboard's pages rendered through the ASGI app, signed in, on a large fleet: the overview
(``/dashboard/``), the deployments list (``/dashboard/deployments``, first page and a search), a deployment's detail
(``/dashboard/deployments/{id}``, the busiest), an attestation's detail, the customers and models lists and the
busiest deployment's customer and model pages, and the audit log (``/dashboard/audit``), with 100,000 attestations,
10,000 deployments and their ~185,000 hash-chained audit events seeded
(:func:`verifier.testing.fleet.seed_fleet`). Not a timed test: it prints a markdown table of p50 / p95 / max in
milliseconds against the 150 ms p95 target.

Each request goes through a TestClient on :func:`verifier.app.create_app` (routing, the session check, the service
call, the template, the security headers), as a signed-in viewer. The overview is timed twice: as served (the
API process keeps it :data:`~verifier.dashboard.overview_cache.DEFAULT_TTL`; a page view within that reads the
kept one) and recomputed on every request (the cache cleared before each: what one view in every TTL costs). The
audit log is timed as served (the process verifies the chain in full once, on the warm-up view, then only the events
after its checkpoint) and with ``verify=full`` (the whole chain walked: the first view after a start, or a staff
member asking), the latter ``--full-runs`` times. A page this branch does not serve (404) is reported as such, not
timed.

Runs on a scratch PostgreSQL database (created, migrated, seeded, VACUUM ANALYZEd and dropped).

    python -m bench.dashboard_pages [--deployments 10000] [--attestations 100000] [--runs 50] [--full-runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text

from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import Attestation, Deployment, Entitlement, StaffRole
from verifier.db.session import Session, engine_for
from verifier.staff.service import create_staff_user
from verifier.testing.databases import scratch_database
from verifier.testing.fleet import seed_fleet

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 150.0
USERNAME, PASSWORD = "bench-viewer", "bench-password-not-secret"


def _sign_in(client: TestClient) -> None:
    form = client.get("/dashboard/login").text
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post("/dashboard/login", data={"username": USERNAME, "password": PASSWORD, "csrf_token": token})
    if response.status_code != 200 or response.url.path != "/dashboard/":
        raise SystemExit(f"sign-in failed: {response.status_code} {response.url}")


def _dashboard_app(app: FastAPI) -> FastAPI:
    """The dashboard application mounted in ``app`` (its state holds the overview cache)."""
    for route in app.routes:
        if getattr(route, "path", None) == "/dashboard":
            mounted = getattr(route, "app", None)
            if isinstance(mounted, FastAPI):
                return mounted
    raise SystemExit("no dashboard mounted at /dashboard")


def _time(client: TestClient, path: str, runs: int, before: Callable[[], None]) -> list[float] | int:
    before()
    first = client.get(path)  # warm up: the statement cache, the buffer pool, the template
    if first.status_code != 200:
        return first.status_code
    out = []
    for _ in range(runs):
        before()
        start = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--attestations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--full-runs", type=int, default=5, help="requests of the audit log's full walk")
    args = parser.parse_args()

    with scratch_database("keyward_bench_pages") as url:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        engine = create_engine(url)
        started = time.perf_counter()
        now = datetime.now(UTC)  # the app reads the real clock: the fleet is seeded up to now
        fleet = seed_fleet(engine, now=now, deployments=args.deployments, attestations=args.attestations)
        with Session(engine) as s:
            create_staff_user(s, USERNAME, PASSWORD, StaffRole.VIEWER, actor="bench", now=now)
            s.commit()
            busiest = s.execute(
                select(Attestation.deployment_id)
                .where(Attestation.deployment_id.is_not(None))
                .group_by(Attestation.deployment_id)
                .order_by(func.count().desc())
                .limit(1)
            ).scalar_one()
            rejected = s.scalars(
                select(Attestation.id).where(Attestation.status == "rejected").order_by(Attestation.decided_at.desc())
            ).first()
            deployment = s.get_one(Deployment, busiest)
            name = deployment.name
            entitlement = s.get_one(Entitlement, deployment.entitlement_id)
            customer, model = entitlement.customer_id, entitlement.model_id
        seeded_s = time.perf_counter() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))

        app = create_app(Settings(database_url=url))
        rows: list[tuple[str, list[float] | int]] = []
        with TestClient(app) as client:
            _sign_in(client)
            dashboard = _dashboard_app(app)

            def clear() -> None:
                cache = getattr(dashboard.state, "overview_cache", None)
                if cache is not None:
                    cache.clear()

            def keep() -> None:
                return None

            rows.append(("overview, as served (kept up to 30 s)", _time(client, "/dashboard/", args.runs, keep)))
            rows.append(("overview, recomputed every request", _time(client, "/dashboard/", args.runs, clear)))
            rows.append(("overview 30 days, recomputed", _time(client, "/dashboard/?period=30d", args.runs, clear)))
            rows.append(("deployments list, first page", _time(client, "/dashboard/deployments", args.runs, keep)))
            search = f"/dashboard/deployments?q={name[-5:]}"
            rows.append(("deployments list, a search", _time(client, search, args.runs, keep)))
            detail = f"/dashboard/deployments/{busiest}"
            rows.append(("a deployment's detail (its busiest)", _time(client, detail, args.runs, keep)))
            rows.append(
                ("an attestation's detail", _time(client, f"/dashboard/attestations/{rejected}", args.runs, keep))
            )
            rows.append(("customers list, first page", _time(client, "/dashboard/customers", args.runs, keep)))
            rows.append(
                (
                    "a customer's page (the busiest's)",
                    _time(client, f"/dashboard/customers/{customer}", args.runs, keep),
                )
            )
            rows.append(("models list", _time(client, "/dashboard/models", args.runs, keep)))
            rows.append(
                ("a model's page (the busiest's)", _time(client, f"/dashboard/models/{model}", args.runs, keep))
            )
            rows.append(
                ("audit log, as served (from the checkpoint)", _time(client, "/dashboard/audit", args.runs, keep))
            )
            full = _time(client, "/dashboard/audit?verify=full", args.full_runs, keep)
            rows.append((f"audit log, whole chain walked (verify=full, {args.full_runs} runs)", full))
        engine.dispose()
        engine_for(url).dispose()

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{fleet.deployments} deployments, {fleet.attestations} attestations, {fleet.customers} customers "
        f"(seeded in {seeded_s:.1f} s); {args.runs} requests each, signed in, through the ASGI app; "
        f"{os.cpu_count()} CPUs, load average {load} at the end (1 / 5 / 15 min)\n"
    )
    print(f"| page | p50 ms | p95 ms | max ms | p95 < {TARGET_MS:.0f} ms |")
    print("|---|---:|---:|---:|---|")
    for label, result in rows:
        if isinstance(result, int):
            print(f"| {label} | — | — | — | not served on this branch (HTTP {result}) |")
            continue
        ms = sorted(result)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        verdict = "yes" if p95 < TARGET_MS else "**no**"
        print(f"| {label} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[-1]:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
