"""Loggers these tests write to are live even after an in-process Alembic run: migrations/env.py calls
``logging.config.fileConfig``, which disables every logger that existed before it (tests/integration runs it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

LOGGERS = ("keyward.access", "keyward.any", "keyward.test", "uvicorn", "uvicorn.error")


@pytest.fixture(autouse=True)
def live_loggers() -> Iterator[None]:
    saved = {name: logging.getLogger(name).disabled for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).disabled = False
    yield
    for name, disabled in saved.items():
        logging.getLogger(name).disabled = disabled
