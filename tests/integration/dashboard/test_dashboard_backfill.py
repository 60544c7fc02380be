"""Migration b15dash00001 fills the deployment summary and the reason codes from the decisions stored before it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, insert, select

from verifier.testing.databases import scratch_database

ROOT = Path(__file__).resolve().parents[3]
T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def config() -> Iterator[Config]:
    with scratch_database("keyward_backfill") as url:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        yield cfg


def test_migration_backfills_the_deployment_summary(config: Config) -> None:
    command.upgrade(config, "7c3f9e2a1b64")
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")))
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    ids = {k: uuid.uuid4() for k in ("c", "m", "v", "e", "d", "l1", "l2", "a1", "a2", "a3")}
    verdict = {"evaluations": [{"tcb_status": None}, {"tcb_status": "SWHardeningNeeded"}], "reasons": []}
    base = {
        "entitlement_id": ids["e"], "model_version_id": ids["v"], "deployment_name": "prod", "nonce": b"n",
        "enclave_jwk": {}, "evidence": [], "simulated": False, "created_at": T,
    }  # fmt: skip
    lease = {
        "entitlement_id": ids["e"], "deployment_id": ids["d"], "model_version_id": ids["v"],
        "enclave_key_thumbprint": "x", "gpus": 0, "status": "live", "expires_at": T, "renew_after": T,
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(t["customers"]), {"id": ids["c"], "name": "c", "status": "active", "created_at": T})
        conn.execute(insert(t["models"]), {"id": ids["m"], "name": "m", "description": "", "created_at": T})
        conn.execute(
            insert(t["model_versions"]), {"id": ids["v"], "model_id": ids["m"], "version": "1", "created_at": T}
        )
        conn.execute(
            insert(t["entitlements"]),
            {
                "id": ids["e"], "customer_id": ids["c"], "model_id": ids["m"], "allowed_versions": [],
                "allowed_platforms": [], "seats": 1, "max_gpus": 0, "lease_ttl_seconds": 60, "status": "active",
                "valid_from": T, "created_at": T,
            },
        )  # fmt: skip
        conn.execute(
            insert(t["deployments"]),
            {"id": ids["d"], "entitlement_id": ids["e"], "name": "prod", "first_attested_at": T, "last_attested_at": T},
        )
        conn.execute(insert(t["leases"]), [{**lease, "id": ids["l1"], "issued_at": T}])
        conn.execute(insert(t["leases"]), [{**lease, "id": ids["l2"], "issued_at": T + timedelta(hours=1)}])
        conn.execute(
            insert(t["attestations"]),
            [
                {**base, "id": ids["a1"], "kind": "attest", "status": "accepted", "deployment_id": ids["d"],
                 "platforms": ["nvidia", "intel-tdx"], "verdict": verdict, "simulated": True, "decided_at": T},
                {**base, "id": ids["a2"], "kind": "renew", "status": "accepted", "deployment_id": ids["d"],
                 "platforms": ["intel-tdx"], "verdict": {"evaluations": [{"tcb_status": "UpToDate"}], "reasons": []},
                 "decided_at": T + timedelta(hours=2)},
                {**base, "id": ids["a3"], "kind": "attest", "status": "rejected", "deployment_id": None,
                 "platforms": ["intel-tdx"],
                 "verdict": {"reasons": [{"code": "b.y"}, {"code": "a.x"}, {"code": "b.y"}], "evaluations": []},
                 "decided_at": T + timedelta(hours=3)},
            ],
        )  # fmt: skip

    command.upgrade(config, "b15dash00001")

    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        dep = conn.execute(select(meta.tables["deployments"])).mappings().one()
        attestations = meta.tables["attestations"]
        rows = conn.execute(select(attestations.c.id, attestations.c.reason_codes)).all()
        codes: dict[uuid.UUID, str | None] = {row.id: row.reason_codes for row in rows}
    engine.dispose()
    assert (dep["lease_id"], dep["last_attestation_id"], dep["last_status"]) == (ids["l2"], ids["a3"], "rejected")
    assert dep["last_decided_at"] == T + timedelta(hours=3)
    assert (dep["platforms"], dep["tcb_status"], dep["simulated"]) == ("intel-tdx", "UpToDate", False)
    assert dep["last_attested_at"] == T + timedelta(hours=2)  # the renewal, uncounted before
    assert codes == {ids["a1"]: None, ids["a2"]: None, ids["a3"]: "a.x b.y"}
