"""Benchmark: one whole attestation decision in process on PostgreSQL, CPU only vs CPU + 8 GPUs.

``decide_attestation`` (verifier/attestation/flows.py) on a throw-away PostgreSQL database, the simulated TDX quote
alone and with 8 simulated H100s (each item carrying its 2 RIMs and 7 OCSP responses; device ``i`` signed
``gpu_nonce(nonce, thumbprint, i)``). One op = lock the pending row, verify every item, appraise, take the seat,
issue the lease and the result token, commit. The HTTP API, the broker and the Celery worker are not in it
(``bench.e2e_service`` measures those, CPU only).

    .venv/bin/python -m bench.nvidia_decision            # 5 rounds x 20 decisions per row
    .venv/bin/python -m bench.nvidia_decision --quick    # 3 rounds x 6
    .venv/bin/python -m bench.nvidia_decision --json

Needs the local PostgreSQL (``KEYWARD_TEST_ADMIN_URL``; a database ``keyward_bench_*`` is created and dropped).
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwk
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from bench._harness import X, machine, pin
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.context import DecisionContext
from verifier.attestation.flows import decide_attestation
from verifier.clock import Clock
from verifier.db.engine import upgrade_database
from verifier.db.models import (
    Attestation,
    AttestationStatus,
    Customer,
    CustomerStatus,
    Entitlement,
    EntitlementStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey
from verifier.keywrap.enclave import expected_report_data, gpu_nonce, parse_enclave_jwk
from verifier.keywrap.kek import LocalAesKek, model_key_context
from verifier.platforms.nvidia_gpu import NvidiaVerificationCache
from verifier.simulation.intel_pki import SIM_NOW, Evidence, QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport
from verifier.simulation.nvidia_pki import GpuOptions, NvidiaEvidence, default_nvidia_pki
from verifier.simulation.nvidia_report_builder import SIGNATURE_SIZE, sign_report
from verifier.testing.databases import scratch_database
from verifier.trust.store import trust_store_from_certificates

GPUS = 8
NONCE_AT = slice(4, 36)  # the SPDM GET_MEASUREMENTS request nonce
SECRET = b"challenge-secret-for-bench-only!"
ROWS = ("cpu", "gpus-warm", "gpus-cold")
LABELS = {
    "cpu": "CPU only: TDX quote + collateral",
    "gpus-warm": f"CPU + {GPUS} GPUs (2 RIMs + 7 OCSP each), process cache warm",
    "gpus-cold": f"CPU + {GPUS} GPUs, fresh NvidiaVerificationCache per decision (shared by its GPUs)",
}


class Enclaves:
    """Pending attestations bound to a fresh challenge and enclave key: the TDX quote re-signed for the binding
    (``IntelPki.rebind``), each GPU report's request nonce replaced and the report re-signed by its device key."""

    def __init__(self) -> None:
        self.intel = default_pki()
        self.quote: Evidence = self.intel.build(QuoteOptions())
        self.nvidia = default_nvidia_pki()
        self.gpus: list[NvidiaEvidence] = [self.nvidia.build(GpuOptions(device_index=i)) for i in range(GPUS)]
        self.items = [ev.evidence_item(carry_collateral=True) for ev in self.gpus]

    def trust(self) -> Any:
        stores = (self.quote.trust_store, self.nvidia.trust_store)
        return trust_store_from_certificates(
            {k: r.certificate for s in stores for k, r in s.roots.items()}, simulated=True
        )

    def _gpu_item(self, i: int, nonce: bytes, thumbprint: bytes) -> dict[str, object]:
        signed = bytearray(self.gpus[i].report[:-SIGNATURE_SIZE])
        signed[NONCE_AT] = gpu_nonce(nonce, thumbprint, i)
        report = sign_report(bytes(signed), self.nvidia.leaf_key(i))
        return {**self.items[i], "evidence": base64.b64encode(report).decode()}

    def pending(self, entitlement: uuid.UUID, version: uuid.UUID, gpus: bool) -> Attestation:
        nonce = issue_challenge(SECRET, SIM_NOW).nonce
        key = jwk.ECKey.generate_key("P-256").as_dict(private=False)
        parsed = parse_enclave_jwk(dict(key))
        quote = self.intel.rebind(self.quote, expected_report_data(nonce, parsed))
        items: list[dict[str, object]] = [
            {
                "type": "intel-tdx",
                "evidence": base64.b64encode(quote).decode(),
                "collateral": self.quote.collateral_json,
            }
        ]
        if gpus:
            items += [self._gpu_item(i, nonce, parsed.thumbprint) for i in range(GPUS)]
        return Attestation(
            entitlement_id=entitlement,
            model_version_id=version,
            deployment_name=f"bench-{uuid.uuid4().hex[:12]}",
            kind="attest",
            platforms=sorted({str(item["type"]) for item in items}),
            status=AttestationStatus.PENDING,
            nonce=nonce,
            enclave_jwk=dict(key),
            created_at=SIM_NOW,
            evidence=items,
        )


