"""The ``keyward verify`` contract: JSON shape, exit codes 0/1/2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.vectors import INTEL_CASES
from verifier.cli import main, parse_time

P2 = next(c for c in INTEL_CASES if c.id == "P2")
T1 = next(c for c in INTEL_CASES if c.id == "T1")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_cli_verify_accepted_json_shape() -> None:
    code, out = _run("verify", str(P2.quote), "--collateral", str(P2.collateral), "--at", "1750332747", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {
        "platform",
        "verified",
        "accepted",
        "simulated",
        "tcb_status",
        "advisory_ids",
        "claims",
        "reasons",
        "collateral",
    }
    assert doc["platform"] == "intel-tdx"
    assert (doc["verified"], doc["accepted"], doc["simulated"]) == (True, True, False)
    assert doc["tcb_status"] == "UpToDate"
    assert doc["reasons"] == []
    assert doc["claims"]["mrtd"] == P2.quote.read_bytes()[184:232].hex()
    assert doc["collateral"]["tcb_eval_number"] == 17
    assert doc["collateral"]["fmspc"] == "b0c06f000000"


def test_cli_verify_policy_rejection_exit_1() -> None:
    code, out = _run("verify", str(T1.quote), "--collateral", str(T1.collateral), "--at", T1.now.isoformat(), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is True
    assert doc["accepted"] is False
    assert [r["code"] for r in doc["reasons"]] == ["intel.policy.td_debug"]


def test_cli_verify_real_time_expired_exit_1() -> None:
    code, out = _run("verify", str(P2.quote), "--collateral", str(P2.collateral), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is False
    assert doc["reasons"][0]["code"] == "intel.collateral.crl_expired"


def test_cli_verify_without_collateral_rejected() -> None:
    code, out = _run("verify", str(P2.quote), "--json")
    assert code == 1
    assert json.loads(out)["reasons"][0]["code"] == "intel.collateral.missing"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "intel.quote.truncated"),
        (b"\x04\x00" + b"\x00" * 100, "intel.quote.unsupported_key_type"),
        (b"garbage that is not a quote, long enough to hold a header" * 2, "intel.quote.unsupported_version"),
        (b"0xabc", "intel.quote.encoding"),
    ],
    ids=["empty", "short-v4", "text", "odd-hex"],
)
def test_cli_verify_malformed_evidence_clean_rejection(tmp_path: Path, content: bytes, code: str) -> None:
    evidence = tmp_path / "quote.bin"
    evidence.write_bytes(content)
    exit_code, out = _run("verify", str(evidence), "--collateral", str(P2.collateral), "--json")
    assert exit_code == 1
    assert json.loads(out)["reasons"][0]["code"] == code


def test_cli_verify_malformed_collateral_clean_rejection(tmp_path: Path) -> None:
    bad = tmp_path / "collateral.json"
    bad.write_text('{"tcb_info": 1}')
    code, out = _run("verify", str(P2.quote), "--collateral", str(bad), "--json")
    assert code == 1
    assert json.loads(out)["reasons"][0]["code"] == "intel.collateral.malformed"


def test_cli_verify_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allowed_measurements": {"mrtd": ["00" * 48]}}))
    code, out = _run(
        "verify",
        str(P2.quote),
        "--collateral",
        str(P2.collateral),
        "--at",
        "1750332747",
        "--policy",
        str(policy),
        "--json",
    )
    assert code == 1
    assert [r["code"] for r in json.loads(out)["reasons"]] == ["intel.policy.measurement_not_allowed"]


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "/nonexistent/quote.bin"],
        ["verify", "{quote}", "--at", "yesterday"],
        ["verify", "{quote}", "--bogus"],
        ["verify", "{quote}", "--policy", "{bad_policy}"],
        ["verify"],
    ],
    ids=["missing-file", "bad-time", "bad-flag", "invalid-policy", "no-evidence"],
)
def test_cli_verify_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    bad_policy = tmp_path / "p.json"
    bad_policy.write_text('{"allow_debug": "maybe"}')
    argv = [a.format(quote=P2.quote, bad_policy=bad_policy) for a in args]
    code, _ = _run(*argv)
    assert code == 2


def test_cli_verify_human_report_mentions_status_and_reason() -> None:
    code, out = _run("verify", str(T1.quote), "--collateral", str(T1.collateral), "--at", T1.now.isoformat())
    assert code == 1
    assert "UpToDate" in out
    assert "intel.policy.td_debug" in out


@pytest.mark.parametrize(
    ("text", "unix"),
    [
        ("1750332747", 1750332747),
        ("2025-06-19T11:32:27Z", 1750332747),
        ("2025-06-19T13:32:27+02:00", 1750332747),
        ("2025-06-19T11:32:27", 1750332747),
    ],
    ids=["unix", "zulu", "offset", "naive-is-utc"],
)
def test_parse_time_formats(text: str, unix: int) -> None:
    assert int(parse_time(text).timestamp()) == unix
