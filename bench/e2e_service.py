"""End-to-end load: many simulated enclaves against the real stack on this machine, beside the floor of that stack.

PostgreSQL and Redis (the local servers), N Celery worker processes and M uvicorn API processes as child processes
(verifier.testing.devstack), data seeded through the admin API. The load generator is ``bench._loadgen``: raw
asyncio HTTP/1.1 keep-alive connections (uvloop), one per simulated enclave, hand-built request bytes. One op is
POST /v1/challenges -> bind a fresh quote (REPORTDATA = SHA-512(nonce || thumbprint), re-signed by the fake PKI's
attestation key) -> POST /v1/attestations with ``Prefer: wait=10`` -> a lease with the wrapped model key. Enclave keys
are EC P-384 unless ``--enclave-curve P-256``.

Modes: closed loop (``--concurrency N`` enclaves, each looping) or open loop (``--rate R``: ops started on a fixed
schedule whatever the completions, latency from the scheduled start, a bounded pool of ``--pool`` connections).

Each configuration (worker processes x API processes) runs twice in turn: Keyward, then **the floor**
(``bench.floor_stack``: the smallest honest implementation of the same operation on the same stack, perf-floor.md
F2) with the same process counts, driven by the same load generator and measured the same way. Every row reports
``server_cpu_ms_per_op`` and each Keyward row its ratio to the floor row beside it.

CPU per op = CPU seconds used during the measured window (utime + stime from ``/proc/<pid>/stat``) / ops completed
in it, per role:

* ``api``: the uvicorn process tree; ``workers``: the Celery worker process trees;
* ``redis``: every ``redis-server`` process (the server is shared: other users of it are counted too);
* ``postgres``: the bench database's own backends (their pids from ``pg_stat_activity``, ``datname`` = the run's
  throw-away database; a backend that exits inside the window loses its share) **plus** the server's auxiliary
  processes (postmaster, WAL writer, checkpointer, background writer, autovacuum launcher/workers: not attributable
  to one database, shared with other users). This is the PostgreSQL term of ``server_cpu_ms_per_op``.
  ``postgres_all`` (every postgres process on the machine, what the old harness summed) and ``postgres_db`` (the
  bench database's backends alone) are reported beside it: on a machine where other databases are busy,
  ``postgres_all`` overstates and ``postgres_db`` understates the service's PostgreSQL cost;
* ``load``: this process's CPU over the window (``time.process_time``): the load generator, reported as
  ``load_cpu_ms_per_op`` and not part of the server sum; ``load_user`` is its user-mode part (the rest is the
  kernel, e.g. the loopback delivery of the requests, charged to the sender: see ``bench._loadgen``).
  ``--loadgen-only DELAY_MS`` measures the generator alone against a canned server.

``server_cpu_ms_per_op`` = api + workers + postgres + redis. After each run every request is checked against the
database (none lost: every attestation the API answered 200/202 has a row and every 200 "accepted" an accepted row;
none pending or rejected) and the audit hash chain is verified (``verifier.audit.log.verify_chain`` for Keyward,
the same digest recomputed for the floor's own table); the harness exits 1 if any check fails.

    .venv/bin/python -m bench.e2e_service                    # 1,2 worker x 1,2 API processes, 8 enclaves, 20 s/row
    .venv/bin/python -m bench.e2e_service --quick            # 5 s per row
    .venv/bin/python -m bench.e2e_service --quick --json     # one JSON object: {"machine", "results", "floor", ...}
    .venv/bin/python -m bench.e2e_service --workers 1 --api-workers 1 --rate 150 --seconds 20   # open loop
    .venv/bin/python -m bench.e2e_service --workers 1 --api-workers 1 --concurrency 1           # one enclave
    .venv/bin/python -m bench.e2e_service --workers 1 --gpus 0,8 --quick --no-floor   # CPU, then CPU + 8 H100s

With ``--gpus N`` each attestation also carries N simulated H100 reports (GPU ``i`` re-signed by its attestation key
over ``gpu_nonce(nonce, thumbprint, i)``), each with its two RIMs and seven OCSP answers; the floor has no GPU path,
so floor rows are run for ``--gpus 0`` only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from bench import _loadgen
from bench._harness import X, machine
from bench.floor_stack import FloorStack, setup_database, status_counts, verify_floor_chain
from verifier.audit.log import verify_chain
from verifier.db.models import Attestation, AttestationStatus, Lease
from verifier.limits import MAX_SEATS
from verifier.testing.databases import ADMIN_URL, purge_keys, scratch_database
from verifier.testing.demo_data import seed_demo
from verifier.testing.devstack import DevStack, StackConfig, free_port

BROKER = os.environ.get("KEYWARD_BENCH_BROKER", "redis://127.0.0.1:6379/9")
ROLES = ("api", "workers", "postgres", "redis")


@dataclass(frozen=True)
class Load:
    """How the load generator drives a row."""

    concurrency: int = 8  # closed loop: enclaves; open loop: the most connections at once
    rate: float | None = None  # open loop: ops started per second
    seconds: float = 20.0
    curve: str = "P-384"
    gpus: int = 0


@dataclass
class Result:
    stack: str  # "keyward" or "floor"
    mode: str  # "closed" or "open"
    gpus: int
    workers: int
    api_workers: int
    concurrency: int
    offered_rate: float | None
    enclave_curve: str
    seconds: float
    completed: int
    failed: int
    lost: int
    ops_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    db_accepted: int
    db_other: int
    leases: int
    audit_events: int
    audit_chain_intact: bool
    server_cpu_ms_per_op: float
    load_cpu_ms_per_op: float
    #: CPU milliseconds per completed op by role (api, workers, postgres, redis, load) and PostgreSQL's split
    #: (postgres_db: the bench database's backends; postgres_aux: the server's own processes; postgres_all).
    cpu_ms_per_op: dict[str, float]
    floor_cpu_ms_per_op: float | None = None
    x_floor: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.lost or self.db_other) and self.audit_chain_intact


# --- CPU by role from /proc --------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process (None once it is gone), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm, rest = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            out[int(entry.name)] = (int(rest.split()[1]), comm.split("(", 1)[1])
    return out


@dataclass(frozen=True)
class Snapshot:
    cpu: dict[int, float]  # pid -> CPU seconds so far
    roles: dict[str, frozenset[int]]


class CpuProbe:
    """Snapshots of the CPU used so far by each role's processes (see the module docstring for the roles)."""

    def __init__(self, pids: dict[str, int], database: str) -> None:
        self.pids, self.database = pids, database
        self.admin = psycopg.connect(ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def close(self) -> None:
        self.admin.close()

    def __call__(self) -> Snapshot:
        procs = _processes()

        def tree(root: int) -> set[int]:
            found, frontier = {root}, {root}
            while frontier:
                frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - found
                found |= frontier
            return found

        activity = self.admin.execute("SELECT pid, datname, backend_type FROM pg_stat_activity").fetchall()
        own = self.admin.info.backend_pid
        postgres = {pid for pid, (_, comm) in procs.items() if comm.startswith("postgres")}
        client_backends = {pid for pid, _, kind in activity if kind == "client backend"}
        roles = {
            "api": tree(self.pids["api"]),
            "workers": set().union(*(tree(pid) for name, pid in self.pids.items() if name.startswith("worker-"))),
            "redis": {pid for pid, (_, comm) in procs.items() if comm.startswith("redis-server")},
            "postgres_all": postgres - {own},
            "postgres_db": {pid for pid, db, kind in activity if db == self.database and kind == "client backend"},
            # the postmaster is not in pg_stat_activity; every other non-client process is
            "postgres_aux": postgres - client_backends - {own},
        }
        wanted = set().union(*roles.values())
        cpu = {pid: c for pid in wanted if (c := _cpu_seconds(pid)) is not None}
        return Snapshot(cpu, {k: frozenset(v) for k, v in roles.items()})


def cpu_delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds each role used between two snapshots (a process that appeared counts from zero)."""
    out = {}
    for role in after.roles:
        pids = after.roles[role] | before.roles.get(role, frozenset())
        out[role] = sum(after.cpu.get(p, before.cpu.get(p, 0.0)) - before.cpu.get(p, 0.0) for p in pids)
    out["postgres"] = out["postgres_db"] + out["postgres_aux"]
    return out


# --- one row ----------------------------------------------------------------------------------------------------


def _drive(base_url: str, licence: str, model: str, load: Load, probe: CpuProbe) -> tuple[_loadgen.LoadResult, Any]:
    host, port = base_url.removeprefix("http://").split(":")
    flow = _loadgen.Flow(host, int(port), licence, model, curve=load.curve, gpus=load.gpus)
    rate = load.rate
    if rate is None:
        result = _loadgen.run(lambda: _loadgen.closed_loop(flow, load.concurrency, load.seconds, probe))
    else:
        result = _loadgen.run(lambda: _loadgen.open_loop(flow, rate, load.seconds, probe, pool=load.concurrency))
    return result, flow


def _result(
    stack: str,
    workers: int,
    api_workers: int,
    load: Load,
    run: _loadgen.LoadResult,
    flow: _loadgen.Flow,
    counts: tuple[int, int, int],
    chain: tuple[int, bool],
) -> Result:
    lat = run.latencies
    n = max(len(lat), 1)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    before, after = run.probes
    cpu = {role: 1000 * used / n for role, used in cpu_delta(before, after).items()}
    cpu["load"] = 1000 * run.cpu_seconds / n
    cpu["load_user"] = 1000 * run.cpu_user_seconds / n
    accepted, other, leases = counts
    lost = max(0, flow.stored - (accepted + other)) + max(0, flow.accepted - accepted)
    return Result(
        stack=stack,
        mode="closed" if load.rate is None else "open",
        gpus=load.gpus,
        workers=workers,
        api_workers=api_workers,
        concurrency=load.concurrency,
        offered_rate=load.rate,
        enclave_curve=load.curve,
        seconds=round(run.seconds, 2),
        completed=len(lat),
        failed=run.failed,
        lost=lost,
        ops_per_s=round(len(lat) / run.seconds, 1),
        p50_ms=round(q[49] * 1000, 2),
        p95_ms=round(q[94] * 1000, 2),
        p99_ms=round(q[98] * 1000, 2),
        db_accepted=accepted,
        db_other=other,
        leases=leases,
        audit_events=chain[0],
        audit_chain_intact=chain[1],
        server_cpu_ms_per_op=round(sum(cpu[r] for r in ROLES), 2),
        load_cpu_ms_per_op=round(cpu["load"], 3),
        cpu_ms_per_op={k: round(v, 3) for k, v in cpu.items()},
    )


def run_keyward(workers: int, api_workers: int, load: Load) -> Result:
    # This run's own broker keys: another benchmark or a test suite may share the Redis database.
    prefix = f"keyward-bench-{uuid.uuid4().hex[:12]}:"
    try:
        with scratch_database("keyward_bench") as url, tempfile.TemporaryDirectory(prefix="keyward-bench-") as tmp:
            config = StackConfig(
                workdir=Path(tmp),
                database_url=url,
                broker_url=BROKER,
                api_workers=api_workers,
                worker_processes=workers,
                beat=False,
                extra_env={
                    "KEYWARD_LOG_LEVEL": "WARNING",
                    "KEYWARD_BROKER_KEY_PREFIX": prefix,
                    # One licence drives the whole load: its per-licence limits would pace the benchmark.
                    "KEYWARD_LICENCE_REQUESTS_PER_MINUTE": "0",
                    "KEYWARD_LICENCE_STORED_BYTES_PER_HOUR": "0",
                    "KEYWARD_LICENCE_MAX_WAITING": "0",
                },
            )
            with DevStack(config) as stack:
                stack.wait_until_up()
                with httpx.Client(base_url=stack.base_url, timeout=30.0) as http:
                    demo = seed_demo(http, stack.bootstrap_admin(), Path(tmp), seats=MAX_SEATS)
                probe = CpuProbe(stack.pids(), url.rsplit("/", 1)[1])
                try:
                    run, flow = _drive(stack.base_url, demo.licence, demo.model, load, probe)
                finally:
                    probe.close()
                time.sleep(0.5)  # let a decision still in flight commit before the processes stop
            engine = create_engine(url)
            try:
                with Session(engine) as s:
                    query = select(Attestation.status, func.count()).group_by(Attestation.status)
                    by_status = dict(s.execute(query).all())
                    leases = s.scalar(select(func.count()).select_from(Lease)) or 0
                    check = verify_chain(s)
            finally:
                engine.dispose()
    finally:
        purge_keys(BROKER, prefix)
    accepted = by_status.pop(AttestationStatus.ACCEPTED, 0)
    counts = (accepted, sum(by_status.values()), leases)
    return _result("keyward", workers, api_workers, load, run, flow, counts, (check.events, check.intact))


def run_floor(workers: int, api_workers: int, load: Load) -> Result:
    prefix = f"keyward-bench-floor-{uuid.uuid4().hex[:12]}:"
    try:
        with scratch_database("keyward_floor") as url, tempfile.TemporaryDirectory(prefix="keyward-floor-") as tmp:
            stack = FloorStack(Path(tmp), url, BROKER, prefix, workers=workers, api_workers=api_workers)
            seed = setup_database(url, stack.secret, seats=MAX_SEATS)
            with stack:
                stack.wait_until_up()
                probe = CpuProbe(stack.pids(), url.rsplit("/", 1)[1])
                try:
                    run, flow = _drive(stack.base_url, seed.licence, seed.model, load, probe)
                finally:
                    probe.close()
                time.sleep(0.5)
            by_status, leases = status_counts(url)
            events, broken = verify_floor_chain(url)
    finally:
        purge_keys(BROKER, prefix)
    accepted = by_status.pop("accepted", 0)
    counts = (accepted, sum(by_status.values()), leases)
    return _result("floor", workers, api_workers, load, run, flow, counts, (events, broken is None))


# --- output -----------------------------------------------------------------------------------------------------


def loadgen_alone(load: Load, delay: float) -> dict[str, float]:
    """The load generator against ``_loadgen.canned_server`` (its own process, answering after ``delay`` s): the
    generator's CPU per op without the stack beside it."""
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_loadgen.canned_server, args=(port, delay))
    server.start()
    try:
        deadline = time.monotonic() + 30.0
        while True:  # until the server accepts connections (a spawned process imports for a while)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        flow = _loadgen.Flow("127.0.0.1", port, "kid.secret", "acme-llm", curve=load.curve)
        if load.rate is None:
            run = _loadgen.run(lambda: _loadgen.closed_loop(flow, load.concurrency, load.seconds, lambda: None))
        else:
            rate = load.rate
            run = _loadgen.run(lambda: _loadgen.open_loop(flow, rate, load.seconds, lambda: None))
    finally:
        server.terminate()
        server.join()
    n = max(len(run.latencies), 1)
    return {
        "server_delay_ms": delay * 1000,
        "ops_per_s": round(len(run.latencies) / run.seconds, 1),
        "load_cpu_ms_per_op": round(1000 * run.cpu_seconds / n, 3),
        "load_user_cpu_ms_per_op": round(1000 * run.cpu_user_seconds / n, 3),
        "failed": run.failed,
    }


