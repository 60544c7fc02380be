"""One typed Settings object (pydantic-settings, ``KEYWARD_`` prefix). Nothing else reads the environment.

Development conveniences (simulated roots, built-in secrets) exist only with ``environment = "development"``; the
production profile refuses to start with any of them (:meth:`Settings.check_production`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from verifier.trust.store import DEFAULT_VENDOR_ROOTS

_DEV = "keyward-development-only-"
DEV_CHALLENGE_SECRET = _DEV + "challenge-secret"
DEV_CREDENTIAL_PEPPER = _DEV + "credential-pepper"
DEV_KEK_HEX = hashlib.sha256((_DEV + "kek").encode()).hexdigest()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEYWARD_", extra="forbid")

    environment: Literal["development", "production"] = "development"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/keyward"
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Seconds before a task taken by a worker that died without acknowledging it is delivered again.
    broker_visibility_timeout: int = 3600
    vendor_roots_dir: Path = DEFAULT_VENDOR_ROOTS
    challenge_secret: SecretStr = SecretStr(DEV_CHALLENGE_SECRET)
    credential_pepper: SecretStr = SecretStr(DEV_CREDENTIAL_PEPPER)
    kek_hex: SecretStr = SecretStr(DEV_KEK_HEX)
    #: PEM of the EC P-256 key that signs attestation results; development derives one from a fixed seed.
    result_signing_key_pem: SecretStr | None = None
    #: Trust the fake vendor PKIs of verifier.testing (development demo only; results are marked simulated).
    allow_simulated_roots: bool = False
    #: Development only: decide (and issue challenges) as if the time were this. Simulated evidence from the fake
    #: vendor PKIs is built for a fixed instant; the demo and worker tests set this to it. Refused in production.
    simulation_time: datetime | None = None
    #: Upper bound for ``Prefer: wait=N`` on POST /v1/attestations.
    max_wait_seconds: float = 10.0

    @model_validator(mode="after")
    def check_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        if self.allow_simulated_roots:
            problems.append("allow_simulated_roots must be false")
        if self.simulation_time is not None:
            problems.append("simulation_time must not be set")
        for name, value in (
            ("challenge_secret", self.challenge_secret),
            ("credential_pepper", self.credential_pepper),
            ("kek_hex", self.kek_hex),
        ):
            if value.get_secret_value().startswith(_DEV) or value.get_secret_value() == DEV_KEK_HEX:
                problems.append(f"{name} must be set (the development default is refused)")
        if self.result_signing_key_pem is None:
            problems.append("result_signing_key_pem must be set")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def current_time(settings: Settings) -> datetime:
    """The decision clock: the real time, or the development simulation time."""
    if settings.simulation_time is not None and settings.environment == "development":
        return settings.simulation_time
    return datetime.now(UTC)
