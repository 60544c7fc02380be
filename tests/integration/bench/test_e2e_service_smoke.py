"""``bench.e2e_service`` still runs (other tools read its JSON): one short row of Keyward and of the floor, on the
real stack, with every required field, nothing lost or failed, and the floor measured in the same run."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.tools import ROOT

REQUIRED = {
    "workers", "api_workers", "ops_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_op", "load_cpu_ms_per_op",
    "floor_cpu_ms_per_op", "lost", "failed",
}  # fmt: skip


def test_e2e_service_quick_json_has_the_required_fields() -> None:
    argv = [sys.executable, "-m", "bench.e2e_service", "--seconds", "2", "--workers", "1", "--api-workers", "1",
            "--concurrency", "2", "--enclave-curve", "P-256", "--json"]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    [keyward], [floor] = doc["results"], doc["floor"]
    assert keyward.keys() >= REQUIRED, REQUIRED - keyward.keys()
    assert (keyward["lost"], keyward["failed"], floor["lost"], floor["failed"]) == (0, 0, 0, 0)
    assert keyward["ops_per_s"] > 0
    assert floor["ops_per_s"] > 0
    assert keyward["floor_cpu_ms_per_op"] == floor["server_cpu_ms_per_op"] > 0
