"""Shared fixtures."""

from __future__ import annotations

import pytest

from verifier.trust.store import TrustStore, load_trust_store


@pytest.fixture(scope="session")
def trust() -> TrustStore:
    return load_trust_store()
