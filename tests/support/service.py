"""Shared set-up for tests that run the service with real parts: seed a customer, a model with its wrapped DEK,
reference values and an entitlement with a licence key; start and stop a real ``celery worker`` process."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from verifier.auth.credentials import issue_credential
from verifier.config import Settings
from verifier.db.models import (
    Attestation,
    AttestationStatus,
    CredentialKind,
    Customer,
    CustomerStatus,
    Entitlement,
    EntitlementStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.keywrap.kek import LocalAesKek, model_key_context
from verifier.simulation.intel_pki import SIM_NOW
from verifier.simulation.intel_quote_builder import TdReport
from verifier.testing.databases import purge_keys

ROOT = Path(__file__).resolve().parents[2]
#: The one Redis database every service test uses (the in-process Celery app keeps its first broker connection,
#: so all tests in a run must publish to the same one), and this run's own key prefix in it (tests/conftest.py):
#: each test deletes the run's keys first, never another run's.
TEST_BROKER = f"redis://127.0.0.1:6379/{int(os.environ.get('KEYWARD_TEST_REDIS_DB', '14'))}"
TEST_KEY_PREFIX = os.environ["KEYWARD_BROKER_KEY_PREFIX"]


def purge_test_broker() -> None:
    """Delete this run's queued tasks and other broker keys."""
    purge_keys(TEST_BROKER, TEST_KEY_PREFIX)


def service_settings(database_url: str, **overrides: Any) -> Settings:
    """Development settings for a service test (simulated roots, the simulation clock, the test broker), with the
    test broker emptied and the in-process Celery app (the API side) publishing to it. This process's commits that
    change cached collateral (seeding, emptying) replace the broker's collateral generation token, so a worker
    reads those rows again (:mod:`verifier.worker.collateral_rows`)."""
    from verifier.broker.app import celery_app
    from verifier.broker.transport import transport_options
    from verifier.worker.collateral_rows import watch

    purge_test_broker()
    celery_app.conf.broker_url = TEST_BROKER
    celery_app.conf.broker_transport_options = transport_options(TEST_BROKER, 3600, TEST_KEY_PREFIX)
    base: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": TEST_BROKER,
        "broker_key_prefix": TEST_KEY_PREFIX,
        "allow_simulated_roots": True,
        "simulation_time": SIM_NOW,
    }
    settings = Settings(**{**base, **overrides})
    watch(settings)
    return settings


@dataclass(frozen=True)
class Seeded:
    licence: str
    model: str
    dek: bytes
    entitlement_id: uuid.UUID


def seed(engine: Engine, settings: Settings, *, seats: int = 1) -> Seeded:
    kek = LocalAesKek(bytes.fromhex(settings.kek_hex.get_secret_value()))
    dek = AESGCM.generate_key(bit_length=256)
    with Session(engine) as s:
        customer = Customer(name=f"svc-{uuid.uuid4().hex[:8]}", status=CustomerStatus.ACTIVE, created_at=SIM_NOW)
        model = Model(name=f"llm-{uuid.uuid4().hex[:8]}", created_at=SIM_NOW)
        s.add_all([customer, model])
        s.flush()
        version = ModelVersion(model_id=model.id, version="2.0", created_at=SIM_NOW)
        s.add(version)
        s.flush()
        s.add(
            ModelKey(
                model_version_id=version.id,
                kek_id=kek.kek_id,
                created_at=SIM_NOW,
                wrapped_dek=kek.wrap(dek, context=model_key_context(str(version.id))),
            )
        )
        s.add(
            ReferenceValueSet(
                model_version_id=version.id,
                platform="intel-tdx",
                status=RecordStatus.ACTIVE,
                values={"allowed_measurements": {"mrtd": [TdReport().mrtd.hex()]}},
                valid_from=SIM_NOW - timedelta(days=1),
                valid_until=None,
                created_at=SIM_NOW,
            )
        )
        ent = Entitlement(
            customer_id=customer.id,
            model_id=model.id,
            allowed_versions=[],
            seats=seats,
            max_gpus=0,
            allowed_platforms=["intel-tdx"],
            lease_ttl_seconds=900,
            status=EntitlementStatus.ACTIVE,
            valid_from=SIM_NOW - timedelta(days=1),
            valid_until=None,
            created_at=SIM_NOW,
        )
        s.add(ent)
        s.flush()
        _, licence = issue_credential(
            s,
            settings.credential_pepper.get_secret_value().encode(),
            CredentialKind.ENCLAVE,
            label="test",
            now=SIM_NOW,
            customer_id=customer.id,
            entitlement_id=ent.id,
        )
        seeded = Seeded(licence, model.name, dek, ent.id)
        s.commit()
    return seeded


