"""NVIDIA measurement plans: :func:`measurement_plan` + :func:`appraise_measurements` (what a verification reports)
say exactly what :func:`compare_measurements` + ``to_json`` + :func:`measurement_reasons` say, case by case, on real
reports from tests/vectors/nvidia/devices/ (PROVENANCE-verify.md) against RIM entries built here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from verifier.appraisal.nvidia import (
    NVDEC0_RIM_INDEX,
    appraise_measurements,
    compare_measurements,
    compare_planned,
    index_conflicts,
    measurement_plan,
    measurement_reasons,
)
from verifier.evidence.nvidia import GpuReport, parse_gpu_report
from verifier.trust.nvidia_rim import RimMeasurement, VerifiedRim

DEVICES = Path(__file__).resolve().parents[2] / "vectors" / "nvidia" / "devices"
Entries = dict[int, tuple[bytes, ...]]


def _report(name: str) -> GpuReport:
    return parse_gpu_report((DEVICES / f"{name}.bin").read_bytes())


N1 = _report("N1-hopper")  # NVDEC0 disabled: index 35 skipped
M3_GPU = _report("M3-blackwell-mpt-gpu0")  # NVDEC0 enabled


def _rim(entries: Entries, *, inactive: Entries | None = None, size: int = 48) -> VerifiedRim:
    measurements = [RimMeasurement(i, True, alts, size, f"Measurement_{i}") for i, alts in entries.items()]
    measurements += [RimMeasurement(i, False, alts, size, f"Measurement_{i}") for i, alts in (inactive or {}).items()]
    return VerifiedRim(
        tag_id="test",
        name="GH100",
        version="1.0",
        colloquial_version="550.90.07",
        product="GH100",
        edition="GPU",
        firmware_manufacturer_id="5703",
        measurements=tuple(measurements),
        signer_chain=(),
        sha256="00" * 32,
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )


def _golden(report: GpuReport, indices: range) -> Entries:
    return {i: (report.measurements[i + 1],) for i in indices}


def _flip(value: bytes) -> bytes:
    return bytes((value[0] ^ 1,)) + value[1:]


def _flipped(report: GpuReport, indices: range, bad: int) -> Entries:
    golden = _golden(report, indices)
    golden[bad] = (_flip(golden[bad][0]), bytes(48))
    return golden


CASES = {
    "all-match": (N1, _golden(N1, range(21, 41)), _golden(N1, range(13))),
    "one-mismatch": (N1, None, _flipped(N1, range(13), 9)),
    "mismatch-in-both": (N1, _flipped(N1, range(21, 41), 30), _flipped(N1, range(13), 2)),
    "conflicting-index": (N1, _golden(N1, range(7, 9)), _flipped(N1, range(8, 13), 8)),
    "missing-block": (N1, {70: (bytes(48),)}, None),
    "msr35-skipped": (N1, {NVDEC0_RIM_INDEX: (bytes(48),)}, None),
    "msr35-compared": (M3_GPU, {NVDEC0_RIM_INDEX: (_flip(M3_GPU.measurements[36]),)}, None),
    "driver-only": (N1, _golden(N1, range(21, 41)), None),
    "no-rims": (N1, None, None),
}


@pytest.mark.parametrize(("report", "driver", "vbios"), CASES.values(), ids=CASES.keys())
def test_appraise_measurements_equals_compare_measurements(
    report: GpuReport, driver: Entries | None, vbios: Entries | None
) -> None:
    driver_rim = None if driver is None else _rim(driver, inactive={5: (bytes(48),)})
    vbios_rim = None if vbios is None else _rim(vbios)
    results = compare_measurements(report, driver_rim, vbios_rim)
    plan = measurement_plan(driver_rim, vbios_rim)
    claims, reasons = appraise_measurements(report, plan)
    assert claims == [r.to_json() for r in results]
    assert [list(c) for c in claims] == [list(r.to_json()) for r in results]  # same key order
    assert reasons == measurement_reasons(results)
    assert compare_planned(report, plan) == results
    assert plan.conflicts == index_conflicts(driver_rim, vbios_rim)


def test_measurement_plan_wrong_size_alternatives_dropped() -> None:
    plan = measurement_plan(_rim({3: (N1.measurements[4],)}, size=32), None)
    assert [(i, alts) for i, _, alts, _ in plan.entries] == [(3, ())]
    claims, reasons = appraise_measurements(N1, plan)
    assert claims[0]["result"] == "mismatch"
    assert claims[0]["expected"] == []
    assert len(reasons) == 1


def test_appraise_measurements_claims_are_fresh_lists() -> None:
    plan = measurement_plan(_rim(_golden(N1, range(13))), None)
    first, _ = appraise_measurements(N1, plan)
    second, _ = appraise_measurements(N1, plan)
    assert first == second
    assert first[0] is not second[0]
    assert first[0]["expected"] is not second[0]["expected"]
