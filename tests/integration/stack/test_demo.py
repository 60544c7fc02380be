"""README command 1: the whole service on the embedded default (SQLite data + SQLite broker, real API, worker and beat
processes), a simulated enclave attesting through the SDK. Run exactly as ``make demo`` runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_demo_runs_the_embedded_service_end_to_end(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}  # no KEYWARD_* leaks
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--workdir", str(tmp_path / "demo")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "ear.status affirming, simulated=True" in out
    assert "one submodule per device: intel-tdx, nvidia-gpu:GPU-0, nvidia-gpu:GPU-1" in out  # CPU + 2 GPUs
    assert "keyward demo model: layer0.weight" in out  # the sample model decrypted with the released DEK
    assert "renewed: same lease" in out
    assert "rejected, stored and audited: intel.policy.td_debug" in out
    assert (tmp_path / "demo" / "keyward.db").exists()
    assert (tmp_path / "demo" / "broker.db").exists()
    staff = out.split("Staff view", 1)[1]
    assert staff.count("accepted") == 2
    assert staff.count("rejected") == 1
    assert "/dashboard/  (sign in as demo-admin / " in out  # the staff dashboard's URL and a seeded login
    assert "Traceback" not in out + result.stderr
