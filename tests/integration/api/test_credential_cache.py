"""The API's credential and catalog caches (verifier/auth/cache.py) on the real app, real PostgreSQL and real Redis:
a warm request reads no credential from the database, and every change staff make is seen by the very next request
(revocation, suspension, a new model version), whether this process made it or another one did and replaced the
generation token. With Redis unreachable nothing is cached."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.orm import Session

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX, Seeded, seed, service_settings
from verifier.app import create_app
from verifier.auth.credentials import issue_credential
from verifier.broker.invalidation import bump
from verifier.client.keys import EnclaveKeyPair
from verifier.config import Settings
from verifier.db.models import ApiCredential, Attestation, CredentialKind, Entitlement, ModelVersion
from verifier.simulation.intel_pki import SIM_NOW, QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport


def _admin(engine: Engine, settings: Settings) -> str:
    with Session(engine) as s:
        _, token = issue_credential(
            s, settings.credential_pepper.get_secret_value().encode(), CredentialKind.ADMIN, label="t", now=SIM_NOW
        )
        s.commit()
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _key_id(token: str) -> str:
    return token.split("_")[1]


@contextmanager
def _credential_reads(engine: Engine) -> Iterator[list[str]]:
    """The statements that read ``api_credentials`` on ``engine`` meanwhile (any connection of the process)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM api_credentials" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _stack(database_url: str, engine: Engine, **overrides: Any) -> tuple[TestClient, Settings, Seeded]:
    settings = service_settings(database_url, **overrides)
    return TestClient(create_app(settings)), settings, seed(engine, settings)


def test_credential_cache_warm_request_reads_no_credential(database_url: str, engine: Engine) -> None:
    from verifier.db.session import engine_for

    client, settings, seeded = _stack(database_url, engine)
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 200  # fills the cache
    with _credential_reads(engine_for(settings.database_url)) as reads:
        assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 200
    assert reads == []


def test_credential_cache_revoked_through_admin_api_refused_at_once(database_url: str, engine: Engine) -> None:
    client, settings, seeded = _stack(database_url, engine)
    admin = _admin(engine, settings)
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 200  # cached
    with Session(engine) as s:
        credential_id = s.scalars(select(ApiCredential.id).where(ApiCredential.key_id == _key_id(seeded.licence))).one()
    revoked = client.post(f"/v1/admin/credentials/{credential_id}/revoke", headers=_bearer(admin))
    assert revoked.status_code == 200, revoked.text
    refused = client.post("/v1/challenges", headers=_bearer(seeded.licence))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "auth.invalid"


def test_credential_cache_customer_suspended_refused_at_once(database_url: str, engine: Engine) -> None:
    client, settings, seeded = _stack(database_url, engine)
    admin = _admin(engine, settings)
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 200  # cached
    with Session(engine) as s:
        customer_id = s.get_one(Entitlement, seeded.entitlement_id).customer_id
    suspended = client.patch(f"/v1/admin/customers/{customer_id}", json={"status": "suspended"}, headers=_bearer(admin))
    assert suspended.status_code == 200, suspended.text
    refused = client.post("/v1/challenges", headers=_bearer(seeded.licence))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "auth.customer_suspended"


def test_credential_cache_other_process_change_seen_after_its_token(database_url: str, engine: Engine) -> None:
    """Another process revokes (here: an UPDATE this process's hooks do not see) and replaces the token after its
    commit: until then this process may answer from its cache (the revocation's request is not answered yet);
    from then on it may not."""
    client, _, seeded = _stack(database_url, engine)
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 200  # cached
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE api_credentials SET revoked_at = :now WHERE key_id = :key"),
            {"now": datetime.now(UTC), "key": _key_id(seeded.licence)},
        )
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 200  # the cache is real
    assert bump(TEST_BROKER, TEST_KEY_PREFIX)
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 401


def test_credential_cache_redis_unreachable_caches_nothing(database_url: str, engine: Engine) -> None:
    """No generation token can be read: every request reads its credential, so a change by another process (no
    token replaced: Redis is down) is seen at once."""
    client, _, seeded = _stack(database_url, engine, broker_url="redis://127.0.0.1:1/0")
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 200
    with engine.begin() as connection:
        connection.execute(
            update(ApiCredential).where(ApiCredential.key_id == _key_id(seeded.licence)).values(revoked_at=SIM_NOW)
        )
    assert client.post("/v1/challenges", headers=_bearer(seeded.licence)).status_code == 401


def _submit(client: TestClient, seeded: Seeded) -> uuid.UUID:
    """A well-formed submission naming no version (the newest is licensed); 202 (no worker runs)."""
    nonce_b64 = client.post("/v1/challenges", headers=_bearer(seeded.licence)).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    key = EnclaveKeyPair.generate("P-256")
    quote = default_pki().build(QuoteOptions(td=TdReport(reportdata=key.report_data(nonce))))
    body = {
        "nonce": nonce_b64,
        "model": seeded.model,
        "deployment": "d",
        "enclave_key": key.public_jwk,
        "evidence": [{"type": "intel-tdx", "evidence": base64.b64encode(quote.quote).decode()}],
    }
    r = client.post("/v1/attestations", json=body, headers=_bearer(seeded.licence))
    assert r.status_code == 202, r.text
    return uuid.UUID(r.json()["id"])


def _version_of(engine: Engine, attestation_id: uuid.UUID) -> str:
    with Session(engine) as s:
        return s.execute(
            select(ModelVersion.version)
            .join(Attestation, Attestation.model_version_id == ModelVersion.id)
            .where(Attestation.id == attestation_id)
        ).scalar_one()


def test_catalog_cache_new_version_licensed_at_once(database_url: str, engine: Engine) -> None:
    client, settings, seeded = _stack(database_url, engine)
    admin = _admin(engine, settings)
    assert _version_of(engine, _submit(client, seeded)) == "2.0"  # the catalog entry is cached now
    with Session(engine) as s:
        model_id = s.get_one(Entitlement, seeded.entitlement_id).model_id
    dek = base64.b64encode(bytes(32)).decode()
    added = client.post(
        f"/v1/admin/models/{model_id}/versions", json={"version": "3.0", "dek_b64": dek}, headers=_bearer(admin)
    )
    assert added.status_code in (200, 201), added.text
    assert _version_of(engine, _submit(client, seeded)) == "3.0"
