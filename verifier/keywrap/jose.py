"""The JOSE a decision emits, with ``cryptography`` directly: the compact JWE of the model key to the enclave key and
the ES256 signature of the result token. Nothing here parses or verifies a token: relying parties, the enclave SDK
(:func:`verifier.keywrap.enclave.unwrap_in_enclave`) and the tests open them with joserfc, a maintained JOSE library,
which keeps this module honest (tokens made here open there, byte for byte as joserfc itself makes them but for the
random parts).

* JWE (RFC 7516 §7.1 compact serialization), content encryption ``A256GCM`` (RFC 7518 §5.3: 96-bit IV, 128-bit tag,
  AAD = ASCII(BASE64URL(UTF8(protected header)))), key management per recipient key:

  - ``ECDH-ES+A256KW`` (RFC 7518 §4.6): an ephemeral key on the recipient's curve (its public part in ``epk``), ECDH
    Z, the Concat KDF of NIST SP 800-56A §5.8.1 with SHA-256 (RFC 7518 §4.6.2: AlgorithmID = the ``alg`` value,
    PartyUInfo and PartyVInfo empty (no ``apu`` / ``apv``, as joserfc emits), SuppPubInfo = keydatalen 256, big
    endian), and the random CEK wrapped with AES Key Wrap (RFC 3394) under the derived key;
  - ``RSA-OAEP-256`` (RFC 7518 §4.3): the CEK encrypted with RSAES-OAEP, SHA-256 and MGF1 with SHA-256.

  The protected header is ``{"alg", "enc", "cty", "kid"?, "epk"?}`` in that order, compact JSON, as joserfc writes it.
* JWS (RFC 7515 §7.1) with ``ES256`` (RFC 7518 §3.4: ECDSA P-256 SHA-256, the signature as R || S of 32 bytes each).

Pure: no I/O, no clock. Randomness (ephemeral keys, CEK, IV, ECDSA nonces) is the operating system's.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ECDH_ES_A256KW: Final = "ECDH-ES+A256KW"
RSA_OAEP_256: Final = "RSA-OAEP-256"
A256GCM: Final = "A256GCM"
ES256: Final = "ES256"
#: JWK ``crv`` names of the curves an enclave key may use.
CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384"}

_CEK_BYTES: Final = 32  # A256GCM
_IV_BYTES: Final = 12
_TAG_BYTES: Final = 16
#: Concat KDF OtherInfo for ECDH-ES+A256KW with no apu/apv: AlgorithmID, PartyUInfo, PartyVInfo, SuppPubInfo.
_OTHER_INFO: Final = (
    struct.pack(">I", len(ECDH_ES_A256KW))
    + ECDH_ES_A256KW.encode()
    + struct.pack(">I", 0)
    + struct.pack(">I", 0)
    + struct.pack(">I", 256)
)
_OAEP: Final = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_ES256: Final = ec.ECDSA(hashes.SHA256())


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: no ``+``, ``/`` or ``=``, no impossible length, no stray bits in the last
    character (the same texts joserfc accepts). Raises ValueError."""
    data = text.encode("ascii")  # UnicodeEncodeError is a ValueError
    if b"+" in data or b"/" in data or b"=" in data:
        raise ValueError("not base64url without padding")
    pad = -len(data) % 4
    if pad == 3 or (pad and data[-1:] not in (b"AEIMQUYcgkosw048", b"AQgw")[pad - 1]):
        raise ValueError("not canonical base64url")
    try:
        return base64.b64decode(data + b"=" * pad, b"-_", validate=True)
    except binascii.Error as e:
        raise ValueError(f"not base64url: {e}") from e


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _header(alg: str, kid: str | None, epk: dict[str, str] | None = None) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": alg, "enc": A256GCM, "cty": "application/octet-stream"}
    if kid:
        header["kid"] = kid
    if epk is not None:
        header["epk"] = epk
    return header


def _compact(header: dict[str, Any], encrypted_key: bytes, cek: bytes, plaintext: bytes) -> str:
    protected = b64url(_json(header))
    iv = os.urandom(_IV_BYTES)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    ciphertext, tag = sealed[:-_TAG_BYTES], sealed[-_TAG_BYTES:]
    return ".".join((protected, b64url(encrypted_key), b64url(iv), b64url(ciphertext), b64url(tag)))


def jwe_ecdh_es_a256kw(plaintext: bytes, recipient: ec.EllipticCurvePublicKey, *, kid: str | None = None) -> str:
    """Compact JWE of ``plaintext`` to an EC P-256 or P-384 ``recipient`` (ECDH-ES+A256KW, A256GCM)."""
    crv = CURVE_NAMES[recipient.curve.name]
    ephemeral = ec.generate_private_key(recipient.curve)
    shared = ephemeral.exchange(ec.ECDH(), recipient)
    point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    size = (len(point) - 1) // 2
    epk = {"crv": crv, "x": b64url(point[1 : 1 + size]), "y": b64url(point[1 + size :]), "kty": "EC"}
    kek = ConcatKDFHash(algorithm=hashes.SHA256(), length=32, otherinfo=_OTHER_INFO).derive(shared)
    cek = os.urandom(_CEK_BYTES)
    return _compact(_header(ECDH_ES_A256KW, kid, epk), aes_key_wrap(kek, cek), cek, plaintext)


def jwe_rsa_oaep_256(plaintext: bytes, recipient: rsa.RSAPublicKey, *, kid: str | None = None) -> str:
    """Compact JWE of ``plaintext`` to an RSA ``recipient`` (RSA-OAEP-256, A256GCM)."""
    cek = os.urandom(_CEK_BYTES)
    return _compact(_header(RSA_OAEP_256, kid), recipient.encrypt(cek, _OAEP), cek, plaintext)


def jws_es256(header: dict[str, Any], payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    """Compact JWS of ``payload`` under ``header`` (whose ``alg`` must be ES256), signed with the P-256 ``key``."""
    if header.get("alg") != ES256 or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs alg ES256 and a P-256 key")
    signing_input = b64url(_json(header)) + "." + b64url(payload)
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), _ES256))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
