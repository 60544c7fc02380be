"""Settings: development conveniences exist only in development; production refuses them."""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import signals
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr, ValidationError

import verifier.app as api_app
from verifier import config
from verifier.config import (
    DEV_CHALLENGE_SECRET,
    DEV_KEK_HEX,
    Settings,
    current_time,
    dev_result_signing_key,
    dev_result_signing_key_pem,
    warn_development_profile,
)
from verifier.simulation.intel_pki import default_pki
from verifier.trust.store import DEFAULT_VENDOR_ROOTS, INTEL_SGX_ROOT
from verifier.wiring import keyring_for
from verifier.worker import celery_app


def _pem(key: ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


PKCS8 = serialization.PrivateFormat.PKCS8
PRODUCTION_OK = {
    "environment": "production",
    "database_url": "postgresql+psycopg://keyward@db:5432/keyward",
    "broker_url": "redis://redis:6379/0",
    "challenge_secret": SecretStr("a-real-secret-from-the-vault-000"),
    "credential_pepper": SecretStr("another-real-secret-from-vault-0"),
    "kek_hex": SecretStr("11" * 32),
    "result_signing_key_pem": SecretStr(_pem(ec.generate_private_key(ec.SECP256R1()), PKCS8)),
}
ALL_DEV_SECRETS = ("challenge_secret", "credential_pepper", "kek_hex", "result_signing_key_pem")


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
        ({"kek_hex": SecretStr(DEV_KEK_HEX.upper())}, "kek_hex must be set"),
        ({"kek_hex": SecretStr(DEV_KEK_HEX[:10].upper() + DEV_KEK_HEX[10:])}, "kek_hex must be set"),
        ({"challenge_secret": SecretStr(DEV_CHALLENGE_SECRET.upper())}, "challenge_secret must be set"),
        (
            {"result_signing_key_pem": SecretStr(dev_result_signing_key_pem().decode())},
            "result_signing_key_pem must be set",
        ),
        (
            {
                "result_signing_key_pem": SecretStr(
                    _pem(dev_result_signing_key(), serialization.PrivateFormat.TraditionalOpenSSL)
                )
            },
            "result_signing_key_pem must be set",
        ),
        (
            {"result_signing_key_pem": SecretStr("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n")},
            "result_signing_key_pem must be an unencrypted PEM EC P-256",
        ),
        (
            {"result_signing_key_pem": SecretStr(_pem(ec.generate_private_key(ec.SECP384R1()), PKCS8))},
            "result_signing_key_pem must be an unencrypted PEM EC P-256",
        ),
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
        "dev-kek-upper-case",
        "dev-kek-mixed-case",
        "dev-challenge-secret-upper-case",
        "dev-signing-key-pkcs8",
        "dev-signing-key-sec1",
        "unparseable-signing-key",
        "p384-signing-key",
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
    assert start + timedelta(minutes=5) <= now < start + timedelta(minutes=6)


def test_settings_production_refuses_simulation_anchor() -> None:
    with pytest.raises(ValidationError, match="simulation_anchor"):
        Settings(**{**PRODUCTION_OK, "simulation_anchor": datetime.now(UTC)})  # type: ignore[arg-type]


# -- vendor_roots_dir: production loads the store at start-up, and it must be the genuine roots pinned in code ------


def _fake_intel_root_only(d: Path) -> None:
    # The audit's reproduction: the fake Intel root under a self-consistent manifest.
    root = default_pki().root
    (d / "intel").mkdir(parents=True)
    (d / "intel/root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    sha = hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()
    (d / "MANIFEST.toml").write_text(f'[[root]]\nkey = "{INTEL_SGX_ROOT}"\nfile = "intel/root.pem"\nsha256 = "{sha}"\n')


def _genuine_roots_less_one(d: Path) -> None:
    shutil.copytree(DEFAULT_VENDOR_ROOTS, d)
    manifest = d / "MANIFEST.toml"
    text = manifest.read_text()
    start = text.index('[[root]]\nkey = "microsoft.')
    manifest.write_text(text[:start])


def _no_directory(d: Path) -> None:
    pass


@pytest.mark.parametrize(
    ("make_roots", "code"),
    [
        (_fake_intel_root_only, "trust.root_unpinned"),
        (_genuine_roots_less_one, "trust.root_missing"),
        (_no_directory, "trust.manifest_invalid"),
    ],
    ids=["fake-intel-root-self-consistent-manifest", "pinned-root-missing", "no-directory"],
)
def test_settings_production_refuses_vendor_roots_not_pinned(
    tmp_path: Path, make_roots: Callable[[Path], None], code: str
) -> None:
    make_roots(tmp_path / "roots")
    with pytest.raises(ValidationError, match=f"vendor_roots_dir must hold exactly the genuine.*{code}"):
        Settings(**{**PRODUCTION_OK, "vendor_roots_dir": tmp_path / "roots"})  # type: ignore[arg-type]


def test_settings_production_accepts_a_copy_of_the_genuine_roots(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_VENDOR_ROOTS, tmp_path / "roots")
    assert Settings(**{**PRODUCTION_OK, "vendor_roots_dir": tmp_path / "roots"}).environment == "production"  # type: ignore[arg-type]


# -- Development: every convenience still works, and is announced at start-up ---------------------------------------


def test_settings_development_uses_every_development_secret() -> None:
    settings = Settings(allow_simulated_roots=True)
    assert settings.allow_simulated_roots is True
    assert settings.development_secrets_in_use() == ALL_DEV_SECRETS


def test_settings_development_secrets_in_use_none_when_all_are_set() -> None:
    real = {k: v for k, v in PRODUCTION_OK.items() if k not in ("environment", "database_url", "broker_url")}
    assert Settings(**real).development_secrets_in_use() == ()  # type: ignore[arg-type]


def test_dev_result_signing_key_is_the_workers_development_key() -> None:
    signing_key = dev_result_signing_key().public_key().public_numbers()
    (active,) = keyring_for(Settings()).public_jwks()["keys"][:1]
    assert int.from_bytes(_b64url_decode(active["x"]), "big") == signing_key.x
    assert int.from_bytes(_b64url_decode(active["y"]), "big") == signing_key.y


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_development_warning_logged", False)


@pytest.mark.usefixtures("fresh_warning")
def test_warn_development_profile_names_each_development_secret_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="verifier.config"):
        warn_development_profile(Settings())
        warn_development_profile(Settings())
    (record,) = [r for r in caplog.records if r.name == "verifier.config"]
    assert record.levelno == logging.WARNING
    for name in ALL_DEV_SECRETS:
        assert f"KEYWARD_{name.upper()}" in record.getMessage()


@pytest.mark.usefixtures("fresh_warning")
def test_warn_development_profile_names_only_the_secrets_in_use(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="verifier.config"):
        warn_development_profile(Settings(kek_hex=SecretStr("22" * 32)))
    (record,) = [r for r in caplog.records if r.name == "verifier.config"]
    assert "KEYWARD_KEK_HEX" not in record.getMessage()
    assert "KEYWARD_CHALLENGE_SECRET" in record.getMessage()


@pytest.mark.usefixtures("fresh_warning")
def test_warn_development_profile_silent_in_production(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="verifier.config"):
        warn_development_profile(Settings(**PRODUCTION_OK))  # type: ignore[arg-type]
    assert not [r for r in caplog.records if r.name == "verifier.config"]


@pytest.mark.usefixtures("fresh_warning")
def test_warn_development_profile_logged_by_the_api_factory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(api_app, "get_settings", Settings)
    monkeypatch.setattr(api_app, "setup_logging", lambda **_: None)  # leave the test's logging alone
    with caplog.at_level(logging.WARNING, logger="verifier.config"):
        api_app.create_server_app()
    assert [r for r in caplog.records if r.name == "verifier.config" and "DEVELOPMENT PROFILE" in r.getMessage()]


@pytest.mark.usefixtures("fresh_warning")
def test_warn_development_profile_logged_by_the_celery_worker(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(celery_app, "get_settings", Settings)
    with caplog.at_level(logging.WARNING, logger="verifier.config"):
        signals.celeryd_after_setup.send(sender="test-worker", instance=None, conf=None)
    assert [r for r in caplog.records if r.name == "verifier.config" and "DEVELOPMENT PROFILE" in r.getMessage()]


@pytest.mark.parametrize(
    "prefix", ["has space:", "key*", "x" * 65, "new\nline"], ids=["space", "glob", "long", "newline"]
)
def test_settings_broker_key_prefix_refuses_unsafe_text(prefix: str) -> None:
    with pytest.raises(ValidationError, match="broker_key_prefix"):
        Settings(broker_key_prefix=prefix)


def test_transport_options_put_the_key_prefix_on_redis_only() -> None:
    from verifier.broker.transport import transport_options

    assert transport_options("redis://h:6379/0", 60, "acme:")["global_keyprefix"] == "acme:"
    assert "global_keyprefix" not in transport_options("sqla+sqlite:///x.db", 60, "acme:")


def test_settings_max_decision_age_is_bounded_by_the_nonce_retention() -> None:
    """``max_decision_age_seconds`` may not exceed MAX_DECISION_DELAY: consumed nonces are kept that long past their
    expiry, so a request decided later could be a replay nobody catches."""
    from verifier.attestation.challenges import MAX_DECISION_DELAY

    assert Settings(max_decision_age_seconds=MAX_DECISION_DELAY.total_seconds()).max_decision_age_seconds == 3600
    for refused in (0, -1, MAX_DECISION_DELAY.total_seconds() + 1):
        with pytest.raises(ValidationError, match="max_decision_age_seconds"):
            Settings(max_decision_age_seconds=refused)


def test_decision_context_takes_the_max_decision_age_from_settings() -> None:
    from verifier.wiring import decision_context

    assert decision_context(Settings(max_decision_age_seconds=90)).max_decision_age == timedelta(seconds=90)
    assert decision_context(Settings()).max_decision_age == timedelta(seconds=600)
