"""NVIDIA appraisal: the policy document, the measurement comparison (against RIM entries built here, so no XML or
RIM signature is involved) and the policy rules on signed report fields, on real reports from
tests/vectors/nvidia/devices/ (PROVENANCE-verify.md)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from verifier.appraisal.nvidia import (
    NVDEC0_RIM_INDEX,
    NvidiaPolicy,
    compare_measurements,
    conflict_reasons,
    driver_version_key,
    fwid_required,
    gpu_count_reasons,
    index_conflicts,
    measurement_reasons,
    msr35_skipped,
    parse_nvidia_policy,
    policy_reasons,
    vbios_version_key,
)
from verifier.errors import Code, UsageError
from verifier.evidence.nvidia import GpuReport, parse_gpu_report
from verifier.trust.nvidia_rim import RimMeasurement, VerifiedRim
from verifier.trust.ocsp import OcspPolicy

DEVICES = Path(__file__).resolve().parents[2] / "vectors" / "nvidia" / "devices"


def _report(name: str) -> GpuReport:
    return parse_gpu_report((DEVICES / f"{name}.bin").read_bytes())


N1 = _report("N1-hopper")  # H100, NVDEC0 0x55, PPCIe 0x55, driver 550.90.07
M2_GPU = _report("M2-ppcie-gpu0")  # H200, PPCIe 0xAA
M3_GPU = _report("M3-blackwell-mpt-gpu0")  # B200, NVDEC0 0xAA, OPAQUE_DATA_VERSION 1
S1 = _report("S1-switch_evidence_ls10")


def _rim(entries: dict[int, tuple[bytes, ...]], *, inactive: dict[int, bytes] | None = None) -> VerifiedRim:
    measurements = [RimMeasurement(i, True, alts, 48, f"Measurement_{i}") for i, alts in entries.items()]
    measurements += [RimMeasurement(i, False, (v,), 48, f"Measurement_{i}") for i, v in (inactive or {}).items()]
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


def _golden(report: GpuReport, indices: range) -> dict[int, tuple[bytes, ...]]:
    """RIM entries equal to the report's own blocks (RIM index i = block i + 1)."""
    return {i: (report.measurements[i + 1],) for i in indices}


def _flip(value: bytes) -> bytes:
    return bytes((value[0] ^ 1,)) + value[1:]


# ---------------------------------------------------------------------------------------------------------
# Policy document


def test_parse_nvidia_policy_empty_is_fail_closed_default() -> None:
    policy = parse_nvidia_policy({})
    assert policy == NvidiaPolicy()
    assert policy.require_rims
    assert policy.require_ocsp
    assert not policy.allow_trailing_zeros
    assert policy.expected_nonce is None


def test_parse_nvidia_policy_every_key() -> None:
    doc = {
        "require_rims": False,
        "require_ocsp": False,
        "require_fwid": True,
        "ocsp_grace_seconds": 3600,
        "ocsp_max_age_seconds": 86400,
        "allow_cert_hold": True,
        "architectures": ["hopper", "BLACKWELL"],
        "projects": ["1010"],
        "project_skus": ["0200"],
        "chip_skus": ["882"],
        "min_driver_version": "550.90.07",
        "min_vbios_version": "96.00.9F.00.01",
        "min_gpus": 1,
        "max_gpus": 8,
        "require_ppcie": True,
        "expected_report_data": "ab" * 32,
        "allow_trailing_zeros": True,
    }
    policy = parse_nvidia_policy(json.dumps(doc))
    assert policy == NvidiaPolicy(
        require_rims=False,
        require_ocsp=False,
        ocsp=OcspPolicy(grace=timedelta(hours=1), max_age=timedelta(days=1), allow_hold=True),
        require_fwid=True,
        architectures=frozenset({"HOPPER", "BLACKWELL"}),
        projects=frozenset({"1010"}),
        project_skus=frozenset({"0200"}),
        chip_skus=frozenset({"882"}),
        min_driver_version="550.90.07",
        min_vbios_version="96.00.9F.00.01",
        min_gpus=1,
        max_gpus=8,
        require_ppcie=True,
        expected_nonce=bytes.fromhex("ab" * 32),
        allow_trailing_zeros=True,
    )


