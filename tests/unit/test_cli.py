"""The ``keyward verify`` contract: JSON shape, exit codes 0/1/2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import click
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


#: ``keyward verify --help`` before its options came from the registry's CLI descriptors: (flags, metavar, help).
VERIFY_OPTIONS = [
    (["--collateral"], "PATH", "Intel: dcap-qvl QuoteCollateralV3 JSON, or a directory of raw Intel PCS responses."),
    (
        ["--certs"],
        "FILE",
        "AMD: the VCEK/VLEK, PEM or DER, alone or with its chain (a supplied ARK/ASK is ignored). NVIDIA: the device "
        "certificate chain as NVML returns it (five PEM certificates, leaf first).",
    ),
    (["--cert-table"], "FILE", "AMD: extended-report certificate table / configfs-tsm auxblob (raw or base64)."),
    (["--crl"], "FILE", "AMD: the KDS CRL for the product (DER), checked against the pinned ARK."),
    (["--product"], "[milan|genoa|turin]", "AMD: product line (needed only to pin v2 reports, which carry no CPUID)."),
    (
        ["--cce-policy"],
        "FILE",
        "AMD confidential ACI: a CCE policy (rego or base64); HOST_DATA must be its SHA-256. Repeatable.",
    ),
    (
        ["--uvm-endorsement"],
        "FILE",
        "AMD confidential ACI: Microsoft's UVM reference-info COSE_Sign1; MEASUREMENT must be endorsed.",
    ),
    (
        ["--rim"],
        "FILE",
        "NVIDIA: a Reference Integrity Manifest (driver, VBIOS or NVSwitch BIOS; signed SWID XML). Repeatable.",
    ),
    (["--ocsp"], "FILE", "NVIDIA: a DER OCSP response for a device or RIM signing certificate. Repeatable."),
    (
        ["--nonce"],
        "TEXT",
        "NVIDIA: the expected SPDM request nonce (64 hex digits). Azure CVM: the nonce (hex) the TPM quote's "
        "extraData must be (and, for evidence version 2, the HCL user-data's prefix).",
    ),
    (["--at"], "TIME", "Verification time: ISO 8601 or unix seconds (default: now)."),
    (
        ["--policy"],
        "FILE",
        'Appraisal policy JSON: flat for the evidence\'s platform, or {"intel": {...}, "snp": {...}, "nvidia": {...}, '
        '"azure": {...}}.',
    ),
    (["--json"], None, "Print one JSON object instead of a report."),
    (["-h", "--help"], None, "Show this message and exit."),
]


def test_cli_verify_help_lists_the_same_options() -> None:
    command = main.commands["verify"]
    sub = click.Context(command, parent=click.Context(main, info_name="keyward"), info_name="verify")
    records = [p.get_help_record(sub) for p in command.get_params(sub) if isinstance(p, click.Option)]
    want = [
        (" ".join([", ".join(flags), *([metavar] if metavar else [])]), text) for flags, metavar, text in VERIFY_OPTIONS
    ]
    assert records == want
    code, out = _run("verify", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "Verify EVIDENCE (an SGX/TDX quote, an SEV-SNP report or a configfs-tsm dump, an NVIDIA GPU" in text


def _pcs_directory(tmp_path: Path) -> Path:
    from tests.unit.trust.test_intel_collateral import _pcs_collateral_g4

    kwargs, _ = _pcs_collateral_g4()
    (tmp_path / "tcb_info.json").write_bytes(kwargs["tcb_info_body"])
    (tmp_path / "tcb_info.issuer_chain").write_text(str(kwargs["tcb_info_issuer_chain"]))
    (tmp_path / "qe_identity.json").write_bytes(kwargs["qe_identity_body"])
    (tmp_path / "qe_identity.issuer_chain").write_text(str(kwargs["qe_identity_issuer_chain"]))
    (tmp_path / "pck_crl.der").write_text(str(kwargs["pck_crl"]))
    (tmp_path / "root_ca_crl.der").write_text(kwargs["root_ca_crl"].hex())
    return tmp_path


def test_cli_verify_pcs_collateral_directory(tmp_path: Path) -> None:
    from tests.unit.trust.test_intel_collateral import G4

    pcs = _pcs_directory(tmp_path)
    code, out = _run("verify", str(G4.quote), "--collateral", str(pcs), "--at", G4.now.isoformat(), "--json")
    assert json.loads(out)["tcb_status"] == "UpToDate"
    (pcs / "root_ca_crl.der").unlink()
    code, out = _run("verify", str(G4.quote), "--collateral", str(pcs), "--at", G4.now.isoformat(), "--json")
    assert code == 1
    (reason,) = json.loads(out)["reasons"]
    assert reason["code"] == "intel.collateral.malformed"
    assert reason["message"] == f"cannot read {pcs / 'root_ca_crl.der'}: No such file or directory"


def test_cli_verify_dispatches_a_synthetic_family_without_cli_changes(tmp_path: Path) -> None:
    """A third family (test only) gets its option and its evidence from ``verify_command``: no edit to cli.py."""
    from tests.unit.platforms.test_registry import _fake_entries
    from verifier.cli import verify_command
    from verifier.platforms.cli_inputs import families_of

    command = verify_command(families_of(_fake_entries().values()))
    evidence = tmp_path / "fake.bin"
    evidence.write_bytes(b"FAKE evidence")
    token = tmp_path / "token"
    token.write_text("t0k")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"intel": {}, "fake": {"accept": False}}))
    runner = CliRunner()
    ok = runner.invoke(command, [str(evidence), "--fake-token", str(token), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["claims"] == {"token": "t0k"}
    assert '"fake": {...}' in " ".join(runner.invoke(command, ["--help"]).output.split())
    no = runner.invoke(command, [str(evidence), "--policy", str(policy), "--json"])
    assert no.exit_code == 1
    assert json.loads(no.output)["platform"] == "fake-tee"
    quote = runner.invoke(command, [str(P2.quote), "--collateral", str(P2.collateral), "--at", "1750332747"])
    assert quote.exit_code == 0  # the real families still dispatch
