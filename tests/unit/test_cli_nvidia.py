"""``keyward verify`` for NVIDIA GPUs and NVSwitches: the same JSON fields and exit codes as for Intel and AMD, on
the real vectors (``tests/vectors/nvidia/``: N1 H100 with its driver and VBIOS RIMs and seven OCSP responses, S1
LS10 NVSwitch with its BIOS RIM; see the PROVENANCE files there).

The real OCSP responses of N1 are from two days (device certificates 2025-08-21, RIM signers 2025-10-24, 24 h each;
the device L2 responder certificate expired 2025-09-21), so no one instant has all seven fresh: accepted runs use
``require_ocsp: false`` (without responses, the claim says "skipped"), and each pinned time with all seven must fail
exactly on the other day's responses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from verifier import cli
from verifier.cli import main
from verifier.simulation.nvidia_pki import GpuOptions, default_nvidia_pki
from verifier.trust.nvidia_rim import verify_rim
from verifier.trust.store import (
    NVIDIA_DEVICE_ROOT,
    NVIDIA_RIM_ROOT,
    TrustStore,
    load_trust_store,
    trust_store_from_certificates,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "nvidia"
DEVICES = VECTORS / "devices"
RIMS = VECTORS / "rim"
OCSP = VECTORS / "ocsp"
EXPECTED: dict[str, Any] = json.loads((DEVICES / "expected-verify.json").read_text())
N1 = EXPECTED["N1"]
S1 = EXPECTED["S1"]
N1_NONCE = EXPECTED["devices"][0]["request_nonce"]
N1_RIM_TIME = N1["pinned_now"]  # the RIM signers' OCSP responses are fresh
N1_DEVICE_TIME = N1["pinned_now_device_ocsp"]  # the device certificates' OCSP responses are fresh
N1_REPORTS = {"binary": VECTORS / "hopperAttestationReport.bin", "hex": VECTORS / "hopperAttestationReport.txt"}
N1_CHAIN = VECTORS / "hopperCertChain.pem"
#: Files of the RIM signers' responses (the others answer for device certificates 1..3).
RIM_OCSP = frozenset(f for level, f in N1["ocsp"].items() if "rim" in level)

#: Claims every NVIDIA result carries (issue 14), besides the measurements.
CLAIM_KEYS = frozenset(
    {
        "architecture",
        "driver_version",
        "vbios_version",
        "project",
        "project_sku",
        "chip_sku",
        "request_nonce",
        "ueid",
        "fwid",
        "measurements",
    }
)
RESULT_KEYS = frozenset(
    {"platform", "verified", "accepted", "simulated", "tcb_status", "advisory_ids", "claims", "reasons", "collateral"}
)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out = _run(*args, "--json")
    doc: dict[str, Any] = json.loads(out)
    return code, doc


def _codes(doc: dict[str, Any]) -> list[str]:
    return [r["code"] for r in doc["reasons"]]


def _policy(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return ["--policy", str(path)]


def _n1_rims() -> list[str]:
    return ["--rim", str(RIMS / N1["driver_rim"]), "--rim", str(RIMS / N1["vbios_rim"])]


def _ocsp(names: Iterator[str] | frozenset[str] | list[str]) -> list[str]:
    return [arg for name in sorted(names) for arg in ("--ocsp", str(OCSP / name))]


def _all_ocsp() -> list[str]:
    return _ocsp(list(N1["ocsp"].values()))


def _n1(report: str = "binary", *args: str) -> list[str]:
    return ["verify", str(N1_REPORTS[report]), "--certs", str(N1_CHAIN), *args]


# ---------------------------------------------------------------------------------------------------------
# N1 accepted


@pytest.mark.parametrize("report", list(N1_REPORTS), ids=list(N1_REPORTS))
def test_cli_verify_nvidia_n1_accepted_json_shape(tmp_path: Path, report: str) -> None:
    code, doc = _json(
        *_n1(report, *_n1_rims(), "--nonce", N1_NONCE, "--at", N1_RIM_TIME),
        *_policy(tmp_path, {"require_ocsp": False}),
    )
    assert code == 0
    assert set(doc) == RESULT_KEYS
    assert (doc["platform"], doc["verified"], doc["accepted"], doc["simulated"]) == ("nvidia-gpu", True, True, False)
    assert doc["reasons"] == []
    claims = doc["claims"]
    assert claims.keys() >= CLAIM_KEYS
    device = EXPECTED["devices"][0]
    for key in ("driver_version", "vbios_version", "project", "project_sku", "chip_sku", "request_nonce"):
        assert claims[key] == device[key], key
    assert claims["architecture"] == "HOPPER"
    assert claims["device_kind"] == "gpu"
    assert claims["fwid"] == device["fwid_report"]
    assert claims["ueid"].isdigit()
    assert (claims["nonce_match"], claims["signature_verified"], claims["fwid_match"]) == (True, True, True)
    assert claims["rims"]["driver"]["id"] == Path(N1["driver_rim"]).stem
    assert claims["rims"]["vbios"]["id"] == Path(N1["vbios_rim"]).stem


def test_cli_verify_nvidia_n1_measurements_shape(tmp_path: Path) -> None:
    code, doc = _json(*_n1("binary", *_n1_rims(), "--at", N1_RIM_TIME), *_policy(tmp_path, {"require_ocsp": False}))
    assert code == 0
    claims = doc["claims"]
    appraisal = N1["appraisal"]
    assert claims["measres"] == appraisal["measres"]
    assert claims["msr35_skipped"] is appraisal["msr35_skipped"]
    measurements = claims["measurements"]
    compared = [m for m in measurements if m["source"] is not None]
    assert len(compared) == appraisal["active_indices"]
    for m in measurements:
        assert set(m) == {"index", "block", "source", "result", "expected", "actual"}
        assert isinstance(m["index"], int)
        assert m["block"] == m["index"] + 1
        assert m["source"] in ("driver", "vbios", None)
        assert m["result"] in ("match", "mismatch", "not_in_rim", "skipped")
        assert (m["source"] is None) == (m["result"] == "not_in_rim")
        assert all(len(bytes.fromhex(e)) == 48 for e in m["expected"])
        assert len(bytes.fromhex(m["actual"])) == 48
    assert {m["result"] for m in compared} == {"match", "skipped"}
    assert [m["index"] for m in compared if m["result"] == "skipped"] == [35]  # NVDEC0 disabled


def test_cli_verify_nvidia_ocsp_not_required_claim_skipped(tmp_path: Path) -> None:
    code, doc = _json(*_n1("binary", *_n1_rims(), "--at", N1_RIM_TIME), *_policy(tmp_path, {"require_ocsp": False}))
    assert code == 0
    assert doc["claims"]["ocsp"] == "skipped"


def test_cli_verify_nvidia_nested_policy_section(tmp_path: Path) -> None:
    policy = _policy(tmp_path, {"intel": {}, "nvidia": {"require_ocsp": False, "architectures": ["BLACKWELL"]}})
    code, doc = _json(*_n1("binary", *_n1_rims(), "--at", N1_RIM_TIME), *policy)
    assert code == 1
    assert _codes(doc) == ["nvidia.policy.architecture"]


# ---------------------------------------------------------------------------------------------------------
# N1 with all seven real OCSP responses


@pytest.mark.parametrize(
    ("at", "fresh"),
    [(N1_RIM_TIME, "rim"), (N1_DEVICE_TIME, "device")],
    ids=["rim-time", "device-time"],
)
def test_cli_verify_nvidia_n1_all_ocsp_other_days_responses_rejected(at: str, fresh: str) -> None:
    code, doc = _json(*_n1("binary", *_n1_rims(), *_all_ocsp(), "--nonce", N1_NONCE, "--at", at))
    assert code == 1
    assert doc["verified"] is True
    assert doc["claims"]["measres"] == "success"
    statuses = {e["level"]: e["status"] for e in doc["claims"]["ocsp"]}
    assert len(statuses) == 9  # device-L4..L2, driver-rim-L4..L2, vbios-rim-L4..L2
    fresh_levels = {level for level in statuses if level.startswith("device") == (fresh == "device")}
    assert {statuses[level] for level in fresh_levels} == {"good"}
    assert {statuses[level] for level in statuses.keys() - fresh_levels} == {"invalid"}
    assert set(_codes(doc)) <= {"nvidia.ocsp.stale", "nvidia.ocsp.signature_invalid"}
    assert {r["message"].split(":")[0].removeprefix("OCSP ") for r in doc["reasons"]} == statuses.keys() - fresh_levels


def test_cli_verify_nvidia_device_ocsp_missing_rejected() -> None:
    code, doc = _json(*_n1("binary", *_n1_rims(), *_ocsp(RIM_OCSP), "--at", N1_RIM_TIME))
    assert code == 1
    assert doc["verified"] is True
    assert _codes(doc) == ["nvidia.ocsp.missing"] * 3
    assert sorted(r["message"].split(" (")[0] for r in doc["reasons"]) == [
        f"no OCSP response for device-L{level}" for level in (2, 3, 4)
    ]


def test_cli_verify_nvidia_no_ocsp_default_policy_missing() -> None:
    code, doc = _json(*_n1("binary", *_n1_rims(), "--at", N1_RIM_TIME))
    assert code == 1
    assert set(_codes(doc)) == {"nvidia.ocsp.missing"}
    assert {e["status"] for e in doc["claims"]["ocsp"]} == {"missing"}


def test_cli_verify_nvidia_no_rim_default_policy_missing() -> None:
    code, doc = _json(*_n1("binary", *_all_ocsp(), "--at", N1_DEVICE_TIME))
    assert code == 1
    assert doc["verified"] is True
    assert _codes(doc) == ["nvidia.rim.missing"] * 2
    assert sorted(r["expected"] for r in doc["reasons"]) == sorted(
        Path(N1[k]).stem for k in ("driver_rim", "vbios_rim")
    )
    assert doc["claims"]["measres"] == "unavailable"


# ---------------------------------------------------------------------------------------------------------
# Nonce


def test_cli_verify_nvidia_nonce_mismatch(tmp_path: Path) -> None:
    other = bytes.fromhex(N1_NONCE)[::-1].hex()
    code, doc = _json(
        *_n1("binary", *_n1_rims(), "--nonce", other, "--at", N1_RIM_TIME),
        *_policy(tmp_path, {"require_ocsp": False}),
    )
    assert code == 1
    assert doc["verified"] is False
    assert _codes(doc) == ["nvidia.nonce.mismatch"]
    assert (doc["reasons"][0]["expected"], doc["reasons"][0]["actual"]) == (other, N1_NONCE)
    assert doc["claims"]["nonce_match"] is False


def test_cli_verify_nvidia_without_nonce_not_checked(tmp_path: Path) -> None:
    code, doc = _json(*_n1("binary", *_n1_rims(), "--at", N1_RIM_TIME), *_policy(tmp_path, {"require_ocsp": False}))
    assert code == 0
    assert doc["claims"]["nonce_match"] == "not_checked"


@pytest.mark.parametrize(
    "nonce",
    ["zz" * 32, N1_NONCE[:-2], N1_NONCE + "00", N1_NONCE[:-1]],
    ids=["not-hex", "31-bytes", "33-bytes", "odd-length"],
)
def test_cli_verify_nvidia_bad_nonce_hex_usage_error(nonce: str) -> None:
    code, out = _run(*_n1("binary", *_n1_rims(), "--nonce", nonce, "--at", N1_RIM_TIME))
    assert code == 2
    assert "--nonce must be 64 hex digits" in out


# ---------------------------------------------------------------------------------------------------------
# RIMs


def test_cli_verify_nvidia_real_time_expired_rim_signers_rejected(tmp_path: Path) -> None:
    code, doc = _json(*_n1("binary", *_n1_rims()), *_policy(tmp_path, {"require_ocsp": False}))
    assert code == 1
    assert doc["verified"] is True  # the device chain never expires; the RIM signers did (2026-02-22, 2026-06-01)
    assert sorted(_codes(doc)) == ["nvidia.rim.chain_expired"] * 2 + ["nvidia.rim.missing"] * 2
    assert doc["claims"]["measres"] == "unavailable"


def test_cli_verify_nvidia_mismatch_rim_of_other_vbios_rejected(tmp_path: Path) -> None:
    """NVIDIA's validly signed measurement-mismatch RIM is for VBIOS 96.00.5E.00.01; N1 runs 96.00.9F.00.01."""
    rim = RIMS / "negative" / "NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
    code, doc = _json(
        *_n1("binary", "--rim", str(RIMS / N1["driver_rim"]), "--rim", str(rim), "--at", N1_RIM_TIME),
        *_policy(tmp_path, {"require_ocsp": False}),
    )
    assert code == 1
    assert _codes(doc) == ["nvidia.rim.mismatch"]
    assert (doc["reasons"][0]["expected"], doc["reasons"][0]["actual"]) == (
        "GH100 96.00.9F.00.01",
        "GH100 96.00.5E.00.01",
    )


