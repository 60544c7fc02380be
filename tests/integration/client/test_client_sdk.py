"""The enclave SDK and ``keyward-enclave`` against the real stack: API, PostgreSQL, Redis and a Celery worker process.

The SDK and the CLI talk HTTP to the app served by uvicorn on a local port. Evidence is simulated (fake Intel and
AMD PKIs), trusted only because this development profile says so. The SKR path runs through a local stand-in for
the confidential ACI sidecar (tests/unit/client/fake_skr.py).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import uvicorn
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.support.service import TEST_BROKER, Seeded, allow_snp, seed, service_settings, start_worker, stop_worker
from tests.unit.client.fake_skr import running_sidecar
from verifier.app import create_app
from verifier.client import (
    AciSkrProvider,
    AttestationRejected,
    EnclaveSession,
    KeywardClient,
    RequestRefused,
    SimulatedProvider,
)
from verifier.client.cli import EXIT_OK, EXIT_REJECTED, EXIT_TRANSPORT, main
from verifier.collateral.repository import AMD, amd_crl_key, put_document, vcek_key
from verifier.evidence.snp import parse_snp_report
from verifier.keywrap.ear import verify_ear
from verifier.simulation.amd_pki import default_amd_pki
from verifier.simulation.intel_pki import SIM_NOW
from verifier.simulation.intel_quote_builder import TD_ATTR_DEBUG, TdReport


@dataclass
class Stack:
    app: FastAPI
    base_url: str
    seeded: Seeded
    clients: list[KeywardClient] = field(default_factory=list)

    def client(self) -> KeywardClient:
        """An SDK client of the served app, with a timeout longer than any ``Prefer: wait`` here."""
        client = KeywardClient(self.base_url, self.seeded.licence, timeout=120)
        self.clients.append(client)
        return client


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free port, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _allow_snp(engine: Engine, seeded: Seeded) -> None:
    """Let the seeded entitlement use SEV-SNP too and put the simulated chip's VCEK and its chain's CRL in the
    server's cache (what the collateral fetcher would do)."""
    amd = default_amd_pki().build()
    report = parse_snp_report(amd.report)
    assert amd.crl_der is not None
    with Session(engine) as s:
        key = vcek_key(report.chip_id, report.reported_tcb)
        put_document(s, AMD, "vcek", key, amd.leaf_der, issuer_chain=None, fetched_at=SIM_NOW, next_update=None)
        crl_key = amd_crl_key(amd.options.product, amd.options.signing_key)
        put_document(s, AMD, "crl", crl_key, amd.crl_der, issuer_chain=None, fetched_at=SIM_NOW, next_update=None)
        s.commit()
    allow_snp(engine, seeded.entitlement_id)


@pytest.fixture(scope="module")
def stack(database_url: str, engine: Engine) -> Iterator[Stack]:
    settings = service_settings(database_url)
    seeded = seed(engine, settings)  # one seat: every test gives its lease back
    _allow_snp(engine, seeded)
    worker = start_worker(database_url, TEST_BROKER)
    app = create_app(settings)
    try:
        with _served(app) as base_url:
            stack = Stack(app, base_url, seeded)
            yield stack
            for client in stack.clients:
                client.close()
    finally:
        stop_worker(worker)


def test_client_sdk_attest_unwrap_renew_release(stack: Stack) -> None:
    client = stack.client()
    session = EnclaveSession(client, SimulatedProvider(), model=stack.seeded.model, deployment="sdk-1", wait=20)
    with session:
        lease = session.lease
        assert lease is not None
        assert lease.simulated is True
        dek = session.dek
        assert dek == stack.seeded.dek
        # The model runtime decrypts its weights with the DEK.
        nonce = os.urandom(12)
        blob = AESGCM(stack.seeded.dek).encrypt(nonce, b"model weights", b"layer-0")
        assert AESGCM(dek).decrypt(nonce, blob, b"layer-0") == b"model weights"
        # The result token verifies against the published JWKS and names this enclave key.
        claims = verify_ear(lease.result_token, client.jwks(), now=SIM_NOW)
        assert claims["keyward"]["lease_id"] == lease.id
        assert claims["keyward"]["enclave_key_thumbprint"] == session.key.public.thumbprint_b64
        # Renewal: fresh nonce and evidence, the same key, the same lease, a key that still opens.
        renewed = session.renew()
        assert renewed.id == lease.id
        assert renewed.attestation_id != lease.attestation_id
        assert session.dek == stack.seeded.dek
        # The one seat is taken while the lease lives.
        with pytest.raises(AttestationRejected) as exc:
            client.attest(model=stack.seeded.model, deployment="sdk-2", provider=SimulatedProvider(), wait=20)
        assert exc.value.codes == ["entitlement.seats_exhausted"]
    # Leaving the session released the lease: the seat is free again.
    again = client.attest(model=stack.seeded.model, deployment="sdk-2", provider=SimulatedProvider(), wait=20)
    client.release(again)


def test_client_sdk_polls_without_wait(stack: Stack) -> None:
    client = stack.client()
    lease = client.attest(model=stack.seeded.model, deployment="sdk-3", provider=SimulatedProvider(), wait=0)
    try:
        assert lease.unwrap() == stack.seeded.dek
    finally:
        client.release(lease)