BAD_POLICIES: list[tuple[str, dict[str, Any]]] = [
    ("unknown_key", {"require_rim": False}),
    ("bool_as_string", {"require_ocsp": "false"}),
    ("require_fwid_number", {"require_fwid": 1}),
    ("nonce_not_hex", {"expected_report_data": "zz" * 32}),
    ("nonce_wrong_length", {"expected_report_data": "ab" * 48}),
    ("nonce_not_string", {"expected_report_data": 5}),
    ("unknown_architecture", {"architectures": ["VOLTA"]}),
    ("architectures_not_list", {"architectures": "HOPPER"}),
    ("projects_not_strings", {"projects": [1010]}),
    ("driver_version_text", {"min_driver_version": "latest"}),
    ("vbios_version_short", {"min_vbios_version": "96.00.9F"}),
    ("min_gpus_negative", {"min_gpus": -1}),
    ("min_gpus_bool", {"min_gpus": True}),
    ("max_below_min", {"min_gpus": 4, "max_gpus": 2}),
    ("grace_negative", {"ocsp_grace_seconds": -5}),
    ("max_age_string", {"ocsp_max_age_seconds": "1d"}),
    ("hold_not_bool", {"allow_cert_hold": 1}),
    ("not_an_object", []),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("doc"), [d for _, d in BAD_POLICIES], ids=[n for n, _ in BAD_POLICIES])
def test_parse_nvidia_policy_invalid_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as e:
        parse_nvidia_policy(doc)
    assert e.value.code is Code.POLICY_INVALID


def test_parse_nvidia_policy_not_json_rejected() -> None:
    with pytest.raises(UsageError) as e:
        parse_nvidia_policy("{require_rims: false")
    assert e.value.code is Code.POLICY_INVALID


# ---------------------------------------------------------------------------------------------------------
# Versions and FWID default


@pytest.mark.parametrize(
    ("older", "newer"),
    [("550.90.07", "550.144.03"), ("550.144.03", "570.86.10"), ("570.124.06", "590.12"), ("9.1", "10.0")],
)
def test_driver_version_key_numeric_order(older: str, newer: str) -> None:
    assert driver_version_key(older) < driver_version_key(newer)


@pytest.mark.parametrize(
    ("older", "newer"),
    [("96.00.9F.00.01", "96.00.A5.00.01"), ("96.00.CF.00.02", "97.00.D9.00.35"), ("96.00.74.00.1C", "96.00.74.00.20")],
)
def test_vbios_version_key_hex_order(older: str, newer: str) -> None:
    assert vbios_version_key(older) < vbios_version_key(newer)
    assert vbios_version_key(older.lower()) == vbios_version_key(older)


@pytest.mark.parametrize("bad", ["", "550", "550.90.07a", "96.00.9F.00.01.02"])
def test_driver_version_key_malformed_raises(bad: str) -> None:
    with pytest.raises(ValueError, match="driver version"):
        driver_version_key(bad)


def test_fwid_required_default_driver_550() -> None:
    assert fwid_required(N1, NvidiaPolicy()) is True  # driver 550.90.07, no OPAQUE_DATA_VERSION


def test_fwid_required_default_opaque_data_version() -> None:
    assert M3_GPU.response.opaque.opaque_data_version == 1
    assert fwid_required(M3_GPU, NvidiaPolicy()) is True


def test_fwid_required_default_switch_not_required() -> None:
    assert fwid_required(S1, NvidiaPolicy()) is False


def test_fwid_required_policy_overrides() -> None:
    assert fwid_required(N1, NvidiaPolicy(require_fwid=False)) is False
    assert fwid_required(S1, NvidiaPolicy(require_fwid=True)) is True


# ---------------------------------------------------------------------------------------------------------
# Measurements


def test_compare_measurements_all_match() -> None:
    driver = _rim(_golden(N1, range(21, 41)))
    vbios = _rim(_golden(N1, range(13)))
    results = compare_measurements(N1, driver, vbios)
    compared = [r for r in results if r.source is not None]
    assert len(compared) == 33
    assert {r.result for r in compared} == {"match", "skipped"}
    assert [r.index for r in compared if r.result == "skipped"] == [NVDEC0_RIM_INDEX]
    assert not measurement_reasons(results)