def allow_snp(engine: Engine, entitlement_id: uuid.UUID) -> uuid.UUID:
    """Let a seeded entitlement use SEV-SNP too, with reference values holding the simulated report's launch
    measurement; returns the model version id."""
    from sqlalchemy import select

    from verifier.simulation.amd_pki import ReportOptions

    with Session(engine) as s:
        entitlement = s.get(Entitlement, entitlement_id)
        assert entitlement is not None
        version = s.scalars(select(ModelVersion).where(ModelVersion.model_id == entitlement.model_id)).one()
        entitlement.allowed_platforms = ["intel-tdx", "amd-sev-snp"]
        s.add(
            ReferenceValueSet(
                model_version_id=version.id,
                platform="amd-sev-snp",
                status=RecordStatus.ACTIVE,
                values={"allowed_measurements": [ReportOptions().measurement.hex()]},
                valid_from=SIM_NOW - timedelta(days=1),
                valid_until=None,
                created_at=SIM_NOW,
            )
        )
        s.commit()
        return version.id


def allow_gpus(engine: Engine, entitlement_id: uuid.UUID, *, max_gpus: int, policy: dict[str, Any]) -> uuid.UUID:
    """Let a seeded entitlement attest up to ``max_gpus`` NVIDIA GPUs, with ``policy`` as the model version's
    ``nvidia-gpu`` reference values (its GPU policy); returns the model version id."""
    from sqlalchemy import select

    with Session(engine) as s:
        entitlement = s.get(Entitlement, entitlement_id)
        assert entitlement is not None
        version = s.scalars(select(ModelVersion).where(ModelVersion.model_id == entitlement.model_id)).one()
        entitlement.max_gpus = max_gpus
        s.add(
            ReferenceValueSet(
                model_version_id=version.id,
                platform="nvidia-gpu",
                status=RecordStatus.ACTIVE,
                values=policy,
                valid_from=SIM_NOW - timedelta(days=1),
                valid_until=None,
                created_at=SIM_NOW,
            )
        )
        s.commit()
        return version.id