def test_client_sdk_debug_td_rejected_with_codes(stack: Stack) -> None:
    debug = TdReport().with_tdattributes(TdReport().tdattributes_int | TD_ATTR_DEBUG)
    with pytest.raises(AttestationRejected) as exc:
        stack.client().attest(
            model=stack.seeded.model, deployment="sdk-4", provider=SimulatedProvider(td=debug), wait=20
        )
    assert exc.value.codes == ["intel.policy.td_debug"]
    assert exc.value.reasons[0].message


def test_client_sdk_unknown_model_version_refused(stack: Stack) -> None:
    with pytest.raises(RequestRefused) as exc:
        stack.client().attest(
            model=stack.seeded.model, deployment="sdk-5", provider=SimulatedProvider(), model_version="9.9"
        )
    assert exc.value.codes == ["model_version.not_found"]


@pytest.mark.parametrize("endpoint", ["raw", "combined"])
def test_client_sdk_aci_skr_through_sidecar(stack: Stack, endpoint: Literal["raw", "combined"]) -> None:
    client = stack.client()  # raw: the VCEK comes from the server's cache; combined: it rides along
    with running_sidecar() as sidecar:
        provider = AciSkrProvider(url=sidecar.url, endpoint=endpoint)
        lease = client.attest(model=stack.seeded.model, deployment="aci-1", provider=provider, wait=20)
        try:
            assert lease.unwrap() == stack.seeded.dek
            assert client.renew(lease, provider, wait=20).id == lease.id
        finally:
            client.release(lease)


# -- keyward-enclave over real HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(stack: Stack) -> str:
    return stack.base_url


def test_client_cli_attest_renew_release(stack: Stack, served: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--url", served, "--licence", stack.seeded.licence]
    key, dek = tmp_path / "enclave.jwk", tmp_path / "model.dek"
    args = ["--model", stack.seeded.model, "--deployment", "cli-1", "--provider", "simulated"]
    result = runner.invoke(main, ["attest", *base, *args, "--key-out", str(key), "--dek-out", str(dek), "--json"])
    assert result.exit_code == EXIT_OK, result.output
    out = json.loads(result.stdout)
    lease_id = out["lease"]["id"]
    assert out["status"] == "accepted"
    assert out["simulated"] is True
    assert dek.read_bytes() == stack.seeded.dek
    assert stat.S_IMODE(dek.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stack.seeded.licence not in result.output
    assert stack.seeded.dek.hex() not in result.output
    try:
        renew = ["renew", *base, "--lease", lease_id, "--key", str(key), "--provider", "simulated"]
        result = runner.invoke(main, renew)  # human output
        assert result.exit_code == EXIT_OK, result.output
        assert result.stdout.startswith("accepted")
        assert lease_id in result.stdout
        assert "collecting evidence with simulated" in result.stderr
    finally:
        result = runner.invoke(main, ["release", *base, "--lease", lease_id, "--json"])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout) == {"status": "released", "lease": lease_id}


def test_client_cli_refused_and_provider_failure(stack: Stack, served: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["attest", "--url", served, "--licence", stack.seeded.licence, "--model", stack.seeded.model]
    result = runner.invoke(
        main, [*base, "--deployment", "x", "--provider", "simulated", "--model-version", "9", "--json"]
    )
    assert result.exit_code == EXIT_REJECTED, result.output
    assert json.loads(result.stdout)["reasons"][0]["code"] == "model_version.not_found"
    no_tsm = ["--deployment", "x", "--provider", "configfs-tsm", "--tsm-root", str(tmp_path / "none"), "--json"]
    result = runner.invoke(main, [*base, *no_tsm])
    assert result.exit_code == EXIT_TRANSPORT, result.output
    assert json.loads(result.stdout)["error"]["code"] == "client.provider.unavailable"


def test_client_cli_run_renews_then_releases(stack: Stack, served: str, tmp_path: Path) -> None:
    dek = tmp_path / "model.dek"
    args = ["run", "--url", served, "--licence", stack.seeded.licence, "--model", stack.seeded.model]
    args += ["--deployment", "cli-run", "--provider", "simulated", "--dek-out", str(dek), "--max-renewals", "1"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == EXIT_OK, result.output
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["status"] for d in docs] == ["accepted", "renewed", "released"]
    assert docs[0]["lease"]["id"] == docs[1]["lease"] == docs[2]["lease"]
    assert docs[2]["renewals"] == 1
    assert dek.read_bytes() == stack.seeded.dek
    # The seat was given back: the entitlement's single seat can be taken again.
    client = stack.client()
    client.release(client.attest(model=stack.seeded.model, deployment="after-run", provider=SimulatedProvider()))


def test_client_cli_run_releases_on_sigterm(stack: Stack, served: str) -> None:
    cli = str(Path(sys.executable).parent / "keyward-enclave")
    args = [cli, "run", "--url", served, "--licence", stack.seeded.licence, "--model", stack.seeded.model]
    args += ["--deployment", "cli-sigterm", "--provider", "simulated", "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # blocks until attested
        assert first["status"] == "accepted"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_OK, err
    last = json.loads(out.splitlines()[-1])
    assert last == {"status": "released", "lease": first["lease"]["id"], "renewals": 0}
