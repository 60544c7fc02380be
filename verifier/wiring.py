"""The composition root: the trust store, the KEK, the result-signing keyring and the DecisionContext, built from
Settings (the context once per process and configuration).

Both services build what they need here: the worker its DecisionContext, the API the KEK (admin model keys) and the
keyring (JWKS). Nothing here touches the database or the broker (:mod:`verifier.db.session`, :mod:`verifier.broker`).
"""

from __future__ import annotations

from datetime import timedelta

from verifier.attestation.context import DecisionContext
from verifier.config import Settings, dev_result_signing_key_pem
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey
from verifier.keywrap.kek import LocalAesKek
from verifier.trust.store import AZURE_VTPM_ROOT, TrustStore, load_trust_store, trust_store_from_certificates


def trust_store_for(settings: Settings) -> TrustStore:
    """Genuine roots from vendor_roots/; in development with allow_simulated_roots, the fake PKIs' roots instead
    (Intel, AMD, NVIDIA and the simulated Azure vTPM root; everything verified under them is marked simulated)."""
    if settings.allow_simulated_roots and settings.environment == "development":
        from verifier.simulation.amd_pki import default_amd_pki  # noqa: PLC0415 - development only
        from verifier.simulation.azure_cvm_builder import simulated_azure_vtpm_root  # noqa: PLC0415
        from verifier.simulation.intel_pki import default_pki  # noqa: PLC0415
        from verifier.simulation.nvidia_pki import default_nvidia_pki  # noqa: PLC0415

        intel = default_pki().build().trust_store
        amd = default_amd_pki().build().trust_store
        nvidia = default_nvidia_pki().trust_store
        roots = {k: r.certificate for store in (intel, amd, nvidia) for k, r in store.roots.items()}
        roots[AZURE_VTPM_ROOT] = simulated_azure_vtpm_root()  # AK certificates stay optional by policy
        return trust_store_from_certificates(roots, simulated=True)
    return load_trust_store(settings.vendor_roots_dir)


def kek_for(settings: Settings) -> LocalAesKek:
    """The provider key-encryption key (the one place it is built from settings; a KMS adapter would go here)."""
    return LocalAesKek(bytes.fromhex(settings.kek_hex.get_secret_value()))


def keyring_for(settings: Settings) -> ProviderKeyring:
    pem = (
        settings.result_signing_key_pem.get_secret_value().encode()
        if settings.result_signing_key_pem
        else dev_result_signing_key_pem()
    )
    return ProviderKeyring(ProviderSigningKey.from_pem(pem))


_CONTEXTS: dict[tuple[object, ...], DecisionContext] = {}


def decision_context(settings: Settings) -> DecisionContext:
    """One context (and so one set of verification caches) per process and configuration."""
    key = (
        settings.environment,
        settings.allow_simulated_roots,
        str(settings.vendor_roots_dir),
        settings.kek_hex.get_secret_value(),
        settings.challenge_secret.get_secret_value(),
        settings.result_signing_key_pem.get_secret_value() if settings.result_signing_key_pem else None,
        settings.result_token_issuer,
        settings.max_decision_age_seconds,
    )
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _CONTEXTS[key] = DecisionContext(
            trust=trust_store_for(settings),
            kek=kek_for(settings),
            keyring=keyring_for(settings),
            challenge_secret=settings.challenge_secret.get_secret_value().encode(),
            production=settings.environment == "production",
            issuer=settings.result_token_issuer,
            max_decision_age=timedelta(seconds=settings.max_decision_age_seconds),
        )
    return ctx
