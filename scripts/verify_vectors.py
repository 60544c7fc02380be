"""The main job, for now: ``keyward verify`` over the real Intel quotes in tests/vectors/intel.

Shows a few full reports (through the real CLI, exactly as a user would run it), then one line per case of
tests/vectors/intel/expected.json comparing Keyward's result with the independent expectation, then the same
quotes at today's date, when all of their collateral has expired.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors" / "intel"
KEYWARD = [shutil.which("keyward") or str(Path(sys.executable).parent / "keyward")]
SHOWCASE = ("P2", "P1", "P4", "T1", "P3")


def keyward(case: dict[str, object], *extra: str, at: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [
        *KEYWARD,
        "verify",
        str(VECTORS / str(case["quote"])),
        "--collateral",
        str(VECTORS / str(case["collateral"])),
    ]
    args += ["--at", at or str(case["pinned_now"])]
    return subprocess.run([*args, *extra], capture_output=True, text=True, check=False)


def main() -> int:
    cases = json.loads((VECTORS / "expected.json").read_text())["cases"]
    by_id = {c["id"]: c for c in cases}
    print("Keyward — Intel SGX/TDX quotes from real hardware, verified against the pinned Intel SGX Root CA")
    print(f"(vectors: {VECTORS.relative_to(ROOT)}; each at its pinned time inside its collateral window)\n")
    for cid in SHOWCASE:
        print(f"── case {cid} " + "─" * 60)
        print(keyward(by_id[cid]).stdout)

    print("── every case: Keyward vs the expected result (dcap-qvl 0.7.0 + Intel's algorithm) " + "─" * 8)
    print(f"{'id':<4} {'quote':<6} {'expected TCB status':<34} {'Keyward TCB status':<34} {'verdict':<9} first reason")
    agree = 0
    for c in cases:
        doc = json.loads(keyward(c, "--json").stdout)
        want = c.get("tcb_status") or c.get("intel_algorithm_tcb_status_ignoring_policy")
        want = None if want == "TcbInfoMismatch" else want
        if c["expect"] == "reject":  # rejected, and (when Intel's algorithm gives one) with the right status
            ok = not doc["accepted"] and doc["tcb_status"] == want
        else:
            ok = doc["tcb_status"] == want and doc["advisory_ids"] == sorted(c["advisory_ids"])
        agree += ok
        verdict = "accepted" if doc["accepted"] else "rejected"
        reason = doc["reasons"][0]["code"] if doc["reasons"] else ""
        print(
            f"{c['id']:<4} v{c['quote_version']}/b{c['body_type']:<2} {want or '(none: not verifiable)':<34} "
            f"{doc['tcb_status'] or '(none)':<34} {verdict:<9} {reason}{'' if ok else '   <-- DISAGREES'}"
        )
    print(f"\n{agree}/{len(cases)} cases agree with the independent expectation.")

    today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rejected = sum(not json.loads(keyward(c, "--json", at=today).stdout)["accepted"] for c in cases)
    print(
        f"At the real current time ({today}) {rejected}/{len(cases)} cases are rejected: their collateral "
        "has expired, and Keyward fails closed."
    )
    print("\nTry it yourself:  .venv/bin/keyward verify QUOTE --collateral COLLATERAL.json --at TIME [--json]")
    ok_amd = amd()
    return 0 if agree == len(cases) and rejected == len(cases) and ok_amd else 1


def amd() -> bool:
    """The AMD SEV-SNP half: every real report, then the confidential ACI flow with its CCE policy."""
    vectors = ROOT / "tests" / "vectors" / "amd"
    cases = json.loads((vectors / "expected.json").read_text())["cases"]
    aci = vectors / "microsoft-confidential-sidecar-containers"
    print("\n── AMD SEV-SNP: confidential ACI: CCE policy via HOST_DATA, UVM via Microsoft's signed endorsement " + "─")
    args = [
        *KEYWARD,
        "verify",
        str(aci / "snp_report.bin"),
        "--certs",
        str(aci / "uvm_host_amd_certificate.pem"),
        "--cce-policy",
        str(aci / "uvm_security_policy.base64"),
        "--uvm-endorsement",
        str(aci / "body.uvm_reference_info.bin"),
        "--at",
        "2023-02-08T06:00:00Z",
    ]
    print(subprocess.run(args, capture_output=True, text=True, check=False).stdout)
    print("── every real SEV-SNP report, at its pinned time and today " + "─" * 33)
    print(f"{'id':<4} {'product':<7} {'ver':<4} {'key':<5} {'at pinned time':<28} {'today':<22}")
    agree = 0
    today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for c in cases:
        base = [*KEYWARD, "verify", str(vectors / c["report"]), "--certs", str(vectors / c["certs"]), "--json"]
        policy = ["--policy", str(ROOT / "scripts" / "demo_snp_policy.json")]
        pinned = json.loads(
            subprocess.run(
                [*base, *policy, "--at", c["pinned_now"]], capture_output=True, text=True, check=False
            ).stdout
        )
        now = json.loads(
            subprocess.run([*base, *policy, "--at", today], capture_output=True, text=True, check=False).stdout
        )
        want_accept = c["expect"] == "verified"
        ok = pinned["verified"] and pinned["accepted"] == want_accept and now["verified"] == c["valid_now"]
        agree += ok
        first = (pinned["reasons"] or [{"code": "accepted"}])[0]["code"]
        today_text = "verifies" if now["verified"] else now["reasons"][0]["code"]
        print(
            f"{c['id']:<4} {c['product']:<7} v{c['version']:<3} {c['signing_key']:<5} {first:<28} {today_text:<22}"
            f"{'' if ok else '   <-- DISAGREES'}"
        )
    print(f"\n{agree}/{len(cases)} SEV-SNP reports behave as expected (G1 is a DEBUG guest: verified, then rejected).")
    return agree == len(cases)


if __name__ == "__main__":
    sys.exit(main())
