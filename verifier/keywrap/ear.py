"""EAT Attestation Results (EAR): the signed verdict Keyward hands to relying parties, and its JWKS.

* :class:`ProviderSigningKey` is an EC P-256 private key whose ``kid`` is its RFC 7638 thumbprint;
  :class:`ProviderKeyring` holds the active key (it signs) and previous ones (still published, for rotation).
  ``public_jwks()`` is the ``/.well-known/jwks.json`` document: public members only.
* :func:`issue_ear` turns the per-evidence results (:class:`~verifier.platforms.evaluation.Evaluation`) into a
  JWT (ES256, ``typ`` JWT) shaped as draft-fv-rats-ear (profile ``tag:github.com,2023:veraison/ear``): one
  ``submods`` entry per evidence platform (per device for NVIDIA: ``nvidia-gpu:GPU-0``, ``nvidia-gpu:NVSwitch-8``)
  with an AR4SI ``ear.status`` and ``ear.trustworthiness-vector``,
  Keyward's own claims under ``keyward``. Signed with ``cryptography`` directly (:mod:`verifier.keywrap.jose`), the
  token written as joserfc's ``jwt.encode`` writes it.
* :func:`verify_ear` is what a relying party (and the tests) run: ES256 only, the key chosen by ``kid`` from a
  JWKS, ``exp`` / ``iat`` / ``nbf`` checked against the caller's ``now``, and ``iss`` / ``aud`` against what the
  caller expects when it says.

``iss`` names the verifier that issued the token (``KEYWARD_RESULT_TOKEN_ISSUER``: the deployment's own URL in
production); ``aud`` names whom it is for: the customer whose licence asked (:func:`audience_for`,
``urn:keyward:customer:<id>``), so one customer's relying party refuses a token issued to another's enclave.

Trustworthiness vector (draft-ietf-rats-ar4si §2.3; tiers: 2-31 affirming, 32-95 warning, 96-127 contraindicated,
-1..1 none). Components emitted: ``instance-identity``, ``configuration``, ``executables``, ``hardware``,
``runtime-opaque``. Per evaluation:

1. not ``verified`` (the evidence or its endorsements did not validate): every component is 99 ("cryptographic
   validation failed") and the status is ``contraindicated``.
2. ``verified`` and ``accepted``: every component is 2 (recognized instance, approved config, approved runtime,
   genuine hardware, encrypted memory) and the status is ``affirming``. A TCB the policy accepted although it is
   not UpToDate stays 2 here; its status is in the submod's ``keyward.tcb_status``.
3. ``verified`` but rejected by policy: components start at 2 and each reason code lowers one of them to its
   contraindicated value: report-data / signing-key / CSP-id mismatches -> ``instance-identity`` 96;
   TCB, firmware and advisory failures -> ``hardware`` 96; measurement, host-data, ID/author key, family/image id,
   guest SVN, SGX ISVPRODID / ISVSVN, MRSERVICETD and Azure UVM endorsement failures -> ``executables`` 96;
   debug -> ``configuration`` 96 and ``runtime-opaque`` 96 (memory visible to the host); any other code ->
   ``configuration`` 96 (unsupportable configuration). The status is ``contraindicated``.

The top-level ``ear.status`` is the worst submod status. Simulated evidence (development only) is never hidden:
``keyward.simulated`` is true and ``ear.verifier-id.build`` ends with ``+simulated``; the status is not changed.

Each submod's ``keyward.faults`` maps every reason code to its fault (``malformed``, ``failed``, ``policy``, ...; see
:mod:`verifier.errors`), so a relying party can tell malformed evidence from a failed check without Keyward's table.

Errors: :class:`~verifier.errors.EarError` subclasses with ``ear.*`` codes, in :mod:`verifier.errors` with every
other error. This module does no I/O and reads no clock.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from verifier.errors import Code, EarExpired, EarInvalid, EarKeyUnknown, EarSigningKeyInvalid
from verifier.keywrap.jose import jws_es256
from verifier.platforms.evaluation import Evaluation

EAR_PROFILE: Final = "tag:github.com,2023:veraison/ear"
EAR_ALG: Final = "ES256"
EAR_DEVELOPER: Final = "Keyward"
SIMULATED_SUFFIX: Final = "+simulated"
DEFAULT_ISSUER: Final = "urn:keyward"
NONCE_MIN_BYTES: Final = 8  # EAT eat_nonce (RFC 9711 §4.1): 8 to 64 bytes
NONCE_MAX_BYTES: Final = 64

STATUS_AFFIRMING: Final = "affirming"
STATUS_WARNING: Final = "warning"
STATUS_CONTRAINDICATED: Final = "contraindicated"
STATUS_NONE: Final = "none"
_STATUS_RANK: Final[Mapping[str, int]] = {
    STATUS_AFFIRMING: 0,
    STATUS_NONE: 1,
    STATUS_WARNING: 2,
    STATUS_CONTRAINDICATED: 3,
}

# AR4SI trustworthiness claim values used here (draft-ietf-rats-ar4si §2.3).
TC_AFFIRMING: Final = 2  # recognized instance / approved config / approved runtime / genuine hw / encrypted memory
TC_CONTRAINDICATED: Final = 96  # untrustworthy instance / unsupportable config / contraindicated runtime & hw / visible
TC_CRYPTO_FAILED: Final = 99  # cryptographic validation of the Evidence has failed

INSTANCE_IDENTITY: Final = "instance-identity"
CONFIGURATION: Final = "configuration"
EXECUTABLES: Final = "executables"
HARDWARE: Final = "hardware"
RUNTIME_OPAQUE: Final = "runtime-opaque"
_COMPONENTS: Final = (INSTANCE_IDENTITY, CONFIGURATION, EXECUTABLES, HARDWARE, RUNTIME_OPAQUE)

_INSTANCE_CODES: Final = frozenset(
    {
        Code.INTEL_POLICY_REPORT_DATA_MISMATCH,
        Code.SNP_POLICY_REPORT_DATA,
        Code.SNP_POLICY_SIGNING_KEY,
        Code.SNP_POLICY_CSP_ID,
    }
)
_HARDWARE_CODES: Final = frozenset(
    {
        Code.INTEL_TCB_NOT_SUPPORTED,
        Code.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
        Code.INTEL_POLICY_ADVISORY_DENIED,
        Code.INTEL_POLICY_TCB_EVAL_NUMBER_TOO_LOW,
        Code.SNP_POLICY_TCB_TOO_LOW,
        Code.SNP_POLICY_FIRMWARE_TOO_LOW,
        Code.NVIDIA_POLICY_ARCHITECTURE,  # the GPU itself: which chip, board and SKU, its VBIOS, its revocation
        Code.NVIDIA_POLICY_SKU,
        Code.NVIDIA_POLICY_VBIOS_VERSION,
        Code.NVIDIA_OCSP_REVOKED,
        Code.NVIDIA_OCSP_UNKNOWN,
    }
)
_EXECUTABLES_CODES: Final = frozenset(
    {
        Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED,
        Code.INTEL_POLICY_SGX_ISV_PROD_ID,
        Code.INTEL_POLICY_SGX_ISV_SVN_TOO_LOW,
        Code.INTEL_POLICY_MRSERVICETD_NONZERO,
        Code.SNP_POLICY_MEASUREMENT,
        Code.SNP_POLICY_HOST_DATA,
        Code.SNP_POLICY_ID_KEY_DIGEST,
        Code.SNP_POLICY_AUTHOR_KEY_DIGEST,
        Code.SNP_POLICY_FAMILY_ID,
        Code.SNP_POLICY_IMAGE_ID,
        Code.SNP_POLICY_GUEST_SVN_TOO_LOW,
        Code.NVIDIA_MEASUREMENT_MISMATCH,  # the GPU's firmware and driver against NVIDIA's signed RIMs
        Code.NVIDIA_RIM_MISMATCH,
        Code.NVIDIA_RIM_INDEX_CONFLICT,
        Code.NVIDIA_POLICY_DRIVER_VERSION,
    }
)
_EXECUTABLES_PREFIXES: Final = ("azure.uvm.",)  # UVM endorsements vouch for the launch measurement
_DEBUG_CODES: Final = frozenset({Code.INTEL_POLICY_SGX_DEBUG, Code.INTEL_POLICY_TD_DEBUG, Code.SNP_POLICY_DEBUG})

_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- Provider signing keys --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderSigningKey:
    """An EC P-256 private key that signs EARs; ``kid`` is its RFC 7638 SHA-256 thumbprint (base64url)."""

    key: ECKey = field(repr=False)
    kid: str = field(init=False)
    #: The same key as ``cryptography`` holds it (what :func:`issue_ear` signs with).
    signer: ec.EllipticCurvePrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.key.get("crv") != "P-256" or not self.key.is_private:
            raise EarSigningKeyInvalid("the EAR signing key must be an EC P-256 private key")
        native = self.key.private_key
        if not isinstance(native, ec.EllipticCurvePrivateKey) or not isinstance(native.curve, ec.SECP256R1):
            raise EarSigningKeyInvalid("the EAR signing key must be an EC P-256 private key")
        object.__setattr__(self, "kid", self.key.thumbprint())
        object.__setattr__(self, "signer", native)

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> ProviderSigningKey:
        """Load a PEM private key (PKCS#8 or SEC1, optionally encrypted). Refuses anything but P-256."""
        try:
            native = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as e:
            raise EarSigningKeyInvalid(f"EAR signing key does not load: {e}") from e
        if not isinstance(native, ec.EllipticCurvePrivateKey) or not isinstance(native.curve, ec.SECP256R1):
            raise EarSigningKeyInvalid("the EAR signing key must be an EC P-256 private key")
        pem = native.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(ECKey.import_key(pem))

    @classmethod
    def generate(cls) -> ProviderSigningKey:
        """A fresh key, for development and tests; production keys come from :meth:`from_pem`."""
        return cls(ECKey.generate_key("P-256"))

    def public_jwk(self) -> dict[str, str]:
        """The public JWK with ``kid``, ``use`` "sig" and ``alg`` "ES256"; no private members."""
        public = self.key.as_dict(private=False)
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": str(public["x"]),
            "y": str(public["y"]),
            "kid": self.kid,
            "use": "sig",
            "alg": EAR_ALG,
        }

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """A JWKS document holding this key only."""
        return {"keys": [self.public_jwk()]}


