"""The admin API (/v1/admin) over HTTP against real PostgreSQL: credentials and kinds, catalogue and wrapped DEKs,
reference values, policies, entitlements and licence keys, lease revocation, cutting a customer off (credential
revocation, entitlement and customer status changes that revoke live leases), and the attestation record.

Requests go through a TestClient on the real app, whose sessions commit; rows get unique names so tests never
collide, and the per-run database is dropped at the end.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.support.factories import make_customer, make_entitlement, make_lease, make_model_version
from verifier import limits
from verifier.app import create_app
from verifier.auth.credentials import authenticate, issue_credential
from verifier.catalog import service as catalog_service
from verifier.config import Settings
from verifier.db.models import (
    ApiCredential,
    AppraisalPolicy,
    Attestation,
    AttestationStatus,
    AuditEvent,
    CredentialKind,
    Customer,
    Deployment,
    Entitlement,
    Lease,
    LeaseStatus,
    Model,
    ModelKey,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.errors import Code, KeywardError
from verifier.keywrap.kek import LocalAesKek, model_key_context

ADMIN = "/v1/admin"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture(scope="module")
def pepper(settings: Settings) -> bytes:
    return settings.credential_pepper.get_secret_value().encode()


@pytest.fixture(scope="module")
def kek(settings: Settings) -> LocalAesKek:
    return LocalAesKek(bytes.fromhex(settings.kek_hex.get_secret_value()))


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    assert any(path.startswith(ADMIN) for path in app.openapi()["paths"]), "create_app must mount /v1/admin"
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def admin_token(engine: Engine, pepper: bytes) -> str:
    """An admin credential bootstrapped straight into the database (as an operator's CLI would)."""
    with Session(engine) as s:
        _, token = issue_credential(s, pepper, CredentialKind.ADMIN, label="test bootstrap", now=datetime.now(UTC))
        s.commit()
    return token


@pytest.fixture
def api(client: TestClient, admin_token: str) -> Api:
    return Api(client, admin_token)


class Api:
    """A TestClient wrapper that sends the admin credential and checks the status code."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = _auth(token)

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = self.client.request(method, ADMIN + path, headers=self.headers, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None, expect: int = 201) -> Any:
        return self.call("POST", path, expect, json=body)

    def get(self, path: str, expect: int = 200, **params: Any) -> Any:
        return self.call("GET", path, expect, params=params)

    def patch(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        return self.call("PATCH", path, expect, json=body)

    def customer(self) -> dict[str, Any]:
        result: dict[str, Any] = self.post("/customers", {"name": _unique("customer")})
        return result

    def model(self) -> dict[str, Any]:
        result: dict[str, Any] = self.post("/models", {"name": _unique("model"), "description": "a model"})
        return result

    def entitlement(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "customer_id": self.customer()["id"],
            "model_id": self.model()["id"],
            "allowed_platforms": ["intel-tdx"],
            "seats": 2,
            "max_gpus": 8,
            "lease_ttl_seconds": 3600,
        } | overrides
        result: dict[str, Any] = self.post("/entitlements", body)
        return result


def _audit(engine: Engine, tag: str, subject_id: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.tag == tag, AuditEvent.subject_id == subject_id)))


# -- authentication --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "auth.missing"),
        ({"Authorization": "Bearer "}, "auth.missing"),
        ({"Authorization": "Bearer not-a-keyward-token"}, "auth.invalid"),
        ({"Authorization": "Bearer kw_0123456789abcdef_" + "A" * 43}, "auth.invalid"),
    ],
)
def test_missing_or_invalid_credential_is_401(client: TestClient, headers: dict[str, str], code: str) -> None:
    for method, path in (("GET", "/customers"), ("POST", "/models"), ("GET", "/attestations")):
        response = client.request(method, ADMIN + path, headers=headers, json={"name": "x"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code


def test_wrong_secret_of_a_real_key_id_is_401(client: TestClient, admin_token: str) -> None:
    key_id = admin_token.split("_")[1]
    response = client.get(ADMIN + "/customers", headers=_auth(f"kw_{key_id}_{'B' * 43}"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.invalid"


def test_revoked_admin_credential_is_401(client: TestClient, engine: Engine, pepper: bytes) -> None:
    with Session(engine) as s:
        row, token = issue_credential(s, pepper, CredentialKind.ADMIN, label="soon revoked", now=datetime.now(UTC))
        s.commit()
        assert client.get(ADMIN + "/customers", headers=_auth(token)).status_code == 200
        row.revoked_at = datetime.now(UTC)
        s.commit()
    response = client.get(ADMIN + "/customers", headers=_auth(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.invalid"


# -- customers -------------------------------------------------------------------------------------------------


def test_customers_create_get_list(api: Api) -> None:
    name = _unique("acme")
    created = api.post("/customers", {"name": name})
    assert created["name"] == name
    assert created["status"] == "active"
    assert api.get(f"/customers/{created['id']}") == created
    assert created in api.get("/customers", limit=200)

    suspended = api.post("/customers", {"name": _unique("acme"), "status": "suspended"})
    assert suspended["status"] == "suspended"

    duplicate = api.post("/customers", {"name": name}, expect=409)
    assert duplicate["error"]["code"] == "resource.conflict"
    assert api.get(f"/customers/{uuid.uuid4()}", expect=404)["error"]["code"] == "resource.not_found"
    api.post("/customers", {"name": ""}, expect=400)
    api.post("/customers", {"name": "x", "unexpected": 1}, expect=400)
    api.post("/customers", {"name": "\x00"}, expect=400)  # found by the fuzzer: NUL reached PostgreSQL (500)


def test_customers_rename_audited_and_unique(api: Api, engine: Engine) -> None:
    created, other = api.post("/customers", {"name": _unique("old")}), api.post("/customers", {"name": _unique("b")})
    new = _unique("new")
    assert api.patch(f"/customers/{created['id']}", {"name": new})["name"] == new
    [event] = _audit(engine, "admin:customer:renamed", created["id"])
    assert event.data == {"from": created["name"], "to": new}
    error = api.patch(f"/customers/{created['id']}", {"name": other["name"]}, expect=409)["error"]
    assert error["code"] == "resource.conflict"
    assert api.get(f"/customers/{created['id']}")["name"] == new
    api.patch(f"/customers/{created['id']}", {}, expect=400)


def test_customers_create_is_audited(api: Api, engine: Engine) -> None:
    created = api.post("/customers", {"name": _unique("audited")})
    [event] = _audit(engine, "admin:customer:created", created["id"])
    assert event.actor.startswith("admin:")
    assert event.data == {"name": created["name"], "status": "active"}


def test_customer_list_paginates(api: Api) -> None:
    for _ in range(3):
        api.customer()
    first = api.get("/customers", limit=2)
    second = api.get("/customers", limit=2, offset=2)
    assert len(first) == 2
    assert len(second) == 2
    assert {c["id"] for c in first}.isdisjoint({c["id"] for c in second})
    api.get("/customers", expect=400, limit=201)
    api.get("/customers", expect=400, offset=2**63)  # found by the fuzzer: was a database error (500)


# -- models, versions, keys ------------------------------------------------------------------------------------


def _keys(engine: Engine, version_id: str) -> list[ModelKey]:
    with Session(engine) as s:
        query = select(ModelKey).where(ModelKey.model_version_id == uuid.UUID(version_id)).order_by(ModelKey.created_at)
        return list(s.scalars(query))


def _assert_no_dek(payload: Any, dek: bytes) -> None:
    text = str(payload)
    for form in (base64.b64encode(dek).decode(), base64.urlsafe_b64encode(dek).decode().rstrip("="), dek.hex()):
        assert form not in text
    assert "dek" not in text.lower().replace("dek_b64", "")
    assert "wrapped" not in text


def test_model_version_with_imported_dek_is_stored_wrapped(api: Api, engine: Engine, kek: LocalAesKek) -> None:
    model = api.model()
    assert model in api.get("/models", limit=200)
    dek = os.urandom(32)
    version = api.post(f"/models/{model['id']}/versions", {"version": "1.0", "dek_b64": base64.b64encode(dek).decode()})
    assert version["model_id"] == model["id"]
    assert version["version"] == "1.0"
    assert version["active_key"]["kek_id"] == kek.kek_id
    assert version["active_key"]["retired_at"] is None
    _assert_no_dek(version, dek)

    [key] = _keys(engine, version["id"])
    assert str(key.id) == version["active_key"]["id"]
    assert dek not in key.wrapped_dek
    assert kek.unwrap(key.wrapped_dek, context=model_key_context(version["id"])) == dek
    with pytest.raises(KeywardError) as exc:  # bound to its own model version: no other context opens it
        kek.unwrap(key.wrapped_dek, context=model_key_context(str(uuid.uuid4())))
    assert exc.value.code == Code.KEYWRAP_UNWRAP_FAILED

    duplicate = api.post(f"/models/{model['id']}/versions", {"version": "1.0"}, expect=409)["error"]
    assert (duplicate["code"], duplicate["fault"]) == ("resource.conflict", "request")
    for bad in (base64.b64encode(os.urandom(16)).decode(), "not base64!"):
        error = api.post(f"/models/{model['id']}/versions", {"version": "2.0", "dek_b64": bad}, expect=400)
        assert error["error"]["code"] == "usage.invalid"
    api.post(f"/models/{uuid.uuid4()}/versions", {"version": "1.0"}, expect=404)


def test_model_version_generates_a_dek_and_rotation_retires_it(api: Api, engine: Engine, kek: LocalAesKek) -> None:
    model = api.model()
    version = api.post(f"/models/{model['id']}/versions", {"version": "2.1"})
    [first] = _keys(engine, version["id"])
    context = model_key_context(version["id"])
    first_dek = kek.unwrap(first.wrapped_dek, context=context)
    assert len(first_dek) == 32
    _assert_no_dek(version, first_dek)

    rotated = api.post(f"/models/{model['id']}/versions/{version['id']}/rotate-key", expect=200)
    assert rotated["retired_key_ids"] == [str(first.id)]
    assert rotated["active_key"]["id"] != str(first.id)
    _assert_no_dek(rotated, first_dek)
    old, new = _keys(engine, version["id"])
    assert old.id == first.id
    assert old.retired_at is not None
    assert new.retired_at is None
    assert str(new.id) == rotated["active_key"]["id"]
    second_dek = kek.unwrap(new.wrapped_dek, context=context)
    assert second_dek != first_dek
    _assert_no_dek(rotated, second_dek)

    imported = os.urandom(32)
    again = api.post(
        f"/models/{model['id']}/versions/{version['id']}/rotate-key",
        {"dek_b64": base64.b64encode(imported).decode()},
        expect=200,
    )
    assert again["retired_key_ids"] == [str(new.id)]
    keys = _keys(engine, version["id"])
    assert [k.retired_at is None for k in keys] == [False, False, True]
    assert kek.unwrap(keys[-1].wrapped_dek, context=context) == imported
    _assert_no_dek(again, imported)

    other = api.model()
    api.post(f"/models/{other['id']}/versions/{version['id']}/rotate-key", expect=404)
    api.post(f"/models/{model['id']}/versions/{uuid.uuid4()}/rotate-key", expect=404)


# -- reference values and policies -----------------------------------------------------------------------------


def test_reference_values_lifecycle(api: Api) -> None:
    model = api.model()
    version = api.post(f"/models/{model['id']}/versions", {"version": "1.0"})
    values = {"allowed_measurements": {"mrtd": ["00" * 48], "rtmr0": ["11" * 48]}}
    rv = api.post(
        "/reference-values",
        {"model_version_id": version["id"], "platform": "intel-tdx", "values": values},
    )
    assert rv["status"] == "draft"
    assert rv["values"] == values
    assert rv["valid_until"] is None
    assert rv["valid_from"]

    snp = api.post(
        "/reference-values",
        {
            "model_version_id": version["id"],
            "platform": "amd-sev-snp",
            "status": "active",
            "values": {"allowed_measurements": ["22" * 48]},
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_until": "2027-01-01T00:00:00Z",
        },
    )
    assert snp["status"] == "active"
    listed = api.get("/reference-values", model_version_id=version["id"])
    assert {r["id"] for r in listed} == {rv["id"], snp["id"]}
    assert [r["id"] for r in api.get("/reference-values", model_version_id=version["id"], platform="intel-tdx")] == [
        rv["id"]
    ]
    assert [r["id"] for r in api.get("/reference-values", model_version_id=version["id"], status="active")] == [
        snp["id"]
    ]

    assert api.call("PATCH", f"/reference-values/{rv['id']}", 200, json={"status": "active"})["status"] == "active"
    assert api.call("PATCH", f"/reference-values/{rv['id']}", 200, json={"status": "retired"})["status"] == "retired"
    error = api.call("PATCH", f"/reference-values/{rv['id']}", 409, json={"status": "active"})
    assert error["error"]["code"] == "resource.conflict"
    assert error["error"]["actual"] == "active"
    api.call("PATCH", f"/reference-values/{uuid.uuid4()}", 404, json={"status": "active"})

    base = {"model_version_id": version["id"], "values": {"allowed_measurements": {"mrenclave": ["33" * 32]}}}
    api.post("/reference-values", base | {"platform": "nvidia-h100"}, expect=400)
    api.post(
        "/reference-values",
        base | {"platform": "intel-sgx", "valid_from": "2027-01-01T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"},
        expect=400,
    )
    api.post("/reference-values", base | {"platform": "intel-sgx", "model_version_id": str(uuid.uuid4())}, expect=404)


@pytest.mark.parametrize(
    ("platform", "values", "says"),
    [
        ("intel-tdx", {}, "allowed_measurements.mrtd"),
        ("intel-tdx", {"allowed_measurements": {"rtmr0": ["11" * 48]}}, "allowed_measurements.mrtd"),
        ("intel-sgx", {"allowed_measurements": {"mrsigner": ["22" * 32]}}, "MRSIGNER alone"),
        ("amd-sev-snp", {"allowed_family_ids": ["00" * 16]}, "allowed_host_data"),
        ("amd-sev-snp", {"expected_report_data": "00" * 64}, "pin no guest identity"),
        ("intel-tdx", {"allowed_mrtd": ["00" * 48]}, "not valid intel-tdx reference values"),
        ("amd-sev-snp", {"allowed_measurements": ["00"]}, "not valid amd-sev-snp reference values"),
    ],
    ids=["tdx-empty", "tdx-rtmr-only", "sgx-mrsigner-only", "snp-family-only", "snp-binding-only", "typo", "short"],
)
def test_reference_values_that_pin_no_identity_are_400(api: Api, platform: str, values: Any, says: str) -> None:
    model = api.model()
    version = api.post(f"/models/{model['id']}/versions", {"version": "1.0"})
    error = api.post(
        "/reference-values",
        {"model_version_id": version["id"], "platform": platform, "status": "active", "values": values},
        expect=400,
    )["error"]
    assert error["code"] == "request.invalid"
    assert says in error["message"]
    assert api.get("/reference-values", model_version_id=version["id"]) == []


def test_reference_values_stored_unconstrained_cannot_be_activated(api: Api, engine: Engine) -> None:
    model = api.model()
    version = api.post(f"/models/{model['id']}/versions", {"version": "1.0"})
    with Session(engine) as s:  # a row from before values had to pin an identity
        now = datetime.now(UTC)
        old = ReferenceValueSet(
            model_version_id=uuid.UUID(version["id"]),
            platform="intel-tdx",
            status=RecordStatus.DRAFT,
            values={},
            valid_from=now,
            valid_until=None,
            created_at=now,
        )
        s.add(old)
        s.commit()
        old_id = str(old.id)
    error = api.patch(f"/reference-values/{old_id}", {"status": "active"}, expect=400)["error"]
    assert error["code"] == "request.invalid"
    assert "allowed_measurements.mrtd" in error["message"]
    assert api.patch(f"/reference-values/{old_id}", {"status": "retired"})["status"] == "retired"


def test_policies(api: Api) -> None:
    name = _unique("tdx-strict")
    document = {"accepted_tcb_statuses": ["UpToDate"], "allow_debug": False}
    policy = api.post("/policies", {"name": name, "platform": "intel-tdx", "document": document})
    assert policy["name"] == name
    assert policy["document"] == document
    assert policy in api.get("/policies", limit=200)
    api.post("/policies", {"name": name, "platform": "intel-tdx", "document": {}}, expect=409)
    api.post("/policies", {"name": _unique("p"), "platform": "arm-cca", "document": {}}, expect=400)


@pytest.mark.parametrize(
    ("platform", "document"),
    [
        ("intel-tdx", {"accepted_tcb_status": ["UpToDate"]}),  # typo: accepted_tcb_statuses
        ("intel", {"allow_debug": "no"}),
        ("intel-sgx", {"allowed_measurements": {"mrenclave": "not a list"}}),
        ("amd-sev-snp", {"alow_debug": False}),
        ("snp", {"min_guest_svn": "high"}),
        ("amd-sev-snp", {"allowed_measurements": ["zz"]}),
    ],
    ids=[
        "intel-tdx-unknown-key",
        "intel-wrong-type",
        "intel-sgx-bad-measurements",
        "snp-unknown-key",
        "snp-wrong-type",
        "snp-bad-hex",
    ],
)
def test_policy_create_invalid_document_400(api: Api, platform: str, document: dict[str, Any]) -> None:
    """A policy the decision could not parse is refused to the admin who writes it, not stored to reject every
    customer's decision."""
    name = _unique("bad-policy")
    error = api.post("/policies", {"name": name, "platform": platform, "document": document}, expect=400)["error"]
    assert (error["code"], error["fault"]) == ("policy.invalid", "request")
    assert all(p["name"] != name for p in api.get("/policies", limit=200))


# -- entitlements and credentials ------------------------------------------------------------------------------


def test_entitlement_create_and_audit(api: Api, engine: Engine) -> None:
    policy = api.post("/policies", {"name": _unique("p"), "platform": "intel", "document": {"allow_debug": False}})
    entitlement = api.entitlement(
        allowed_versions=["1.0"],
        allowed_platforms=["intel-tdx", "amd-sev-snp"],
        policy_id=policy["id"],
        valid_until="2030-01-01T00:00:00Z",
    )
    assert entitlement["status"] == "active"
    assert entitlement["allowed_platforms"] == ["intel-tdx", "amd-sev-snp"]
    assert entitlement["policy_id"] == policy["id"]
    assert entitlement["seats"] == 2
    assert entitlement in api.get("/entitlements", customer_id=entitlement["customer_id"])
    assert api.get("/entitlements", model_id=str(uuid.uuid4())) == []

    [event] = _audit(engine, "admin:entitlement:created", entitlement["id"])
    assert event.actor.startswith("admin:")
    assert event.data["customer_id"] == entitlement["customer_id"]
    assert event.data["seats"] == 2

    customer, model = entitlement["customer_id"], entitlement["model_id"]
    base = {"customer_id": customer, "model_id": model, "allowed_platforms": ["intel-tdx"], "lease_ttl_seconds": 600}
    api.post("/entitlements", base | {"seats": 0}, expect=400)
    api.post("/entitlements", base | {"seats": 1, "allowed_platforms": []}, expect=400)
    api.post("/entitlements", base | {"seats": 1, "allowed_platforms": ["tpm"]}, expect=400)
    api.post("/entitlements", base | {"seats": 1, "customer_id": str(uuid.uuid4())}, expect=404)
    api.post("/entitlements", base | {"seats": 1, "policy_id": str(uuid.uuid4())}, expect=404)


def test_licence_key_is_an_enclave_credential_shown_once(
    api: Api, client: TestClient, engine: Engine, pepper: bytes
) -> None:
    entitlement = api.entitlement()
    issued = api.post(f"/entitlements/{entitlement['id']}/licence-keys", {"label": "cluster-a"})
    token = issued["token"]
    credential = issued["credential"]
    assert token.startswith("kw_")
    assert credential["kind"] == "enclave"
    assert credential["entitlement_id"] == entitlement["id"]
    assert credential["customer_id"] == entitlement["customer_id"]
    assert credential["label"] == "cluster-a"
    assert token.split("_")[1] == credential["key_id"]

    with Session(engine) as s:
        row = authenticate(s, pepper, token, [CredentialKind.ENCLAVE], now=datetime.now(UTC))
        assert str(row.id) == credential["id"]
        assert str(row.entitlement_id) == entitlement["id"]
        assert token.split("_", 2)[2].encode() not in row.secret_hash  # only a keyed hash is stored
    # Shown once: no listing or later response carries it.
    assert token not in str(api.get("/entitlements", customer_id=entitlement["customer_id"]))

    # A licence key is not an admin credential.
    for method, path in (("GET", "/customers"), ("POST", f"/entitlements/{entitlement['id']}/licence-keys")):
        response = client.request(method, ADMIN + path, headers=_auth(token))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "auth.forbidden"
        assert response.json()["error"]["actual"] == "enclave"

    [event] = _audit(engine, "admin:credential:issued", credential["id"])
    assert event.data["kind"] == "enclave"
    assert event.data["entitlement_id"] == entitlement["id"]
    assert token not in str(event.data)

    second = api.post(f"/entitlements/{entitlement['id']}/licence-keys")  # no body: default label
    assert second["token"] != token
    assert second["credential"]["label"] == "licence key"
    error = api.post(f"/entitlements/{uuid.uuid4()}/licence-keys", expect=404)
    assert error["error"]["code"] == "resource.not_found"  # entitlement.not_found is the licence check's (403)


def _whoami(client: TestClient, token: str) -> int:
    """The status an admin read gets with ``token`` (200 while it works, 401 once it does not)."""
    return client.get(ADMIN + "/customers", headers=_auth(token), params={"limit": 1}).status_code


def _expire(engine: Engine, credential_id: str, at: datetime) -> None:
    with Session(engine) as s:
        s.get_one(ApiCredential, uuid.UUID(credential_id)).expires_at = at
        s.commit()


def test_credential_with_expiry_works_until_it_expires(api: Api, client: TestClient, engine: Engine) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    issued = api.post("/credentials", {"kind": "admin", "label": "temp", "expires_at": until.isoformat()})
    assert datetime.fromisoformat(issued["credential"]["expires_at"]) == until
    assert _whoami(client, issued["token"]) == 200
    _expire(engine, issued["credential"]["id"], datetime.now(UTC) - timedelta(seconds=1))
    response = client.get(ADMIN + "/customers", headers=_auth(issued["token"]))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.invalid"


def test_credential_expiry_in_the_past_refused(api: Api) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert (
        api.post("/credentials", {"kind": "admin", "label": "x", "expires_at": past}, expect=400)["error"]["code"]
        == "usage.invalid"
    )
    entitlement = api.entitlement()
    api.post(f"/entitlements/{entitlement['id']}/licence-keys", {"expires_at": past}, expect=400)


def test_credential_rotation_successor_works_and_the_old_one_after_its_grace_expires(
    api: Api, client: TestClient, engine: Engine
) -> None:
    old = api.post("/credentials", {"kind": "admin", "label": "ci deployer"})
    new = api.post(f"/credentials/{old['credential']['id']}/rotate", {"grace_seconds": 600})
    assert (new["credential"]["label"], new["credential"]["kind"], new["credential"]["expires_at"]) == (
        "ci deployer", "admin", None
    )  # fmt: skip
    assert new["token"] != old["token"]
    assert _whoami(client, new["token"]) == _whoami(client, old["token"]) == 200  # both during the grace
    [listed] = [c for c in api.get("/credentials", kind="admin", limit=200) if c["id"] == old["credential"]["id"]]
    cut = datetime.fromisoformat(listed["expires_at"])
    assert timedelta(seconds=590) < cut - datetime.now(UTC) <= timedelta(seconds=600)
    [event] = _audit(engine, "admin:credential:rotated", old["credential"]["id"])
    assert event.data["successor"] == new["credential"]["id"]
    assert new["token"] not in str(event.data)
    _expire(engine, old["credential"]["id"], datetime.now(UTC) - timedelta(seconds=1))  # the grace is over
    assert (_whoami(client, old["token"]), _whoami(client, new["token"])) == (401, 200)
    assert api.post(f"/credentials/{old['credential']['id']}/rotate", expect=409)["error"]["code"] == (
        "resource.conflict"
    )


def test_licence_key_rotation_keeps_its_entitlement(api: Api) -> None:
    entitlement = api.entitlement()
    old = api.post(f"/entitlements/{entitlement['id']}/licence-keys", {"label": "prod"})
    new = api.post(f"/credentials/{old['credential']['id']}/rotate", {"grace_seconds": 0})
    assert (new["credential"]["kind"], new["credential"]["entitlement_id"], new["credential"]["label"]) == (
        "enclave", entitlement["id"], "prod"
    )  # fmt: skip


@pytest.mark.parametrize("grace", [-1, 7 * 24 * 3600 + 1])
def test_credential_rotation_grace_out_of_range_refused(api: Api, grace: int) -> None:
    old = api.post("/credentials", {"kind": "admin", "label": "x"})
    api.post(f"/credentials/{old['credential']['id']}/rotate", {"grace_seconds": grace}, expect=400)


def test_credential_rotation_of_a_revoked_one_conflicts(api: Api) -> None:
    old = api.post("/credentials", {"kind": "admin", "label": "x"})
    api.post(f"/credentials/{old['credential']['id']}/revoke", expect=200)
    api.post(f"/credentials/{old['credential']['id']}/rotate", expect=409)


def test_billing_and_admin_credentials(api: Api, client: TestClient, engine: Engine, pepper: bytes) -> None:
    customer = api.customer()
    billing = api.post("/credentials", {"kind": "billing-read", "label": "billing", "customer_id": customer["id"]})
    assert billing["credential"]["kind"] == "billing-read"
    assert billing["credential"]["entitlement_id"] is None
    response = client.get(ADMIN + "/customers", headers=_auth(billing["token"]))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "auth.forbidden"
    with Session(engine) as s:
        assert (
            authenticate(s, pepper, billing["token"], [CredentialKind.BILLING_READ], now=datetime.now(UTC)).kind
            == "billing-read"
        )

    staff = api.post("/credentials", {"kind": "admin", "label": "second operator"})
    assert staff["credential"]["kind"] == "admin"
    assert client.get(ADMIN + "/customers", headers=_auth(staff["token"])).status_code == 200
    [event] = _audit(engine, "admin:credential:issued", staff["credential"]["id"])
    assert event.data["kind"] == "admin"

    api.post("/credentials", {"kind": "enclave", "label": "x"}, expect=400)  # licence keys come from entitlements
    api.post("/credentials", {"kind": "admin", "label": "x", "customer_id": str(uuid.uuid4())}, expect=404)
    with Session(engine) as s:
        kinds = set(s.scalars(select(ApiCredential.kind).where(ApiCredential.label == "second operator")))
    assert kinds == {CredentialKind.ADMIN}


# -- leases, deployments ---------------------------------------------------------------------------------------


def test_lease_list_and_revoke(api: Api, engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as s:
        entitlement = make_entitlement(s, now=now)
        version = make_model_version(s, s.get_one(Model, entitlement.model_id))
        deployment = Deployment(
            entitlement_id=entitlement.id, name="prod-eu", first_attested_at=now, last_attested_at=now
        )
        s.add(deployment)
        s.flush()
        live = make_lease(s, deployment, version, now=now)
        expired = make_lease(s, deployment, version, now=now - timedelta(hours=2), status=LeaseStatus.EXPIRED)
        s.commit()
    eid = str(entitlement.id)

    assert {x["id"] for x in api.get("/leases", entitlement_id=eid)} == {str(live.id), str(expired.id)}
    assert [x["id"] for x in api.get("/leases", entitlement_id=eid, status="live")] == [str(live.id)]
    [dep] = api.get("/deployments", entitlement_id=eid)
    assert dep["id"] == str(deployment.id)
    assert dep["name"] == "prod-eu"

    revoked = api.post(f"/leases/{live.id}/revoke", expect=200)
    assert revoked["status"] == "revoked"
    assert revoked["ended_at"] is not None
    with Session(engine) as s:
        row = s.get_one(Lease, live.id)
        assert row.status == LeaseStatus.REVOKED
        assert row.ended_at is not None
        assert abs(row.ended_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert api.get("/leases", entitlement_id=eid, status="live") == []
    [event] = _audit(engine, "admin:lease:revoked", str(live.id))
    assert event.data["entitlement_id"] == eid
    assert event.actor.startswith("admin:")

    assert api.post(f"/leases/{live.id}/revoke", expect=409)["error"]["actual"] == "revoked"
    assert api.post(f"/leases/{expired.id}/revoke", expect=409)["error"]["actual"] == "expired"
    api.post(f"/leases/{uuid.uuid4()}/revoke", expect=404)
    api.get("/leases", expect=400, status="dead")


# -- cutting a customer off ------------------------------------------------------------------------------------


def _with_leases(s: Session, entitlement: Entitlement, now: datetime, *names: str) -> list[Lease]:
    """A live lease (1 h) for each deployment name under ``entitlement``."""
    version = make_model_version(s, s.get_one(Model, entitlement.model_id))
    leases = []
    for name in names:
        deployment = Deployment(entitlement_id=entitlement.id, name=name, first_attested_at=now, last_attested_at=now)
        s.add(deployment)
        s.flush()
        leases.append(make_lease(s, deployment, version, now=now))
    return leases


def _lease_statuses(engine: Engine, leases: list[Lease]) -> list[tuple[LeaseStatus, bool]]:
    with Session(engine) as s:
        rows = [s.get_one(Lease, lease.id) for lease in leases]
        return [(row.status, row.ended_at is not None) for row in rows]


def test_credential_revoke_refuses_the_token_and_audits(api: Api, client: TestClient, engine: Engine) -> None:
    entitlement = api.entitlement()
    issued = api.post(f"/entitlements/{entitlement['id']}/licence-keys", {"label": "to revoke"})
    kept = api.post(f"/entitlements/{entitlement['id']}/licence-keys", {"label": "kept"})
    credential_id = issued["credential"]["id"]
    assert client.post("/v1/challenges", headers=_auth(issued["token"])).status_code == 200

    revoked = api.post(f"/credentials/{credential_id}/revoke", expect=200)
    assert revoked["id"] == credential_id
    assert revoked["revoked_at"] is not None
    response = client.post("/v1/challenges", headers=_auth(issued["token"]))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.invalid"
    assert client.post("/v1/challenges", headers=_auth(kept["token"])).status_code == 200
    listed = {c["id"]: c["revoked_at"] for c in api.get("/credentials", entitlement_id=entitlement["id"])}
    assert listed.keys() == {credential_id, kept["credential"]["id"]}
    assert listed[credential_id] is not None
    assert listed[kept["credential"]["id"]] is None
    listing = str(api.get("/credentials", kind="enclave"))
    assert issued["token"] not in listing
    assert kept["token"] not in listing

    [event] = _audit(engine, "admin:credential:revoked", credential_id)
    assert event.actor.startswith("admin:")
    assert event.data["kind"] == "enclave"
    assert event.data["entitlement_id"] == entitlement["id"]
    assert api.post(f"/credentials/{credential_id}/revoke", expect=409)["error"]["code"] == "resource.conflict"
    api.post(f"/credentials/{uuid.uuid4()}/revoke", expect=404)


def test_revoked_staff_credential_via_api_is_401(api: Api, client: TestClient) -> None:
    staff = api.post("/credentials", {"kind": "admin", "label": _unique("operator")})
    assert client.get(ADMIN + "/customers", headers=_auth(staff["token"])).status_code == 200
    api.post(f"/credentials/{staff['credential']['id']}/revoke", expect=200)
    response = client.get(ADMIN + "/customers", headers=_auth(staff["token"]))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.invalid"


@pytest.mark.parametrize("status", ["suspended", "revoked"])
def test_entitlement_status_change_revokes_its_live_leases(api: Api, engine: Engine, status: str) -> None:
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as s:
        entitlement = make_entitlement(s, now=now)
        leases = _with_leases(s, entitlement, now, "a", "b")
        bystander = _with_leases(
            s, make_entitlement(s, customer=s.get_one(Customer, entitlement.customer_id)), now, "c"
        )
        s.commit()
    eid = str(entitlement.id)

    out = api.patch(f"/entitlements/{eid}", {"status": status})
    assert out["status"] == status
    assert _lease_statuses(engine, leases) == [(LeaseStatus.REVOKED, True)] * 2
    assert _lease_statuses(engine, bystander) == [(LeaseStatus.LIVE, False)]  # another entitlement of the customer
    [event] = _audit(engine, "admin:entitlement:status_changed", eid)
    assert (event.data["from"], event.data["to"]) == ("active", status)
    assert sorted(event.data["revoked_leases"]) == sorted(str(lease.id) for lease in leases)
    for lease in leases:
        [revoked] = _audit(engine, "admin:lease:revoked", str(lease.id))
        assert revoked.data["reason"] == f"entitlement {status}"
        assert revoked.data["entitlement_id"] == eid
    assert api.get("/leases", entitlement_id=eid, status="live") == []
    # Repeating it changes and records nothing.
    api.patch(f"/entitlements/{eid}", {"status": status})
    assert len(_audit(engine, "admin:entitlement:status_changed", eid)) == 1


def test_entitlement_status_transitions(api: Api, engine: Engine) -> None:
    eid = api.entitlement()["id"]
    assert api.patch(f"/entitlements/{eid}", {"status": "suspended"})["status"] == "suspended"
    assert api.patch(f"/entitlements/{eid}", {"status": "active"})["status"] == "active"
    events = _audit(engine, "admin:entitlement:status_changed", eid)
    assert [(e.data["from"], e.data["to"], e.data["revoked_leases"]) for e in events] == [
        ("active", "suspended", []),
        ("suspended", "active", []),
    ]
    assert api.patch(f"/entitlements/{eid}", {"status": "revoked"})["status"] == "revoked"
    error = api.patch(f"/entitlements/{eid}", {"status": "active"}, expect=409)["error"]
    assert (error["code"], error["expected"], error["actual"]) == ("resource.conflict", "(none)", "active")
    api.patch(f"/entitlements/{eid}", {"status": "paused"}, expect=400)
    assert api.patch(f"/entitlements/{uuid.uuid4()}", {"status": "active"}, expect=404)["error"]["code"] == (
        "resource.not_found"
    )


def test_entitlement_terms_change_audited_with_before_and_after(api: Api, engine: Engine) -> None:
    eid = api.entitlement()["id"]
    changed = api.patch(f"/entitlements/{eid}", {"seats": 5, "max_gpus": 0, "allowed_versions": ["1.2"]})
    assert (changed["seats"], changed["max_gpus"], changed["allowed_versions"], changed["status"]) == (
        5, 0, ["1.2"], "active"
    )  # fmt: skip
    [event] = _audit(engine, "admin:entitlement:terms_changed", eid)
    assert event.data == {
        "before": {"allowed_versions": [], "max_gpus": 8, "seats": 2},
        "after": {"allowed_versions": ["1.2"], "max_gpus": 0, "seats": 5},
    }
    api.patch(f"/entitlements/{eid}", {"seats": 5})  # nothing changes: nothing recorded
    assert len(_audit(engine, "admin:entitlement:terms_changed", eid)) == 1


def test_entitlement_terms_and_status_in_one_patch(api: Api, engine: Engine) -> None:
    eid = api.entitlement()["id"]
    changed = api.patch(f"/entitlements/{eid}", {"lease_ttl_seconds": 600, "status": "suspended"})
    assert (changed["lease_ttl_seconds"], changed["status"]) == (600, "suspended")
    assert len(_audit(engine, "admin:entitlement:status_changed", eid)) == 1


def test_entitlement_terms_null_removes_the_policy_and_the_end(api: Api) -> None:
    policy = api.post("/policies", {"name": _unique("policy"), "platform": "intel-tdx", "document": {}})
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    eid = api.entitlement(policy_id=policy["id"], valid_until=until)["id"]
    changed = api.patch(f"/entitlements/{eid}", {"policy_id": None, "valid_until": None})
    assert (changed["policy_id"], changed["valid_until"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "request.invalid"),
        ({"seats": None}, 400, "request.invalid"),
        ({"seats": 0}, 400, "request.invalid"),
        ({"allowed_platforms": []}, 400, "request.invalid"),
        ({"model_id": str(uuid.uuid4())}, 400, "request.invalid"),  # the model never changes
        ({"valid_until": "2000-01-01T00:00:00Z"}, 400, "usage.invalid"),  # before the kept valid_from
        ({"policy_id": str(uuid.uuid4())}, 404, "resource.not_found"),
    ],
    ids=["empty", "null-seats", "zero-seats", "no-platform", "model", "empty-window", "unknown-policy"],
)
def test_entitlement_terms_defect_refused_and_nothing_changes(
    api: Api, engine: Engine, body: dict[str, Any], status: int, code: str
) -> None:
    before = api.entitlement()
    eid = before["id"]
    assert api.patch(f"/entitlements/{eid}", body, expect=status)["error"]["code"] == code
    assert api.get("/entitlements", customer_id=before["customer_id"]) == [before]
    assert _audit(engine, "admin:entitlement:terms_changed", eid) == []


def test_entitlement_terms_of_a_revoked_entitlement_conflict(api: Api) -> None:
    eid = api.entitlement()["id"]
    api.patch(f"/entitlements/{eid}", {"status": "revoked"})
    assert api.patch(f"/entitlements/{eid}", {"seats": 9}, expect=409)["error"]["code"] == "resource.conflict"


def test_customer_suspension_cuts_the_customer_off(api: Api, client: TestClient, engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as s:
        customer = make_customer(s, now=now)
        one, two = make_entitlement(s, customer=customer, now=now), make_entitlement(s, customer=customer, now=now)
        leases = _with_leases(s, one, now, "a") + _with_leases(s, two, now, "b")
        bystander = _with_leases(s, make_entitlement(s, now=now), now, "c")  # another customer's
        s.commit()
    cid = str(customer.id)
    licence = api.post(f"/entitlements/{one.id}/licence-keys")["token"]
    billing = api.post("/credentials", {"kind": "billing-read", "label": "billing", "customer_id": cid})["token"]
    assert client.post("/v1/challenges", headers=_auth(licence)).status_code == 200

    assert api.patch(f"/customers/{cid}", {"status": "suspended"})["status"] == "suspended"
    assert api.get(f"/customers/{cid}")["status"] == "suspended"
    assert _lease_statuses(engine, leases) == [(LeaseStatus.REVOKED, True)] * 2
    assert _lease_statuses(engine, bystander) == [(LeaseStatus.LIVE, False)]
    # Its licence keys are refused; the provider's billing credential for it still reads its usage.
    response = client.post("/v1/challenges", headers=_auth(licence))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "auth.customer_suspended"
    assert client.get("/v1/billing/entitlements", headers=_auth(billing)).status_code == 200
    [event] = _audit(engine, "admin:customer:status_changed", cid)
    assert (event.data["from"], event.data["to"]) == ("active", "suspended")
    assert sorted(event.data["revoked_leases"]) == sorted(str(lease.id) for lease in leases)
    for lease in leases:
        [revoked] = _audit(engine, "admin:lease:revoked", str(lease.id))
        assert revoked.data["reason"] == "customer suspended"

    # Reinstated: the key works again; the revoked leases stay revoked.
    assert api.patch(f"/customers/{cid}", {"status": "active"})["status"] == "active"
    assert client.post("/v1/challenges", headers=_auth(licence)).status_code == 200
    assert _lease_statuses(engine, leases) == [(LeaseStatus.REVOKED, True)] * 2
    api.patch(f"/customers/{cid}", {"status": "closed"}, expect=400)
    api.patch(f"/customers/{uuid.uuid4()}", {"status": "active"}, expect=404)


# -- attestations ----------------------------------------------------------------------------------------------


def _attestation(
    s: Session, entitlement_id: uuid.UUID, version_id: uuid.UUID, platforms: list[str], status: str, at: datetime
) -> Attestation:
    att = Attestation(
        entitlement_id=entitlement_id,
        model_version_id=version_id,
        deployment_name="dep",
        kind="attest",
        platforms=platforms,
        status=AttestationStatus(status),
        nonce=os.urandom(32),
        enclave_jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y"},
        evidence=[{"type": platforms[0], "evidence": "AAAA"}],
        claims={"platform": platforms[0]},
        verdict={
            "ok": status == "accepted",
            "reasons": [] if status == "accepted" else [{"code": "intel.pck.revoked"}],
        },
        timings={"total_ms": 12.5},
        created_at=at,
        decided_at=at,
    )
    s.add(att)
    s.flush()
    return att


def test_attestation_list_filters_and_detail(api: Api, engine: Engine) -> None:
    t0 = datetime(2031, 3, 1, tzinfo=UTC)  # a window no other test writes into
    with Session(engine, expire_on_commit=False) as s:
        e1 = make_entitlement(s, now=t0)
        e2 = make_entitlement(s, now=t0)
        v1 = make_model_version(s, s.get_one(Model, e1.model_id))
        v2 = make_model_version(s, s.get_one(Model, e2.model_id))
        a = _attestation(s, e1.id, v1.id, ["intel-tdx"], "accepted", t0)
        b = _attestation(s, e1.id, v1.id, ["amd-sev-snp"], "rejected", t0 + timedelta(hours=1))
        c = _attestation(s, e2.id, v2.id, ["intel-tdx", "amd-sev-snp"], "accepted", t0 + timedelta(hours=2))
        s.commit()

    window: dict[str, Any] = {"from": "2031-03-01T00:00:00Z", "to": "2031-03-02T00:00:00Z"}

    def ids(**params: Any) -> list[str]:
        return [x["id"] for x in api.get("/attestations", **(window | params))]

    assert ids() == [str(c.id), str(b.id), str(a.id)]  # newest first
    assert ids(customer_id=str(e1.customer_id)) == [str(b.id), str(a.id)]
    assert ids(model_id=str(e2.model_id)) == [str(c.id)]
    assert ids(status="accepted") == [str(c.id), str(a.id)]
    assert ids(platform="amd-sev-snp") == [str(c.id), str(b.id)]
    assert ids(platform="intel-tdx", customer_id=str(e1.customer_id)) == [str(a.id)]
    assert ids(platform="intel-sgx") == []
    assert ids(**{"from": "2031-03-01T01:00:00Z"}) == [str(c.id), str(b.id)]
    assert ids(to="2031-03-01T01:00:00Z") == [str(a.id)]
    assert ids(limit=1) == [str(c.id)]
    assert ids(limit=1, offset=1) == [str(b.id)]

    api.get("/attestations", expect=400, limit=201)
    api.get("/attestations", expect=400, platform="tpm")
    api.get("/attestations", expect=400, to="2031-03-01T01:00:00")  # naive time refused

    summary = api.get("/attestations", **(window | {"status": "rejected"}))[0]
    assert "verdict" not in summary
    detail = api.get(f"/attestations/{b.id}")
    # Stored before reasons carried their fault: staff see it all the same, derived from the code.
    assert detail["verdict"] == {"ok": False, "reasons": [{"code": "intel.pck.revoked", "fault": "failed"}]}
    assert detail["claims"] == {"platform": "amd-sev-snp"}
    assert detail["timings"] == {"total_ms": 12.5}
    assert detail["status"] == "rejected"
    assert detail["platforms"] == ["amd-sev-snp"]
    assert api.get(f"/attestations/{uuid.uuid4()}", expect=404)["error"]["code"] == "attestation.not_found"


def test_catalog_changes_are_audited_with_the_credential_as_actor(api: Api, engine: Engine) -> None:
    model = api.model()
    version = api.post(f"/models/{model['id']}/versions", {"version": "1.0"})
    rv = api.post(
        "/reference-values",
        {
            "model_version_id": version["id"],
            "platform": "intel-tdx",
            "values": {"allowed_measurements": {"mrtd": ["00" * 48]}},
        },
    )
    api.patch(f"/reference-values/{rv['id']}", {"status": "active"})
    with Session(engine) as s:
        events = {
            (e.tag, e.subject_id): e
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.subject_id.in_([model["id"], version["id"], rv["id"]]))
            )
        }
    assert set(events) == {
        ("admin:model:created", model["id"]),
        ("admin:model_version:created", version["id"]),
        ("admin:reference_values:created", rv["id"]),
        ("admin:reference_values:status_changed", rv["id"]),
    }
    assert all(e.actor.startswith("admin:") for e in events.values())
    assert events[("admin:reference_values:status_changed", rv["id"])].data["to"] == "active"


# -- admin input as strict as enclave input (issue 17, findings 5, 6, 9) ------------------------------------------


def _nested(depth: int, leaf: Any = "vcek") -> Any:
    """``leaf`` inside ``depth`` nested lists."""
    doc = leaf
    for _ in range(depth):
        doc = [doc]
    return doc


def _model_version(api: Api) -> dict[str, Any]:
    result: dict[str, Any] = api.post(f"/models/{api.model()['id']}/versions", {"version": "1.0"})
    return result


#: Policy documents the SNP parser takes (it reads allowed_csp_ids with str()), each over one admin-document limit.
_BAD_POLICY_DOCUMENTS = {
    "deep-300": {"allowed_csp_ids": [_nested(300)]},  # was stored, then unrenderable: a 500 (finding 5)
    "deep-over-limit": {"allowed_csp_ids": [_nested(limits.MAX_ADMIN_DOCUMENT_DEPTH)]},  # renderable, still too deep
    "too-large": {"allowed_csp_ids": ["x" * (limits.MAX_ADMIN_DOCUMENT_BYTES + 1)]},
    "infinity": {"cce_policies": {"x": 1e999}},  # not JSON a database stores
}


@pytest.mark.parametrize("document", _BAD_POLICY_DOCUMENTS.values(), ids=_BAD_POLICY_DOCUMENTS.keys())
def test_policy_document_too_deep_or_large_is_400_and_not_stored(api: Api, document: dict[str, Any]) -> None:
    name = _unique("deep")
    body = json.dumps({"name": name, "platform": "amd-sev-snp", "document": document})  # Infinity: as parsers read
    response = api.client.post(
        ADMIN + "/policies", headers=api.headers | {"Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"]["code"] == "request.invalid"
    assert "document" in error["error"]["message"]
    assert all(p["name"] != name for p in api.get("/policies", limit=200))


def test_policy_document_at_the_depth_limit_is_stored(api: Api) -> None:
    document = {"allowed_csp_ids": [_nested(limits.MAX_ADMIN_DOCUMENT_DEPTH - 2)]}
    policy = api.post("/policies", {"name": _unique("deep-ok"), "platform": "amd-sev-snp", "document": document})
    assert policy["document"] == document


@pytest.mark.parametrize(
    "values",
    [
        {"allowed_measurements": ["22" * 48], "cce_policies": {"p": _nested(300)}},
        {"allowed_measurements": ["22" * 48], "cce_policies": {"p": "x" * (limits.MAX_ADMIN_DOCUMENT_BYTES + 1)}},
    ],
    ids=["deep", "too-large"],
)
def test_reference_values_too_deep_or_large_are_400_and_not_stored(api: Api, values: dict[str, Any]) -> None:
    version = _model_version(api)
    error = api.post(
        "/reference-values",
        {"model_version_id": version["id"], "platform": "amd-sev-snp", "values": values},
        expect=400,
    )["error"]
    assert error["code"] == "request.invalid"
    assert "values" in error["message"]
    assert api.get("/reference-values", model_version_id=version["id"]) == []


def test_admin_response_that_cannot_be_rendered_leaves_nothing_stored(
    settings: Settings, engine: Engine, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's transaction ends after the response is rendered: a stored row the response cannot show (a
    document deeper than the serializer goes, stored before documents were bounded) is a 500 that commits
    nothing, never a 500 whose write stays."""
    real = catalog_service.create_policy

    def unrenderable(session: Session, **kwargs: Any) -> AppraisalPolicy:
        policy = real(session, **kwargs)
        policy.document = {"allowed_csp_ids": [_nested(300)]}
        session.flush()
        return policy

    monkeypatch.setattr(catalog_service, "create_policy", unrenderable)
    name = _unique("unrenderable")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        response = c.post(
            ADMIN + "/policies",
            headers=_auth(admin_token),
            json={"name": name, "platform": "amd-sev-snp", "document": {}},
        )
    assert response.status_code == 500
    with Session(engine) as s:
        assert s.scalar(select(AppraisalPolicy.id).where(AppraisalPolicy.name == name)) is None


def test_policy_delete_refused_while_an_entitlement_names_it(api: Api, engine: Engine) -> None:
    unused = api.post("/policies", {"name": _unique("unused"), "platform": "intel", "document": {}})
    named = api.post("/policies", {"name": _unique("named"), "platform": "intel", "document": {}})
    [created] = _audit(engine, "admin:policy:created", unused["id"])
    assert created.actor.startswith("admin:")
    assert created.data["name"] == unused["name"]
    entitlement = api.entitlement(policy_id=named["id"])

    assert api.client.delete(f"{ADMIN}/policies/{unused['id']}", headers=api.headers).status_code == 204
    assert all(p["id"] != unused["id"] for p in api.get("/policies", limit=200))
    [deleted] = _audit(engine, "admin:policy:deleted", unused["id"])
    assert deleted.actor.startswith("admin:")
    assert (deleted.data["name"], deleted.data["platform"]) == (unused["name"], "intel")
    assert len(deleted.data["document_sha256"]) == 64
    assert api.call("DELETE", f"/policies/{unused['id']}", 404)["error"]["code"] == "resource.not_found"

    error = api.call("DELETE", f"/policies/{named['id']}", 409)["error"]
    assert error["code"] == "resource.conflict"
    assert entitlement["id"] in error["actual"]
    assert named in api.get("/policies", limit=200)
    assert _audit(engine, "admin:policy:deleted", named["id"]) == []


_BIG_INTS = {
    "seats-2^31": {"seats": 2**31},
    "seats-2^63": {"seats": 2**63},
    "seats-over-product-bound": {"seats": limits.MAX_SEATS + 1},
    "max_gpus-2^31": {"max_gpus": 2**31},
    "max_gpus-over-bound": {"max_gpus": limits.MAX_ENTITLEMENT_GPUS + 1},
}


@pytest.mark.parametrize("terms", _BIG_INTS.values(), ids=_BIG_INTS.keys())
def test_entitlement_integers_out_of_bounds_are_400(api: Api, terms: dict[str, int]) -> None:
    base = {
        "customer_id": api.customer()["id"],
        "model_id": api.model()["id"],
        "allowed_platforms": ["intel-tdx"],
        "seats": 1,
        "lease_ttl_seconds": 600,
    }
    error = api.post("/entitlements", base | terms, expect=400)["error"]
    assert error["code"] == "request.invalid"
    assert next(iter(terms)) in str(error["actual"])


def test_entitlement_integers_at_their_bounds_are_stored(api: Api) -> None:
    entitlement = api.entitlement(seats=limits.MAX_SEATS, max_gpus=limits.MAX_ENTITLEMENT_GPUS)
    assert (entitlement["seats"], entitlement["max_gpus"]) == (limits.MAX_SEATS, limits.MAX_ENTITLEMENT_GPUS)


_FAR_TIMES = {
    "year-1-east": "0001-01-01T00:00:00+05:00",  # year 0 in UTC: no datetime holds it
    "year-9999-west": "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
    "year-1-utc": "0001-01-01T00:00:00Z",
    "year-9999-utc": "9999-12-31T23:59:59Z",
    "before-1970": "1969-12-31T23:59:59Z",
}


@pytest.mark.parametrize("field", ["valid_from", "valid_until"])
@pytest.mark.parametrize("at", _FAR_TIMES.values(), ids=_FAR_TIMES.keys())
def test_validity_dates_out_of_range_are_400(api: Api, field: str, at: str) -> None:
    base = {
        "customer_id": api.customer()["id"],
        "model_id": api.model()["id"],
        "allowed_platforms": ["intel-tdx"],
        "seats": 1,
        "lease_ttl_seconds": 600,
    }
    error = api.post("/entitlements", base | {field: at}, expect=400)["error"]
    assert error["code"] == "request.invalid"
    assert field in str(error["actual"])
    version = _model_version(api)
    rv = {"model_version_id": version["id"], "platform": "amd-sev-snp", "values": {"allowed_measurements": ["2" * 96]}}
    error = api.post("/reference-values", rv | {field: at}, expect=400)["error"]
    assert error["code"] == "request.invalid"
    assert field in str(error["actual"])


@pytest.mark.parametrize("param", ["from", "to"])
@pytest.mark.parametrize("at", _FAR_TIMES.values(), ids=_FAR_TIMES.keys())
def test_attestation_filter_times_out_of_range_are_400(api: Api, param: str, at: str) -> None:
    error = api.get("/attestations", expect=400, **{param: at})["error"]
    assert error["code"] == "usage.invalid"
    assert param in error["message"]


def test_validity_dates_with_an_offset_are_stored_in_utc(api: Api) -> None:
    entitlement = api.entitlement(valid_from="2030-01-01T05:00:00+05:00", valid_until="2031-01-01T00:00:00-01:00")
    assert datetime.fromisoformat(entitlement["valid_from"]) == datetime(2030, 1, 1, tzinfo=UTC)
    assert datetime.fromisoformat(entitlement["valid_until"]) == datetime(2031, 1, 1, 1, tzinfo=UTC)


def test_empty_window_with_a_defaulted_start_is_400(api: Api) -> None:
    """``valid_from`` omitted is now: a ``valid_until`` already past leaves an empty window."""
    past = "2001-01-01T00:00:00Z"
    base = {
        "customer_id": api.customer()["id"],
        "model_id": api.model()["id"],
        "allowed_platforms": ["intel-tdx"],
        "seats": 1,
        "lease_ttl_seconds": 600,
    }
    error = api.post("/entitlements", base | {"valid_until": past}, expect=400)["error"]
    assert error["code"] == "request.invalid"
    assert "valid_until" in error["message"]
    assert api.get("/entitlements", customer_id=base["customer_id"]) == []

    version = _model_version(api)
    rv = {"model_version_id": version["id"], "platform": "amd-sev-snp", "values": {"allowed_measurements": ["2" * 96]}}
    error = api.post("/reference-values", rv | {"valid_until": past}, expect=400)["error"]
    assert error["code"] == "request.invalid"
    assert "valid_until" in error["message"]
    assert api.get("/reference-values", model_version_id=version["id"]) == []
    # A start in the future with the end left open is a window.
    assert api.post("/entitlements", base | {"valid_from": "2040-01-01T00:00:00Z"})["valid_until"] is None


_BAD_NAMES = {
    "empty": "",
    "spaces": "   ",
    "tab": "\t",
    "leading-space": " acme",
    "trailing-space": "acme ",
    "newline": "ac\nme",
    "bell": "ac\x07me",
    "del": "ac\x7fme",
    "c1-control": "ac\x85me",
    "rlo": "acme\u202egpj.exe",
    "lre": "\u202aacme",
    "pdf": "acme\u202c",
    "rli": "\u2067acme",
    "pdi": "acme\u2069",
    "lrm": "ac\u200eme",
    "rlm": "ac\u200fme",
    "alm": "ac\u061cme",
    "zero-width-space": "ac\u200bme",
    "bom": "\ufeffacme",
    "line-separator": "ac\u2028me",
}


def _name_requests(api: Api, name: str) -> list[tuple[str, dict[str, Any]]]:
    """Every admin request with a name or label field, each carrying ``name`` there."""
    model = api.model()
    customer = api.customer()
    entitlement = api.entitlement()
    return [
        ("/customers", {"name": name}),
        ("/models", {"name": name}),
        (f"/models/{model['id']}/versions", {"version": name}),
        ("/policies", {"name": name, "platform": "intel", "document": {}}),
        (f"/entitlements/{entitlement['id']}/licence-keys", {"label": name}),
        ("/credentials", {"kind": "billing-read", "label": name, "customer_id": customer["id"]}),
        (
            "/entitlements",
            {
                "customer_id": customer["id"],
                "model_id": model["id"],
                "allowed_platforms": ["intel-tdx"],
                "allowed_versions": [name],
                "seats": 1,
                "lease_ttl_seconds": 600,
            },
        ),
    ]


@pytest.mark.parametrize("name", _BAD_NAMES.values(), ids=_BAD_NAMES.keys())
def test_names_blank_or_with_control_or_bidi_characters_are_400(api: Api, name: str) -> None:
    for path, body in _name_requests(api, name):
        error = api.post(path, body, expect=400)["error"]
        assert error["code"] == "request.invalid", path


def test_names_in_any_script_are_stored(api: Api) -> None:
    for name in ("Ünïcode GmbH", "名前 株式会社", "مرحبا", "x\u200cy", "a\u00a0b"):  # ZWNJ and NBSP are text
        unique = f"{name} {uuid.uuid4().hex[:6]}"
        assert api.post("/customers", {"name": unique})["name"] == unique
