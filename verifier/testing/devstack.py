"""Run the whole service on one machine: migrate, start the API (uvicorn), Celery workers and beat as child processes.

Used by the one-command demo (embedded profile: SQLite + kombu's SQLAlchemy transport, no servers), the end-to-end
benchmark (PostgreSQL + Redis, several processes) and the tests of both. Development only: the stack trusts the fake
vendor PKIs of this package and runs on their simulated clock, so everything it decides is marked simulated.

    with DevStack(StackConfig.embedded(Path("var/demo"))) as stack:
        admin = stack.bootstrap_admin()
        httpx.get(stack.base_url + "/healthz")
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from verifier.auth.credentials import issue_credential
from verifier.config import Settings
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import CredentialKind
from verifier.db.session import session_scope
from verifier.simulation.intel_pki import SIM_NOW

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackConfig:
    workdir: Path
    database_url: str
    broker_url: str
    api_workers: int = 1
    worker_processes: int = 1
    worker_concurrency: int = 1
    beat: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def embedded(cls, workdir: Path, **kwargs: object) -> StackConfig:
        """SQLite for data and the broker: needs no PostgreSQL and no Redis."""
        workdir = workdir.resolve()
        return cls(
            workdir=workdir,
            database_url=f"sqlite:///{workdir / 'keyward.db'}",
            broker_url=f"sqla+sqlite:///{workdir / 'broker.db'}",
            **kwargs,  # type: ignore[arg-type]
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevStack:
    """Child processes of one development stack; their output goes to ``<workdir>/<name>.log``."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        #: The simulated clock (the fake PKIs' SIM_NOW) starts now and runs on in every process of the stack.
        self.anchor = datetime.now(UTC)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KEYWARD_ENVIRONMENT": "development",
            "KEYWARD_DATABASE_URL": self.config.database_url,
            "KEYWARD_BROKER_URL": self.config.broker_url,
            "KEYWARD_ALLOW_SIMULATED_ROOTS": "true",
            "KEYWARD_SIMULATION_TIME": SIM_NOW.isoformat(),
            "KEYWARD_SIMULATION_ANCHOR": self.anchor.isoformat(),
            **self.config.extra_env,
        }

    def settings(self) -> Settings:
        return Settings(
            database_url=self.config.database_url,
            broker_url=self.config.broker_url,
            allow_simulated_roots=True,
            simulation_time=SIM_NOW,
            simulation_anchor=self.anchor,
        )

    def migrate(self) -> None:
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        upgrade_database(self.config.database_url)

    def bootstrap_admin(self) -> str:
        """The first admin credential (what ``keyward admin bootstrap`` does), returned instead of printed."""
        engine = make_engine(self.config.database_url)
        try:
            with session_scope(engine) as session:  # as the CLI: one transaction, committed when the block ends
                pepper = self.settings().credential_pepper.get_secret_value().encode()
                _, token = issue_credential(session, pepper, CredentialKind.ADMIN, label="dev", now=datetime.now(UTC))
        finally:
            engine.dispose()
        return token

    def start(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "verifier.worker.celery_app:celery_app"]
        for i in range(self.config.worker_processes):
            self._spawn(
                f"worker-{i}",
                [
                    *celery,
                    "worker",
                    f"--hostname=keyward-{i}@%h",
                    "--pool=solo" if self.config.worker_concurrency == 1 else "--pool=prefork",
                    f"--concurrency={self.config.worker_concurrency}",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
            )
        if self.config.beat:
            schedule = self.config.workdir / "beat-schedule"
            self._spawn("beat", [*celery, "beat", f"--schedule={schedule}", "--loglevel=INFO"])
        api = [sys.executable, "-m", "uvicorn", "--factory", "verifier.app:create_server_app"]
        api += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.config.api_workers)]
        self._spawn("api", [*api, "--no-access-log", "--log-level", "warning"])

    def wait_until_up(self, timeout: float = 60.0, *, ready: bool = True) -> None:
        """Until the API answers /readyz (database, broker and a fresh worker heartbeat), or only /healthz with
        ``ready=False``. A child that exits early is an error carrying its log's tail."""
        path = "/readyz" if ready else "/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc, _ in self._children:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                if httpx.get(self.base_url + path, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the API did not answer {path} within {timeout} s:\n{self.log_tail('api')}")

    def pids(self) -> dict[str, int]:
        """The process id of each child by name (``api``, ``worker-0``, ..., ``beat``)."""
        return {name: proc.pid for name, proc, _ in self._children}

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.config.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for _, proc, _ in self._children:
            if proc.poll() is None:
                proc.terminate()
        for _, proc, log in self._children:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
        self._children.clear()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.config.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        self._children.append((name, proc, log))

    def __enter__(self) -> Self:
        self.migrate()
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
