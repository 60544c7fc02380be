"""The enclave key pair: kinds, the public JWK, the thumbprint and binding as the server computes them, JWE."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwk

from verifier.client.errors import UnwrapFailed
from verifier.client.keys import KEY_KINDS, EnclaveKeyPair, KeyFileError, KeyKind, write_secret
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk, wrap_for_enclave

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture(scope="module", params=KEY_KINDS)
def pair(request: pytest.FixtureRequest) -> EnclaveKeyPair:
    kind: KeyKind = request.param
    return EnclaveKeyPair.generate(kind)


def test_enclave_key_pair_public_jwk_has_no_private_members(pair: EnclaveKeyPair) -> None:
    assert not PRIVATE_MEMBERS & pair.public_jwk.keys()
    assert "d" in pair.private_jwk
    assert pair.private_jwk["d"] not in repr(pair)
    assert pair.public.thumbprint_b64 in repr(pair)


def test_enclave_key_pair_thumbprint_is_rfc7638(pair: EnclaveKeyPair) -> None:
    doc: dict[str, str | list[str]] = dict(pair.public_jwk)
    expected = jwk.import_key(doc).thumbprint()
    assert pair.public.thumbprint_b64 == expected
    assert len(pair.thumbprint) == 32


def test_enclave_key_pair_binding_matches_server(pair: EnclaveKeyPair) -> None:
    nonce = os.urandom(32)
    server_side = expected_report_data(nonce, parse_enclave_jwk(json.loads(json.dumps(pair.public_jwk))))
    assert pair.report_data(nonce) == server_side
    assert server_side == hashlib.sha512(nonce + pair.thumbprint).digest()


def test_enclave_key_pair_unwraps_what_the_server_wraps(pair: EnclaveKeyPair) -> None:
    dek = os.urandom(32)
    token = wrap_for_enclave(dek, parse_enclave_jwk(pair.public_jwk), kid="lease")
    assert pair.unwrap(token) == dek


def test_enclave_key_pair_unwrap_other_key_fails(pair: EnclaveKeyPair) -> None:
    other = EnclaveKeyPair.generate("P-256")
    token = wrap_for_enclave(os.urandom(32), other.public)
    with pytest.raises(UnwrapFailed) as exc:
        pair.unwrap(token)
    assert exc.value.code == "client.unwrap_failed"


def test_enclave_key_pair_save_load_round_trip(tmp_path: Path, pair: EnclaveKeyPair) -> None:
    path = tmp_path / "enclave.jwk"
    path.write_text("previous content, world-readable")
    path.chmod(0o644)
    pair.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = EnclaveKeyPair.load(path)
    assert loaded.thumbprint == pair.thumbprint
    assert loaded.private_jwk == pair.private_jwk


def test_enclave_key_pair_generate_unknown_kind() -> None:
    with pytest.raises(ValueError, match="key kind"):
        EnclaveKeyPair.generate("P-521")  # type: ignore[arg-type]


def _weak_rsa() -> dict[str, Any]:
    return dict(jwk.RSAKey.generate_key(2048).as_dict(private=True))


def _public_only() -> dict[str, Any]:
    return dict(jwk.ECKey.generate_key("P-384").as_dict(private=False))


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"kty": "oct", "k": "AAAA"}).encode(),
        json.dumps(_public_only()).encode(),
        json.dumps(_weak_rsa()).encode(),
        json.dumps(dict(jwk.ECKey.generate_key("secp256k1").as_dict(private=True))).encode(),
    ],
    ids=["not-json", "not-object", "symmetric", "public-only", "rsa-2048", "secp256k1"],
)
def test_enclave_key_pair_load_rejects(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.jwk"
    path.write_bytes(content)
    with pytest.raises(KeyFileError) as exc:
        EnclaveKeyPair.load(path)
    assert exc.value.code == "client.key_file_invalid"


def test_enclave_key_pair_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        EnclaveKeyPair.load(tmp_path / "absent.jwk")


def test_write_secret_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "dek.bin"
    write_secret(path, b"\x01" * 32)
    assert path.read_bytes() == b"\x01" * 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