@dataclass(frozen=True, slots=True)
class ProviderKeyring:
    """The active signing key plus previous keys that stay published until tokens they signed have expired."""

    active: ProviderSigningKey
    previous: tuple[ProviderSigningKey, ...] = ()

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise EarSigningKeyInvalid("the keyring holds the same key twice")

    @property
    def keys(self) -> tuple[ProviderSigningKey, ...]:
        return (self.active, *self.previous)

    def rotate(self, new_active: ProviderSigningKey) -> ProviderKeyring:
        """A keyring signing with ``new_active`` and still publishing every key it had."""
        return ProviderKeyring(new_active, (self.active, *self.previous))

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The ``/.well-known/jwks.json`` document: every key, the active one first."""
        return {"keys": [k.public_jwk() for k in self.keys]}


# -- Issuing ------------------------------------------------------------------------------------------------------


def _aware_ts(name: str, value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return math.floor(value.timestamp())


def _reason_codes(evaluation: Evaluation) -> list[str]:
    return [reason.code.value for reason in evaluation.reasons]


def _reason_faults(evaluation: Evaluation) -> dict[str, str]:
    """Each reason code of one evaluation with its fault."""
    return {reason.code.value: reason.fault.value for reason in evaluation.reasons}


def trustworthiness_vector(evaluation: Evaluation) -> dict[str, int]:
    """The AR4SI vector for one evaluation (the mapping is in the module docstring)."""
    if not evaluation.verified:
        return dict.fromkeys(_COMPONENTS, TC_CRYPTO_FAILED)
    vector = dict.fromkeys(_COMPONENTS, TC_AFFIRMING)
    if evaluation.accepted:
        return vector
    for code in _reason_codes(evaluation):
        if code in _INSTANCE_CODES:
            vector[INSTANCE_IDENTITY] = TC_CONTRAINDICATED
        elif code in _HARDWARE_CODES:
            vector[HARDWARE] = TC_CONTRAINDICATED
        elif code in _EXECUTABLES_CODES or code.startswith(_EXECUTABLES_PREFIXES):
            vector[EXECUTABLES] = TC_CONTRAINDICATED
        elif code in _DEBUG_CODES:
            vector[CONFIGURATION] = TC_CONTRAINDICATED
            vector[RUNTIME_OPAQUE] = TC_CONTRAINDICATED
        else:
            vector[CONFIGURATION] = TC_CONTRAINDICATED
    if all(v < TC_CONTRAINDICATED for v in vector.values()):  # rejected without a reason we can place
        vector[CONFIGURATION] = TC_CONTRAINDICATED
    return vector


def _device_name(evaluation: Evaluation) -> str | None:
    """A submodule per device where a platform has several ("nvidia-gpu:GPU-0"), else per platform."""
    if evaluation.device is None:
        return evaluation.platform
    return f"{evaluation.platform or 'unknown'}:{evaluation.device}"


def _submod_name(platform: str | None, taken: Mapping[str, object]) -> str:
    base = platform or "unknown"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}#{n}"
    return name


def audience_for(customer_id: str) -> str:
    """The ``aud`` of a result token issued under a customer's licence."""
    return f"urn:keyward:customer:{customer_id}"