def start_worker(database_url: str, broker: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """A ``celery worker`` process (solo pool), once it is ready (:func:`wait_ready`); its output is discarded."""
    return wait_ready(_popen_worker(_worker_env(database_url, broker, extra_env), None), database_url)


#: How long :func:`wait_ready` waits for a worker (starting one imports the whole verifier: seconds on a busy VM).
READY_TIMEOUT_SECONDS = 60.0


def wait_ready(worker: subprocess.Popen[bytes], database_url: str) -> subprocess.Popen[bytes]:
    """``worker`` once it consumes: its heartbeat row (written when Celery says it is ready) is there, so a test's
    first ``Prefer: wait`` is not spent on the worker's start-up. Gives up quietly after
    :data:`READY_TIMEOUT_SECONDS` or if the process ends (the test then sees what it sees)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(database_url, poolclass=NullPool)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                with engine.connect() as connection:
                    found = connection.execute(
                        text("SELECT 1 FROM worker_heartbeats WHERE pid = :pid"), {"pid": worker.pid}
                    ).first()
            except SQLAlchemyError:
                found = None  # no such table yet: a test's own schema
            if found is not None:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    return worker


def start_pooled_worker(
    database_url: str, broker: str, *, pool: str, concurrency: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """:func:`start_worker` with another pool (``threads``, ``prefork``) of ``concurrency`` and ``env`` added."""
    return _popen_worker(_worker_env(database_url, broker, env), None, pool=pool, concurrency=concurrency)


def start_beat(schedule: Path, database_url: str, broker: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """A ``celery beat`` process keeping its schedule in ``schedule`` (a file in a temporary directory); its output
    is discarded."""
    return subprocess.Popen(  # noqa: S603 - the test's own interpreter and arguments
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "verifier.worker.celery_app:celery_app",
            "beat",
            f"--schedule={schedule}",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=_worker_env(database_url, broker, extra_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_logged_worker(log_path: Path, database_url: str, broker: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """:func:`start_worker`, with the worker's stdout and stderr appended to ``log_path``."""
    with log_path.open("ab") as output:  # the child keeps its own copy of the descriptor
        return wait_ready(_popen_worker(_worker_env(database_url, broker, extra_env), output), database_url)


def _worker_env(database_url: str, broker: str, extra_env: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "KEYWARD_DATABASE_URL": database_url,
        "KEYWARD_BROKER_URL": broker,
        "KEYWARD_ALLOW_SIMULATED_ROOTS": "true",
        "KEYWARD_SIMULATION_TIME": SIM_NOW.isoformat(),
        **extra_env,
    }


def _popen_worker(
    env: dict[str, str], output: IO[bytes] | None, *, pool: str = "solo", concurrency: int = 1
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - the test's own interpreter and arguments
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "verifier.worker.celery_app:celery_app",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=output or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


def pending_tdx_attestation(
    entitlement_id: uuid.UUID,
    model_version_id: uuid.UUID,
    *,
    nonce: bytes,
    enclave_jwk: dict[str, Any],
    deployment: str,
    td: TdReport | None = None,
    bind: bool = True,
    with_collateral: bool = True,
    kind: str = "attest",
    lease_id: uuid.UUID | None = None,
    platform_tcb: str = "up_to_date",
    created_at: datetime = SIM_NOW,
) -> Attestation:
    """An unsaved pending attestation carrying a simulated TDX quote (fields from ``td``), with REPORTDATA bound to
    (nonce, enclave key) unless ``bind`` is False (then all zero). ``created_at`` is on the clock of whoever decides
    it: the ``Clock.fixed`` time given to direct ``decide_attestation`` calls; for a real worker, the real time (as
    the API stores it: the worker's clock maps it onto its simulation clock)."""
    from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk
    from verifier.simulation.intel_pki import QuoteOptions, default_pki

    reportdata = expected_report_data(nonce, parse_enclave_jwk(enclave_jwk)) if bind else bytes(64)
    report = replace(td or TdReport(), reportdata=reportdata)
    ev = default_pki().build(QuoteOptions(td=report, platform_tcb=platform_tcb))  # type: ignore[arg-type]
    item = {"type": "intel-tdx", "evidence": base64.b64encode(ev.quote).decode()}
    if with_collateral:
        item["collateral"] = ev.collateral_json
    return Attestation(
        entitlement_id=entitlement_id,
        model_version_id=model_version_id,
        deployment_name=deployment,
        kind=kind,
        lease_id=lease_id,
        platforms=["intel-tdx"],
        status=AttestationStatus.PENDING,
        nonce=nonce,
        enclave_jwk=enclave_jwk,
        created_at=created_at,
        evidence=[item],
    )


def tdx_submission(client: Any, licence: str, *, model: str, deployment: str, curve: str = "P-256") -> dict[str, Any]:
    """The body of ``POST /v1/attestations`` for a fresh challenge from ``client`` (a TestClient or httpx client):
    a new enclave key on ``curve`` and a simulated TDX quote bound to (nonce, key), with its collateral."""
    from joserfc import jwk

    from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk
    from verifier.simulation.intel_pki import QuoteOptions, default_pki

    nonce_b64 = client.post("/v1/challenges", headers={"Authorization": f"Bearer {licence}"}).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    public = dict(jwk.ECKey.generate_key(curve).as_dict(private=False))
    ev = default_pki().build(
        QuoteOptions(td=TdReport(reportdata=expected_report_data(nonce, parse_enclave_jwk(public))))
    )
    return {
        "nonce": nonce_b64,
        "model": model,
        "deployment": deployment,
        "enclave_key": public,
        "evidence": [
            {"type": "intel-tdx", "evidence": base64.b64encode(ev.quote).decode(), "collateral": ev.collateral_json}
        ],
    }


def store_pending_tdx(
    engine: Engine, settings: Settings, entitlement_id: uuid.UUID, *, deployment: str, with_collateral: bool = True
) -> uuid.UUID:
    """A committed pending TDX attestation for the entitlement's model version, stored as the API stores it (real
    time in ``created_at``; a worker decides on the simulation clock): what a real worker is then handed."""
    from joserfc import jwk
    from sqlalchemy import select

    from verifier.attestation.challenges import issue_challenge

    nonce = issue_challenge(settings.challenge_secret.get_secret_value().encode(), SIM_NOW).nonce
    with Session(engine) as s:
        entitlement = s.get(Entitlement, entitlement_id)
        assert entitlement is not None
        version = s.scalars(select(ModelVersion).where(ModelVersion.model_id == entitlement.model_id)).one()
        att = pending_tdx_attestation(
            entitlement_id,
            version.id,
            nonce=nonce,
            enclave_jwk=dict(jwk.ECKey.generate_key("P-256").as_dict(private=False)),
            deployment=deployment,
            with_collateral=with_collateral,
            created_at=datetime.now(UTC),
        )
        s.add(att)
        s.commit()
        return att.id
