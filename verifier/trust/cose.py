"""COSE_Sign1 (RFC 9052 §4.2) parsing and signature verification, for RFC 9360 ``x5chain``-signed documents.

:func:`parse_cose_sign1` decodes ``[protected: bstr, unprotected: map, payload: bstr, signature: bstr]``, tag 18
optional, with :mod:`verifier.trust.cbor` (strict, bounded) and decodes the protected header map. It checks the
*shape* only:

* the protected header is a bstr holding a map (an empty bstr means an empty map, RFC 9052 §3);
* ``alg`` (label 1) is present in the protected header and is an int; it must not also appear unprotected;
* ``crit`` (label 2), when present, is a non-empty array whose labels are all present in the protected header
  and are all labels the caller declares it understands (``understood``); anything else is refused;
* ``content type`` (label 3) is a text string or uint when present;
* ``x5chain`` (label 33) is a bstr or a non-empty array of bstr, in the protected header (an unprotected
  x5chain is not covered by the signature and is refused);
* ``x5t`` (label 34), when present, is ``[int alg, bstr hash]``;
* no label appears in both buckets; the payload is attached (a detached ``nil`` payload is refused).

:func:`verify_cose_sign1` builds ``Sig_structure = ["Signature1", protected, external_aad, payload]`` (§4.4) over
the protected header's *original bytes* and verifies the signature with a caller-supplied public key:
PS256/384/512 (-37/-38/-39: RSASSA-PSS, MGF1 with the same hash, salt length = hash length) and
ES256/384/512 (-7/-35/-36: ECDSA, raw ``r||s``, curve bound to the algorithm). Nothing here decides whether
a key is trusted; that is the caller's chain check.

Errors: :class:`ValueError` for anything malformed (callers map it to their code),
:class:`UnsupportedCoseAlgorithm` (a ValueError) for an algorithm or key type outside the list above,
:class:`cryptography.exceptions.InvalidSignature` for a signature that does not verify. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.trust import cbor
from verifier.trust.cbor import CborKey, CborValue, Tag

#: CBOR tag of a COSE_Sign1 message (RFC 9052 §2).
COSE_SIGN1_TAG: Final = 18

# Header labels (RFC 9052 §3.1, RFC 9360 §2).
HEADER_ALG: Final = 1
HEADER_CRIT: Final = 2
HEADER_CONTENT_TYPE: Final = 3
HEADER_KID: Final = 4
HEADER_X5CHAIN: Final = 33
HEADER_X5T: Final = 34

#: Most certificates accepted in an x5chain (leaf, intermediates, root).
MAX_X5CHAIN_CERTS: Final = 8

ALG_ES256: Final = -7
ALG_ES384: Final = -35
ALG_ES512: Final = -36
ALG_PS256: Final = -37
ALG_PS384: Final = -38
ALG_PS512: Final = -39

_RSA_MIN_BITS: Final = 2048


@dataclass(frozen=True, slots=True)
class _Alg:
    name: str
    hash: type[hashes.HashAlgorithm]
    curve: type[ec.EllipticCurve] | None  # None: RSASSA-PSS


ALGORITHMS: Final[Mapping[int, _Alg]] = {
    ALG_ES256: _Alg("ES256", hashes.SHA256, ec.SECP256R1),
    ALG_ES384: _Alg("ES384", hashes.SHA384, ec.SECP384R1),
    ALG_ES512: _Alg("ES512", hashes.SHA512, ec.SECP521R1),
    ALG_PS256: _Alg("PS256", hashes.SHA256, None),
    ALG_PS384: _Alg("PS384", hashes.SHA384, None),
    ALG_PS512: _Alg("PS512", hashes.SHA512, None),
}


class UnsupportedCoseAlgorithm(ValueError):
    """The ``alg`` is not one of :data:`ALGORITHMS`, or the key does not fit it (type, curve, RSA size)."""


@dataclass(frozen=True, slots=True)
class CoseSign1:
    """A decoded COSE_Sign1. ``protected_bytes`` are the exact signed bytes; ``protected`` is their decoding."""

    protected_bytes: bytes
    protected: Mapping[CborKey, CborValue]
    unprotected: Mapping[CborKey, CborValue]
    payload: bytes
    signature: bytes
    tagged: bool
    #: The protected ``alg`` (label 1).
    alg: int
    #: DER certificates of the protected x5chain (label 33), leaf first; empty if there is none.
    x5chain: tuple[bytes, ...]

    def text_header(self, label: CborKey) -> str | None:
        """A protected text-valued header (e.g. ``"iss"``, ``"feed"``); ValueError if present but not text."""
        value = self.protected.get(label)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"protected header {label!r} is not a text string")
        return value

    def to_be_signed(self, external_aad: bytes = b"") -> bytes:
        return sig_structure(self.protected_bytes, self.payload, external_aad)


def sig_structure(protected_bytes: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """``Sig_structure`` for COSE_Sign1 (RFC 9052 §4.4), deterministically encoded."""
    return cbor.encode(["Signature1", protected_bytes, external_aad, payload])


def _is_label(key: object) -> bool:
    return (isinstance(key, int) and not isinstance(key, bool)) or isinstance(key, str)


def _check_header_map(header: Mapping[CborKey, CborValue], where: str) -> None:
    for key in header:
        if not _is_label(key):
            raise ValueError(f"{where} header label {key!r} is neither int nor text")


def parse_cose_sign1(data: bytes, *, understood: Collection[CborKey] = ()) -> CoseSign1:
    """Decode and shape-check a COSE_Sign1. ``understood``: extra labels a ``crit`` header may name."""
    top = cbor.decode(data)
    tagged = isinstance(top, Tag)
    if isinstance(top, Tag):
        if top.tag != COSE_SIGN1_TAG:
            raise ValueError(f"CBOR tag {top.tag} is not COSE_Sign1 ({COSE_SIGN1_TAG})")
        top = top.value
    if not isinstance(top, list) or len(top) != 4:
        raise ValueError("COSE_Sign1 is not an array of 4 items")
    protected_bytes, unprotected, payload, signature = top
    if not isinstance(protected_bytes, bytes):
        raise ValueError("COSE_Sign1 protected header is not a byte string")
    if not isinstance(unprotected, dict):
        raise ValueError("COSE_Sign1 unprotected header is not a map")
    if payload is None:
        raise ValueError("COSE_Sign1 payload is detached (nil); detached payloads are not supported")
    if not isinstance(payload, bytes):
        raise ValueError("COSE_Sign1 payload is not a byte string")
    if not isinstance(signature, bytes) or not signature:
        raise ValueError("COSE_Sign1 signature is not a non-empty byte string")

    protected = cbor.decode(protected_bytes) if protected_bytes else {}
    if not isinstance(protected, dict):
        raise ValueError("COSE_Sign1 protected header does not decode to a map")
    _check_header_map(protected, "protected")
    _check_header_map(unprotected, "unprotected")
    both = set(protected) & set(unprotected)
    if both:
        raise ValueError(f"header labels {sorted(map(str, both))} appear both protected and unprotected")

    alg = protected.get(HEADER_ALG)
    if HEADER_ALG in unprotected:
        raise ValueError("alg must be a protected header")
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise ValueError("protected header has no integer alg (label 1)")

    if HEADER_CRIT in protected:
        crit = protected[HEADER_CRIT]
        known = {HEADER_ALG, HEADER_CRIT, HEADER_CONTENT_TYPE, HEADER_X5CHAIN, HEADER_X5T, *understood}
        if not isinstance(crit, list) or not crit:
            raise ValueError("crit header is not a non-empty array")
        for label in crit:
            if not _is_label(label):
                raise ValueError(f"crit names a non-label {label!r}")
            if label not in protected:
                raise ValueError(f"crit names label {label!r} that is not in the protected header")
            if label not in known:
                raise ValueError(f"crit names label {label!r} this verifier does not understand")
    if HEADER_CRIT in unprotected:
        raise ValueError("crit must be a protected header")

    content_type = protected.get(HEADER_CONTENT_TYPE)
    if content_type is not None and not (
        isinstance(content_type, str) or (isinstance(content_type, int) and not isinstance(content_type, bool))
    ):
        raise ValueError("content type header is neither text nor uint")

    if HEADER_X5CHAIN in unprotected:
        raise ValueError("x5chain must be a protected header (an unprotected chain is not signed)")
    x5chain: tuple[bytes, ...] = ()
    x5value = protected.get(HEADER_X5CHAIN)
    if isinstance(x5value, list):
        if not x5value or len(x5value) > MAX_X5CHAIN_CERTS:
            raise ValueError(f"x5chain must hold 1..{MAX_X5CHAIN_CERTS} certificates, has {len(x5value)}")
        for cert in x5value:
            if not isinstance(cert, bytes) or not cert:
                raise ValueError("x5chain array holds something other than non-empty byte strings")
            x5chain += (cert,)
    elif isinstance(x5value, bytes) and x5value:
        x5chain = (x5value,)
    elif x5value is not None:
        raise ValueError("x5chain is neither a byte string nor an array of byte strings")

    x5t = protected.get(HEADER_X5T, unprotected.get(HEADER_X5T))
    if x5t is not None and not (
        isinstance(x5t, list)
        and len(x5t) == 2
        and isinstance(x5t[0], int | str)
        and not isinstance(x5t[0], bool)
        and isinstance(x5t[1], bytes)
    ):
        raise ValueError("x5t is not [alg, bstr]")

    return CoseSign1(protected_bytes, protected, unprotected, payload, signature, tagged, alg, x5chain)


def _ecdsa_der(raw: bytes, curve: ec.EllipticCurve) -> bytes:
    size = (curve.key_size + 7) // 8
    if len(raw) != 2 * size:
        raise InvalidSignature
    r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
    return encode_dss_signature(r, s)


def verify_cose_sign1(
    msg: CoseSign1, key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, external_aad: bytes = b""
) -> None:
    """Verify ``msg``'s signature with ``key``. Raises InvalidSignature or UnsupportedCoseAlgorithm."""
    spec = ALGORITHMS.get(msg.alg)
    if spec is None:
        raise UnsupportedCoseAlgorithm(f"COSE alg {msg.alg} is not supported")
    tbs = msg.to_be_signed(external_aad)
    algorithm = spec.hash()
    if spec.curve is None:
        if not isinstance(key, rsa.RSAPublicKey):
            raise UnsupportedCoseAlgorithm(f"{spec.name} needs an RSA key")
        if key.key_size < _RSA_MIN_BITS:
            raise UnsupportedCoseAlgorithm(f"RSA key of {key.key_size} bits is below {_RSA_MIN_BITS}")
        pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
        key.verify(msg.signature, tbs, pss, algorithm)
        return
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, spec.curve):
        raise UnsupportedCoseAlgorithm(f"{spec.name} needs an EC key on {spec.curve.name}")
    key.verify(_ecdsa_der(msg.signature, key.curve), tbs, ec.ECDSA(algorithm))
