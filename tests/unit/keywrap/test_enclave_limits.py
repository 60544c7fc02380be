"""Size limits on enclave JWKs: RSA moduli are capped, every member is length-bounded before decoding.

Regression: a >16384-bit RSA key passed :func:`parse_enclave_jwk` and :func:`wrap_for_enclave` then raised a plain
ValueError ("Encryption failed") in the worker.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from joserfc import jwk

from verifier import limits
from verifier.errors import Code, KeywardError
from verifier.keywrap.enclave import parse_enclave_jwk, unwrap_in_enclave, wrap_for_enclave


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def _rsa_jwk(bits: int) -> dict[str, str]:
    """A public RSA JWK with an odd modulus of exactly ``bits`` bits (loading checks shape, not primality)."""
    return {"kty": "RSA", "n": _b64((1 << (bits - 1)) | 1), "e": "AQAB"}


@pytest.mark.parametrize("bits", [3072, limits.MAX_ENCLAVE_RSA_BITS], ids=["3072", "max"])
def test_parse_enclave_jwk_rsa_within_cap_accepted(bits: int) -> None:
    assert parse_enclave_jwk(_rsa_jwk(bits)).jwk["kty"] == "RSA"


@pytest.mark.parametrize(
    "bits",
    [limits.MAX_ENCLAVE_RSA_BITS + 1, 6144, 8192, 16400],
    ids=["max-plus-1", "6144", "8192", "16400"],
)
def test_parse_enclave_jwk_rsa_over_cap_invalid(bits: int) -> None:
    with pytest.raises(KeywardError) as exc:
        parse_enclave_jwk(_rsa_jwk(bits))
    assert exc.value.code == Code.KEYWRAP_JWK_INVALID


def test_wrap_for_enclave_rsa_at_cap_round_trip() -> None:
    private = jwk.RSAKey.generate_key(limits.MAX_ENCLAVE_RSA_BITS)
    key = parse_enclave_jwk(dict(private.as_dict(private=False)))
    dek = os.urandom(32)
    assert unwrap_in_enclave(wrap_for_enclave(dek, key), dict(private.as_dict(private=True))) == dek


def _ec() -> dict[str, Any]:
    return dict(jwk.ECKey.generate_key("P-384").as_dict(private=False))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: {**d, "kid": "k" * (limits.MAX_JWK_MEMBER_CHARS + 1)},
        lambda d: {**d, "x": "A" * (limits.MAX_JWK_MEMBER_CHARS + 1)},
        lambda d: {**d, "k" * (limits.MAX_JWK_MEMBER_CHARS + 1): "v"},
        lambda d: {**d, **{f"m{i}": "v" for i in range(limits.MAX_JWK_MEMBERS)}},
    ],
    ids=["long-kid", "long-coordinate", "long-member-name", "too-many-members"],
)
def test_parse_enclave_jwk_oversized_members_invalid(mutate: Any) -> None:
    with pytest.raises(KeywardError) as exc:
        parse_enclave_jwk(mutate(_ec()))
    assert exc.value.code == Code.KEYWRAP_JWK_INVALID


def test_parse_enclave_jwk_member_at_limit_accepted() -> None:
    doc = {**_ec(), "kid": "k" * limits.MAX_JWK_MEMBER_CHARS}
    assert parse_enclave_jwk(doc).jwk["kty"] == "EC"
