"""The wheel alone, as a user or the Dockerfile installs it: built from this checkout with the locked setuptools,
installed into a clean virtual environment from the locked runtime requirements (hashes checked, no dev group, not
editable), then run from a folder outside the checkout so nothing is imported from the source tree.

From there: ``keyward db upgrade`` on a fresh PostgreSQL database (the migrations ship in the wheel), ``keyward admin
bootstrap``, the API (uvicorn), a Celery worker and beat on PostgreSQL and Redis started by the same commands as
docker-compose.yml, one simulated attestation by the wheel's own ``keyward-enclave``, ``keyward verify`` on a real
TDX quote (the vendor roots ship in the wheel), and ``keyward-enclave --help``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX
from tests.support.tools import ROOT, uv_executable
from tests.support.vectors import INTEL_CASES
from verifier.simulation.intel_pki import SIM_NOW
from verifier.testing.databases import purge_keys, scratch_database
from verifier.testing.demo_data import SAMPLE_MODEL, decrypt_model, seed_demo
from verifier.testing.devstack import free_port

P2 = next(c for c in INTEL_CASES if c.id == "P2")


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **kwargs)  # type: ignore[call-overload]  # noqa: S603
    assert result.returncode == 0, f"{argv[0]} {argv[1:3]} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Installed:
    bin: Path
    workdir: Path  # outside the checkout: the installed package is all that can be imported there


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    uv, tmp = uv_executable(), tmp_path_factory.mktemp("wheel")
    python = str(ROOT / ".venv" / "bin" / "python")
    _run([uv, "build", "--wheel", "--no-build-isolation", "--python", python, "--out-dir", str(tmp / "dist")], cwd=ROOT)
    (wheel,) = (tmp / "dist").glob("keyward-*.whl")
    requirements = tmp / "requirements.txt"
    _run([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet", "-o", str(requirements)], cwd=ROOT)
    assert "--hash=sha256:" in requirements.read_text()
    venv = tmp / "venv"
    _run([python, "-m", "venv", "--without-pip", str(venv)])
    target = ["--python", str(venv / "bin" / "python")]
    _run([uv, "pip", "install", *target, "--require-hashes", "--no-deps", "-r", str(requirements)])
    _run([uv, "pip", "install", *target, "--no-deps", str(wheel)])
    workdir = tmp / "run"
    workdir.mkdir()
    return Installed(venv / "bin", workdir)


def test_wheel_imports_from_site_packages_not_the_checkout(installed: Installed) -> None:
    out = _run(
        [str(installed.bin / "python"), "-c", "import verifier; print(verifier.__file__)"], cwd=installed.workdir
    )
    assert "site-packages" in out.stdout
    assert not out.stdout.startswith(str(ROOT / "verifier"))


def test_wheel_has_no_dev_dependencies(installed: Installed) -> None:
    for tool in ("pytest", "mypy", "ruff", "hypothesis", "schemathesis"):
        assert not (installed.bin / tool).exists(), f"{tool} came with the runtime install"


def test_wheel_verify_real_tdx_quote(installed: Installed) -> None:
    verify = [str(installed.bin / "keyward"), "verify", str(P2.quote), "--collateral", str(P2.collateral)]
    out = _run([*verify, "--at", "1750332747", "--json"], cwd=installed.workdir)
    doc = json.loads(out.stdout)
    assert (doc["platform"], doc["verified"], doc["simulated"]) == ("intel-tdx", True, False)


def test_wheel_enclave_cli_help(installed: Installed) -> None:
    out = _run([str(installed.bin / "keyward-enclave"), "--help"], cwd=installed.workdir)
    assert "attest" in out.stdout


class Service:
    """The API, a worker and beat from the wheel's console scripts; logs in the work directory."""

    def __init__(self, installed: Installed, env: dict[str, str]) -> None:
        self.installed, self.env, self.port = installed, env, free_port()
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: list[str]) -> None:
        with (self.installed.workdir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603
                argv, cwd=self.installed.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.children.append((name, proc))

    def log(self, name: str) -> str:
        return (self.installed.workdir / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.children:
                assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.log(name)}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"not ready within {timeout} s:\n{self.log('api')}\n{self.log('worker')}")

    def stop(self) -> None:
        for _, proc in self.children:
            proc.terminate()
        for _, proc in self.children:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def service(installed: Installed) -> Iterator[Service]:
    prefix = TEST_KEY_PREFIX + "wheel:"
    with scratch_database("keyward_wheel") as url:
        env = {
            **os.environ,
            "KEYWARD_ENVIRONMENT": "development",
            "KEYWARD_DATABASE_URL": url,
            "KEYWARD_BROKER_URL": TEST_BROKER,
            "KEYWARD_BROKER_KEY_PREFIX": prefix,
            "KEYWARD_ALLOW_SIMULATED_ROOTS": "true",
            "KEYWARD_SIMULATION_TIME": SIM_NOW.isoformat(),
            "KEYWARD_SIMULATION_ANCHOR": datetime.now(UTC).isoformat(),
            "KEYWARD_COLLATERAL_FETCH": "false",
        }
        _run([str(installed.bin / "keyward"), "db", "upgrade"], cwd=installed.workdir, env=env)
        running = Service(installed, env)
        celery = [str(installed.bin / "celery"), "-A", "verifier.worker.celery_app:celery_app", "--quiet"]
        running.spawn("worker", [*celery, "worker", "--pool=solo", "--without-gossip", "--without-mingle"])
        running.spawn("beat", [*celery, "beat", f"--schedule={installed.workdir / 'celerybeat-schedule'}"])
        api = [str(installed.bin / "uvicorn"), "--factory", "verifier.app:create_server_app"]
        running.spawn("api", [*api, "--host", "127.0.0.1", "--port", str(running.port), "--log-level", "warning"])
        try:
            running.wait_ready()
            yield running
        finally:
            running.stop()
            purge_keys(TEST_BROKER, prefix)


