"""Demo data, created the way provider staff would: through the admin API with an admin credential.

A customer, a model whose version 1.0 has a DEK that encrypts a sample model file (AES-256-GCM, ``nonce || ciphertext
|| tag``), reference values for the simulated TDX platform and the model version's GPU policy (NVIDIA H100s, up to
eight), an entitlement with a few seats and up to eight GPUs, and its licence key.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from verifier.simulation.intel_pki import SIM_NOW
from verifier.simulation.intel_quote_builder import TdReport

SAMPLE_MODEL = b"keyward demo model: layer0.weight=[0.12, -0.53, 0.98]; layer1.weight=[0.44, 0.07, -0.61]\n"
NONCE_BYTES = 12
#: GPUs the demo entitlement and GPU policy allow (one HGX board).
GPUS = 8


@dataclass(frozen=True)
class DemoData:
    customer: str
    model: str
    version: str
    entitlement_id: str
    licence: str
    encrypted_model: Path
    seats: int


def encrypt_model(dek: bytes, plaintext: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(dek).encrypt(nonce, plaintext, b"keyward-demo-model")


def decrypt_model(dek: bytes, blob: bytes) -> bytes:
    return AESGCM(dek).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], b"keyward-demo-model")


def seed_demo(http: httpx.Client, admin_token: str, workdir: Path, *, seats: int = 3, suffix: str = "") -> DemoData:
    """Create the demo's records through ``/v1/admin``; the DEK exists only here, wrapped in Keyward, and in the
    enclave that attests."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = http.post("/v1/admin" + path, json=body, headers={"Authorization": f"Bearer {admin_token}"})
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    dek = AESGCM.generate_key(bit_length=256)
    encrypted = workdir / f"model{suffix}.enc"
    encrypted.write_bytes(encrypt_model(dek, SAMPLE_MODEL))
    valid_from = (SIM_NOW - timedelta(days=30)).isoformat()

    customer = post("/customers", {"name": f"Acme Research{suffix}"})
    model = post("/models", {"name": f"acme-llm{suffix}", "description": "demo model (encrypted sample file)"})
    version = post(f"/models/{model['id']}/versions", {"version": "1.0", "dek_b64": base64.b64encode(dek).decode()})
    post(
        "/reference-values",
        {
            "model_version_id": version["id"],
            "platform": "intel-tdx",
            "status": "active",
            "values": {"allowed_measurements": {"mrtd": [TdReport().mrtd.hex()]}},
            "valid_from": valid_from,
        },
    )
    post(
        "/reference-values",
        {
            "model_version_id": version["id"],
            "platform": "nvidia-gpu",
            "status": "active",
            "values": {"architectures": ["HOPPER"], "max_gpus": GPUS},
            "valid_from": valid_from,
        },
    )
    entitlement = post(
        "/entitlements",
        {
            "customer_id": customer["id"],
            "model_id": model["id"],
            "allowed_platforms": ["intel-tdx"],
            "max_gpus": GPUS,
            "seats": seats,
            "lease_ttl_seconds": 900,
            "valid_from": valid_from,
        },
    )
    licence = post(f"/entitlements/{entitlement['id']}/licence-keys", {"label": "demo enclave"})
    return DemoData(
        customer=customer["name"],
        model=model["name"],
        version=version["version"],
        entitlement_id=entitlement["id"],
        licence=licence["token"],
        encrypted_model=encrypted,
        seats=seats,
    )
