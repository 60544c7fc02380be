"""Benchmark: Intel DCAP TDX v4 verification of a real quote at its pinned time, one core, one run.

Run from the repository root: ``.venv/bin/python -m bench.intel_dcap [--quick] [--rows ...] [--json]``,
or ``--profile warm|cold`` for the top cProfile entries. Prints a markdown table; see bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import dcap_qvl
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.evidence.dcap import parse_quote
from verifier.platforms.intel_dcap import IntelVerificationCache, verify_quote
from verifier.trust.chains import p256_key_from_raw, verify_p256_raw
from verifier.trust.intel_collateral import parse_collateral_json
from verifier.trust.store import load_trust_store

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "intel" / "phala-dcap-qvl"
QUOTE_FILE, COLLATERAL_FILE = "tdx_v4_quote.bin", "tdx_v4_quote.collateral.json"
NOW_UNIX = 1750332747  # 2025-06-19T11:32:27Z, the vector's pinned time
NOW = datetime.fromtimestamp(NOW_UNIX, UTC)
EXPECTED = "UpToDate"
ROWS = ("p256", "floor", "dcap-qvl", "cold", "warm")
LABELS = {
    "p256": "P-256 verify \N{MULTIPLICATION SIGN}1 (cryptography)",
    "floor": "floor: 2 P-256 verifies (quote sig, QE report sig)",
    "nine": "Keyward cold: the nine signature verifications (9 \N{MULTIPLICATION SIGN} P-256, derived)",
    "dcap-qvl": "dcap-qvl 0.7 verify (collateral object reused)",
    "cold": "Keyward cold (parse quote + collateral, no cache)",
    "warm": "Keyward warm (parse quote, shared cache, parsed collateral)",
}
X = "\N{MULTIPLICATION SIGN}"
WARM_TARGET_OPS, WARM_TARGET_X_DCAP, COLD_TARGET_X_NINE = 4000.0, 5.0, 1.2

Op = Callable[[], object]


@dataclass(frozen=True)
class Row:
    key: str
    variant: str
    n: int
    ops_s: float
    p50_us: float
    p99_us: float
    mean_us: float


def build_ops() -> tuple[dict[str, Op], dict[str, Callable[[object], str]]]:
    """The timed operations and, per operation, how to read its result as a status string."""
    quote_bytes = (VECTORS / QUOTE_FILE).read_bytes()
    coll_text = (VECTORS / COLLATERAL_FILE).read_text()
    trust = load_trust_store()
    quote = parse_quote(quote_bytes)
    sig = quote.signature_data
    cert = sig.certification
    pck_key = x509.load_pem_x509_certificate(cert.pck_chain_pem).public_key()
    assert isinstance(pck_key, ec.EllipticCurvePublicKey)
    ak_raw, quote_sig, signed = sig.attestation_key, sig.signature, quote.signed
    qe_sig, qe_raw = cert.qe_report_signature, cert.qe_report.raw
    ak_key = p256_key_from_raw(ak_raw)
    dcap_coll = dcap_qvl.QuoteCollateralV3.from_json(coll_text)
    coll = parse_collateral_json(coll_text)
    cache = IntelVerificationCache()

    def floor() -> bool:
        # Exactly the two signature verifications every quote needs (keys already loaded, as warm has them).
        return verify_p256_raw(ak_key, quote_sig, signed) and verify_p256_raw(pck_key, qe_sig, qe_raw)

    ops: dict[str, Op] = {
        "p256": lambda: verify_p256_raw(ak_key, quote_sig, signed),
        "floor": floor,
        "dcap-qvl": lambda: dcap_qvl.verify(quote_bytes, dcap_coll, NOW_UNIX),
        "cold": lambda: verify_quote(parse_quote(quote_bytes), parse_collateral_json(coll_text), trust, NOW),
        "warm": lambda: verify_quote(parse_quote(quote_bytes), coll, trust, NOW, cache),
    }

    def boolean(r: object) -> str:
        return EXPECTED if r is True else f"signature check returned {r!r}"

    def status(r: object) -> str:
        tcb = getattr(r, "tcb", None)
        return str(getattr(tcb, "status", None) if tcb is not None else getattr(r, "status", None))

    return ops, {"p256": boolean, "floor": boolean, "dcap-qvl": status, "cold": status, "warm": status}


ROUNDS = 10


def calibrate(fn: Op, seconds: float) -> int:
    """Warm up for max(0.1 s, seconds/5) and return N such that N calls take about ``seconds / ROUNDS``."""
    clock = time.perf_counter_ns
    start, calls = clock(), 0
    while clock() - start < max(0.1, seconds / 5) * 1e9:
        fn()
        calls += 1
    return max(20, int(seconds / ROUNDS * 1e9 * calls / (clock() - start)))


def measure_round(fn: Op, n: int) -> list[int]:
    """Time ``n`` calls with GC off."""
    clock = time.perf_counter_ns
    lat = [0] * n
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            t = clock()
            fn()
            lat[i] = clock() - t
    finally:
        gc.enable()
    return lat


def measure_interleaved(ops: dict[str, Op], keys: list[str], seconds: float) -> dict[str, list[int]]:
    """ROUNDS rounds; each round times every variant in turn, so drift in CPU speed hits all rows alike."""
    sizes = {k: calibrate(ops[k], seconds) for k in keys}
    lat: dict[str, list[int]] = {k: [] for k in keys}
    for _ in range(ROUNDS):
        for k in keys:
            lat[k].extend(measure_round(ops[k], sizes[k]))
    return lat


def summarise(key: str, lat: list[int]) -> Row:
    s = sorted(lat)
    n = len(s)
    mean = sum(s) / n / 1e3
    return Row(key, LABELS[key], n, 1e6 / mean, s[n // 2] / 1e3, s[min(n - 1, n * 99 // 100)] / 1e3, mean)


def pin() -> str:
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError) as e:
        return f"not pinned ({type(e).__name__})"
    return "pinned to CPU 0"


def machine() -> dict[str, str]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.machine(),
        "python": platform.python_version(),
        "cryptography": metadata.version("cryptography"),
        "dcap-qvl": metadata.version("dcap-qvl"),
    }


def targets(rows: dict[str, Row]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    warm, dcap, cold, nine = (rows.get(k) for k in ("warm", "dcap-qvl", "cold", "nine"))
    if warm:
        out["warm ops/s ≥ 4,000"] = {"value": warm.ops_s, "met": warm.ops_s >= WARM_TARGET_OPS}
    if warm and dcap:
        x = warm.ops_s / dcap.ops_s
        out[f"warm ≥ 5{X} dcap-qvl"] = {"value": x, "met": x >= WARM_TARGET_X_DCAP}
    if cold and nine:
        x = cold.p50_us / nine.p50_us
        out[f"cold ≤ 1.2{X} nine-signature cost"] = {"value": x, "met": x <= COLD_TARGET_X_NINE}
    return out


def table(rows: dict[str, Row]) -> str:
    floor, dcap = rows.get("floor"), rows.get("dcap-qvl")
    head = ("variant", "ops/s", "p50 µs", "p99 µs", f"{X} floor", "vs dcap-qvl")
    body = []
    for r in rows.values():
        xf = f"{r.p50_us / floor.p50_us:.2f}{X}" if floor else "—"
        xd = f"{r.ops_s / dcap.ops_s:.2f}{X}" if dcap else "—"
        body.append((r.variant, f"{r.ops_s:,.0f}", f"{r.p50_us:,.1f}", f"{r.p99_us:,.1f}", xf, xd))
    w = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells)) + " |"

    sep = "|" + "|".join(("-" * (w[i] + 2)) if i == 0 else ("-" * (w[i] + 1) + ":") for i in range(len(w))) + "|"
    return "\n".join([fmt(head), sep, *(fmt(b) for b in body)])


def profile(fn: Op, iterations: int) -> str:
    for _ in range(20):
        fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(iterations):
        fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.intel_dcap", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~0.3 s per row instead of ~2.5 s")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    ap.add_argument("--json", action="store_true", help="print the raw numbers as JSON instead of the table")
    ap.add_argument("--profile", choices=("warm", "cold"), help="cProfile this variant; print top 25 cumulative")
    ap.add_argument("--iterations", type=int, default=2000, help="iterations for --profile (default 2000)")
    args = ap.parse_args(argv)
    wanted = [k.strip() for k in args.rows.split(",") if k.strip()]
    if unknown := [k for k in wanted if k not in ROWS]:
        ap.error(f"unknown rows {unknown}; choose from {','.join(ROWS)}")
    pinned = pin()
    ops, reader = build_ops()
    for key in sorted(set(wanted) | ({args.profile} if args.profile else set())):
        got = reader[key](ops[key]())
        if got != EXPECTED:
            sys.exit(f"bench: {key} returned {got!r}, expected {EXPECTED!r}; refusing to time a failing path")
    if args.profile:
        print(f"cProfile: Keyward {args.profile}, {args.iterations} iterations, {pinned}")
        print(profile(ops[args.profile], args.iterations))
        return 0

    seconds = 0.3 if args.quick else 2.5
    rows: dict[str, Row] = {}
    lat = measure_interleaved(ops, [k for k in ROWS if k in wanted], seconds)
    for key in ROWS:
        if key in wanted:
            rows[key] = summarise(key, lat[key])
        if key == "floor" and "p256" in rows:  # derived reference row sits under the floor
            p = rows["p256"]
            rows["nine"] = Row("nine", LABELS["nine"], p.n, p.ops_s / 9, p.p50_us * 9, p.p99_us * 9, p.mean_us * 9)
    met = targets(rows)
    info = machine()
    if args.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "affinity": pinned,
                    "gc": "disabled in timed loops",
                    "now": NOW_UNIX,
                    "seconds_per_row": seconds,
                    "rows": [asdict(r) for r in rows.values()],
                    "targets": met,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    print(f"Intel DCAP TDX v4: {QUOTE_FILE} + {COLLATERAL_FILE} at {NOW.isoformat().replace('+00:00', 'Z')}")
    print(
        f"machine: {info['cpu']} | Python {info['python']} | cryptography {info['cryptography']} | "
        f"dcap-qvl {info['dcap-qvl']} | {pinned} | GC disabled in timed loops | ~{seconds} s per row"
    )
    print(
        f"ops/s = 1 / mean latency; {X} floor = p50 / floor p50; vs dcap-qvl = ops/s / dcap-qvl ops/s; "
        f"cold vs nine-signature cost compares p50; rows interleaved in {ROUNDS} rounds\n"
    )
    print(table(rows))
    print()
    for name, t in met.items():
        v = t["value"]
        shown = f"{v:,.0f}" if name.startswith("warm ops") else f"{v:.2f}{X}"
        print(f"target {name}: {shown} — {'met' if t['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
