"""The dashboard names every platform the registry has in words (a new platform must not show its raw id)."""

from __future__ import annotations

from verifier.api.dashboard.deployments import PLATFORM_LABELS
from verifier.platforms.item import PLATFORM_NAMES


def test_platform_labels_cover_every_registry_platform() -> None:
    assert set(PLATFORM_LABELS) >= set(PLATFORM_NAMES), set(PLATFORM_NAMES) - set(PLATFORM_LABELS)
