"""What a decision needs besides the database: trust, keys, secrets and verification caches (built once per
process from settings by :mod:`verifier.wiring`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from verifier.collateral.documents import CollateralCache
from verifier.keywrap.ear import DEFAULT_ISSUER, ProviderKeyring
from verifier.keywrap.kek import KeyEncryptionKey
from verifier.platforms.amd_snp import SnpVerificationCache
from verifier.platforms.intel_dcap import IntelVerificationCache
from verifier.platforms.nvidia_gpu import NvidiaVerificationCache
from verifier.trust.store import TrustStore


@dataclass(frozen=True)
class DecisionContext:
    """Everything a decision needs besides the database: trust, keys, secrets and verification caches."""

    trust: TrustStore
    kek: KeyEncryptionKey
    keyring: ProviderKeyring
    challenge_secret: bytes
    intel_cache: IntelVerificationCache = field(default_factory=IntelVerificationCache)
    snp_cache: SnpVerificationCache = field(default_factory=SnpVerificationCache)
    nvidia_cache: NvidiaVerificationCache = field(default_factory=NvidiaVerificationCache)
    #: Parsed and chosen collateral by content hash (None: parse and choose on every decision).
    collateral_cache: CollateralCache | None = field(default_factory=CollateralCache)
    production: bool = False  # the production profile: debug TEEs are never accepted, whatever a policy says
    issuer: str = DEFAULT_ISSUER  # the result token's ``iss``
    #: A request older than this when it is decided is rejected ``attestation.request_stale`` (Settings'
    #: ``max_decision_age_seconds``; at most :data:`~verifier.attestation.challenges.MAX_DECISION_DELAY`).
    max_decision_age: timedelta = timedelta(minutes=10)