def test_compare_measurements_one_mismatch_names_index_and_values() -> None:
    golden = _golden(N1, range(13))
    golden[9] = (_flip(golden[9][0]),)
    results = compare_measurements(N1, None, _rim(golden))
    bad = [r for r in results if r.result == "mismatch"]
    assert [(r.index, r.block, r.source) for r in bad] == [(9, 10, "vbios")]
    assert bad[0].actual == N1.measurements[10]
    reasons = measurement_reasons(results)
    assert [r.code for r in reasons] == [Code.NVIDIA_MEASUREMENT_MISMATCH]
    assert "index 9" in reasons[0].message
    assert reasons[0].expected == golden[9][0].hex()
    assert reasons[0].actual == N1.measurements[10].hex()


def test_compare_measurements_any_alternative_matches() -> None:
    actual = N1.measurements[13]
    results = compare_measurements(N1, _rim({12: (_flip(actual), actual, bytes(48))}), None)
    assert [r.result for r in results if r.index == 12] == ["match"]


def test_compare_measurements_alternative_of_wrong_size_ignored() -> None:
    rim = _rim({})
    wrong = replace(rim, measurements=(RimMeasurement(3, True, (N1.measurements[4],), 32, "Measurement_3"),))
    results = compare_measurements(N1, wrong, None)
    assert [r.result for r in results if r.index == 3] == ["mismatch"]


def test_compare_measurements_missing_block_is_mismatch() -> None:
    results = compare_measurements(N1, _rim({70: (bytes(48),)}), None)
    miss = [r for r in results if r.index == 70]
    assert miss[0].result == "mismatch"
    assert miss[0].actual is None
    assert measurement_reasons(results)[0].actual == "missing"


def test_compare_measurements_inactive_entries_ignored() -> None:
    results = compare_measurements(N1, _rim({}, inactive={5: bytes(48)}), None)
    assert not [r for r in results if r.source is not None]


def test_compare_measurements_msr35_skipped_when_nvdec0_disabled() -> None:
    assert msr35_skipped(N1)
    results = compare_measurements(N1, _rim({NVDEC0_RIM_INDEX: (bytes(48),)}), None)
    assert [r.result for r in results if r.index == NVDEC0_RIM_INDEX] == ["skipped"]
    assert not measurement_reasons(results)


def test_compare_measurements_msr35_compared_when_nvdec0_enabled() -> None:
    assert M3_GPU.response.opaque.nvdec0_status == 0xAA
    assert not msr35_skipped(M3_GPU)
    results = compare_measurements(M3_GPU, _rim({NVDEC0_RIM_INDEX: (_flip(M3_GPU.measurements[36]),)}), None)
    assert [r.index for r in results if r.result == "mismatch"] == [NVDEC0_RIM_INDEX]


def test_compare_measurements_uncovered_nonzero_blocks_not_in_rim() -> None:
    results = compare_measurements(N1, _rim(_golden(N1, range(21, 41))), None)
    extra = [r for r in results if r.result == "not_in_rim"]
    expected = {b - 1 for b, v in N1.measurements.items() if any(v) and not 21 <= b - 1 < 41}
    assert {r.index for r in extra} == expected
    assert all(r.source is None for r in extra)


def test_compare_measurements_no_rims_no_results() -> None:
    assert compare_measurements(N1, None, None) == ()


def test_index_conflicts_found() -> None:
    driver = _rim(_golden(N1, range(7, 9)))
    vbios = _rim(_golden(N1, range(8, 13)))
    assert index_conflicts(driver, vbios) == (8,)
    reasons = conflict_reasons(index_conflicts(driver, vbios))
    assert [r.code for r in reasons] == [Code.NVIDIA_RIM_INDEX_CONFLICT]
    assert reasons[0].actual == "8"


def test_index_conflicts_inactive_duplicate_is_no_conflict() -> None:
    driver = _rim(_golden(N1, range(21, 23)), inactive={5: bytes(48)})
    vbios = _rim(_golden(N1, range(5, 7)))
    assert index_conflicts(driver, vbios) == ()
    assert conflict_reasons(()) == ()


