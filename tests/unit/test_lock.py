"""uv.lock and pyproject.toml agree: every install (make, CI, the Dockerfile) takes exact, hashed versions from the
lock, so a dependency edited in pyproject.toml without ``make lock`` must fail the suite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import ROOT, uv_executable

PROJECT_FILES = ("pyproject.toml", "uv.lock", "setup.py", "README.md")


def _lock_check(project: Path, *, offline: bool) -> subprocess.CompletedProcess[str]:
    """``uv lock --check``; offline, it needs nothing beyond what ``make install`` put in uv's cache, but a lock
    that must change is re-resolved, which needs the package index."""
    return subprocess.run(  # noqa: S603
        [uv_executable(), "lock", "--check", "--directory", str(project), *(["--offline"] if offline else [])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_lock_matches_pyproject(project: Path) -> None:
    result = _lock_check(project, offline=True)
    assert result.returncode == 0, result.stderr


def test_lock_check_fails_on_a_dependency_added_without_relocking(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '    "orjson>=3.10",' in text
    # packaging is already in the lock (kombu needs it); as a new direct dependency of Keyward it changes what the
    # lock must record.
    pyproject.write_text(text.replace('    "orjson>=3.10",', '    "orjson>=3.10",\n    "packaging>=20",', 1))
    result = _lock_check(project, offline=False)
    assert result.returncode != 0
    assert "needs to be updated" in result.stderr


def test_lock_pins_every_package_with_hashes() -> None:
    lock = (ROOT / "uv.lock").read_text()
    packages = lock.count("\n[[package]]\n")
    assert packages > 50
    # Each registry package carries the sha256 of its sdist or wheels; the one without is Keyward itself.
    registry = lock.count('source = { registry = "https://pypi.org/simple" }')
    assert registry == packages - 1
    assert lock.count('hash = "sha256:') >= registry
