"""End-to-end load: many simulated enclaves against the real stack on this machine.

PostgreSQL and Redis (the local servers), N Celery worker processes and uvicorn API workers as child processes
(verifier.testing.devstack), data seeded through the admin API. Each simulated enclave loops: POST /v1/challenges
-> bind a fresh key (REPORTDATA = SHA-512(nonce || thumbprint), the quote re-signed by the fake PKI's attestation
key) -> POST /v1/attestations with ``Prefer: wait`` -> a lease with the wrapped model key. One op = that round trip.
At the end every request is checked against the database: none lost, none pending, none rejected.

    .venv/bin/python -m bench.e2e_service                     # 1 and 2 worker processes, 20 s each
    .venv/bin/python -m bench.e2e_service --quick             # 5 s each
    .venv/bin/python -m bench.e2e_service --workers 2 --concurrency 16 --seconds 30 --json
    .venv/bin/python -m bench.e2e_service --workers 1 --gpus 0,8 --quick   # CPU only, then CPU + 8 simulated H100s

With ``--gpus N`` each attestation also carries N simulated H100 reports (GPU ``i`` re-signed by its attestation key
over ``gpu_nonce(nonce, thumbprint, i)``), each with its two RIMs and seven OCSP answers, decided in one composite
decision.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from joserfc import jwk
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from bench._harness import machine
from verifier.db.models import Attestation, AttestationStatus, Lease
from verifier.keywrap.enclave import expected_report_data, gpu_nonce, parse_enclave_jwk
from verifier.simulation.intel_pki import Evidence, QuoteOptions, default_pki
from verifier.simulation.nvidia_options import GpuOptions
from verifier.simulation.nvidia_pki import default_nvidia_pki
from verifier.testing.databases import purge_keys, scratch_database
from verifier.testing.demo_data import seed_demo
from verifier.testing.devstack import DevStack, StackConfig

BROKER = os.environ.get("KEYWARD_BENCH_BROKER", "redis://127.0.0.1:6379/9")
KEYS = 64  # enclave keys reused round-robin (key generation is the enclave's cost, not Keyward's)


@dataclass(frozen=True)
class Result:
    gpus: int
    workers: int
    api_workers: int
    concurrency: int
    seconds: float
    completed: int
    failed: int
    ops_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    db_accepted: int
    db_other: int
    leases: int
    #: CPU milliseconds per completed op: API, Celery workers, PostgreSQL (all of it), this load generator.
    cpu_ms_per_op: dict[str, float]


class Enclaves:
    """Keys and genuine template evidence (a quote, ``gpus`` GPU reports); each attestation re-binds them to (nonce,
    key)."""

    def __init__(self, gpus: int = 0) -> None:
        self.pki = default_pki()
        self.template: Evidence = self.pki.build(QuoteOptions())
        self.keys = [jwk.ECKey.generate_key("P-256", private=True).as_dict(private=False) for _ in range(KEYS)]
        self.parsed = [parse_enclave_jwk(k) for k in self.keys]
        self.gpu_pki = default_nvidia_pki()
        self.gpus = [self.gpu_pki.build(GpuOptions(device_index=i)) for i in range(gpus)]
        self.gpu_items = [g.evidence_item(i, carry_collateral=True) for i, g in enumerate(self.gpus)]

    def request(self, i: int, nonce: str, model: str) -> dict[str, object]:
        k = i % KEYS
        raw_nonce = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        quote = self.pki.rebind(self.template, expected_report_data(raw_nonce, self.parsed[k]))
        gpus = [
            {
                **item,
                "evidence": base64.b64encode(
                    self.gpu_pki.rebind(ev, gpu_nonce(raw_nonce, self.parsed[k].thumbprint, i))
                ).decode(),
            }
            for i, (ev, item) in enumerate(zip(self.gpus, self.gpu_items, strict=True))
        ]
        return {
            "nonce": nonce,
            "model": model,
            "deployment": f"bench-{i}",
            "enclave_key": self.keys[k],
            "evidence": [
                {
                    "type": "intel-tdx",
                    "evidence": base64.b64encode(quote).decode(),
                    "collateral": self.template.collateral_json,
                },
                *gpus,
            ],
        }


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (0 once it is gone), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
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


def cpu_by_role(stack: DevStack) -> dict[str, float]:
    """CPU seconds so far of the API (uvicorn and its worker processes), the Celery workers, every PostgreSQL
    process on this machine and this load generator: where the machine's two cores go."""
    procs = _processes()

    def tree(root: int) -> set[int]:
        found, frontier = {root}, {root}
        while frontier:
            frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - found
            found |= frontier
        return found

    pids = stack.pids()
    api = tree(pids["api"])
    workers = set().union(*(tree(pid) for name, pid in pids.items() if name.startswith("worker-")))
    postgres = {pid for pid, (_, comm) in procs.items() if comm.startswith("postgres")}
    return {
        "api": sum(map(_cpu_seconds, api)),
        "workers": sum(map(_cpu_seconds, workers)),
        "postgres": sum(map(_cpu_seconds, postgres)),
        "load": time.process_time(),
    }