def seed(session: Session, kek: LocalAesKek, driver_version: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A customer, a model version with its wrapped key, TDX and NVIDIA reference values, an entitlement."""
    customer = Customer(name=f"bench-{uuid.uuid4().hex[:6]}", status=CustomerStatus.ACTIVE, created_at=SIM_NOW)
    model = Model(name=f"bench-{uuid.uuid4().hex[:6]}", created_at=SIM_NOW)
    session.add_all([customer, model])
    session.flush()
    version = ModelVersion(model_id=model.id, version="1.0", created_at=SIM_NOW)
    session.add(version)
    session.flush()
    dek = AESGCM.generate_key(bit_length=256)
    session.add(
        ModelKey(
            model_version_id=version.id,
            kek_id=kek.kek_id,
            created_at=SIM_NOW,
            wrapped_dek=kek.wrap(dek, context=model_key_context(str(version.id))),
        )
    )
    values = {
        "intel-tdx": {"allowed_measurements": {"mrtd": [TdReport().mrtd.hex()]}},
        "nvidia-gpu": {"architectures": ["HOPPER"], "min_driver_version": driver_version},
    }
    for platform, v in values.items():
        session.add(
            ReferenceValueSet(
                model_version_id=version.id,
                platform=platform,
                status=RecordStatus.ACTIVE,
                values=v,
                valid_from=SIM_NOW - timedelta(days=1),
                valid_until=None,
                created_at=SIM_NOW,
            )
        )
    entitlement = Entitlement(
        customer_id=customer.id,
        model_id=model.id,
        allowed_versions=[],
        allowed_platforms=["intel-tdx"],
        seats=10**6,
        max_gpus=GPUS,
        lease_ttl_seconds=600,
        status=EntitlementStatus.ACTIVE,
        valid_from=SIM_NOW - timedelta(days=1),
        valid_until=None,
        created_at=SIM_NOW,
    )
    session.add(entitlement)
    session.commit()
    return entitlement.id, version.id


@dataclass(frozen=True)
class Row:
    key: str
    variant: str
    n: int
    p50_ms: float
    mean_ms: float
    p99_ms: float


def run(rounds: int, per_round: int) -> tuple[dict[str, Row], dict[str, str]]:
    enclaves = Enclaves()
    kek = LocalAesKek(os.urandom(32))
    ctx = DecisionContext(
        trust=enclaves.trust(),
        kek=kek,
        keyring=ProviderKeyring(ProviderSigningKey.generate()),
        challenge_secret=SECRET,
    )
    clock = Clock.fixed(SIM_NOW)
    lat: dict[str, list[float]] = {k: [] for k in ROWS}
    with scratch_database("keyward_bench") as url:
        upgrade_database(url)
        engine = create_engine(url)
        try:
            with Session(engine, expire_on_commit=False) as s:
                entitlement, version = seed(s, kek, enclaves.gpus[0].options.driver_version)

            def prepare(gpus: bool, n: int) -> list[uuid.UUID]:
                with Session(engine, expire_on_commit=False) as s:
                    rows = [enclaves.pending(entitlement, version, gpus) for _ in range(n)]
                    s.add_all(rows)
                    s.commit()
                    return [r.id for r in rows]

            def decide(ids: list[uuid.UUID], context: Callable[[], DecisionContext], out: list[float]) -> None:
                gc.collect()
                gc.disable()
                try:
                    for att_id in ids:
                        c = context()
                        start = time.perf_counter()
                        with Session(engine, expire_on_commit=False) as s:
                            decided = decide_attestation(s, att_id, c, clock)
                            s.commit()
                        out.append(time.perf_counter() - start)
                        if decided.status != AttestationStatus.ACCEPTED:
                            codes = [r["code"] for r in (decided.verdict or {}).get("reasons", [])]
                            sys.exit(f"bench: decision {decided.status}: {codes}; refusing to time a failing path")
                finally:
                    gc.enable()

            contexts: dict[str, Callable[[], DecisionContext]] = {
                "cpu": lambda: ctx,
                "gpus-warm": lambda: ctx,
                "gpus-cold": lambda: replace(ctx, nvidia_cache=NvidiaVerificationCache()),
            }
            warmup: dict[str, list[float]] = {k: [] for k in ROWS}
            for k in ROWS:  # warm-up: imports, connections, the Intel cache and the NVIDIA process cache
                decide(prepare(k != "cpu", 2), contexts[k], warmup[k])
            for _ in range(rounds):
                for k in ROWS:
                    decide(prepare(k != "cpu", per_round), contexts[k], lat[k])
        finally:
            engine.dispose()
    rows = {k: _summary(k, v) for k, v in lat.items()}
    return rows, machine(("cryptography", "sqlalchemy", "psycopg"))


def _summary(key: str, lat: list[float]) -> Row:
    s = sorted(lat)
    return Row(
        key,
        LABELS[key],
        len(s),
        statistics.median(s) * 1e3,
        statistics.fmean(s) * 1e3,
        s[min(len(s) - 1, len(s) * 99 // 100)] * 1e3,
    )


def table(rows: dict[str, Row]) -> str:
    cpu = rows["cpu"]
    head = ("variant", "decisions/s", "p50 ms", "p99 ms", f"{X} CPU only", "per GPU ms")
    body = [
        (
            r.variant,
            f"{1e3 / r.mean_ms:,.1f}",
            f"{r.p50_ms:,.2f}",
            f"{r.p99_ms:,.2f}",
            f"{r.p50_ms / cpu.p50_ms:.2f}{X}",
            "—" if r.key == "cpu" else f"{(r.p50_ms - cpu.p50_ms) / GPUS:,.2f}",
        )
        for r in rows.values()
    ]
    w = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells)) + " |"

    sep = "|" + "|".join(("-" * (w[i] + 2)) if i == 0 else ("-" * (w[i] + 1) + ":") for i in range(len(w))) + "|"
    return "\n".join([fmt(head), sep, *(fmt(b) for b in body)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.nvidia_decision", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds x 6 decisions per row")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rounds, per_round = (3, 6) if args.quick else (5, 20)
    pinned = pin()
    rows, info = run(rounds, per_round)
    if args.json:
        out = {"machine": info, "affinity": pinned, "rows": [r.__dict__ for r in rows.values()]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(
        f"decide_attestation on PostgreSQL at {SIM_NOW.isoformat().replace('+00:00', 'Z')}: simulated TDX quote, "
        f"alone and with {GPUS} simulated H100s"
    )
    print(
        f"machine: {info['cpu']} | Python {info['python']} | cryptography {info['cryptography']} | {pinned} | "
        f"{rounds} rounds x {per_round} decisions per row, rows interleaved | GC disabled in timed loops"
    )
    print(f"decisions/s = 1 / mean latency (one session, sequential); {X} CPU only = p50 / CPU-only p50\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
