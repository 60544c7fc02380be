"""keyward-enclave: usage errors exit 2, an unreachable server exits 3, secrets never printed. The full run against
the real service is in tests/integration/client/test_client_sdk.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from verifier.client.cli import EXIT_TRANSPORT, EXIT_USAGE, main

LICENCE = "kw_0123456789abcdef_secretpart"


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("KEYWARD_URL", raising=False)
    monkeypatch.delenv("KEYWARD_LICENCE", raising=False)
    return CliRunner()


ATTEST = ["attest", "--url", "http://k", "--licence", LICENCE, "--model", "m", "--deployment", "d"]


@pytest.mark.parametrize(
    "args",
    [
        ["attest", "--licence", LICENCE, "--model", "m", "--deployment", "d", "--provider", "simulated"],
        ["attest", "--url", "http://k", "--model", "m", "--deployment", "d", "--provider", "simulated"],
        [*ATTEST],
        [*ATTEST, "--provider", "sgx-ioctl"],
        [*ATTEST, "--provider", "configfs-tsm", "--privlevel", "4"],
        [*ATTEST, "--provider", "simulated", "--key-type", "RSA-2048"],
        [*ATTEST, "--provider", "simulated", "--key", "/nonexistent/key.jwk"],
        ["renew", "--url", "http://k", "--licence", LICENCE, "--lease", "x", "--provider", "simulated"],
        ["release", "--url", "http://k", "--licence", LICENCE],
        ["frobnicate"],
    ],
    ids=[
        "no-url",
        "no-licence",
        "no-provider",
        "unknown-provider",
        "privlevel-out-of-range",
        "weak-key-type",
        "missing-key-file",
        "renew-without-key",
        "release-without-lease",
        "unknown-command",
    ],
)
def test_cli_usage_errors(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert LICENCE not in result.output


def test_cli_invalid_key_file_is_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    key = tmp_path / "key.jwk"
    key.write_text(json.dumps({"kty": "oct", "k": "AAAA"}))
    result = runner.invoke(main, [*ATTEST, "--provider", "simulated", "--key", str(key)])
    assert result.exit_code == EXIT_USAGE
    assert "--key" in result.output


def test_cli_unreachable_server_json(runner: CliRunner, closed_url: str) -> None:
    result = runner.invoke(main, ["release", "--url", closed_url, "--licence", LICENCE, "--lease", "x", "--json"])
    assert result.exit_code == EXIT_TRANSPORT
    doc = json.loads(result.stdout)
    assert doc["status"] == "error"
    assert doc["error"]["code"] == "client.transport"
    assert LICENCE not in result.output


def test_cli_unreachable_server_from_environment(
    runner: CliRunner, closed_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYWARD_URL", closed_url)
    monkeypatch.setenv("KEYWARD_LICENCE", LICENCE)
    key_out = tmp_path / "enclave.jwk"
    args = ["attest", "--model", "m", "--deployment", "d", "--provider", "simulated", "--key-out", str(key_out)]
    result = runner.invoke(main, args)
    assert result.exit_code == EXIT_TRANSPORT, result.output
    assert result.stdout.startswith("error")
    assert "client.transport" in result.stdout
    assert LICENCE not in result.output
    assert json.loads(key_out.read_text())["d"] not in result.output  # the key was saved, never printed