async def load(
    base_url: str,
    licence: str,
    model: str,
    concurrency: int,
    seconds: float,
    probe: Callable[[], dict[str, float]],
    gpus: int = 0,
) -> tuple[list[float], int, dict[str, float]]:
    enclaves = Enclaves(gpus)
    headers = {"Authorization": f"Bearer {licence}"}
    latencies: list[float] = []
    failed = 0
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as http:

        async def one() -> bool:
            i = next(counter)
            nonce = (await http.post("/v1/challenges", headers=headers)).json()["nonce"]
            body = enclaves.request(i, nonce, model)
            r = await http.post("/v1/attestations", json=body, headers={**headers, "Prefer": "wait=10"})
            return r.status_code == 200 and r.json().get("status") == "accepted"

        async def loop(deadline: float) -> None:
            nonlocal failed
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    ok = await one()
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    failed += 1

        await loop(time.perf_counter() + 1.0)  # warm-up: connections, worker caches, imports
        latencies.clear()
        failed = 0
        before = probe()
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(loop(deadline) for _ in range(concurrency)))
        after = probe()
    return latencies, failed, {role: after[role] - before[role] for role in after}


def run(workers: int, api_workers: int, concurrency: int, seconds: float, gpus: int = 0) -> Result:
    # This run's own broker keys: another benchmark or a test suite may share the Redis database.
    prefix = f"keyward-bench-{uuid.uuid4().hex[:12]}:"
    try:
        return _run(workers, api_workers, concurrency, seconds, prefix, gpus)
    finally:
        purge_keys(BROKER, prefix)


def _run(workers: int, api_workers: int, concurrency: int, seconds: float, prefix: str, gpus: int) -> Result:
    with scratch_database("keyward_bench") as url, tempfile.TemporaryDirectory(prefix="keyward-bench-") as tmp:
        config = StackConfig(
            workdir=Path(tmp),
            database_url=url,
            broker_url=BROKER,
            api_workers=api_workers,
            worker_processes=workers,
            beat=False,
            extra_env={"KEYWARD_LOG_LEVEL": "WARNING", "KEYWARD_BROKER_KEY_PREFIX": prefix},
        )
        with DevStack(config) as stack:
            stack.wait_until_up()
            with httpx.Client(base_url=stack.base_url, timeout=30.0) as http:
                demo = seed_demo(http, stack.bootstrap_admin(), Path(tmp), seats=10**6)
            started = time.perf_counter()
            lat, failed, cpu = asyncio.run(
                load(stack.base_url, demo.licence, demo.model, concurrency, seconds, lambda: cpu_by_role(stack), gpus)
            )
            elapsed = time.perf_counter() - started - 1.0
        engine = create_engine(url)
        with Session(engine) as s:
            by_status = dict(s.execute(select(Attestation.status, func.count()).group_by(Attestation.status)).all())
            leases = s.scalar(select(func.count()).select_from(Lease)) or 0
        engine.dispose()
    accepted = by_status.pop(AttestationStatus.ACCEPTED, 0)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return Result(
        gpus=gpus,
        workers=workers,
        api_workers=api_workers,
        concurrency=concurrency,
        seconds=round(elapsed, 1),
        completed=len(lat),
        failed=failed,
        ops_s=len(lat) / elapsed,
        p50_ms=q[49] * 1000,
        p95_ms=q[94] * 1000,
        p99_ms=q[98] * 1000,
        db_accepted=accepted,
        db_other=sum(by_status.values()),
        leases=leases,
        cpu_ms_per_op={role: round(1000 * used / max(len(lat), 1), 2) for role, used in cpu.items()},
    )


def table(results: list[Result]) -> str:
    head = "| GPUs | worker procs | API workers | concurrent enclaves | attest+release/s | p50 ms | p95 ms | p99 ms "
    head += "| failed "
    head += "| DB: accepted / other / leases | CPU ms per op: API / workers / PostgreSQL / load |\n"
    head += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n"
    rows = [
        f"| {r.gpus} | {r.workers} | {r.api_workers} | {r.concurrency} | {r.ops_s:,.0f} | {r.p50_ms:.1f} "
        f"| {r.p95_ms:.1f} "
        f"| {r.p99_ms:.1f} | {r.failed} | {r.db_accepted} / {r.db_other} / {r.leases} "
        f"| {' / '.join(f'{r.cpu_ms_per_op[k]:.1f}' for k in ('api', 'workers', 'postgres', 'load'))} |"
        for r in results
    ]
    return head + "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="worker process counts to run, comma separated")
    ap.add_argument("--api-workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=8, help="simulated enclaves attesting at once")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--quick", action="store_true", help="5 s per row")
    ap.add_argument("--gpus", default="0", help="simulated H100s per attestation, comma separated (one row each)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    results = [
        run(int(w), args.api_workers, args.concurrency, seconds, int(g))
        for g in args.gpus.split(",")
        for w in args.workers.split(",")
    ]
    info = machine(["fastapi", "uvicorn", "celery", "sqlalchemy", "psycopg"])
    if args.json:
        print(json.dumps({"machine": info, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print(f"machine: {info.get('cpu', '?')}, {os.cpu_count()} CPUs; {seconds:.0f} s per row after 1 s warm-up")
        print(table(results))
    lost = [r for r in results if r.db_accepted + r.db_other < r.completed + r.failed or r.db_other or r.failed]
    if lost:
        print("FAILED: lost, failed or non-accepted requests (see the table)", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
