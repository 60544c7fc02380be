"""The project's own tools, as ``make`` installs them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def uv_executable() -> str:
    """uv from requirements/uv.txt (``make`` puts it in .uv/ and names it in $UV), else one on PATH."""
    for candidate in (os.environ.get("UV"), str(ROOT / ".uv" / "bin" / "uv"), shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("uv not found: run the suite through `make test`, which installs it from requirements/uv.txt")