def test_measurement_result_json_shape() -> None:
    result = compare_measurements(N1, _rim({0: (N1.measurements[1],)}), None)[0]
    assert result.to_json() == {
        "index": 0,
        "block": 1,
        "source": "driver",
        "result": "match",
        "expected": [N1.measurements[1].hex()],
        "actual": N1.measurements[1].hex(),
    }


# ---------------------------------------------------------------------------------------------------------
# Policy on signed fields


def test_policy_reasons_default_policy_passes() -> None:
    assert policy_reasons(N1, "HOPPER", "gpu", NvidiaPolicy()) == ()


def test_policy_reasons_architecture_not_allowed() -> None:
    reasons = policy_reasons(N1, "HOPPER", "gpu", NvidiaPolicy(architectures=frozenset({"BLACKWELL"})))
    assert [(r.code, r.actual) for r in reasons] == [(Code.NVIDIA_POLICY_ARCHITECTURE, "HOPPER")]


@pytest.mark.parametrize(
    "policy",
    [
        NvidiaPolicy(projects=frozenset({"G520"})),
        NvidiaPolicy(project_skus=frozenset({"0280"})),
        NvidiaPolicy(chip_skus=frozenset({"895"})),
    ],
    ids=["project", "project_sku", "chip_sku"],
)
def test_policy_reasons_sku_not_allowed(policy: NvidiaPolicy) -> None:
    assert [r.code for r in policy_reasons(N1, "HOPPER", "gpu", policy)] == [Code.NVIDIA_POLICY_SKU]


def test_policy_reasons_sku_allowed() -> None:
    policy = NvidiaPolicy(projects=frozenset({"1010"}), project_skus=frozenset({"0200"}), chip_skus=frozenset({"882"}))
    assert policy_reasons(N1, "HOPPER", "gpu", policy) == ()


@pytest.mark.parametrize(("minimum", "fails"), [("550.90.07", False), ("550.90.08", True), ("550.127.05", True)])
def test_policy_reasons_min_driver_version(minimum: str, fails: bool) -> None:
    reasons = policy_reasons(N1, "HOPPER", "gpu", NvidiaPolicy(min_driver_version=minimum))
    assert [r.code for r in reasons] == ([Code.NVIDIA_POLICY_DRIVER_VERSION] if fails else [])


@pytest.mark.parametrize(
    ("minimum", "fails"), [("96.00.9F.00.01", False), ("96.00.9e.00.01", False), ("96.00.A0.00.00", True)]
)
def test_policy_reasons_min_vbios_version(minimum: str, fails: bool) -> None:
    reasons = policy_reasons(N1, "HOPPER", "gpu", NvidiaPolicy(min_vbios_version=minimum))
    assert [r.code for r in reasons] == ([Code.NVIDIA_POLICY_VBIOS_VERSION] if fails else [])


def test_policy_reasons_ppcie_required_not_in_ppcie_mode() -> None:
    reasons = policy_reasons(N1, "HOPPER", "gpu", NvidiaPolicy(require_ppcie=True))
    assert [(r.code, r.actual) for r in reasons] == [(Code.NVIDIA_POLICY_PPCIE_REQUIRED, "0x55")]


def test_policy_reasons_ppcie_required_in_ppcie_mode() -> None:
    assert policy_reasons(M2_GPU, "HOPPER", "gpu", NvidiaPolicy(require_ppcie=True)) == ()


def test_policy_reasons_switch_skips_gpu_rules() -> None:
    policy = NvidiaPolicy(projects=frozenset({"G520"}), min_driver_version="590.0", min_vbios_version="99.00.00.00.00")
    assert policy_reasons(S1, "LS10", "switch", policy) == ()
    only_gpus = NvidiaPolicy(architectures=frozenset({"HOPPER"}))
    assert [r.code for r in policy_reasons(S1, "LS10", "switch", only_gpus)] == [Code.NVIDIA_POLICY_ARCHITECTURE]


@pytest.mark.parametrize(("gpus", "fails"), [(0, True), (1, False), (8, False), (9, True)])
def test_gpu_count_reasons_bounds(gpus: int, fails: bool) -> None:
    reasons = gpu_count_reasons(gpus, NvidiaPolicy(min_gpus=1, max_gpus=8))
    assert [r.code for r in reasons] == ([Code.NVIDIA_POLICY_GPU_COUNT] if fails else [])
