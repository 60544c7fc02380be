"""Benchmark: AMD SEV-SNP verification of a real Genoa v5 report at its pinned time, one core, one run.

Run from the repository root: ``.venv/bin/python -m bench.amd_snp [--quick] [--rows ...] [--json]``,
or ``--profile warm|cold`` for the top cProfile entries. Prints a markdown table; see bench/README.md.
"""

from __future__ import annotations

import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.utils import CryptographyDeprecationWarning

from bench._harness import (
    FULL_SECONDS,
    QUICK_SECONDS,
    ROUNDS,
    Op,
    Reader,
    Row,
    X,
    check_results,
    dump_json,
    floor_column,
    machine,
    machine_line,
    measure_interleaved,
    parser,
    pin,
    print_profile,
    summarise,
    table,
    wanted_rows,
)
from verifier.appraisal.snp import SnpPolicy, appraise_snp
from verifier.appraisal.verdict import Verdict
from verifier.evidence.snp import parse_snp_report
from verifier.platforms.amd_snp import SnpVerification, SnpVerificationCache, verify_snp_report
from verifier.trust.store import load_trust_store

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "amd" / "project-oak"
REPORT_FILE, VCEK_FILE = "genoa_v5_oc_report.bin", "genoa_vcek.der"
NOW = datetime(2025, 8, 8, 17, 21, 41, tzinfo=UTC)  # the vector's pinned time
NOW_UNIX = int(NOW.timestamp())
EXPECTED = "genoa"
SIGNED_END, R_END, S_END = 0x2A0, 0x2E8, 0x330  # signed bytes 0x000..0x29F; R, S little-endian 72 bytes each
ROWS = ("floor", "cold", "warm", "appraisal")
LABELS = {
    "floor": "floor: 1 ECDSA P-384/SHA-384 verify (report sig, VCEK key loaded)",
    "cold": "Keyward cold (parse report, pinned ARK/ASK + VCEK PSS checks, no cache)",
    "warm": "Keyward warm (parse report, shared cache)",
    "appraisal": "Keyward warm + appraisal (appraise_snp, default SnpPolicy)",
}
WARM_TARGET_OPS = 1500.0


def build_ops() -> tuple[dict[str, Op], dict[str, Reader]]:
    """The timed operations and, per operation, how to read its result as a status string."""
    raw = (VECTORS / REPORT_FILE).read_bytes()
    vcek_der = (VECTORS / VCEK_FILE).read_bytes()
    trust = load_trust_store()
    with warnings.catch_warnings():  # real VCEKs have serial 0; cryptography warns about it and loads it
        warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, message=".*serial number.*")
        vcek_key = x509.load_der_x509_certificate(vcek_der).public_key()
    assert isinstance(vcek_key, ec.EllipticCurvePublicKey)
    assert isinstance(vcek_key.curve, ec.SECP384R1)
    # Decoded straight from the bytes, independently of parse_snp_report.
    sig_r = int.from_bytes(raw[SIGNED_END:R_END], "little")
    sig_s = int.from_bytes(raw[R_END:S_END], "little")
    signed = raw[:SIGNED_END]
    ecdsa = ec.ECDSA(hashes.SHA384())
    cache = SnpVerificationCache()
    policy = SnpPolicy()

    def floor() -> bool:
        # The one signature verification every report needs (key already loaded, as warm has it).
        vcek_key.verify(encode_dss_signature(sig_r, sig_s), signed, ecdsa)  # raises InvalidSignature on failure
        return True

    def warm() -> SnpVerification:
        return verify_snp_report(parse_snp_report(raw), vcek_der, trust, NOW, cache=cache)

    def appraisal() -> tuple[SnpVerification, Verdict]:
        v = warm()
        return v, appraise_snp(v, policy)

    ops: dict[str, Op] = {
        "floor": floor,
        "cold": lambda: verify_snp_report(parse_snp_report(raw), vcek_der, trust, NOW),
        "warm": warm,
        "appraisal": appraisal,
    }

    def boolean(r: object) -> str:
        return EXPECTED if r is True else f"signature check returned {r!r}"

    def product(r: object) -> str:
        if isinstance(r, SnpVerification):
            return r.product if not r.simulated else f"{r.product} (simulated trust store)"
        return f"not a verification: {r!r}"

    def appraised(r: object) -> str:
        if not isinstance(r, tuple) or len(r) != 2 or not isinstance(r[1], Verdict):
            return f"not a (verification, verdict) pair: {r!r}"
        if not r[1].accepted:
            return f"verdict rejected: {[x.code for x in r[1].reasons]}"
        return product(r[0])

    return ops, {"floor": boolean, "cold": product, "warm": product, "appraisal": appraised}


def targets(rows: dict[str, Row]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    warm, floor = rows.get("warm"), rows.get("floor")
    if warm:
        out["warm ≥ 1,500 reports/s on one core"] = {"value": warm.ops_s, "met": warm.ops_s >= WARM_TARGET_OPS}
    if warm and floor:
        # Informational: how close warm comes to the one verification no cache may remove.
        out["warm \N{DIVISION SIGN} floor (p50)"] = {"value": warm.p50_us / floor.p50_us, "met": None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = parser("python -m bench.amd_snp", __doc__ or "", ROWS)
    args = ap.parse_args(argv)
    wanted = wanted_rows(ap, args, ROWS)
    pinned = pin()
    ops, reader = build_ops()
    check_results(ops, reader, [*wanted, *([args.profile] if args.profile else [])], EXPECTED)
    if args.profile:
        print_profile(args.profile, ops[args.profile], args.iterations, pinned)
        return 0

    seconds = QUICK_SECONDS if args.quick else FULL_SECONDS
    keys = [k for k in ROWS if k in wanted]
    lat = measure_interleaved(ops, keys, seconds)
    rows = {k: summarise(k, LABELS[k], lat[k]) for k in keys}
    met = targets(rows)
    info = machine(("cryptography",))
    if args.json:
        print(dump_json(info, pinned, NOW_UNIX, seconds, rows, met))
        return 0
    print(f"AMD SEV-SNP Genoa v5: {REPORT_FILE} + {VCEK_FILE} at {NOW.isoformat().replace('+00:00', 'Z')}")
    print(machine_line(info, pinned, seconds))
    print(f"ops/s = 1 / mean latency; {X} floor = p50 / floor p50; rows interleaved in {ROUNDS} rounds\n")
    print(table(rows, [floor_column(rows)]))
    print()
    for name, t in met.items():
        v, ok = t["value"], t["met"]
        if ok is None:
            print(f"{name}: {v:.2f}{X}")
        else:
            print(f"target {name}: {v:,.0f} — {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
