"""The main job: the whole Keyward service on an embedded default, with a simulated enclave attesting.

No PostgreSQL and no Redis: SQLite holds the data and kombu's SQLAlchemy transport carries the Celery tasks. The
API (uvicorn), a Celery worker and beat run as real processes (logs in the work directory). Provider staff data is
created through the admin API; then a simulated confidential VM (a TDX quote from the fake Intel PKI and two
simulated NVIDIA H100s, trusted only because this is the development profile, and marked simulated everywhere)
attests through the enclave SDK, receives its lease, decrypts the sample model, renews once and gives its seat back.
A debug TD is refused on the way. It ends with the staff dashboard running (its URL and a seeded login printed):
from a terminal until Ctrl-C, otherwise (CI) it stops by itself.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from verifier.client import AttestationRejected, EnclaveKeyPair, EnclaveSession, KeywardClient, SimulatedProvider
from verifier.keywrap.ear import verify_ear
from verifier.simulation.intel_quote_builder import TD_ATTR_DEBUG, TdReport
from verifier.testing.demo_data import GPUS, decrypt_model, seed_demo
from verifier.testing.devstack import DevStack, StackConfig

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8
#: The demo's dashboard account (its password is made per run and printed).
DEMO_STAFF = "demo-admin"


def step(n: int, text: str) -> None:
    print(f"\n[{n}/{STEPS}] {text}", flush=True)


def say(text: str) -> None:
    print(f"      {text}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=ROOT / "var" / "demo", help="state and logs (recreated)")
    args = ap.parse_args()
    workdir: Path = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    print("Keyward demo: the service on an embedded default (SQLite + SQLite broker; no PostgreSQL, no Redis)")
    stack = DevStack(StackConfig.embedded(workdir))
    step(1, "Database")
    stack.migrate()
    say(f"migrated {workdir / 'keyward.db'} with Alembic")
    step(2, "Service processes")
    stack.start()
    try:
        stack.wait_until_up()
        say(f"API {stack.base_url} (uvicorn), Celery worker and beat running; logs in {workdir}/*.log")
        return run(stack, workdir)
    finally:
        stack.stop()
        print(f"\nStopped. State kept in {workdir} (delete it freely).")


def run(stack: DevStack, workdir: Path) -> int:
    step(3, "Provider staff set up a customer (admin API)")
    admin = stack.bootstrap_admin()
    with httpx.Client(base_url=stack.base_url, timeout=30.0) as http:
        demo = seed_demo(http, admin, workdir)
    say(f"customer {demo.customer!r}, model {demo.model} {demo.version}: DEK imported, wrapped under the KEK")
    say(f"sample model encrypted with that DEK: {demo.encrypted_model.name} ({demo.encrypted_model.stat().st_size} B)")
    say(
        f"reference values: the simulated TD's MRTD and a GPU policy (NVIDIA H100s); entitlement: intel-tdx, "
        f"{demo.seats} seats, up to {GPUS} GPUs; licence key issued"
    )

    with KeywardClient(stack.base_url, demo.licence, poll_interval=0.05) as client:
        step(4, "A confidential VM with two GPUs attests (enclave SDK, simulated TDX + 2 simulated NVIDIA H100s)")
        key = EnclaveKeyPair.generate("P-384")
        say(f"enclave key generated inside the TD: EC P-384, thumbprint {key.thumbprint.hex()[:16]}...")
        provider = SimulatedProvider(gpus=2)
        session = EnclaveSession(client, provider, model=demo.model, deployment="acme-eu-1", key=key)
        started = time.monotonic()
        lease = session.start()
        say("challenge -> quote with REPORTDATA = SHA-512(nonce || thumbprint); GPU i's SPDM report signs")
        say("nonce_i = SHA-256('keyward/nvidia-gpu-nonce/v1' || nonce || thumbprint || i) -> POST /v1/attestations")
        elapsed_ms = (time.monotonic() - started) * 1000
        say(f"accepted in {elapsed_ms:.0f} ms; lease {lease.id[:8]}... until {lease.expires_at}")
        claims = verify_ear(lease.result_token, client.jwks(), now=lease.renew_after)
        say(
            f"result token verified against /.well-known/jwks.json: ear.status {claims['ear.status']}, "
            f"simulated={claims['keyward']['simulated']}"
        )
        say(f"one submodule per device: {', '.join(sorted(claims['submods']))}")

        step(5, "The VM opens its model")
        plaintext = decrypt_model(session.dek, demo.encrypted_model.read_bytes())
        say(f"JWE unwrapped with the enclave's private key -> 32-byte DEK; decrypted {demo.encrypted_model.name}:")
        say(f"  {plaintext.decode().strip()}")

        step(6, "Renew with fresh evidence, then give the seat back")
        renewed = session.renew()
        say(f"renewed: same lease {renewed.id[:8]}..., fresh nonce and quote, until {renewed.expires_at}")
        session.close()
        say("released: DELETE /v1/leases/{id} -> the seat is free again")

        step(7, "A debug TD asks for the key")
        debug_td = TdReport().with_tdattributes(TdReport().tdattributes_int | TD_ATTR_DEBUG)
        try:
            client.attest(model=demo.model, deployment="acme-debug", provider=SimulatedProvider(td=debug_td))
        except AttestationRejected as rejected:
            say("rejected, stored and audited: " + ", ".join(r.code for r in rejected.reasons))
        else:
            say("UNEXPECTED: the debug TD was accepted")
            return 1
    print_staff_view(stack, admin)
    step(8, "The staff dashboard")
    password = secrets.token_urlsafe(12)
    create = [str(Path(sys.executable).parent / "keyward"), "staff", "create", DEMO_STAFF, "--role", "admin"]
    subprocess.run(create, input=password + "\n", text=True, env=stack.env(), check=True, capture_output=True)
    say(f"{stack.base_url}/dashboard/  (sign in as {DEMO_STAFF} / {password})")
    if sys.stdin.isatty():
        say("running until Ctrl-C")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print()
    return 0


def print_staff_view(stack: DevStack, admin: str) -> None:
    """What provider staff see afterwards (admin API): every decision, stored and audited before it was answered."""
    with httpx.Client(base_url=stack.base_url, timeout=30.0, headers={"Authorization": f"Bearer {admin}"}) as http:
        rows = http.get("/v1/admin/attestations", params={"platform": "intel-tdx"}).raise_for_status().json()
        print("\nStaff view (GET /v1/admin/attestations?platform=intel-tdx):")
        for row in sorted(rows, key=lambda r: str(r["created_at"])):
            say(f"{row['kind']:<6} {row['status']:<8} {','.join(row['platforms'])}  {row['deployment_name']}")
            if row["status"] == "rejected":
                detail = http.get(f"/v1/admin/attestations/{row['id']}").raise_for_status().json()
                for r in detail["verdict"]["reasons"]:
                    say(f"         {r['code']}: expected {r.get('expected')}, actual {r.get('actual')}")


if __name__ == "__main__":
    sys.exit(main())
