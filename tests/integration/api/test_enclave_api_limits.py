"""Size limits of the enclave API on the real app and PostgreSQL: an oversized body is a 413 ``request.too_large``
and is not stored; each over-long field or too many evidence items is a 400 ``request.invalid`` naming the field;
genuine evidence still goes through. No worker runs here: an accepted submission stays pending."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwk
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.support.service import seed, service_settings
from verifier import limits
from verifier.app import create_app
from verifier.attestation.challenges import issue_challenge
from verifier.db.models import Attestation
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk
from verifier.simulation.intel_pki import SIM_NOW, QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport


@dataclass
class Api:
    client: TestClient
    engine: Engine
    headers: dict[str, str]
    model: str
    challenge_secret: bytes
    other_headers: dict[str, str]  # another customer's licence key

    @property
    def key_id(self) -> str:
        return self.headers["Authorization"].split("_")[1]


@pytest.fixture(scope="module")
def api(database_url: str, engine: Engine) -> Api:
    settings = service_settings(database_url)
    seeded, other = seed(engine, settings), seed(engine, settings)
    secret = settings.challenge_secret.get_secret_value().encode()
    headers = {"Authorization": f"Bearer {seeded.licence}"}
    other_headers = {"Authorization": f"Bearer {other.licence}"}
    return Api(TestClient(create_app(settings)), engine, headers, seeded.model, secret, other_headers)


def _stored(api: Api) -> int:
    with Session(api.engine) as s:
        return int(s.execute(select(func.count()).select_from(Attestation)).scalar_one())


def _body(api: Api, *, deployment: str = "limits") -> dict[str, Any]:
    """A genuine request: a fresh nonce, an enclave key and simulated TDX evidence bound to both."""
    nonce_b64 = api.client.post("/v1/challenges", headers=api.headers).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    public = dict(jwk.ECKey.generate_key("P-384").as_dict(private=False))
    ev = default_pki().build(
        QuoteOptions(td=TdReport(reportdata=expected_report_data(nonce, parse_enclave_jwk(public))))
    )
    return {
        "nonce": nonce_b64,
        "model": api.model,
        "deployment": deployment,
        "enclave_key": public,
        "evidence": [
            {"type": "intel-tdx", "evidence": base64.b64encode(ev.quote).decode(), "collateral": ev.collateral_json}
        ],
    }


def test_enclave_api_limits_genuine_evidence_accepted_for_processing(api: Api) -> None:
    r = api.client.post("/v1/attestations", json=_body(api), headers=api.headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"


def test_enclave_api_limits_oversized_body_413_not_stored(api: Api) -> None:
    body = _body(api)
    body["evidence"][0]["collateral"] = "x" * (limits.MAX_REQUEST_BODY_BYTES + 1)
    before = _stored(api)
    r = api.client.post("/v1/attestations", json=body, headers=api.headers)
    assert r.status_code == 413
    error = r.json()["error"]
    assert set(error) == {"code", "fault", "message", "expected", "actual"}
    assert error["code"] == "request.too_large"
    assert _stored(api) == before


def test_enclave_api_limits_20mb_body_413(api: Api) -> None:
    r = api.client.post(
        "/v1/attestations",
        content=b"{" + b" " * (20 * 1024 * 1024) + b"}",
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request.too_large"


EVIDENCE_FIELDS = {
    "evidence": limits.MAX_HEX_EVIDENCE_CHARS,
    "collateral": limits.MAX_COLLATERAL_JSON_CHARS,
    "vcek": limits.MAX_VCEK_B64_CHARS,
    "cert_table": limits.MAX_CERT_TABLE_B64_CHARS,
    "crl": limits.MAX_CRL_B64_CHARS,
    "runtime_data": limits.MAX_RUNTIME_DATA_B64_CHARS,
    "uvm_endorsement": limits.MAX_UVM_ENDORSEMENT_B64_CHARS,
}
TOP_FIELDS = {
    "nonce": limits.MAX_NONCE_CHARS,
    "model": limits.MAX_NAME_CHARS,
    "model_version": limits.MAX_VERSION_CHARS,
    "deployment": limits.MAX_NAME_CHARS,
}


def _assert_invalid_at(api: Api, body: dict[str, Any], loc: str) -> None:
    before = _stored(api)
    r = api.client.post("/v1/attestations", json=body, headers=api.headers)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "request.invalid"
    assert loc in [p["loc"] for p in error["actual"]]
    assert _stored(api) == before


@pytest.mark.parametrize(("field", "limit"), list(EVIDENCE_FIELDS.items()), ids=list(EVIDENCE_FIELDS))
def test_enclave_api_limits_evidence_field_over_limit_400(api: Api, field: str, limit: int) -> None:
    body = _body(api)
    body["evidence"][0][field] = "A" * (limit + 1)
    _assert_invalid_at(api, body, f"body.evidence.0.{field}")


@pytest.mark.parametrize(("field", "limit"), list(TOP_FIELDS.items()), ids=list(TOP_FIELDS))
def test_enclave_api_limits_top_field_over_limit_400(api: Api, field: str, limit: int) -> None:
    body = _body(api)
    body[field] = "a" * (limit + 1)
    _assert_invalid_at(api, body, f"body.{field}")


def test_enclave_api_limits_too_many_evidence_items_400(api: Api) -> None:
    body = _body(api)
    body["evidence"] = body["evidence"] * (limits.MAX_EVIDENCE_ITEMS + 1)
    _assert_invalid_at(api, body, "body.evidence")


def test_enclave_api_limits_too_many_jwk_members_400(api: Api) -> None:
    body = _body(api)
    body["enclave_key"] = {**body["enclave_key"], **{f"m{i}": "v" for i in range(limits.MAX_JWK_MEMBERS)}}
    _assert_invalid_at(api, body, "body.enclave_key")


def test_enclave_api_limits_oversized_rsa_enclave_key_400(api: Api) -> None:
    n = (1 << limits.MAX_ENCLAVE_RSA_BITS) | 1  # one bit over the cap
    modulus = base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    body = {**_body(api), "enclave_key": {"kty": "RSA", "n": modulus, "e": "AQAB"}}
    before = _stored(api)
    r = api.client.post("/v1/attestations", json=body, headers=api.headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "keywrap.jwk_invalid"
    assert _stored(api) == before


@pytest.mark.parametrize("defect", ["forged-mac", "wrong-length", "expired"])
def test_enclave_api_nonce_checked_before_anything_is_stored(api: Api, defect: str) -> None:
    """Issue 17, finding 2: a nonce this service did not issue, or one already expired, is refused by the API itself
    (403, the challenge code) and nothing is stored for a worker to decide."""
    body = _body(api)
    nonce = base64.urlsafe_b64decode(body["nonce"] + "=" * (-len(body["nonce"]) % 4))
    if defect == "forged-mac":
        nonce = nonce[:-1] + bytes([nonce[-1] ^ 1])
    elif defect == "wrong-length":
        nonce = nonce[:-1]
    else:
        nonce = issue_challenge(
            api.challenge_secret, SIM_NOW - timedelta(hours=1), ttl=timedelta(minutes=5), holder=api.key_id
        ).nonce
    body["nonce"] = base64.urlsafe_b64encode(nonce).rstrip(b"=").decode()
    before = _stored(api)
    r = api.client.post("/v1/attestations", json=body, headers=api.headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == ("challenge.expired" if defect == "expired" else "challenge.invalid")
    assert _stored(api) == before


def test_enclave_api_nonce_of_another_licence_refused(api: Api) -> None:
    """Issue 17, finding 8: a nonce is bound to the licence key that asked for it. Another licence's nonce in this
    licence's attestation is 403 ``challenge.invalid`` and nothing is stored; that licence can still use it."""
    theirs = api.client.post("/v1/challenges", headers=api.other_headers).json()["nonce"]
    body = _body(api)
    body["nonce"] = theirs
    before = _stored(api)
    r = api.client.post("/v1/attestations", json=body, headers=api.headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "challenge.invalid"
    assert _stored(api) == before


def test_enclave_api_nonce_bound_to_no_licence_refused(api: Api) -> None:
    """A nonce whose MAC names no licence key (as issued before nonces were bound) is not this licence's."""
    body = _body(api)
    unbound = issue_challenge(api.challenge_secret, SIM_NOW).nonce
    body["nonce"] = base64.urlsafe_b64encode(unbound).rstrip(b"=").decode()
    r = api.client.post("/v1/attestations", json=body, headers=api.headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "challenge.invalid"


def test_enclave_api_stored_request_names_its_nonce_holder(api: Api) -> None:
    """The decision checks the MAC again with the key id stored beside the request."""
    r = api.client.post("/v1/attestations", json=_body(api), headers=api.headers)
    assert r.status_code == 202, r.text
    with Session(api.engine) as s:
        holder = s.scalar(select(Attestation.nonce_holder).where(Attestation.id == r.json()["id"]))
    assert holder == api.key_id
