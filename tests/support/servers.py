"""Private database and broker servers for fault tests: a ``redis-server`` and a PostgreSQL cluster (``initdb`` in a
temporary directory) of the test's own, each on a free port, that a test may stop, restart or kill without touching
the machine's shared servers or another test run.

Skips the test when the binaries are missing. PostgreSQL refuses to run as root: under root the cluster's commands
run as the ``postgres`` system user (``runuser``) and its directory belongs to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from verifier.testing.devstack import free_port


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {timeout} s")


class RedisServer:
    """One ``redis-server`` on 127.0.0.1:``port`` that keeps nothing on disk: a restart starts it empty, as after
    losing the host (queued and unacknowledged messages gone), the harder case for the service."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.workdir)]
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own arguments
        log.close()
        client = redis.Redis.from_url(self.url(), socket_connect_timeout=0.5)
        try:
            _wait_for(client.ping, 10, "redis-server did not answer PING")
        finally:
            client.close()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (its data is lost), stay down ``down_seconds``, start again on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return Path(initdb).parent


class PostgresCluster:
    """A PostgreSQL cluster of its own (``initdb`` in a temporary directory, trust authentication), started by
    ``pg_ctl`` on 127.0.0.1:``port``."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self._as: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="keyward-pg-"))
        if os.geteuid() == 0:  # initdb and postgres refuse root
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root)
                pytest.skip("running as root, and there is no postgres user to run a PostgreSQL cluster as")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.datadir = self.root / "data"
        self.port = free_port()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=120)  # noqa: S603

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is disconnected, open transactions roll back."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.datadir), "stop", "-m", "immediate", "-w")

    def _pg_ctl(self, *action: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "postgres.log"), "-w"]
        self._run(*pg_ctl, "-o", options, *action)

    def create_database(self, name: str) -> str:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "postgres.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_servers(workdir: Path) -> Iterator[tuple[RedisServer, PostgresCluster, str]]:
    """A started Redis server and PostgreSQL cluster of the caller's own, and the URL of an empty ``keyward``
    database on the cluster; both are stopped and removed on exit."""
    redis_server = RedisServer(workdir)
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        redis_server.start()
        yield redis_server, cluster, cluster.create_database("keyward")
    finally:
        redis_server.stop()
        cluster.remove()
