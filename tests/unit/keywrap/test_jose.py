"""JOSE made with ``cryptography`` directly (:mod:`verifier.keywrap.jose`) against joserfc: the JWE to an enclave key
opens with joserfc and joserfc's opens with the same key-agreement steps; the headers are the members joserfc writes;
the Concat KDF is joserfc's; the EAR is joserfc's ``jwt.encode`` but for the signature, and verifies there; the JWK
parser accepts and refuses what joserfc's import does, with the same RFC 7638 thumbprint."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from joserfc import jwe, jwk, jwt
from joserfc._rfc7518.derive_key import derive_key_for_concat_kdf

from verifier.errors import KeywardError
from verifier.keywrap import jose
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey, issue_ear, verify_ear
from verifier.keywrap.enclave import parse_enclave_jwk, unwrap_in_enclave, wrap_for_enclave
from verifier.platforms.evaluation import Evaluation

_REGISTRY = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "ECDH-ES+A256KW", "A256GCM"])


def _parts(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]


@pytest.mark.parametrize("crv", ["P-256", "P-384"])
def test_jwe_ec_opens_with_joserfc_and_header_is_joserfcs(crv: str) -> None:
    private = jwk.ECKey.generate_key(crv)
    key = parse_enclave_jwk(dict(private.as_dict(private=False)))
    dek = os.urandom(32)
    ours = wrap_for_enclave(dek, key, kid="lease-1")
    assert unwrap_in_enclave(ours, dict(private.as_dict(private=True))) == dek
    theirs = jwe.encrypt_compact(
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "application/octet-stream", "kid": "lease-1"},
        dek,
        jwk.ECKey.import_key(dict(private.as_dict(private=False))),
        registry=_REGISTRY,
    )
    ours_header, theirs_header = json.loads(_parts(ours)[0]), json.loads(_parts(theirs)[0])
    assert list(ours_header) == list(theirs_header) == ["alg", "enc", "cty", "kid", "epk"]
    assert list(ours_header["epk"]) == list(theirs_header["epk"]) == ["crv", "x", "y", "kty"]
    assert "apu" not in ours_header
    assert "apv" not in ours_header
    assert [len(p) for p in _parts(ours)[1:]] == [len(p) for p in _parts(theirs)[1:]]  # 40-byte wrapped key, IV, tag


@pytest.mark.parametrize("crv", ["P-256", "P-384"])
def test_jwe_ec_joserfcs_opens_with_our_key_agreement(crv: str) -> None:
    """The other direction: a JWE joserfc makes is opened with the KDF input this module derives with."""
    private = jwk.ECKey.generate_key(crv)
    dek = os.urandom(32)
    token = jwe.encrypt_compact(
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"},
        dek,
        jwk.ECKey.import_key(dict(private.as_dict(private=False))),
        registry=_REGISTRY,
    )
    protected, wrapped, iv, ciphertext, tag = token.split(".")
    header = json.loads(_parts(token)[0])
    epk = parse_enclave_jwk({k: header["epk"][k] for k in ("kty", "crv", "x", "y")}).key
    assert isinstance(epk, ec.EllipticCurvePublicKey)
    native = private.private_key
    assert isinstance(native, ec.EllipticCurvePrivateKey)
    shared = native.exchange(ec.ECDH(), epk)
    kek = ConcatKDFHash(algorithm=hashes.SHA256(), length=32, otherinfo=jose._OTHER_INFO).derive(shared)
    cek = aes_key_unwrap(kek, jose.b64url_decode(wrapped))
    sealed = jose.b64url_decode(ciphertext) + jose.b64url_decode(tag)
    assert AESGCM(cek).decrypt(jose.b64url_decode(iv), sealed, protected.encode()) == dek


def test_jwe_concat_kdf_is_joserfcs() -> None:
    shared = os.urandom(48)
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}
    theirs = derive_key_for_concat_kdf(shared, header, 256, 256)
    ours = ConcatKDFHash(algorithm=hashes.SHA256(), length=32, otherinfo=jose._OTHER_INFO).derive(shared)
    assert ours == theirs


def test_jwe_rsa_opens_with_joserfc() -> None:
    private = jwk.RSAKey.generate_key(3072)
    key = parse_enclave_jwk(dict(private.as_dict(private=False)))
    dek = os.urandom(32)
    token = wrap_for_enclave(dek, key, kid="k")
    assert json.loads(_parts(token)[0]) == {
        "alg": "RSA-OAEP-256",
        "enc": "A256GCM",
        "cty": "application/octet-stream",
        "kid": "k",
    }
    assert unwrap_in_enclave(token, dict(private.as_dict(private=True))) == dek


def _evaluation() -> Evaluation:
    return Evaluation("intel-tdx", True, True, "UpToDate", (), {}, ())


def test_ear_is_joserfcs_token_but_for_the_signature() -> None:
    signer = ProviderSigningKey.generate()
    now = datetime(2026, 1, 15, 12, tzinfo=UTC)
    token = issue_ear(
        ProviderKeyring(signer),
        now=now,
        attestation_id="a",
        lease_id="l",
        expires_at=now + timedelta(minutes=10),
        evaluations=[_evaluation()],
        nonce=os.urandom(32),
        enclave_key_thumbprint="t",
        model="modèle",  # non-ASCII: UTF-8 in the payload, as joserfc writes it
        model_version="1",
        deployment="d",
        customer_id="c",
    )
    header, payload, signature = token.split(".")
    claims = json.loads(_parts(token)[1])
    theirs = jwt.encode({"alg": "ES256", "kid": signer.kid}, claims, signer.key, algorithms=["ES256"])
    assert theirs.split(".")[:2] == [header, payload]
    assert verify_ear(token, ProviderKeyring(signer).public_jwks(), now=now)["keyward"]["model"] == "modèle"
    # joserfc's signature verifies over our signing input too (the same bytes, the same key).
    raw = jose.b64url_decode(theirs.split(".")[2])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signer.signer.public_key().verify(der, f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    assert len(jose.b64url_decode(signature)) == 64


def test_jws_es256_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError, match="ES256"):
        jose.jws_es256({"alg": "ES384"}, b"{}", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="ES256"):
        jose.jws_es256({"alg": "ES256"}, b"{}", ec.generate_private_key(ec.SECP384R1()))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: {**d, "x": d["x"] + "="},
        lambda d: {**d, "x": d["x"].replace("-", "+").replace("_", "/") + "+"},
        lambda d: {**d, "x": d["x"][:-1]},
        lambda d: {**d, "x": ""},
        lambda d: {**d, "y": d["x"]},
        lambda d: {**d, "x": d["x"][:-1] + "é"},
    ],
    ids=["padded", "standard-alphabet", "truncated", "empty", "off-curve", "non-ascii"],
)
def test_parse_enclave_jwk_refuses_what_joserfc_refuses(mutate: Any) -> None:
    doc = mutate(dict(jwk.ECKey.generate_key("P-256").as_dict(private=False)))
    with pytest.raises(Exception):  # noqa: B017, PT011 - joserfc raises several types
        jwk.ECKey.import_key(doc)
    with pytest.raises(KeywardError):
        parse_enclave_jwk(doc)


def test_parse_enclave_jwk_thumbprint_is_joserfcs_also_for_short_coordinates() -> None:
    for _ in range(4000):  # a key whose x has a leading zero byte (1 in 256), sent without it
        private = jwk.ECKey.generate_key("P-256")
        doc = {k: str(v) for k, v in private.as_dict(private=False).items()}
        x = jose.b64url_decode(doc["x"])
        if x[0] == 0:
            break
    else:
        pytest.skip("no key with a leading zero byte")
    short: dict[str, Any] = {**doc, "x": jose.b64url(x[1:])}
    full: dict[str, Any] = dict(doc)
    for d in (full, short):
        ours = parse_enclave_jwk(d)
        assert jose.b64url(ours.thumbprint) == jwk.ECKey.import_key(d).thumbprint()
