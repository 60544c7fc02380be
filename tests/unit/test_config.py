"""Settings: development conveniences exist only in development; production refuses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from verifier.config import Settings, current_time

PRODUCTION_OK = {
    "environment": "production",
    "database_url": "postgresql+psycopg://keyward@db:5432/keyward",
    "broker_url": "redis://redis:6379/0",
    "challenge_secret": SecretStr("a-real-secret-from-the-vault-000"),
    "credential_pepper": SecretStr("another-real-secret-from-vault-0"),
    "kek_hex": SecretStr("11" * 32),
    "result_signing_key_pem": SecretStr("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"),
}


def test_settings_production_with_real_secrets_starts() -> None:
    assert Settings(**PRODUCTION_OK).environment == "production"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"allow_simulated_roots": True}, "allow_simulated_roots"),
        ({"simulation_time": datetime(2026, 1, 1, tzinfo=UTC)}, "simulation_time"),
        ({"challenge_secret": Settings().challenge_secret}, "challenge_secret"),
        ({"credential_pepper": Settings().credential_pepper}, "credential_pepper"),
        ({"kek_hex": Settings().kek_hex}, "kek_hex"),
        ({"result_signing_key_pem": None}, "result_signing_key_pem"),
        ({"database_url": "sqlite:///var/keyward.db"}, "database_url"),
        ({"broker_url": "sqla+sqlite:///var/keyward-broker.db"}, "broker_url"),
        ({"challenge_secret": SecretStr("")}, "challenge_secret must be at least"),
        ({"credential_pepper": SecretStr("short")}, "credential_pepper must be at least"),
        ({"kek_hex": SecretStr("11" * 16)}, "kek_hex must be 64 hex"),
        ({"kek_hex": SecretStr("zz" * 32)}, "kek_hex must be 64 hex"),
    ],
    ids=[
        "simulated-roots",
        "simulation-time",
        "dev-challenge-secret",
        "dev-pepper",
        "dev-kek",
        "no-signing-key",
        "embedded-database",
        "embedded-broker",
        "empty-challenge-secret",
        "short-pepper",
        "short-kek",
        "non-hex-kek",
    ],
)
def test_settings_production_refuses_development_conveniences(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{**PRODUCTION_OK, **override})  # type: ignore[arg-type]


def test_current_time_uses_simulation_clock_only_in_development() -> None:
    t = datetime(2026, 1, 15, tzinfo=UTC)
    assert current_time(Settings(simulation_time=t)) == t
    assert current_time(Settings()) != t


def test_current_time_simulation_clock_runs_from_its_anchor() -> None:
    start = datetime(2026, 1, 15, tzinfo=UTC)
    anchor = datetime.now(UTC) - timedelta(minutes=5)
    now = current_time(Settings(simulation_time=start, simulation_anchor=anchor))
    assert timedelta(minutes=5) <= now - start < timedelta(minutes=6)


def test_settings_production_refuses_simulation_anchor() -> None:
    with pytest.raises(ValidationError, match="simulation_anchor"):
        Settings(**{**PRODUCTION_OK, "simulation_anchor": datetime.now(UTC)})  # type: ignore[arg-type]