def _genuine_5e_vbios_values() -> dict[int, bytes]:
    """SPDM block -> value of a GPU running VBIOS 96.00.5E.00.01: NVIDIA's production RIM for it (nvtrust)."""
    prod = verify_rim(
        (VECTORS / "rim" / "1010_0200_882_96005E0001_PROD.swidtag").read_bytes(),
        load_trust_store(),
        datetime(2024, 10, 1, tzinfo=UTC),
    )
    return {m.index + 1: m.alternatives[0] for m in prod.measurements if m.active}


def test_cli_verify_nvidia_measurement_mismatch_names_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real report runs VBIOS 96.00.5E.00.01, the version of NVIDIA's validly signed measurement-mismatch RIM
    (index 9 changed). So the report is simulated with that production VBIOS's values, under a store trusting the
    simulated device root and the genuine CoRIM root; the RIM is NVIDIA's, verified for real."""
    pki = default_nvidia_pki()
    ev = pki.build(GpuOptions(vbios_version="96.00.5E.00.01", measurements=_genuine_5e_vbios_values()))
    store = trust_store_from_certificates(
        {NVIDIA_DEVICE_ROOT: ev.chain[-1], NVIDIA_RIM_ROOT: load_trust_store().root(NVIDIA_RIM_ROOT).certificate},
        simulated=True,
    )

    def hybrid_store() -> TrustStore:
        return store

    monkeypatch.setattr(cli, "load_trust_store", hybrid_store)
    report, chain = tmp_path / "report.bin", tmp_path / "chain.pem"
    report.write_bytes(ev.report)
    chain.write_bytes(ev.chain_pem)
    rim = RIMS / "negative" / "NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
    args = ["verify", str(report), "--certs", str(chain), "--rim", str(rim), "--nonce", ev.nonce.hex()]
    code, doc = _json(*args, "--at", N1_RIM_TIME, *_policy(tmp_path, {"require_ocsp": False, "require_rims": False}))
    assert code == 1
    assert (doc["verified"], doc["simulated"]) == (True, True)
    assert _codes(doc) == ["nvidia.measurement.mismatch"]
    mismatch = next(m for m in doc["claims"]["measurements"] if m["result"] == "mismatch")
    assert (mismatch["index"], mismatch["source"]) == (9, "vbios")
    reason = doc["reasons"][0]
    assert "index 9" in reason["message"]
    assert reason["expected"] == " | ".join(mismatch["expected"])
    assert reason["actual"] == mismatch["actual"] == _genuine_5e_vbios_values()[10].hex()
    assert reason["expected"] != reason["actual"]


