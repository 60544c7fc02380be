"""Where the data that ships with Keyward lies: ``migrations/``, ``vendor_roots/`` and ``web/`` (the dashboard's
templates and static files).

In a source checkout (and an editable install) they are top-level folders beside ``verifier/``; in an installed
wheel they are inside the package (``setup.py`` maps them there), so nothing needs a checkout to run."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

PACKAGE: Final = Path(__file__).resolve().parent


def shipped_dir(name: Literal["migrations", "vendor_roots", "web"]) -> Path:
    """The folder ``name``: inside the installed package when there is one, else beside the package."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
