"""NVIDIA warm-path memos: what NvidiaVerificationCache and the parser remember by identity or content gives the
same answers as computing afresh, and follows every input it depends on (the report's blocks, its NVDEC0 status,
the RIM pair). Real reports from tests/vectors/nvidia/devices/ (PROVENANCE-verify.md), RIM entries built here."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from verifier.appraisal.nvidia import NVDEC0_RIM_INDEX, measured_rows, measurement_plan
from verifier.evidence.nvidia import clear_parse_memos, parse_device_chain, parse_gpu_report
from verifier.platforms.nvidia_gpu import NvidiaVerificationCache
from verifier.trust.nvidia_rim import RimMeasurement, VerifiedRim

DEVICES = Path(__file__).resolve().parents[2] / "vectors" / "nvidia" / "devices"
N1_BYTES = (DEVICES / "N1-hopper.bin").read_bytes()  # NVDEC0 disabled (0x55): index 35 skipped


def _rim(indices: range, values: dict[int, bytes], *, sha: str) -> VerifiedRim:
    return VerifiedRim(
        tag_id="test",
        name="GH100",
        version="1.0",
        colloquial_version="550.90.07",
        product="GH100",
        edition="GPU",
        firmware_manufacturer_id="5703",
        measurements=tuple(RimMeasurement(i, True, (values[i + 1],), 48, f"Measurement_{i}") for i in indices),
        signer_chain=(),
        sha256=sha * 64,
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )


def test_parse_gpu_report_memo_shares_blocks_of_equal_records() -> None:
    first, second = parse_gpu_report(N1_BYTES), parse_gpu_report(bytes(bytearray(N1_BYTES)))
    assert second.response.blocks is first.response.blocks
    clear_parse_memos()
    fresh = parse_gpu_report(N1_BYTES)
    assert fresh.response.blocks is not first.response.blocks
    assert fresh == first


def test_parse_device_chain_memo_equal_after_clearing() -> None:
    pem = (DEVICES / "N1-hopper.pem").read_bytes()
    first = parse_device_chain(pem)
    clear_parse_memos()
    assert parse_device_chain(pem) == first


def test_cache_measured_same_blocks_and_plan_reused() -> None:
    report = parse_gpu_report(N1_BYTES)
    plan = measurement_plan(_rim(range(21, 41), report.measurements, sha="a"), None)
    cache = NvidiaVerificationCache()
    first = cache.measured(report, plan)
    assert first == measured_rows(report, plan)
    assert cache.measured(parse_gpu_report(N1_BYTES), plan) is first  # a later report with the same record


def test_cache_measured_follows_nvdec0_status() -> None:
    report = parse_gpu_report(N1_BYTES)
    plan = measurement_plan(_rim(range(21, 41), report.measurements, sha="a"), None)
    cache = NvidiaVerificationCache()
    skipped = {r[0]: r[3] for r in cache.measured(report, plan).rows}
    enabled = replace(
        report, response=replace(report.response, opaque=replace(report.response.opaque, nvdec0_status=0xAA))
    )
    assert enabled.response.blocks is report.response.blocks
    compared = {r[0]: r[3] for r in cache.measured(enabled, plan).rows}
    assert skipped[NVDEC0_RIM_INDEX] == "skipped"
    assert compared[NVDEC0_RIM_INDEX] == "match"


def test_cache_measured_follows_the_plan() -> None:
    report = parse_gpu_report(N1_BYTES)
    values = dict(report.measurements)
    good = measurement_plan(_rim(range(21, 41), values, sha="a"), None)
    values[22] = bytes(48)  # RIM index 21 now expects zeros
    bad = measurement_plan(_rim(range(21, 41), values, sha="b"), None)
    cache = NvidiaVerificationCache()
    assert cache.measured(report, good).reasons == ()
    mismatched = cache.measured(report, bad)
    assert [r.message.split(" (")[0] for r in mismatched.reasons] == ["measurement index 21"]
    assert mismatched == measured_rows(report, bad)


def test_cache_measured_follows_the_blocks() -> None:
    report = parse_gpu_report(N1_BYTES)
    plan = measurement_plan(_rim(range(21, 41), report.measurements, sha="a"), None)
    changed_record = bytearray(N1_BYTES)
    block_22_value = 37 + 8 + 21 * 55 + 7  # request, response header, 21 blocks, then block 22's header
    changed_record[block_22_value] ^= 1
    changed = parse_gpu_report(bytes(changed_record))
    cache = NvidiaVerificationCache()
    assert cache.measured(report, plan).reasons == ()
    assert [r[0] for r in cache.measured(changed, plan).rows if r[3] == "mismatch"] == [21]