def test_cli_verify_nvidia_switch_s1_with_bios_rim(tmp_path: Path) -> None:
    args = [
        "verify",
        str(DEVICES / "S1-switch_evidence_ls10.bin"),
        "--certs",
        str(DEVICES / "S1-switch_evidence_ls10.pem"),
        "--rim",
        str(RIMS / S1["bios_rim"]),
        "--at",
        S1["pinned_now"],
    ]
    code, doc = _json(*args, *_policy(tmp_path, {"require_ocsp": False}))
    assert code == 0
    assert (doc["platform"], doc["verified"], doc["accepted"]) == ("nvidia-gpu", True, True)
    claims = doc["claims"]
    assert (claims["device_kind"], claims["architecture"]) == ("switch", "LS10")
    assert claims["rims"]["bios"]["id"] == Path(S1["bios_rim"]).stem
    assert claims["measres"] == S1["appraisal"]["measres"]
    assert len([m for m in claims["measurements"] if m["source"] is not None]) == S1["appraisal"]["active_indices"]


# ---------------------------------------------------------------------------------------------------------
# Chains and trust


def test_cli_verify_nvidia_other_gpus_chain_signature_invalid(tmp_path: Path) -> None:
    args = ["verify", str(N1_REPORTS["binary"]), "--certs", str(DEVICES / "M4-hopper_evidence.pem")]
    code, doc = _json(*args, "--at", N1_RIM_TIME, *_policy(tmp_path, {"require_ocsp": False, "require_rims": False}))
    assert code == 1
    assert doc["verified"] is False
    assert sorted(_codes(doc)) == ["nvidia.fwid.mismatch", "nvidia.report.signature_invalid"]
    assert doc["claims"]["signature_verified"] is False


