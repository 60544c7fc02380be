"""Shared benchmark machinery: interleaved timing rounds, summaries, the markdown table, cProfile, the CLI skeleton.

Each harness (``bench.intel_dcap``, ``bench.amd_snp``) builds its operations and labels and calls these; see
bench/README.md for the method.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

Op = Callable[[], object]
Reader = Callable[[object], str]
Column = tuple[str, Callable[["Row"], str]]

X = "\N{MULTIPLICATION SIGN}"
ROUNDS = 10
QUICK_SECONDS, FULL_SECONDS = 0.3, 2.5


@dataclass(frozen=True)
class Row:
    key: str
    variant: str
    n: int
    ops_s: float
    p50_us: float
    p99_us: float
    mean_us: float


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


def measure_interleaved(ops: Mapping[str, Op], keys: list[str], seconds: float) -> dict[str, list[int]]:
    """ROUNDS rounds; each round times every variant in turn, so drift in CPU speed hits all rows alike."""
    sizes = {k: calibrate(ops[k], seconds) for k in keys}
    lat: dict[str, list[int]] = {k: [] for k in keys}
    for _ in range(ROUNDS):
        for k in keys:
            lat[k].extend(measure_round(ops[k], sizes[k]))
    return lat


def summarise(key: str, label: str, lat: list[int]) -> Row:
    s = sorted(lat)
    n = len(s)
    mean = sum(s) / n / 1e3
    return Row(key, label, n, 1e6 / mean, s[n // 2] / 1e3, s[min(n - 1, n * 99 // 100)] / 1e3, mean)


def pin() -> str:
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError) as e:
        return f"not pinned ({type(e).__name__})"
    return "pinned to CPU 0"


def machine(packages: Iterable[str]) -> dict[str, str]:
    """CPU model, Python version and the installed version of each of ``packages`` (in that order)."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu or platform.machine(), "python": platform.python_version()}
    info.update({p: metadata.version(p) for p in packages})
    return info


def machine_line(info: Mapping[str, str], pinned: str, seconds: float) -> str:
    packages = "".join(f" | {k} {v}" for k, v in info.items() if k not in ("cpu", "python"))
    return (
        f"machine: {info['cpu']} | Python {info['python']}{packages} | {pinned} | "
        f"GC disabled in timed loops | ~{seconds} s per row"
    )


def floor_column(rows: Mapping[str, Row]) -> Column:
    """The floor-ratio column: p50 over the floor row's p50 (a dash without a floor row)."""
    floor = rows.get("floor")
    return f"{X} floor", lambda r: f"{r.p50_us / floor.p50_us:.2f}{X}" if floor else "—"


def table(rows: Mapping[str, Row], extra: Sequence[Column] = ()) -> str:
    """Markdown table: variant, ops/s, p50, p99, then one column per ``extra`` (header, cell of a row)."""
    head = ("variant", "ops/s", "p50 µs", "p99 µs", *(h for h, _ in extra))
    body = [
        (r.variant, f"{r.ops_s:,.0f}", f"{r.p50_us:,.1f}", f"{r.p99_us:,.1f}", *(cell(r) for _, cell in extra))
        for r in rows.values()
    ]
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


def parser(
    prog: str, doc: str, rows: Sequence[str], profiled: Sequence[str] = ("warm", "cold")
) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~0.3 s per row instead of ~2.5 s")
    ap.add_argument("--rows", default=",".join(rows), help=f"comma-separated subset of {','.join(rows)}")
    ap.add_argument("--json", action="store_true", help="print the raw numbers as JSON instead of the table")
    ap.add_argument("--profile", choices=tuple(profiled), help="cProfile this variant; print top 25 cumulative")
    ap.add_argument("--iterations", type=int, default=2000, help="iterations for --profile (default 2000)")
    return ap


def wanted_rows(ap: argparse.ArgumentParser, args: argparse.Namespace, rows: Sequence[str]) -> list[str]:
    wanted = [k.strip() for k in str(args.rows).split(",") if k.strip()]
    if unknown := [k for k in wanted if k not in rows]:
        ap.error(f"unknown rows {unknown}; choose from {','.join(rows)}")
    return wanted


def check_results(ops: Mapping[str, Op], reader: Mapping[str, Reader], keys: Iterable[str], expected: str) -> None:
    """Run each operation once; abort unless it reads as ``expected`` (never time a failing path)."""
    for key in sorted(set(keys)):
        try:
            result = ops[key]()
        except Exception as e:  # any failure aborts, with its message instead of a traceback
            sys.exit(f"bench: {key} raised {type(e).__name__}: {e}; refusing to time a failing path")
        got = reader[key](result)
        if got != expected:
            sys.exit(f"bench: {key} returned {got!r}, expected {expected!r}; refusing to time a failing path")


def print_profile(name: str, fn: Op, iterations: int, pinned: str) -> None:
    print(f"cProfile: Keyward {name}, {iterations} iterations, {pinned}")
    print(profile(fn, iterations))


def dump_json(
    info: Mapping[str, str],
    pinned: str,
    now: object,
    seconds: float,
    rows: Mapping[str, Row],
    met: Mapping[str, Mapping[str, object]],
) -> str:
    return json.dumps(
        {
            "machine": info,
            "affinity": pinned,
            "gc": "disabled in timed loops",
            "now": now,
            "seconds_per_row": seconds,
            "rows": [asdict(r) for r in rows.values()],
            "targets": met,
        },
        indent=2,
        ensure_ascii=False,
    )
