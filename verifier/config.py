"""One typed Settings object (pydantic-settings, ``KEYWARD_`` prefix). Nothing else reads the environment.

Development conveniences (simulated roots, built-in secrets) exist only with ``environment = "development"``; the
production profile refuses to start with any of them (:meth:`Settings.check_production`), and with a
``vendor_roots_dir`` that does not hold exactly the genuine vendor roots pinned in code. Development is the default
(the demo relies on it), so every process logs a loud WARNING at start-up naming the public development secrets it
runs with (:func:`warn_development_profile`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, NonNegativeInt, PositiveInt, SecretStr, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from verifier.clock import Clock, DecisionTime
from verifier.errors import TrustStoreError
from verifier.trust.store import DEFAULT_VENDOR_ROOTS, load_trust_store

_DEV = "keyward-development-only-"
DEV_CHALLENGE_SECRET = _DEV + "challenge-secret"
DEV_CREDENTIAL_PEPPER = _DEV + "credential-pepper"
DEV_KEK_HEX = hashlib.sha256((_DEV + "kek").encode()).hexdigest()
#: Seed of the development result-signing (EAR) key. It is public, so anyone can sign results with that key.
DEV_RESULT_SIGNING_KEY_SEED: Final = b"keyward-development-result-signing-key"
#: Shortest accepted production secret (HMAC keys for challenges and credential hashes).
MIN_SECRET_BYTES = 32
_KEK_HEX = re.compile(r"[0-9a-fA-F]{64}")
EMBEDDED_DATABASE_URL = "sqlite:///var/keyward.db"
EMBEDDED_BROKER_URL = "sqla+sqlite:///var/keyward-broker.db"
log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def dev_result_signing_key() -> ec.EllipticCurvePrivateKey:
    """The fixed development result-signing key, so the API and every worker agree on the JWKS without
    configuration. Derived from a public seed: production refuses it."""
    scalar = int.from_bytes(hashlib.sha256(DEV_RESULT_SIGNING_KEY_SEED).digest(), "big")
    return ec.derive_private_key(scalar % (2**255), ec.SECP256R1())


def dev_result_signing_key_pem() -> bytes:
    return dev_result_signing_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_key_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_signing_key(pem: str) -> ec.EllipticCurvePrivateKey | None:
    """The EC P-256 private key in ``pem`` (unencrypted PKCS#8 or SEC1), or None."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1) else None


def _is_dev_kek(value: str) -> bool:
    """Whether ``value`` encodes the development KEK, in any letter case or spacing ``bytes.fromhex`` accepts."""
    try:
        return bytes.fromhex(value) == bytes.fromhex(DEV_KEK_HEX)
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEYWARD_", extra="forbid")

    environment: Literal["development", "production"] = "development"
    #: Development default: the embedded profile, one SQLite file (no server). Production requires PostgreSQL.
    database_url: str = EMBEDDED_DATABASE_URL
    #: Development default: kombu's SQLAlchemy transport on a SQLite file (no server). Production requires Redis.
    broker_url: str = EMBEDDED_BROKER_URL
    #: Seconds before a task taken by a worker that died without acknowledging it is delivered again.
    broker_visibility_timeout: int = 3600
    #: Put before every Redis key and pub/sub channel Keyward uses (kombu's ``global_keyprefix``), so several
    #: deployments, or test runs, can share one Redis without taking each other's tasks or notifications.
    broker_key_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = ""
    vendor_roots_dir: Path = DEFAULT_VENDOR_ROOTS
    challenge_secret: SecretStr = SecretStr(DEV_CHALLENGE_SECRET)
    credential_pepper: SecretStr = SecretStr(DEV_CREDENTIAL_PEPPER)
    kek_hex: SecretStr = SecretStr(DEV_KEK_HEX)
    #: When set, ``GET /metrics`` requires ``Authorization: Bearer <this token>`` (Prometheus' ``authorization``
    #: setting); unset, it answers anyone who reaches it (keep it on the internal network then).
    metrics_token: SecretStr | None = None
    #: Serve the OpenAPI document and its pages (``/openapi.json``, ``/docs``, ``/redoc``). Unset: on in
    #: development, off in production (they map every route, admin ones included, for anyone who reaches the API).
    api_docs: bool | None = None
    #: The result token's ``iss``: who issued it (in production, this deployment's own URL).
    result_token_issuer: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")] = (
        "urn:keyward"  # noqa: S105 - an identifier, not a secret
    )
    #: PEM of the EC P-256 key that signs attestation results; development derives one from a fixed seed.
    result_signing_key_pem: SecretStr | None = None
    #: Trust the fake vendor PKIs of verifier.simulation (development demo only; results are marked simulated).
    allow_simulated_roots: bool = False
    #: Development only: decide (and issue challenges) as if the time were this. Simulated evidence from the fake
    #: vendor PKIs is built for a fixed instant; the demo and worker tests set this to it. Refused in production.
    simulation_time: datetime | None = None
    #: Development only: the real instant at which the simulation clock read ``simulation_time``; when set, the
    #: simulated clock runs on from there (the dev stack sets it so leases age and renewals move forward).
    simulation_anchor: datetime | None = None
    #: Upper bound for ``Prefer: wait=N`` on POST /v1/attestations.
    max_wait_seconds: float = 10.0
    #: The worker fetches vendor collateral (Intel PCS/PCCS, AMD KDS, NVIDIA's RIM and OCSP services) that evidence
    #: needs and the cache lacks, and refreshes cached documents before their next update. Off: only collateral
    #: sent with the evidence or already cached is used.
    collateral_fetch: bool = True
    #: Intel PCS v4, or a PCCS serving the same paths.
    pcs_base_url: str = "https://api.trustedservices.intel.com"
    #: The Intel SGX Root CA CRL. None: Intel's CDP (DER) when pcs_base_url is Intel PCS, otherwise the PCCS path
    #: ``<pcs_base_url>/sgx/certification/v4/rootcacrl``.
    pcs_root_ca_crl_url: str | None = None
    kds_base_url: str = "https://kdsintf.amd.com"
    #: NVIDIA's RIM service (``GET /v1/rim/<id>``), or a mirror serving the same paths.
    nvidia_rim_url: str = "https://rim.attestation.nvidia.com"
    #: NVIDIA's OCSP service (``POST /``, DER requests), or a proxy answering the same way.
    nvidia_ocsp_url: str = "https://ocsp.ndis.nvidia.com"
    #: An NVIDIA service key: sent as ``Authorization: Bearer <key>`` to the RIM and OCSP services when set.
    nvidia_api_key: SecretStr | None = None
    #: Seconds each vendor request may take (connect, read, write and pool, each).
    collateral_fetch_timeout: float = 10.0
    #: Times a decision is put off while a vendor service answers 429/5xx or cannot be reached; after the last it
    #: is decided with what the cache holds (a stored rejection if the collateral is still missing).
    collateral_fetch_retries: int = 5
    #: Seconds before the first such retry, doubled for each next one, never less than the vendor's Retry-After,
    #: at most collateral_retry_max_delay (keep that below broker_visibility_timeout).
    collateral_retry_delay: float = 5.0
    collateral_retry_max_delay: float = 600.0
    #: Cached documents due for their next update within this many hours are fetched again (once inside that
    #: window), by the periodic refresh and before a decision that needs them.
    collateral_refresh_ahead_hours: float = 24.0
    #: A cached TCB Info, QE Identity or CRL (Intel or AMD) last fetched this many seconds ago or longer is fetched
    #: again, by the periodic refresh and before a decision that needs it, whatever its nextUpdate says: a
    #: revocation or TCB recovery reaches the cache within this long. VCEKs are kept until their notAfter nears.
    collateral_max_age_seconds: float = 86400.0
    #: Cached documents the periodic refresh looks at per run, those due soonest first.
    collateral_refresh_batch: int = 100
    #: Requests (challenges, submissions, renewals, polls) one licence key may make per minute; over it, 429
    #: ``request.rate_limited`` with Retry-After. 0: no limit. Counted in Redis across API processes.
    licence_requests_per_minute: NonNegativeInt = 600
    #: Request bytes one licence key may submit (attestations and renewals) per hour; over it, 429
    #: ``request.storage_quota_exceeded`` and nothing is stored. 0: no limit.
    licence_stored_bytes_per_hour: NonNegativeInt = 256 * 1024 * 1024
    #: ``Prefer: wait`` requests of one licence key that wait at once, per API process; more are answered 202 at
    #: once (stored and queued: poll the status URL), so one tenant's flood never holds the others' answers back.
    #: A waiting request holds no thread (it waits on the event loop). 0: no cap.
    licence_max_waiting: NonNegativeInt = 32
    #: Days a decided request's raw evidence is kept (unless its lease is still live); then beat empties it. The
    #: decision, its reasons and the audit chain are kept for good (verifier/attestation/retention.py).
    evidence_retention_days: PositiveInt = 30
    #: How many attestations one purge (hourly, by beat) empties at most.
    evidence_purge_batch: PositiveInt = 1000
    #: A request still pending this many seconds after it was sent to a worker (created, or last requeued) is
    #: sent again by beat (a lost message, a broker outage at submission, a task out of retries); the decision
    #: is idempotent. Keep it above the longest collateral back-off a decision may legitimately wait.
    pending_requeue_seconds: float = 600.0
    #: Pending requests requeued per beat run, oldest first.
    pending_requeue_batch: int = 100
    #: Seconds between beat's requeue runs. Each run also sends again, at once, the pending requests a worker that
    #: has since stopped heartbeating (``heartbeat_max_age_seconds``) may have been holding, so a killed worker's
    #: requests are decided within about ``heartbeat_max_age_seconds`` + this, not ``broker_visibility_timeout``.
    pending_requeue_interval_seconds: Annotated[float, Field(gt=0)] = 10.0
    #: A request not decided within this many seconds of its arrival is rejected ``attestation.request_stale``
    #: instead of being decided: no client still waits for it, and its lease would only hold a seat. At most
    #: 3600 (``verifier.attestation.challenges.MAX_DECISION_DELAY``, the hard limit the used-nonce retention is
    #: built on). Keep it above the longest collateral back-off a decision may legitimately wait.
    max_decision_age_seconds: Annotated[float, Field(gt=0, le=3600)] = 600.0
    #: Log output: ``json`` (one object per line, with the request id; for log collectors) or ``text``.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Seconds between the heartbeats each worker and beat process writes to the ``worker_heartbeats`` table.
    heartbeat_interval_seconds: float = 10.0
    #: A heartbeat older than this is stale: /readyz and the worker healthcheck then fail.
    heartbeat_max_age_seconds: float = 30.0
    #: Staff dashboard sessions end after this many seconds without a request (idle expiry) ...
    staff_session_idle_seconds: PositiveInt = 1800
    #: ... and this many seconds after sign-in whatever the activity (absolute expiry).
    staff_session_max_seconds: PositiveInt = 43200
    #: A staff account is locked for staff_lockout_seconds after this many failed sign-ins within
    #: staff_login_failure_window_seconds.
    staff_login_max_failures: PositiveInt = 5
    staff_login_failure_window_seconds: PositiveInt = 900
    staff_lockout_seconds: PositiveInt = 900
    #: Sign-ins from one client address are refused for a while once it has this many failures within
    #: staff_login_address_window_seconds, whichever usernames they named (a password spray).
    staff_login_address_max_failures: PositiveInt = 30
    staff_login_address_window_seconds: PositiveInt = 900

    def development_secrets_in_use(self) -> tuple[str, ...]:
        """The secret settings that hold a public development value (the defaults, or those values set again)."""
        names = [
            name
            for name, value in (
                ("challenge_secret", self.challenge_secret),
                ("credential_pepper", self.credential_pepper),
            )
            if value.get_secret_value().lower().startswith(_DEV)
        ]
        if _is_dev_kek(self.kek_hex.get_secret_value()):
            names.append("kek_hex")
        if self.result_signing_key_pem is None:
            names.append("result_signing_key_pem")
        else:
            key = _load_signing_key(self.result_signing_key_pem.get_secret_value())
            if key is not None and _public_key_der(key) == _public_key_der(dev_result_signing_key()):
                names.append("result_signing_key_pem")
        return tuple(names)

    @property
    def serves_api_docs(self) -> bool:
        """Whether the API serves its OpenAPI document and pages (:attr:`api_docs`, else development only)."""
        return self.environment == "development" if self.api_docs is None else self.api_docs

    @model_validator(mode="after")
    def check_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        if not self.database_url.startswith("postgresql"):
            problems.append("database_url must be a PostgreSQL URL (the embedded SQLite profile is for development)")
        if not self.broker_url.startswith(("redis://", "rediss://")):
            problems.append("broker_url must be a Redis URL (the embedded broker is for development)")
        if self.allow_simulated_roots:
            problems.append("allow_simulated_roots must be false")
        if self.simulation_time is not None or self.simulation_anchor is not None:
            problems.append("simulation_time and simulation_anchor must not be set")
        problems.extend(
            f"{name} must be set (the public development value is refused)"
            for name in self.development_secrets_in_use()
        )
        for name, value in (("challenge_secret", self.challenge_secret), ("credential_pepper", self.credential_pepper)):
            if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
                problems.append(f"{name} must be at least {MIN_SECRET_BYTES} bytes")
        if not _KEK_HEX.fullmatch(self.kek_hex.get_secret_value()):
            problems.append("kek_hex must be 64 hex characters (a 256-bit key)")
        if (
            self.result_signing_key_pem is not None
            and _load_signing_key(self.result_signing_key_pem.get_secret_value()) is None
        ):
            problems.append("result_signing_key_pem must be an unencrypted PEM EC P-256 private key")
        try:
            load_trust_store(self.vendor_roots_dir)
        except TrustStoreError as e:
            problems.append(f"vendor_roots_dir must hold exactly the genuine vendor roots pinned in code ({e})")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


_development_warning_logged = False


def warn_development_profile(settings: Settings) -> None:
    """Log once per process, at start-up (the API factory, the Celery worker and beat), a loud WARNING that this
    process runs the development profile, naming each public development secret it uses. Nothing in production."""
    global _development_warning_logged  # noqa: PLW0603 - once per process
    if settings.environment != "development" or _development_warning_logged:
        return
    _development_warning_logged = True
    names = settings.development_secrets_in_use()
    in_use = ", ".join(f"KEYWARD_{name.upper()}" for name in names) or "none"
    log.warning(
        "DEVELOPMENT PROFILE (KEYWARD_ENVIRONMENT is not 'production'): never expose this process. Public "
        "development secrets in use, which anyone can derive: %s.%s",
        in_use,
        " Simulated vendor roots are trusted." if settings.allow_simulated_roots else "",
        extra={"development_secrets": in_use},
    )


def current_time(settings: Settings) -> DecisionTime:
    """The decision clock now: the real time, or the development simulation time (:class:`~verifier.clock.Clock`)."""
    return Clock.from_settings(settings).decision_time()
