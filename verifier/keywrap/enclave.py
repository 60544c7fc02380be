"""The enclave's public key (a JWK generated inside the TEE), its binding to the evidence, and the JWE.

* :func:`parse_enclave_jwk` accepts only public RSA keys of 3072 to :data:`~verifier.limits.MAX_ENCLAVE_RSA_BITS`
  bits (e = 65537) and EC P-256 / P-384 keys; private members are refused, and every member is length-bounded
  (:mod:`verifier.limits`) before anything is decoded.
* Binding (the default): ``REPORTDATA (64 bytes) = SHA-512(nonce || SHA-256 JWK thumbprint)`` where the
  thumbprint is the raw 32-byte RFC 7638 digest; all 64 bytes are compared.
* :func:`wrap_for_enclave` returns a compact JWE (RFC 7516) of the DEK: ``RSA-OAEP-256`` for RSA keys,
  ``ECDH-ES+A256KW`` for EC keys, content encryption ``A256GCM`` (:mod:`verifier.keywrap.jose`, ``cryptography``
  directly: half joserfc's cost on a decision's path). :func:`unwrap_in_enclave` (the SDK) opens it with joserfc, a
  maintained JOSE library.

The JWK is parsed once, into the ``cryptography`` public key the JWE is made with; its members are decoded as
joserfc decodes them (strict base64url) and the thumbprint is RFC 7638's over the members as given.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe, jwk
from joserfc.errors import JoseError

from verifier import limits
from verifier.errors import Code, EvidenceMalformed, InternalError, KeywardError
from verifier.keywrap.jose import b64url_decode, jwe_ecdh_es_a256kw, jwe_rsa_oaep_256

MIN_RSA_BITS: Final = 3072
EC_CURVES: Final = ("P-256", "P-384")
_REGISTRY = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "ECDH-ES+A256KW", "A256GCM"])
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVES: Final = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}


@dataclass(frozen=True, slots=True)
class EnclaveKey:
    jwk: dict[str, str]  # public members only: the RFC 7638 required members as given
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    thumbprint: bytes  # raw RFC 7638 SHA-256 digest

    @property
    def alg(self) -> str:
        return "RSA-OAEP-256" if self.jwk["kty"] == "RSA" else "ECDH-ES+A256KW"

    @property
    def thumbprint_b64(self) -> str:
        return base64.urlsafe_b64encode(self.thumbprint).rstrip(b"=").decode()


def _invalid(message: str) -> KeywardError:
    return EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, message)


def parse_enclave_jwk(doc: Any) -> EnclaveKey:
    """Validate and load an enclave public JWK. Raises ``keywrap.jwk_invalid`` / ``keywrap.jwk_weak``."""
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        raise _invalid("enclave key must be a JWK object of string members")
    if len(doc) > limits.MAX_JWK_MEMBERS or any(
        len(k) > limits.MAX_JWK_MEMBER_CHARS or len(v) > limits.MAX_JWK_MEMBER_CHARS for k, v in doc.items()
    ):
        raise EvidenceMalformed(
            Code.KEYWRAP_JWK_INVALID,
            "enclave key has too many or too long members",
            expected=f"<= {limits.MAX_JWK_MEMBERS} members of <= {limits.MAX_JWK_MEMBER_CHARS} characters",
        )
    if _PRIVATE_MEMBERS & doc.keys():
        raise _invalid("enclave key must be a public JWK (it contains private members)")
    kty = doc.get("kty")
    try:
        if kty == "RSA":
            public = {k: doc[k] for k in ("kty", "n", "e")}
            numbers = rsa.RSAPublicNumbers(_b64_int(public["e"]), _b64_int(public["n"]))
            key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = numbers.public_key()
            if numbers.n.bit_length() < MIN_RSA_BITS or numbers.e != 65537:
                raise EvidenceMalformed(
                    Code.KEYWRAP_JWK_WEAK,
                    "RSA enclave keys must be >= 3072 bits with e = 65537",
                    expected=f">= {MIN_RSA_BITS} bits",
                    actual=f"{numbers.n.bit_length()} bits",
                )
            if numbers.n.bit_length() > limits.MAX_ENCLAVE_RSA_BITS:
                raise EvidenceMalformed(
                    Code.KEYWRAP_JWK_INVALID,
                    f"RSA enclave keys must be at most {limits.MAX_ENCLAVE_RSA_BITS} bits",
                    expected=f"<= {limits.MAX_ENCLAVE_RSA_BITS} bits",
                    actual=f"{numbers.n.bit_length()} bits",
                )
        elif kty == "EC":
            crv = doc.get("crv")
            if crv not in EC_CURVES:
                raise EvidenceMalformed(
                    Code.KEYWRAP_JWK_WEAK,
                    "EC enclave keys must be P-256 or P-384",
                    expected=" | ".join(EC_CURVES),
                    actual=str(crv),
                )
            public = {k: doc[k] for k in ("kty", "crv", "x", "y")}
            key = ec.EllipticCurvePublicNumbers(  # checks the point is on the curve
                _b64_int(public["x"]), _b64_int(public["y"]), _CURVES[public["crv"]]()
            ).public_key()
        else:
            raise _invalid(f"unsupported key type {kty!r} (RSA or EC)")
    except KeyError as e:
        raise _invalid(f"JWK lacks member {e.args[0]!r}") from e
    except (ValueError, TypeError) as e:
        raise _invalid(f"JWK does not load: {e}") from e
    return EnclaveKey(public, key, _thumbprint(public))


def _b64_int(text: str) -> int:
    """A JWK integer member (strict base64url, big endian); ValueError when empty or not base64url."""
    data = b64url_decode(text)
    if not data:
        raise ValueError("empty JWK member")
    return int.from_bytes(data, "big")


def _thumbprint(public: dict[str, str]) -> bytes:
    """RFC 7638 §3: SHA-256 of the required members, sorted, as compact JSON (the members as given)."""
    canonical = json.dumps(dict(sorted(public.items())), ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).digest()


def expected_report_data(nonce: bytes, key: EnclaveKey) -> bytes:
    """The default binding: SHA-512(nonce || raw RFC 7638 thumbprint); compare all 64 bytes."""
    return hashlib.sha512(nonce + key.thumbprint).digest()


#: Domain separation for :func:`gpu_nonce`: a GPU nonce can never equal a hash computed for another purpose.
GPU_NONCE_LABEL: Final = b"keyward/nvidia-gpu-nonce/v1"
#: Devices an attestation may name (GPUs and NVSwitches together): device indices are 0 .. MAX_NVIDIA_DEVICES - 1.
MAX_NVIDIA_DEVICES: Final = 16


def gpu_nonce(nonce: bytes, thumbprint: bytes, device_index: int) -> bytes:
    """The 32-byte SPDM nonce NVIDIA device ``device_index`` of an attestation must have signed:

    ``SHA-256("keyward/nvidia-gpu-nonce/v1" || nonce || thumbprint || uint8(device_index))``

    ``nonce``: the challenge the CPU evidence's REPORTDATA binds too; ``thumbprint``: the raw RFC 7638 thumbprint
    of the enclave key; ``device_index``: the device's position among the attestation's NVIDIA devices (GPUs and
    NVSwitches, 0-based, each once). A report made for another challenge, another enclave key or another slot, so
    on another machine or in another session, carries another nonce and is rejected (``nvidia.nonce.mismatch``).
    The enclave SDK (:mod:`verifier.client.providers.nvml`) computes the same value with this function.
    """
    if not 0 <= device_index < MAX_NVIDIA_DEVICES:
        raise ValueError(f"device index {device_index} outside 0..{MAX_NVIDIA_DEVICES - 1}")
    return hashlib.sha256(GPU_NONCE_LABEL + nonce + thumbprint + bytes([device_index])).digest()


def wrap_for_enclave(dek: bytes, key: EnclaveKey, *, kid: str | None = None) -> str:
    """Compact JWE of ``dek`` that only the holder of the enclave's private key can open
    (:mod:`verifier.keywrap.jose`; header ``alg``, ``enc`` A256GCM, ``cty``, ``kid`` when given, ``epk`` for EC)."""
    if isinstance(key.key, ec.EllipticCurvePublicKey):
        return jwe_ecdh_es_a256kw(dek, key.key, kid=kid)
    return jwe_rsa_oaep_256(dek, key.key, kid=kid)


def unwrap_in_enclave(token: str, private_jwk: dict[str, Any]) -> bytes:
    """What the enclave runs (SDK and tests): open the JWE with its private key."""
    key = jwk.import_key(private_jwk)
    try:
        return jwe.decrypt_compact(token, key, registry=_REGISTRY).plaintext or b""
    except (JoseError, ValueError) as e:
        raise InternalError(Code.KEYWRAP_UNWRAP_FAILED, f"JWE does not open: {e}") from e