def test_wheel_service_attests_a_simulated_enclave(service: Service) -> None:
    bootstrap = _run([str(service.installed.bin / "keyward"), "admin", "bootstrap"], env=service.env)
    admin = bootstrap.stdout.strip()
    base_url = f"http://127.0.0.1:{service.port}"
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        demo = seed_demo(http, admin, service.installed.workdir)
    attest = [str(service.installed.bin / "keyward-enclave"), "attest", "--url", base_url, "--licence", demo.licence]
    dek_file = service.installed.workdir / "dek"
    attest += ["--provider", "simulated", "--model", demo.model, "--deployment", "wheel-1", "--json"]
    attest += ["--dek-out", str(dek_file)]
    result = json.loads(_run(attest, cwd=service.installed.workdir, env=service.env).stdout)
    assert (result["status"], result["simulated"]) == ("accepted", True)
    assert decrypt_model(dek_file.read_bytes(), demo.encrypted_model.read_bytes()) == SAMPLE_MODEL


def test_wheel_beat_writes_heartbeats(service: Service) -> None:
    """The container healthcheck of docker-compose.yml's beat service, from the wheel."""
    deadline = time.monotonic() + 30
    while True:
        probe = subprocess.run(  # noqa: S603
            [str(service.installed.bin / "python"), "-m", "verifier.observability.health", "beat"],
            cwd=service.installed.workdir,
            env=service.env,
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert probe.returncode == 0, service.log("beat")


def test_wheel_serves_the_dashboard(service: Service) -> None:
    """web/ ships in the wheel: the sign-in page renders from its templates and its stylesheet is served."""
    base_url = f"http://127.0.0.1:{service.port}/dashboard"
    login = httpx.get(f"{base_url}/login", timeout=10.0)
    assert login.status_code == 200, login.text
    assert 'name="csrf_token"' in login.text
    css = httpx.get(f"{base_url}/static/dashboard.css", timeout=10.0)
    assert (css.status_code, css.headers["content-type"].split(";")[0]) == (200, "text/css")
