"""uv.lock and pyproject.toml agree: every install (make, CI, the Dockerfile) takes exact, hashed versions from the
lock, so a dependency edited in pyproject.toml without ``make lock`` must fail the suite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import ROOT, uv_executable

PROJECT_FILES = ("pyproject.toml", "uv.lock", "setup.py", "README.md")


def _lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [uv_executable(), "lock", "--check", "--offline", "--directory", str(project)],
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
    result = _lock_check(project)
    assert result.returncode == 0, result.stderr


def test_lock_check_fails_on_a_dependency_added_without_relocking(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '    "orjson>=3.10",' in text
    pyproject.write_text(text.replace('    "orjson>=3.10",', '    "orjson>=3.10",\n    "six>=1.16",', 1))
    result = _lock_check(project)
    assert result.returncode != 0
    assert "needs to be updated" in result.stderr


def test_lock_pins_every_package_with_hashes() -> None:
    lock = (ROOT / "uv.lock").read_text()
    packages = lock.count("\n[[package]]\n")
    assert packages > 50
    # Each registry package carries the sha256 of its sdist or wheels; the one without is Keyward itself.
    registry = lock.count('source = { registry = "https://pypi.org/simple" }')
    assert registry == packages - 1
    assert lock.count("hash = \"sha256:") >= registry