def table(results: list[Result]) -> str:
    head = (
        "| stack | worker procs | API procs | load | ops/s | p50 ms | p99 ms | failed / lost "
        "| DB accepted / other / leases | audit chain | CPU ms/op API / workers / PG / Redis "
        f"| PG: bench DB / aux / all | **server ms/op** | load ms/op (user) | {X} floor |\n"
        "|---|---:|---:|---|---:|---:|---:|---|---|---|---|---|---:|---:|---:|\n"
    )
    rows = []
    for r in results:
        c = r.cpu_ms_per_op
        load = f"{r.concurrency} enclaves" if r.mode == "closed" else f"{r.offered_rate:g}/s open, pool {r.concurrency}"
        if r.gpus:
            load += f", {r.gpus} GPUs"
        ratio = f"{r.x_floor:.2f}{X}" if r.x_floor is not None else "—"
        rows.append(
            f"| {r.stack} | {r.workers} | {r.api_workers} | {load} | {r.ops_per_s:,.1f} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.failed} / {r.lost} | {r.db_accepted} / {r.db_other} / {r.leases} "
            f"| {r.audit_events} {'ok' if r.audit_chain_intact else 'BROKEN'} "
            f"| {' / '.join(f'{c[k]:.2f}' for k in ROLES)} "
            f"| {c['postgres_db']:.2f} / {c['postgres_aux']:.2f} / {c['postgres_all']:.2f} "
            f"| **{r.server_cpu_ms_per_op:.2f}** | {r.load_cpu_ms_per_op:.2f} ({c['load_user']:.2f}) | {ratio} |"
        )
    return head + "\n".join(rows)


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="worker process counts, comma separated")
    ap.add_argument("--api-workers", default="1,2", help="API (uvicorn) process counts, comma separated")
    ap.add_argument("--concurrency", type=int, default=8, help="closed loop: enclaves; open loop: connection pool")
    ap.add_argument("--rate", type=float, help="open loop: attestations started per second on a fixed schedule")
    ap.add_argument("--pool", type=int, help="open loop: the most connections at once (default 64)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help="5 s per row")
    ap.add_argument("--enclave-curve", choices=sorted(_loadgen.CURVES), default="P-384")
    ap.add_argument("--gpus", default="0", help="simulated H100s per attestation, comma separated (one row each)")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor rows")
    ap.add_argument("--floor-only", action="store_true", help="only the floor rows")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the markdown table")
    ap.add_argument(
        "--loadgen-only",
        type=float,
        metavar="DELAY_MS",
        help="no stack: the load generator against a canned server answering after DELAY_MS; print its CPU per op",
    )
    args = ap.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    concurrency = (args.pool or 64) if args.rate else args.concurrency
    if args.loadgen_only is not None:
        load = Load(concurrency, args.rate, seconds, args.enclave_curve)
        print(json.dumps(loadgen_alone(load, args.loadgen_only / 1000)))
        return
    results: list[Result] = []
    floors: list[Result] = []
    for gpus in _counts(args.gpus):
        load = Load(concurrency, args.rate, seconds, args.enclave_curve, gpus)
        for workers in _counts(args.workers):
            for api_workers in _counts(args.api_workers):
                runs: list[tuple[list[Result], Callable[[int, int, Load], Result]]] = []
                if not args.floor_only:
                    runs.append((results, run_keyward))
                if gpus == 0 and not args.no_floor:
                    runs.append((floors, run_floor))
                for into, runner in runs:
                    into.append(runner(workers, api_workers, load))
                    print(f"# {into[-1].stack} w={workers} a={api_workers}: done", file=sys.stderr)
                if results and floors and runs and len(runs) == 2:
                    service, floor = results[-1], floors[-1]
                    service.floor_cpu_ms_per_op = floor.floor_cpu_ms_per_op = floor.server_cpu_ms_per_op
                    floor.x_floor = 1.0
                    if floor.server_cpu_ms_per_op > 0:
                        service.x_floor = round(service.server_cpu_ms_per_op / floor.server_cpu_ms_per_op, 2)
    info = machine(["fastapi", "uvicorn", "celery", "sqlalchemy", "psycopg", "cryptography"])
    info["cpus"] = str(os.cpu_count())
    info["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if args.json:
        doc = {
            "machine": info,
            "seconds_per_row": seconds,
            "results": [asdict(r) for r in results],
            "floor": [asdict(r) for r in floors],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"machine: {info['cpu']}, {info['cpus']} CPUs, load {info['loadavg']}; {seconds:g} s per row after 1 s")
        ordered = sorted(
            results + floors, key=lambda r: (r.gpus, r.workers, r.api_workers, r.stack != "keyward")
        )  # each floor row under its Keyward row
        print(table(ordered))
    if bad := [r for r in results + floors if not r.ok]:
        names = ", ".join(f"{r.stack} w={r.workers} a={r.api_workers}" for r in bad)
        print(f"FAILED ({names}): failed, lost or non-accepted requests, or a broken audit chain", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