def issue_ear(
    keyring: ProviderKeyring,
    *,
    now: datetime,
    attestation_id: str,
    lease_id: str | None,
    expires_at: datetime,
    evaluations: Sequence[Evaluation],
    nonce: bytes,
    enclave_key_thumbprint: str,
    model: str,
    model_version: str,
    deployment: str,
    customer_id: str,
    verifier_id: str = "keyward",
    issuer: str = DEFAULT_ISSUER,
) -> str:
    """Sign an EAR (compact JWS, ES256, header ``typ`` JWT and ``kid``) with the keyring's active key.

    ``evaluations``: one per evidence item (platform, verified, accepted, simulated, tcb_status and reasons are
    read; claims and collateral stay out of the token). Raises ``ValueError`` for an empty list, naive datetimes,
    ``expires_at <= now`` or a nonce outside 8-64 bytes.
    """
    if not evaluations:
        raise ValueError("an EAR needs at least one evaluation")
    iat, exp = _aware_ts("now", now), _aware_ts("expires_at", expires_at)
    if exp <= iat:
        raise ValueError("expires_at must be after now")
    if not NONCE_MIN_BYTES <= len(nonce) <= NONCE_MAX_BYTES:
        raise ValueError(f"nonce must be {NONCE_MIN_BYTES}-{NONCE_MAX_BYTES} bytes, got {len(nonce)}")

    submods: dict[str, dict[str, Any]] = {}
    all_codes: list[str] = []
    all_faults: dict[str, str] = {}
    simulated = False
    for evaluation in evaluations:
        platform = evaluation.platform
        codes = _reason_codes(evaluation)
        all_codes.extend(c for c in codes if c not in all_codes)
        faults = _reason_faults(evaluation)
        all_faults.update(faults)
        simulated = simulated or evaluation.simulated
        accepted = evaluation.verified and evaluation.accepted
        submods[_submod_name(_device_name(evaluation), submods)] = {
            "ear.status": STATUS_AFFIRMING if accepted else STATUS_CONTRAINDICATED,
            "ear.trustworthiness-vector": trustworthiness_vector(evaluation),
            "ear.appraisal-policy-id": f"policy:keyward/{platform or 'unknown'}",
            "keyward": {
                "verified": evaluation.verified,
                "simulated": evaluation.simulated,
                "tcb_status": evaluation.tcb_status,
                "reasons": codes,
                "faults": faults,
            },
        }
    status = max((s["ear.status"] for s in submods.values()), key=_STATUS_RANK.__getitem__)
    build = verifier_id
    if simulated and not build.endswith(SIMULATED_SUFFIX):
        build += SIMULATED_SUFFIX

    claims: dict[str, Any] = {
        "eat_profile": EAR_PROFILE,
        "iss": issuer,
        "aud": audience_for(customer_id),
        "iat": iat,
        "exp": exp,
        "jti": attestation_id,
        "eat_nonce": _b64url(nonce),
        "ear.verifier-id": {"developer": EAR_DEVELOPER, "build": build},
        "ear.status": status,
        "submods": submods,
        "keyward": {
            "lease_id": lease_id,
            "model": model,
            "model_version": model_version,
            "deployment": deployment,
            "customer_id": customer_id,
            "enclave_key_thumbprint": enclave_key_thumbprint,
            "simulated": simulated,
            "reasons": all_codes,
            "faults": all_faults,
        },
    }
    signer = keyring.active
    # As joserfc's jwt.encode writes it (header typ, alg, kid; claims as compact UTF-8 JSON), signed with
    # cryptography directly (verifier.keywrap.jose): relying parties verify it with any JOSE library.
    payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode()
    return jws_es256({"typ": "JWT", "alg": EAR_ALG, "kid": signer.kid}, payload, signer.signer)


