"""NVIDIA warm-path memos: what NvidiaVerificationCache and the parser remember by identity or content gives the
same answers as computing afresh, and follows every input it depends on (the report's blocks, its NVDEC0 status,
the RIM pair, the time and the OCSP policy). Real reports from tests/vectors/nvidia/devices/ (PROVENANCE-verify.md)
with RIM entries built here, and the simulated H100 (verifier/simulation/nvidia_pki.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from verifier.appraisal.nvidia import NVDEC0_RIM_INDEX, NvidiaPolicy, measured_rows, measurement_plan
from verifier.evidence.nvidia import clear_parse_memos, parse_device_chain, parse_gpu_report
from verifier.platforms.nvidia_gpu import NvidiaVerificationCache, evaluate_gpu_report
from verifier.simulation.nvidia_pki import SIM_NOW, Defect, GpuOptions, default_nvidia_pki
from verifier.trust.nvidia_rim import RimMeasurement, VerifiedRim
from verifier.trust.ocsp import OcspPolicy

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


_TIMES = (
    timedelta(hours=-2),  # before the OCSP answers' thisUpdate (SIM_NOW - 1 h)
    timedelta(0),
    timedelta(hours=23),  # exactly nextUpdate
    timedelta(hours=23, seconds=1),
    timedelta(days=3),
    timedelta(days=800),  # past the OCSP responder certificates (SIM_NOW + 730 days)
)
_OCSP_POLICIES = (
    OcspPolicy(),
    OcspPolicy(grace=timedelta(days=1000)),
    OcspPolicy(max_age=timedelta(minutes=30)),
    OcspPolicy(allow_hold=True),
)


@pytest.mark.parametrize("defect", [None, Defect.DEVICE_CERT_HOLD, Defect.OCSP_STALE])
def test_nvidia_warm_evaluation_per_time_and_policy_equals_cold(defect: Defect | None) -> None:
    ev = default_nvidia_pki().build(GpuOptions(), defect)
    ocsp = tuple(e.response for e in ev.ocsp)
    cache = NvidiaVerificationCache()
    for delta in _TIMES:
        for ocsp_policy in _OCSP_POLICIES:
            policy = NvidiaPolicy(expected_nonce=ev.nonce, ocsp=ocsp_policy)
            now = SIM_NOW + delta
            cold = evaluate_gpu_report(ev.report, ev.chain_pem, ev.rim_xml, ocsp, policy, ev.trust_store, now)
            for _ in range(2):  # the first may store, the second reads what is stored
                warm = evaluate_gpu_report(
                    ev.report, ev.chain_pem, ev.rim_xml, ocsp, policy, ev.trust_store, now, cache=cache
                )
                assert (warm.claims, warm.reasons, warm.accepted) == (cold.claims, cold.reasons, cold.accepted), (
                    delta,
                    ocsp_policy,
                )
