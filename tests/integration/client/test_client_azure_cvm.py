"""The Azure CVM provider end to end: a real swtpm provisioned like an Azure vTPM behind the simulated paravisor,
the SDK and ``keyward-enclave`` over HTTP to the served app, PostgreSQL, Redis and a Celery worker process that
verifies the evidence under the development trust store (simulated AMD, Intel and Azure vTPM roots)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.support.browser import serve
from tests.support.service import TEST_BROKER, Seeded, seed, service_settings, start_worker, stop_worker
from tests.support.swtpm import AzureVtpm, azure_vtpm, needs_swtpm
from verifier.app import create_app
from verifier.client import AttestationRejected, AzureCvmProvider, KeywardClient
from verifier.client.cli import EXIT_OK, main
from verifier.db.models import Entitlement, ModelVersion, RecordStatus, ReferenceValueSet
from verifier.simulation.azure_paravisor import simulated_endorsements
from verifier.simulation.intel_pki import SIM_NOW

pytestmark = needs_swtpm
#: PCR 7 after the simulated paravisor's boot (one extend from zero).
PCR7 = hashlib.sha256(bytes(32) + hashlib.sha256(b"simulated boot, PCR 7").digest()).hexdigest()


def _allow_azure(engine: Engine, seeded: Seeded) -> None:
    """Let the entitlement attest Azure CVMs, with reference values pinning PCR 7 and requiring user-data binding."""
    with Session(engine) as s:
        entitlement = s.get(Entitlement, seeded.entitlement_id)
        assert entitlement is not None
        version = s.scalars(select(ModelVersion).where(ModelVersion.model_id == entitlement.model_id)).one()
        entitlement.allowed_platforms = ["azure-sev-snp-vtpm", "azure-tdx-vtpm"]
        for platform in entitlement.allowed_platforms:
            s.add(
                ReferenceValueSet(
                    model_version_id=version.id,
                    platform=platform,
                    status=RecordStatus.ACTIVE,
                    values={"allowed_pcrs": {"7": [PCR7]}, "require_user_data_binding": True},
                    valid_from=SIM_NOW - timedelta(days=1),
                    valid_until=None,
                    created_at=SIM_NOW,
                )
            )
        s.commit()


@pytest.fixture(scope="module")
def served(database_url: str, engine: Engine) -> Iterator[tuple[str, Seeded]]:
    settings = service_settings(database_url)
    seeded = seed(engine, settings)
    _allow_azure(engine, seeded)
    worker = start_worker(database_url, TEST_BROKER)
    try:
        with serve(create_app(settings)) as base_url:
            yield base_url, seeded
    finally:
        stop_worker(worker)


@pytest.fixture(params=["snp", "tdx"])
def vtpm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AzureVtpm]:
    with azure_vtpm(tmp_path / "swtpm", request.param) as v:
        yield v


def test_client_azure_cvm_attest_renew_release(served: tuple[str, Seeded], vtpm: AzureVtpm) -> None:
    base_url, seeded = served
    provider = AzureCvmProvider(tcp=vtpm.address, endorsements=simulated_endorsements)
    with KeywardClient(base_url, seeded.licence, timeout=120) as client:
        lease = client.attest(model=seeded.model, deployment="azure-1", provider=provider, wait=30)
        try:
            assert lease.simulated is True
            assert lease.unwrap() == seeded.dek
            assert client.renew(lease, provider, wait=30).id == lease.id
            assert vtpm.proxy.refreshes == 2  # a fresh HCL report for each attestation
        finally:
            client.release(lease)


def test_client_azure_cvm_v1_rejected_by_user_data_policy(served: tuple[str, Seeded], tmp_path: Path) -> None:
    base_url, seeded = served
    with azure_vtpm(tmp_path / "swtpm", "snp") as v, KeywardClient(base_url, seeded.licence, timeout=120) as client:
        provider = AzureCvmProvider(tcp=v.address, version=1, endorsements=simulated_endorsements)
        with pytest.raises(AttestationRejected) as exc:
            client.attest(model=seeded.model, deployment="azure-2", provider=provider, wait=30)
    assert exc.value.codes == ["azure.policy.user_data_binding_required"]


def test_client_cli_azure_cvm_attest_release(served: tuple[str, Seeded], tmp_path: Path) -> None:
    base_url, seeded = served
    runner = CliRunner()
    base = ["--url", base_url, "--licence", seeded.licence]
    with azure_vtpm(tmp_path / "swtpm", "snp") as v:
        host, port = v.address
        args = ["--model", seeded.model, "--deployment", "azure-cli", "--provider", "azure-cvm"]
        args += ["--tpm-tcp", f"{host}:{port}", "--azure-endorsements", "simulated", "--json"]
        result = runner.invoke(main, ["attest", *base, *args])
    assert result.exit_code == EXIT_OK, result.output
    doc = json.loads(result.output)
    assert doc["status"] == "accepted"
    assert doc["simulated"] is True
    released = runner.invoke(main, ["release", *base, "--lease", doc["lease"]["id"], "--json"])
    assert released.exit_code == EXIT_OK, released.output