# -- Verifying ----------------------------------------------------------------------------------------------------


def _verification_key(jwks: object, kid: str) -> ECKey:  # the JWKS is often fetched JSON: check its shape
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise EarInvalid("JWKS must be an object with a 'keys' array")
    matches = [k for k in keys if isinstance(k, Mapping) and k.get("kid") == kid]
    if not matches:
        raise EarKeyUnknown(f"no key with kid {kid!r} in the JWKS")
    if len(matches) > 1:
        raise EarInvalid(f"JWKS holds {len(matches)} keys with kid {kid!r}")
    doc = matches[0]
    if _PRIVATE_MEMBERS & doc.keys():
        raise EarInvalid("JWKS key contains private members")
    if doc.get("kty") != "EC" or doc.get("crv") != "P-256":
        raise EarInvalid("EAR keys must be EC P-256")
    if doc.get("alg", EAR_ALG) != EAR_ALG or doc.get("use", "sig") != "sig":
        raise EarInvalid("JWKS key is not an ES256 signing key")
    try:
        return ECKey.import_key({"kty": "EC", "crv": "P-256", "x": doc["x"], "y": doc["y"]})
    except (KeyError, JoseError, ValueError, TypeError) as e:
        raise EarInvalid(f"JWKS key does not load: {e}") from e


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EarInvalid(f"claim {name!r} must be an integer NumericDate")
    return value


