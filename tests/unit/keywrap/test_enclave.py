"""Enclave JWKs, the REPORTDATA binding, JWE key release, and the provider KEK."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from joserfc import jwk

from verifier.errors import Code, Fault, KeywardError
from verifier.keywrap.enclave import (
    expected_report_data,
    parse_enclave_jwk,
    unwrap_in_enclave,
    wrap_for_enclave,
)
from verifier.keywrap.kek import LocalAesKek

# RFC 7638 §3.1 example key and its thumbprint.
RFC7638_JWK: dict[str, str | list[str]] = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
    "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgd"
    "AZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEg"
    "U8awapJzKnqDKgw",
    "e": "AQAB",
}


@pytest.fixture(scope="module")
def rsa_key() -> jwk.RSAKey:
    return jwk.RSAKey.generate_key(3072)


def _public(key: jwk.RSAKey | jwk.ECKey) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def test_parse_enclave_jwk_rfc7638_thumbprint() -> None:
    # The RFC's example key is 2048-bit, so it is weak for key release, but its thumbprint must still match.
    with pytest.raises(KeywardError) as exc:
        parse_enclave_jwk(RFC7638_JWK)
    assert exc.value.code == Code.KEYWRAP_JWK_WEAK
    assert jwk.RSAKey.import_key(RFC7638_JWK).thumbprint() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("crv", ["P-256", "P-384"])
def test_wrap_for_enclave_ec_round_trip(crv: str) -> None:
    private = jwk.ECKey.generate_key(crv)
    key = parse_enclave_jwk(_public(private))
    dek = os.urandom(32)
    token = wrap_for_enclave(dek, key, kid="lease-1")
    assert token.count(".") == 4  # compact JWE
    assert unwrap_in_enclave(token, dict(private.as_dict(private=True))) == dek
    assert key.alg == "ECDH-ES+A256KW"


def test_wrap_for_enclave_rsa_round_trip(rsa_key: jwk.RSAKey) -> None:
    key = parse_enclave_jwk(_public(rsa_key))
    dek = os.urandom(32)
    assert unwrap_in_enclave(wrap_for_enclave(dek, key), dict(rsa_key.as_dict(private=True))) == dek
    assert key.alg == "RSA-OAEP-256"


def test_wrap_for_enclave_other_key_cannot_open(rsa_key: jwk.RSAKey) -> None:
    token = wrap_for_enclave(os.urandom(32), parse_enclave_jwk(_public(jwk.ECKey.generate_key("P-256"))))
    other = jwk.ECKey.generate_key("P-256")
    with pytest.raises(KeywardError) as exc:
        unwrap_in_enclave(token, dict(other.as_dict(private=True)))
    assert exc.value.code == Code.KEYWRAP_UNWRAP_FAILED


def test_expected_report_data_is_sha512_of_nonce_and_thumbprint() -> None:
    key = parse_enclave_jwk(_public(jwk.ECKey.generate_key("P-384")))
    nonce = os.urandom(32)
    assert expected_report_data(nonce, key) == hashlib.sha512(nonce + key.thumbprint).digest()
    assert len(key.thumbprint) == 32
    assert expected_report_data(os.urandom(32), key) != expected_report_data(nonce, key)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: {**d, "d": "AAAA"}, Code.KEYWRAP_JWK_INVALID),
        (lambda d: {**d, "crv": "P-521"}, Code.KEYWRAP_JWK_WEAK),
        (lambda d: {**d, "kty": "OKP"}, Code.KEYWRAP_JWK_INVALID),
        (lambda d: {k: v for k, v in d.items() if k != "x"}, Code.KEYWRAP_JWK_INVALID),
        (lambda d: {**d, "x": "not-a-point"}, Code.KEYWRAP_JWK_INVALID),
        (lambda d: {**d, "kid": 7}, Code.KEYWRAP_JWK_INVALID),
        (lambda d: [d], Code.KEYWRAP_JWK_INVALID),
    ],
    ids=["private-member", "curve-p521", "okp", "missing-x", "bad-point", "non-string-member", "not-object"],
)
def test_parse_enclave_jwk_rejects(mutate: Any, code: Code) -> None:
    good = _public(jwk.ECKey.generate_key("P-256"))
    with pytest.raises(KeywardError) as exc:
        parse_enclave_jwk(mutate(good))
    assert exc.value.code == code


def test_parse_enclave_jwk_rsa_2048_is_weak() -> None:
    with pytest.raises(KeywardError) as exc:
        parse_enclave_jwk(_public(jwk.RSAKey.generate_key(2048)))
    assert exc.value.code == Code.KEYWRAP_JWK_WEAK


def test_local_kek_round_trip_and_context_binding() -> None:
    kek = LocalAesKek(os.urandom(32))
    dek = os.urandom(32)
    wrapped = kek.wrap(dek, context=b"model-version:1")
    assert kek.unwrap(wrapped, context=b"model-version:1") == dek
    with pytest.raises(KeywardError) as exc:
        kek.unwrap(wrapped, context=b"model-version:2")
    assert exc.value.code == Code.KEYWRAP_UNWRAP_FAILED
    with pytest.raises(KeywardError) as other:  # another KEK
        LocalAesKek(os.urandom(32)).unwrap(wrapped, context=b"model-version:1")
    assert (other.value.code, other.value.fault) == (Code.KEYWRAP_UNWRAP_FAILED, Fault.INTERNAL)
    assert kek.kek_id.startswith("local-aes256gcm:")
    with pytest.raises(ValueError, match="32 bytes"):
        LocalAesKek(b"short")