def test_cli_verify_nvidia_switch_with_other_switchs_chain_signature_invalid(tmp_path: Path) -> None:
    args = ["verify", str(DEVICES / "M2-switch1-other-capture.bin"), "--certs", str(DEVICES / "M2-switch0-chain.pem")]
    code, doc = _json(*args, "--at", N1_RIM_TIME, *_policy(tmp_path, {"require_ocsp": False, "require_rims": False}))
    assert code == 1
    assert _codes(doc) == ["nvidia.report.signature_invalid"]


def test_cli_verify_nvidia_simulated_evidence_untrusted(tmp_path: Path) -> None:
    ev = default_nvidia_pki().build()
    report, chain = tmp_path / "report.bin", tmp_path / "chain.pem"
    report.write_bytes(ev.report)
    chain.write_bytes(ev.chain_pem)
    args = ["verify", str(report), "--certs", str(chain), "--nonce", ev.nonce.hex(), "--at", ev.now.isoformat()]
    for i, rim in enumerate(ev.rims):
        path = tmp_path / f"rim{i}.xml"
        path.write_bytes(rim.xml)
        args += ["--rim", str(path)]
    for i, entry in enumerate(ev.ocsp):
        path = tmp_path / f"ocsp{i}.der"
        path.write_bytes(entry.response)
        args += ["--ocsp", str(path)]
    code, doc = _json(*args)
    assert code == 1
    assert (doc["verified"], doc["accepted"], doc["simulated"]) == (False, False, False)
    codes = _codes(doc)
    assert "nvidia.chain.untrusted" in codes
    assert codes.count("nvidia.rim.chain_untrusted") == len(ev.rims)