def verify_ear(
    token: str,
    jwks: Mapping[str, Any],
    *,
    now: datetime,
    leeway: int = 0,
    issuer: str | None = None,
    audience: str | None = None,
) -> dict[str, Any]:
    """Verify an EAR for a relying party and return its claims.

    1. Parse the protected header: ``alg`` must be ES256 (``none``, HMAC and every other algorithm are refused),
       ``kid`` must be present and no ``crit`` is understood.
    2. Pick the public key with that ``kid`` from ``jwks`` (:class:`EarKeyUnknown` if absent).
    3. Verify the signature (RFC 7515) and decode the JSON claims.
    4. Check ``exp`` (required; expired when ``now >= exp + leeway``, :class:`EarExpired`), ``iat`` (required, not
       after ``now + leeway``), ``nbf`` (if present), ``eat_profile``, ``ear.status`` and ``submods``.
    5. When given, ``issuer`` must equal ``iss`` and ``audience`` must be ``aud`` (or one of its list).
    """
    now_ts = _aware_ts("now", now)
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, TypeError, AttributeError) as e:
        raise EarInvalid(f"token is not a compact JWS: {e}") from e
    if header.get("alg") != EAR_ALG:
        raise EarInvalid(f"alg must be {EAR_ALG}, got {header.get('alg')!r}")
    if "crit" in header:
        raise EarInvalid("critical header parameters are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise EarInvalid("token header lacks a kid")
    key = _verification_key(jwks, kid)
    try:
        claims = dict(jwt.decode(token, key, algorithms=[EAR_ALG]).claims)
    except (JoseError, ValueError, TypeError) as e:
        raise EarInvalid(f"signature or payload invalid: {e}") from e

    exp = _int_claim(claims, "exp")
    iat = _int_claim(claims, "iat")
    nbf = _int_claim(claims, "nbf") if "nbf" in claims else None
    if now_ts >= exp + leeway:
        raise EarExpired(f"EAR expired at {exp} (now {now_ts}, leeway {leeway}s)")
    if iat > now_ts + leeway:
        raise EarInvalid(f"EAR issued in the future (iat {iat}, now {now_ts})")
    if nbf is not None and nbf > now_ts + leeway:
        raise EarInvalid(f"EAR not valid before {nbf} (now {now_ts})")
    if claims.get("eat_profile") != EAR_PROFILE:
        raise EarInvalid(f"eat_profile must be {EAR_PROFILE!r}")
    if claims.get("ear.status") not in _STATUS_RANK:
        raise EarInvalid("ear.status missing or not an AR4SI trust tier")
    submods = claims.get("submods")
    if not isinstance(submods, dict) or not submods:
        raise EarInvalid("submods missing or empty")
    if issuer is not None and claims.get("iss") != issuer:
        raise EarInvalid(f"iss must be {issuer!r}, got {claims.get('iss')!r}")
    if audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise EarInvalid(f"aud does not name {audience!r}")
    return claims
