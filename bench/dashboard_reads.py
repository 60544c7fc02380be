"""The staff dashboard's reads on a large fleet: the overview and deployments pages (first, middle, last; filtered;
searched) with 100,000 attestations and 10,000 deployments seeded (:func:`verifier.testing.fleet.seed_fleet`).

Times the service calls (:mod:`verifier.dashboard.service`: the SQL, the rows into frozen dataclasses), not the
HTML: the pages do not exist yet, and their rendering is measured when they do. Each call runs in its own
read-only transaction on a fresh session, as a request would. Runs on a scratch PostgreSQL database (created,
migrated, seeded, VACUUM ANALYZEd and dropped); prints a markdown table of p50 / p95 / max in milliseconds, and with
``--explain`` the plan of each deployments-page statement.

    python -m bench.dashboard_reads [--deployments 10000] [--attestations 100000] [--runs 50] [--explain]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from verifier.dashboard.service import DeploymentQuery, DeploymentSort, LeaseState, list_deployments, overview
from verifier.testing.databases import scratch_database
from verifier.testing.fleet import seed_fleet

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


def _cursors(engine: Engine, sort: DeploymentSort, query: DeploymentQuery) -> list[str | None]:
    """The cursor of every page of the list, walked once (the first page's is None)."""
    cursors: list[str | None] = [None]
    with Session(engine) as s:
        while True:
            page = list_deployments(s, NOW, query, sort=sort, cursor=cursors[-1])
            if page.next_cursor is None:
                return cursors
            cursors.append(page.next_cursor)


def _page(query: DeploymentQuery, sort: DeploymentSort, cursor: str | None) -> Callable[[Session], object]:
    return lambda s: list_deployments(s, NOW, query, sort=sort, cursor=cursor)


def _time(engine: Engine, fn: Callable[[Session], object], runs: int) -> list[float]:
    with Session(engine) as s:  # warm up: the statement cache and the buffer pool
        fn(s)
    out = []
    for _ in range(runs):
        with Session(engine) as s:
            start = time.perf_counter()
            fn(s)
            out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--attestations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()

    with scratch_database("keyward_bench_dashboard") as url:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        engine = create_engine(url)
        started = time.perf_counter()
        fleet = seed_fleet(engine, now=NOW, deployments=args.deployments, attestations=args.attestations)
        seeded_s = time.perf_counter() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # what autovacuum leaves a settled table in: index-only scans

        cases: list[tuple[str, Callable[[Session], object]]] = [("overview", lambda s: overview(s, NOW))]
        lists = [
            ("by last attested", DeploymentSort.LAST_ATTESTED, DeploymentQuery()),
            ("by customer", DeploymentSort.CUSTOMER, DeploymentQuery()),
            (
                "by name, live leases, amd-snp",
                DeploymentSort.NAME,
                DeploymentQuery(platform="amd-snp", lease_state=LeaseState.LIVE),
            ),
            ("search 'eu-0'", DeploymentSort.LAST_ATTESTED, DeploymentQuery(search="eu-0")),
        ]
        for label, sort, query in lists:
            cursors = _cursors(engine, sort, query)
            picks = {"first": cursors[0], "middle": cursors[len(cursors) // 2], "last": cursors[-1]}
            if len(cursors) == 1:
                picks = {"only": None}
            cases.extend(
                (f"deployments {label}: {where} page of {len(cursors)}", _page(query, sort, cursor))
                for where, cursor in picks.items()
            )

        print(
            f"\n{fleet.deployments} deployments, {fleet.attestations} attestations, {fleet.customers} customers "
            f"(seeded in {seeded_s:.1f} s); {args.runs} runs each; 50 rows a page\n"
        )
        print("| read | p50 ms | p95 ms | max ms |")
        print("|---|---:|---:|---:|")
        for label, fn in cases:
            ms = sorted(_time(engine, fn, args.runs))
            p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
            print(f"| {label} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[-1]:.1f} |")
        if args.explain:
            _explain(engine)
        engine.dispose()


def _explain(engine: Engine) -> None:
    """EXPLAIN ANALYZE of the first deployments page in each order, by echoing the statement the service runs."""
    from verifier.dashboard import repository  # noqa: PLC0415 (only for --explain)

    with Session(engine) as s:
        for sort in DeploymentSort:
            stmt = repository._deployment_select(NOW).order_by(*repository._order(sort)).limit(51)
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = s.execute(text("EXPLAIN ANALYZE " + sql)).scalars().all()
            print(f"\n-- {sort.value}\n" + "\n".join(plan))


if __name__ == "__main__":
    main()
