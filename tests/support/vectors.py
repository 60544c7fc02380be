"""The real Intel vectors of tests/vectors/intel, as typed cases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
INTEL_VECTORS = VECTORS / "intel"


@dataclass(frozen=True)
class IntelCase:
    """One row of tests/vectors/intel/expected.json."""

    id: str
    quote: Path
    collateral: Path
    now: datetime
    window_start: datetime
    window_end: datetime
    raw: dict[str, Any]

    @property
    def expected_status(self) -> str | None:
        """Intel-algorithm status (ignoring policy), or None when Intel's algorithm itself rejects."""
        status = self.raw.get("tcb_status") or self.raw.get("intel_algorithm_tcb_status_ignoring_policy")
        return None if status in (None, "TcbInfoMismatch") else str(status)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def load_intel_cases() -> list[IntelCase]:
    doc = json.loads((INTEL_VECTORS / "expected.json").read_text())
    return [
        IntelCase(
            id=c["id"],
            quote=INTEL_VECTORS / c["quote"],
            collateral=INTEL_VECTORS / c["collateral"],
            now=datetime.fromtimestamp(c["pinned_now_unix"], UTC),
            window_start=_time(c["window_start"]),
            window_end=_time(c["window_end"]),
            raw=c,
        )
        for c in doc["cases"]
    ]


INTEL_CASES = load_intel_cases()


AMD_VECTORS = VECTORS / "amd"


@dataclass(frozen=True)
class AmdCase:
    """One row of tests/vectors/amd/expected.json."""

    id: str
    report: Path
    certs: Path
    now: datetime
    raw: dict[str, Any]

    def leaf_der(self) -> bytes:
        data = self.certs.read_bytes()
        if b"-----BEGIN" not in data:
            return data
        from verifier.encoding import pem_blocks

        return pem_blocks(data, "CERTIFICATE")[0]


def load_amd_cases() -> list[AmdCase]:
    doc = json.loads((AMD_VECTORS / "expected.json").read_text())
    return [
        AmdCase(
            id=c["id"],
            report=AMD_VECTORS / c["report"],
            certs=AMD_VECTORS / c["certs"],
            now=_time(c["pinned_now"]),
            raw=c,
        )
        for c in doc["cases"]
    ]


AMD_CASES = load_amd_cases()


AZURE_VECTORS = VECTORS / "azure-cvm"


@dataclass(frozen=True)
class AzureCase:
    """One row of tests/vectors/azure-cvm/expected.json (its files under :attr:`dir`)."""

    id: str
    dir: Path
    now: datetime | None
    raw: dict[str, Any]

    def read(self, name: str) -> bytes | None:
        """A file of the case, or None when the case has none of that name."""
        path = self.dir / name
        return path.read_bytes() if path.exists() else None


def load_azure_cases() -> dict[str, AzureCase]:
    doc = json.loads((AZURE_VECTORS / "expected.json").read_text())
    return {
        c["id"]: AzureCase(
            id=c["id"],
            dir=AZURE_VECTORS / c["dir"],
            now=datetime.fromtimestamp(c["pinned_now_unix"], UTC) if "pinned_now_unix" in c else None,
            raw=c,
        )
        for c in doc["cases"]
    }


AZURE_CASES = load_azure_cases()
AZURE_MUTATIONS: list[dict[str, Any]] = json.loads((AZURE_VECTORS / "expected.json").read_text())["mutations"]