def test_cli_verify_nvidia_without_certs_rejected() -> None:
    code, doc = _json("verify", str(N1_REPORTS["binary"]), *_n1_rims(), "--at", N1_RIM_TIME)
    assert code == 1
    assert _codes(doc) == ["nvidia.chain.malformed"]


def test_cli_verify_nvidia_invalid_policy_usage_error(tmp_path: Path) -> None:
    code, _ = _run(*_n1("binary", *_n1_rims()), *_policy(tmp_path, {"require_ocsp": "no"}))
    assert code == 2


# ---------------------------------------------------------------------------------------------------------
# The human-readable report


def test_cli_verify_nvidia_human_report_accepted(tmp_path: Path) -> None:
    code, out = _run(
        *_n1("binary", *_n1_rims(), "--nonce", N1_NONCE, "--at", N1_RIM_TIME),
        *_policy(tmp_path, {"require_ocsp": False}),
    )
    assert code == 0
    assert "nvidia-gpu (GPU, HOPPER)" in out
    assert "device chain -> pinned NVIDIA Device Identity CA" in out
    assert f"request_nonce    {N1_NONCE}" in out
    assert f"{Path(N1['driver_rim']).stem}  (signer valid until" in out
    assert "measurements success:" in out
    assert "ocsp         skipped" in out


def test_cli_verify_nvidia_human_report_rejected_lists_reasons() -> None:
    code, out = _run(*_n1("binary", *_n1_rims(), *_ocsp(RIM_OCSP), "--at", N1_RIM_TIME))
    assert code == 1
    assert "nvidia.ocsp.missing: no OCSP response for device-L4" in out
    assert "ocsp         6 of 9 good; device-L4 missing, device-L3 missing, device-L2 missing" in out


def test_cli_verify_nvidia_docs_worked_example_is_the_output(tmp_path: Path) -> None:
    """docs/nvidia.md shows this run's report verbatim."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "nvidia.md").read_text()
    shown = docs.split("```\nkeyward verify hopperAttestationReport.bin\n", 1)[1].split("```", 1)[0]
    code, out = _run(
        *_n1("binary", *_n1_rims(), "--nonce", N1_NONCE, "--at", N1_RIM_TIME),
        *_policy(tmp_path, {"require_ocsp": False}),
    )
    assert code == 0
    assert out == "keyward verify hopperAttestationReport.bin\n" + shown
