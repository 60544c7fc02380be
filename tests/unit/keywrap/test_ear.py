"""EAR issuing and verification: claim shape, AR4SI mapping, simulation flag, key rotation, forged tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jwt
from joserfc.jwk import ECKey

from verifier.errors import Code, EarError, EarExpired, EarInvalid, EarKeyUnknown, EarSigningKeyInvalid, Fault, Reason
from verifier.keywrap.ear import (
    EAR_PROFILE,
    ProviderKeyring,
    ProviderSigningKey,
    audience_for,
    issue_ear,
    trustworthiness_vector,
    verify_ear,
)
from verifier.platforms.evaluation import Evaluation

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=15)
NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def key1() -> ProviderSigningKey:
    return ProviderSigningKey.generate()


@pytest.fixture(scope="module")
def key2() -> ProviderSigningKey:
    return ProviderSigningKey.generate()


@pytest.fixture(scope="module")
def keyring(key1: ProviderSigningKey) -> ProviderKeyring:
    return ProviderKeyring(key1)


def _evaluation(
    platform: str | None,
    *,
    verified: bool = True,
    accepted: bool = True,
    simulated: bool = False,
    codes: tuple[Code, ...] = (),
    tcb_status: str | None = None,
) -> Evaluation:
    return Evaluation(
        platform=platform,
        verified=verified,
        accepted=accepted,
        tcb_status=tcb_status,
        advisory_ids=(),
        claims={"measurement": "ab" * 48},
        reasons=tuple(Reason(c, f"message for {c.value}", expected="x", actual="y") for c in codes),
        simulated=simulated,
    )


def _issue(keyring: ProviderKeyring, evaluations: list[Evaluation] | None = None, **overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "now": NOW,
        "attestation_id": "att_01",
        "lease_id": "lease_01",
        "expires_at": EXPIRES,
        "evaluations": ACCEPTED_PAIR if evaluations is None else evaluations,
        "nonce": NONCE,
        "enclave_key_thumbprint": "thumb_abc",
        "model": "llama-3-70b",
        "model_version": "2025-05",
        "deployment": "prod-eu",
        "customer_id": "cust_42",
    }
    kwargs.update(overrides)
    return issue_ear(keyring, **kwargs)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload)), signature


ACCEPTED_PAIR = [_evaluation("intel-tdx", tcb_status="UpToDate"), _evaluation("amd-sev-snp")]


# -- Round trip and claim shape ------------------------------------------------------------------------------------


def test_issue_ear_two_accepted_affirming(keyring: ProviderKeyring, key1: ProviderSigningKey) -> None:
    token = _issue(keyring, ACCEPTED_PAIR)
    header, _, _ = _segments(token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": key1.kid}

    claims = verify_ear(token, keyring.public_jwks(), now=NOW)
    assert claims["eat_profile"] == EAR_PROFILE == "tag:github.com,2023:veraison/ear"
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] == int(EXPIRES.timestamp())
    assert claims["jti"] == "att_01"
    assert _unb64(claims["eat_nonce"]) == NONCE
    assert claims["ear.verifier-id"] == {"developer": "Keyward", "build": "keyward"}
    assert claims["ear.status"] == "affirming"
    assert set(claims["submods"]) == {"intel-tdx", "amd-sev-snp"}
    for name, submod in claims["submods"].items():
        assert submod["ear.status"] == "affirming"
        assert submod["ear.appraisal-policy-id"] == f"policy:keyward/{name}"
        vector = submod["ear.trustworthiness-vector"]
        assert {"instance-identity", "executables", "hardware"} <= vector.keys()
        assert set(vector.values()) == {2}
    assert claims["submods"]["intel-tdx"]["keyward"]["tcb_status"] == "UpToDate"
    assert claims["keyward"] == {
        "lease_id": "lease_01",
        "model": "llama-3-70b",
        "model_version": "2025-05",
        "deployment": "prod-eu",
        "customer_id": "cust_42",
        "enclave_key_thumbprint": "thumb_abc",
        "simulated": False,
        "reasons": [],
        "faults": {},
    }


def test_issue_ear_one_rejected_contraindicated_with_codes(keyring: ProviderKeyring) -> None:
    rejected = _evaluation(
        "amd-sev-snp", accepted=False, codes=(Code.SNP_POLICY_MEASUREMENT, Code.SNP_POLICY_TCB_TOO_LOW)
    )
    token = _issue(keyring, [_evaluation("intel-tdx"), rejected], lease_id=None)
    claims = verify_ear(token, keyring.public_jwks(), now=NOW)

    assert claims["ear.status"] == "contraindicated"
    assert claims["submods"]["intel-tdx"]["ear.status"] == "affirming"
    snp = claims["submods"]["amd-sev-snp"]
    assert snp["ear.status"] == "contraindicated"
    assert snp["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 96,
        "hardware": 96,
        "runtime-opaque": 2,
    }
    codes = ["snp.policy.measurement_not_allowed", "snp.policy.tcb_too_low"]
    assert snp["keyward"]["reasons"] == codes
    assert claims["keyward"]["reasons"] == codes  # codes only: no messages, expected or actual values
    faults = dict.fromkeys(codes, "policy")  # each code's fault
    assert snp["keyward"]["faults"] == claims["keyward"]["faults"] == faults
    assert claims["keyward"]["lease_id"] is None


def test_issue_ear_submods_agree_with_the_stored_evaluations(keyring: ProviderKeyring) -> None:
    """The token reads the typed evaluations; each submod says what the verdict stores (``Evaluation.to_json()``)."""
    evaluations = [
        _evaluation("intel-tdx", tcb_status="OutOfDate", simulated=True),
        _evaluation("amd-sev-snp", accepted=False, codes=(Code.SNP_POLICY_DEBUG, Code.AZURE_UVM_SIGNATURE_INVALID)),
        _evaluation(None, verified=False, accepted=False, codes=(Code.INTEL_QUOTE_TRUNCATED,)),
    ]
    claims = verify_ear(_issue(keyring, evaluations, lease_id=None), keyring.public_jwks(), now=NOW)
    assert list(claims["submods"]) == ["intel-tdx", "amd-sev-snp", "unknown"]
    for submod, stored in zip(claims["submods"].values(), (e.to_json() for e in evaluations), strict=True):
        assert submod["keyward"] == {
            "verified": stored["verified"],
            "simulated": stored["simulated"],
            "tcb_status": stored["tcb_status"],
            "reasons": [r["code"] for r in stored["reasons"]],
            "faults": {r["code"]: r["fault"] for r in stored["reasons"]},
        }
    assert claims["keyward"]["reasons"] == [
        Code.SNP_POLICY_DEBUG.value,
        Code.AZURE_UVM_SIGNATURE_INVALID.value,
        Code.INTEL_QUOTE_TRUNCATED.value,
    ]
    assert claims["keyward"]["simulated"] is True


@pytest.mark.parametrize(
    ("code", "fault"),
    [
        (Code.SNP_REPORT_TRUNCATED, "malformed"),
        (Code.SNP_SIGNATURE_INVALID, "failed"),
        (Code.SNP_CRL_EXPIRED, "collateral"),
        (Code.SNP_POLICY_DEBUG, "policy"),
    ],
    ids=["malformed", "failed", "collateral", "policy"],
)
def test_issue_ear_reason_faults_tell_malformed_from_failed(keyring: ProviderKeyring, code: Code, fault: str) -> None:
    rejected = _evaluation("amd-sev-snp", verified=fault == "policy", accepted=False, codes=(code,))
    claims = verify_ear(_issue(keyring, [rejected], lease_id=None), keyring.public_jwks(), now=NOW)
    assert claims["submods"]["amd-sev-snp"]["keyward"]["faults"] == {code.value: fault}
    assert claims["keyward"]["faults"] == {code.value: fault}


@pytest.mark.parametrize(
    ("code", "lowered"),
    [
        (Code.INTEL_POLICY_REPORT_DATA_MISMATCH, {"instance-identity"}),
        (Code.SNP_POLICY_REPORT_DATA, {"instance-identity"}),
        (Code.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED, {"hardware"}),
        (Code.INTEL_POLICY_ADVISORY_DENIED, {"hardware"}),
        (Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED, {"executables"}),
        (Code.AZURE_UVM_SIGNATURE_INVALID, {"executables"}),
        (Code.INTEL_POLICY_TD_DEBUG, {"configuration", "runtime-opaque"}),
        (Code.SNP_POLICY_SMT, {"configuration"}),
        (Code.NVIDIA_MEASUREMENT_MISMATCH, {"executables"}),
        (Code.NVIDIA_POLICY_DRIVER_VERSION, {"executables"}),
        (Code.NVIDIA_POLICY_VBIOS_VERSION, {"hardware"}),
        (Code.NVIDIA_OCSP_REVOKED, {"hardware"}),
        (Code.NVIDIA_POLICY_GPU_COUNT, {"configuration"}),
    ],
    ids=[
        "tdx-report-data",
        "snp-report-data",
        "tcb-status",
        "advisory",
        "measurement",
        "uvm",
        "debug",
        "smt",
        "gpu-measurement",
        "gpu-driver",
        "gpu-vbios",
        "gpu-revoked",
        "gpu-count",
    ],
)
def test_trustworthiness_vector_rejection_lowers_component(code: Code, lowered: set[str]) -> None:
    vector = trustworthiness_vector(_evaluation("intel-tdx", accepted=False, codes=(code,)))
    assert {k for k, v in vector.items() if v == 96} == lowered
    assert all(v == 2 for k, v in vector.items() if k not in lowered)


def test_trustworthiness_vector_rejected_without_reasons_is_contraindicated() -> None:
    vector = trustworthiness_vector(_evaluation("intel-tdx", accepted=False))
    assert vector["configuration"] == 96


def test_issue_ear_unverified_evidence_crypto_failed(keyring: ProviderKeyring) -> None:
    broken = _evaluation(None, verified=False, accepted=False, codes=(Code.INTEL_QUOTE_TRUNCATED,))
    claims = verify_ear(_issue(keyring, [broken]), keyring.public_jwks(), now=NOW)
    submod = claims["submods"]["unknown"]
    assert submod["ear.status"] == "contraindicated"
    assert set(submod["ear.trustworthiness-vector"].values()) == {99}
    assert claims["ear.status"] == "contraindicated"


def test_issue_ear_verified_false_never_affirming_even_if_accepted(keyring: ProviderKeyring) -> None:
    odd = _evaluation("intel-tdx", verified=False, accepted=True)
    claims = verify_ear(_issue(keyring, [odd]), keyring.public_jwks(), now=NOW)
    assert claims["ear.status"] == "contraindicated"


def test_issue_ear_duplicate_platforms_get_distinct_submods(keyring: ProviderKeyring) -> None:
    claims = verify_ear(
        _issue(keyring, [_evaluation("amd-sev-snp"), _evaluation("amd-sev-snp")]), keyring.public_jwks(), now=NOW
    )
    assert set(claims["submods"]) == {"amd-sev-snp", "amd-sev-snp#2"}


def test_issue_ear_simulated_flag_propagates(keyring: ProviderKeyring) -> None:
    evaluations = [_evaluation("intel-tdx"), _evaluation("amd-sev-snp", simulated=True)]
    claims = verify_ear(_issue(keyring, evaluations, verifier_id="keyward-1.2.3"), keyring.public_jwks(), now=NOW)
    assert claims["keyward"]["simulated"] is True
    assert claims["ear.verifier-id"]["build"] == "keyward-1.2.3+simulated"
    assert claims["submods"]["amd-sev-snp"]["keyward"]["simulated"] is True
    assert claims["submods"]["intel-tdx"]["keyward"]["simulated"] is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"evaluations": []},
        {"now": NOW.replace(tzinfo=None)},
        {"expires_at": NOW},
        {"nonce": b"short"},
        {"nonce": bytes(65)},
    ],
    ids=["no-evaluations", "naive-now", "expires-at-now", "nonce-too-short", "nonce-too-long"],
)
def test_issue_ear_bad_arguments_rejected(keyring: ProviderKeyring, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- caller bugs, plain ValueError by design
        _issue(keyring, **overrides)


# -- Keys, JWKS and rotation ------------------------------------------------------------------------------------


def test_public_jwks_has_no_private_members(key1: ProviderSigningKey, key2: ProviderSigningKey) -> None:
    jwks = ProviderKeyring(key2, (key1,)).public_jwks()
    json.dumps(jwks)  # serializable as /.well-known/jwks.json
    assert [k["kid"] for k in jwks["keys"]] == [key2.kid, key1.kid]
    for doc in jwks["keys"]:
        assert "d" not in doc
        assert set(doc) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
        assert (doc["kty"], doc["crv"], doc["use"], doc["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert key1.public_jwks() == {"keys": [key1.public_jwk()]}


def test_signing_key_kid_is_rfc7638_thumbprint(key1: ProviderSigningKey) -> None:
    doc = key1.public_jwk()
    canonical = json.dumps({k: doc[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    assert key1.kid == _b64(hashlib.sha256(canonical.encode()).digest())


def test_signing_key_from_pem_round_trip() -> None:
    native = ec.generate_private_key(ec.SECP256R1())
    pem = native.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    key = ProviderSigningKey.from_pem(pem, password=b"pw")
    ring = ProviderKeyring(key)
    claims = verify_ear(_issue(ring, ACCEPTED_PAIR), ring.public_jwks(), now=NOW)
    assert claims["ear.status"] == "affirming"
    numbers = native.public_key().public_numbers()
    assert _unb64(key.public_jwk()["x"]) == numbers.x.to_bytes(32, "big")
    assert "key=" not in repr(key)


def _pem(private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    "pem",
    [
        _pem(ec.generate_private_key(ec.SECP384R1())),
        _pem(ed25519.Ed25519PrivateKey.generate()),
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    ],
    ids=["p384", "ed25519", "public-only", "garbage"],
)
def test_signing_key_from_pem_refuses_other_keys(pem: bytes) -> None:
    with pytest.raises(EarSigningKeyInvalid) as info:
        ProviderSigningKey.from_pem(pem)
    assert info.value.code == Code.EAR_SIGNING_KEY_INVALID


def test_signing_key_refuses_public_key() -> None:
    public: dict[str, str | list[str]] = dict(ProviderSigningKey.generate().public_jwk())
    with pytest.raises(EarSigningKeyInvalid):
        ProviderSigningKey(ECKey.import_key(public))


def test_keyring_refuses_duplicate_keys(key1: ProviderSigningKey) -> None:
    with pytest.raises(EarSigningKeyInvalid):
        ProviderKeyring(key1, (key1,))


def test_verify_ear_after_rotation_accepts_previous_key(
    keyring: ProviderKeyring, key1: ProviderSigningKey, key2: ProviderSigningKey
) -> None:
    old_token = _issue(keyring, ACCEPTED_PAIR)
    rotated = keyring.rotate(key2)
    assert rotated.active is key2
    assert rotated.previous == (key1,)
    assert verify_ear(old_token, rotated.public_jwks(), now=NOW)["jti"] == "att_01"

    new_token = _issue(rotated, ACCEPTED_PAIR)
    assert _segments(new_token)[0]["kid"] == key2.kid
    assert verify_ear(new_token, rotated.public_jwks(), now=NOW)["ear.status"] == "affirming"

    with pytest.raises(EarKeyUnknown) as info:  # previous key retired from the JWKS
        verify_ear(old_token, ProviderKeyring(key2).public_jwks(), now=NOW)
    assert info.value.code == Code.EAR_KEY_UNKNOWN


def test_verify_ear_unknown_key_rejected(keyring: ProviderKeyring) -> None:
    stranger = ProviderKeyring(ProviderSigningKey.generate())
    with pytest.raises(EarKeyUnknown) as info:
        verify_ear(_issue(stranger, ACCEPTED_PAIR), keyring.public_jwks(), now=NOW)
    assert info.value.code == "ear.key_unknown"
    assert isinstance(info.value, EarInvalid)


# -- Forged and stale tokens ---------------------------------------------------------------------------------


def _forge_tampered(token: str, key: ProviderSigningKey) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["ear.status"] = "affirming"
    claims["keyward"]["customer_id"] = "someone-else"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _forge_alg_none(token: str, key: ProviderSigningKey) -> str:
    _, payload, _ = token.split(".")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
    return f"{header}.{payload}."


def _forge_hs256_public_key(token: str, key: ProviderSigningKey) -> str:
    _, payload, _ = token.split(".")
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    secret = json.dumps(key.public_jwk()).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def _forge_es256_same_kid(token: str, key: ProviderSigningKey) -> str:
    _, payload, _ = token.split(".")
    impostor = ECKey.generate_key("P-256")
    return jwt.encode({"alg": "ES256", "kid": key.kid}, json.loads(_unb64(payload)), impostor, algorithms=["ES256"])


def _forge_es384(token: str, key: ProviderSigningKey) -> str:
    _, payload, _ = token.split(".")
    impostor = ECKey.generate_key("P-384")
    return jwt.encode({"alg": "ES384", "kid": key.kid}, json.loads(_unb64(payload)), impostor, algorithms=["ES384"])


def _forge_no_kid(token: str, key: ProviderSigningKey) -> str:
    _, payload, _ = token.split(".")
    return jwt.encode({"alg": "ES256"}, json.loads(_unb64(payload)), key.key, algorithms=["ES256"])


def _forge_truncated(token: str, key: ProviderSigningKey) -> str:
    return token.rsplit(".", 1)[0]


@pytest.mark.parametrize(
    "forge",
    [
        _forge_tampered,
        _forge_alg_none,
        _forge_hs256_public_key,
        _forge_es256_same_kid,
        _forge_es384,
        _forge_no_kid,
        _forge_truncated,
    ],
    ids=["tampered-payload", "alg-none", "hs256-public-key", "impostor-same-kid", "es384", "no-kid", "truncated"],
)
def test_verify_ear_forged_token_rejected(keyring: ProviderKeyring, key1: ProviderSigningKey, forge: Any) -> None:
    forged = forge(_issue(keyring, ACCEPTED_PAIR), key1)
    with pytest.raises(EarInvalid) as info:
        verify_ear(forged, keyring.public_jwks(), now=NOW)
    assert info.value.code == Code.EAR_INVALID


def _claims_with(keyring: ProviderKeyring, **changes: Any) -> str:
    _, payload, _ = _issue(keyring, ACCEPTED_PAIR).split(".")
    claims = json.loads(_unb64(payload))
    for name, value in changes.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    key = keyring.active
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key.key, algorithms=["ES256"])


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": None},
        {"iat": None},
        {"exp": "soon"},
        {"iat": int(NOW.timestamp()) + 60},
        {"nbf": int(NOW.timestamp()) + 60},
        {"eat_profile": "tag:example.com,2024:other"},
        {"ear.status": "great"},
        {"submods": {}},
    ],
    ids=["no-exp", "no-iat", "exp-not-int", "iat-future", "nbf-future", "profile", "status", "no-submods"],
)
def test_verify_ear_bad_claims_rejected(keyring: ProviderKeyring, changes: dict[str, Any]) -> None:
    with pytest.raises(EarInvalid) as info:
        verify_ear(_claims_with(keyring, **changes), keyring.public_jwks(), now=NOW)
    assert info.value.code == Code.EAR_INVALID


def test_verify_ear_expired_rejected(keyring: ProviderKeyring) -> None:
    token = _issue(keyring, ACCEPTED_PAIR)
    with pytest.raises(EarExpired) as info:
        verify_ear(token, keyring.public_jwks(), now=EXPIRES)
    assert info.value.code == Code.EAR_EXPIRED
    assert str(info.value.code) == "ear.expired"
    assert verify_ear(token, keyring.public_jwks(), now=EXPIRES, leeway=30)["jti"] == "att_01"
    with pytest.raises(EarExpired):
        verify_ear(token, keyring.public_jwks(), now=EXPIRES + timedelta(seconds=30), leeway=30)


@pytest.mark.parametrize(
    "jwks",
    [
        {},
        {"keys": "nope"},
        "not-a-dict",
    ],
    ids=["no-keys", "keys-not-list", "not-object"],
)
def test_verify_ear_malformed_jwks_rejected(keyring: ProviderKeyring, jwks: Any) -> None:
    with pytest.raises(EarInvalid):
        verify_ear(_issue(keyring, ACCEPTED_PAIR), jwks, now=NOW)


@pytest.mark.parametrize(
    "change",
    [{"d": "AAAA"}, {"alg": "ES384"}, {"use": "enc"}, {"crv": "P-384"}],
    ids=["private-member", "alg", "use", "curve"],
)
def test_verify_ear_unsuitable_jwks_key_rejected(
    keyring: ProviderKeyring, key1: ProviderSigningKey, change: dict[str, str]
) -> None:
    jwks = {"keys": [{**key1.public_jwk(), **change}]}
    with pytest.raises(EarInvalid):
        verify_ear(_issue(keyring, ACCEPTED_PAIR), jwks, now=NOW)


@pytest.mark.parametrize(
    ("error", "code", "fault", "status"),
    [
        (EarInvalid("x"), Code.EAR_INVALID, Fault.FAILED, 401),
        (EarKeyUnknown("x"), Code.EAR_KEY_UNKNOWN, Fault.FAILED, 401),
        (EarExpired("x"), Code.EAR_EXPIRED, Fault.FAILED, 401),
        (EarSigningKeyInvalid("x"), Code.EAR_SIGNING_KEY_INVALID, Fault.INTERNAL, 500),
    ],
    ids=["invalid", "key-unknown", "expired", "signing-key-invalid"],
)
def test_ear_error_code_fault_and_status(error: EarError, code: Code, fault: Fault, status: int) -> None:
    assert (error.code, error.fault, error.http_status) == (code, fault, status)
    assert error.to_reason().fault == fault


def test_issue_ear_one_submodule_per_device(keyring: ProviderKeyring) -> None:
    cpu = _evaluation("intel-tdx", accepted=True)
    gpus = [replace(_evaluation("nvidia-gpu", accepted=True), device=f"GPU-{i}") for i in range(2)]
    claims = verify_ear(_issue(keyring, [cpu, *gpus]), keyring.public_jwks(), now=NOW)
    assert set(claims["submods"]) == {"intel-tdx", "nvidia-gpu:GPU-0", "nvidia-gpu:GPU-1"}


def test_issue_ear_names_issuer_and_customer_audience(keyring: ProviderKeyring) -> None:
    claims = verify_ear(_issue(keyring, issuer="https://keyward.example"), keyring.public_jwks(), now=NOW)
    assert (claims["iss"], claims["aud"]) == ("https://keyward.example", "urn:keyward:customer:cust_42")


def test_verify_ear_expected_issuer_and_audience_pass(keyring: ProviderKeyring) -> None:
    token = _issue(keyring, issuer="https://keyward.example")
    claims = verify_ear(
        token,
        keyring.public_jwks(),
        now=NOW,
        issuer="https://keyward.example",
        audience=audience_for("cust_42"),
    )
    assert claims["jti"] == "att_01"


def test_verify_ear_other_issuer_refused(keyring: ProviderKeyring) -> None:
    token = _issue(keyring, issuer="https://keyward.example")
    with pytest.raises(EarInvalid, match="iss"):
        verify_ear(token, keyring.public_jwks(), now=NOW, issuer="https://other.example")


def test_verify_ear_other_customers_token_refused(keyring: ProviderKeyring) -> None:
    token = _issue(keyring, customer_id="cust_7")
    with pytest.raises(EarInvalid, match="aud"):
        verify_ear(token, keyring.public_jwks(), now=NOW, audience=audience_for("cust_42"))


def test_verify_ear_token_without_audience_refused_when_one_is_expected(keyring: ProviderKeyring) -> None:
    claims = {"eat_profile": EAR_PROFILE, "iat": int(NOW.timestamp()), "exp": int(EXPIRES.timestamp())}
    claims |= {"ear.status": "affirming", "submods": {"x": {"ear.status": "affirming"}}}
    signer = keyring.active
    token = jwt.encode({"alg": "ES256", "kid": signer.kid}, claims, signer.key, algorithms=["ES256"])
    assert verify_ear(token, keyring.public_jwks(), now=NOW)["ear.status"] == "affirming"
    with pytest.raises(EarInvalid, match="aud"):
        verify_ear(token, keyring.public_jwks(), now=NOW, audience=audience_for("cust_42"))
