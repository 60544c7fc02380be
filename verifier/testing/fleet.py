"""A large, plausible fleet in bulk, for the dashboard's benchmark: customers, models, entitlements, deployments with
their newest lease, attestations over the last 30 days (accepted and rejected, with verdicts shaped like the
decision's) and cached collateral.

Rows go in with SQLAlchemy Core multi-row INSERTs in batches (100,000 attestations in seconds), not through the
ORM, and not through the decision: the summary columns a decision keeps on ``deployments``
(:func:`verifier.attestation.flows.record`) are written here to agree with the attestations seeded, and the
decisions' day counters are counted from the seeded rows
(:func:`verifier.attestation.repository.rebuild_decision_days`). The fleet's
shape is the same for a given ``seed`` (its ids are random). Test harness only; commits through the engine it is
given.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from verifier.attestation.repository import rebuild_decision_days
from verifier.db.models import (
    Attestation,
    CachedCollateral,
    Customer,
    Deployment,
    Entitlement,
    Lease,
    Model,
    ModelVersion,
)

_BATCH = 2000
_PLATFORMS: Sequence[tuple[str, ...]] = (("intel-tdx",), ("amd-snp",), ("intel-sgx",), ("intel-tdx", "nvidia"))
_TCB = ("UpToDate",) * 8 + ("SWHardeningNeeded", "OutOfDate")
_REJECTIONS = (
    ("intel.policy.measurement_not_allowed",),
    ("intel.policy.tcb_status_not_accepted",),
    ("challenge.expired",),
    ("entitlement.seats_exhausted",),
    ("intel.policy.measurement_not_allowed", "intel.policy.td_debug"),
)


@dataclass(frozen=True, slots=True)
class Fleet:
    customers: int
    deployments: int
    attestations: int


def _batches(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(rows), _BATCH):
        yield rows[i : i + _BATCH]


def _insert(engine: Engine, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for batch in _batches(rows):
            conn.execute(insert(table), list(batch))


def _verdict(platforms: tuple[str, ...], tcb: str, codes: tuple[str, ...]) -> dict[str, Any]:
    reasons = [
        {"code": c, "fault": "policy", "message": "seeded", "expected": "a" * 96, "actual": "b" * 96} for c in codes
    ]
    return {
        "accepted": not codes,
        "reasons": reasons,
        "evaluations": [
            {
                "platform": p,
                "verified": True,
                "accepted": not codes,
                "simulated": True,
                "tcb_status": tcb if i == 0 else None,
                "advisory_ids": [],
                "claims": {"mrtd": "c" * 96, "rtmr0": "d" * 96},
                "reasons": reasons if i == 0 else [],
                "collateral": {"tcb_info": {"tcb_evaluation_data_number": 17}},
            }
            for i, p in enumerate(platforms)
        ],
    }


def seed_fleet(
    engine: Engine,
    *,
    now: datetime,
    deployments: int = 10_000,
    attestations: int = 100_000,
    customers: int = 100,
    seed: int = 15,
) -> Fleet:
    """Seed ``deployments`` deployments of ``customers`` customers and ``attestations`` decisions naming them
    (spread evenly, the newest within the last hour), decided over the 30 days before ``now``; about one in seven
    is a rejection. Each deployment's newest lease is live (7 in 10), expired, revoked or released."""
    rng = random.Random(seed)  # noqa: S311 (the shape of seed data, not a secret)
    models = [{"id": uuid.uuid4(), "name": f"fleet-model-{i}", "description": "", "created_at": now} for i in range(10)]
    versions = [
        {"id": uuid.uuid4(), "model_id": m["id"], "version": f"1.{v}", "created_at": now}
        for m in models
        for v in (0, 1)
    ]
    custs = [
        {"id": uuid.uuid4(), "name": f"fleet-customer-{i:03d}", "status": "active", "created_at": now}
        for i in range(customers)
    ]
    ents = [
        {
            "id": uuid.uuid4(),
            "customer_id": c["id"],
            "model_id": models[i % len(models)]["id"],
            "allowed_versions": [],
            "allowed_platforms": ["intel-tdx", "amd-snp", "intel-sgx", "nvidia"],
            "seats": deployments // customers + (5 if i % 10 else 0),
            "max_gpus": 8,
            "lease_ttl_seconds": 3600,
            "policy_id": None,
            "status": "active",
            "valid_from": now - timedelta(days=365),
            "valid_until": now + timedelta(days=7 if i % 25 == 0 else 365),
            "created_at": now,
        }
        for i, c in enumerate(custs)
    ]
    version_of = {m["id"]: [v for v in versions if v["model_id"] == m["id"]] for m in models}
    deps: list[dict[str, Any]] = []
    leases: list[dict[str, Any]] = []
    atts: list[dict[str, Any]] = []
    per = max(1, attestations // deployments)
    for i in range(deployments):
        ent = ents[i % len(ents)]
        version = version_of[ent["model_id"]][i % 2]
        platforms = _PLATFORMS[i % len(_PLATFORMS)]
        tcb = _TCB[rng.randrange(len(_TCB))]
        dep_id, lease_id = uuid.uuid4(), uuid.uuid4()
        name = f"fleet-{rng.choice(('prod', 'staging', 'eu', 'us'))}-{i:05d}"
        times = sorted(now - timedelta(seconds=rng.randrange(30 * 86400)) for _ in range(per - 1))
        times.append(now - timedelta(seconds=rng.randrange(3600)))
        accepted_at: list[datetime] = []
        last: dict[str, Any] = {}
        for t in times:
            codes = _REJECTIONS[rng.randrange(len(_REJECTIONS))] if rng.random() < 0.15 else ()
            ident = uuid.uuid4()
            atts.append(
                {
                    "id": ident,
                    "entitlement_id": ent["id"],
                    "deployment_id": None if codes else dep_id,
                    "lease_id": None if codes else lease_id,
                    "model_version_id": version["id"],
                    "deployment_name": name,
                    "kind": "renew" if accepted_at and not codes and rng.random() < 0.5 else "attest",
                    "platforms": list(platforms),
                    "status": "rejected" if codes else "accepted",
                    "nonce": os.urandom(32),
                    "enclave_jwk": {"kty": "EC", "crv": "P-256", "x": "seeded", "y": "seeded"},
                    "evidence": [],
                    "claims": {p: {"mrtd": "c" * 96} for p in platforms},
                    "verdict": _verdict(platforms, tcb, codes),
                    "collateral": {p: {"tcb_info": {"tcb_evaluation_data_number": 17}} for p in platforms},
                    "timings": {"decide_ms": 12.5},
                    "simulated": True,
                    "reason_codes": " ".join(sorted(set(codes))) or None,
                    "wrapped_key": None if codes else "seeded.jwe",
                    "result_token": None,
                    "created_at": t - timedelta(milliseconds=40),
                    "decided_at": t,
                    "requeued_at": None,
                }
            )
            if not codes:
                accepted_at.append(t)
            last = atts[-1]
        first = accepted_at[0] if accepted_at else times[0]
        latest = accepted_at[-1] if accepted_at else times[0]
        roll = rng.random()
        status = "live" if roll < 0.7 else "expired" if roll < 0.8 else "revoked" if roll < 0.9 else "released"
        leases.append(
            {
                "id": lease_id,
                "entitlement_id": ent["id"],
                "deployment_id": dep_id,
                "model_version_id": version["id"],
                "enclave_key_thumbprint": uuid.uuid4().hex,
                "gpus": 8 if "nvidia" in platforms else 0,
                "status": status,
                "issued_at": latest,
                "expires_at": now + timedelta(minutes=30) if status == "live" else latest + timedelta(hours=1),
                "renew_after": latest + timedelta(minutes=40),
                "ended_at": None if status == "live" else latest + timedelta(minutes=50),
            }
        )
        deps.append(
            {
                "id": dep_id,
                "entitlement_id": ent["id"],
                "name": name,
                "first_attested_at": first,
                "last_attested_at": latest,
                "lease_id": lease_id,
                "platforms": ",".join(sorted(platforms)),
                "tcb_status": tcb,
                "simulated": True,
                "last_attestation_id": last["id"],
                "last_status": last["status"],
                "last_decided_at": last["decided_at"],
            }
        )
    collateral = [
        {
            "id": uuid.uuid4(),
            "vendor": vendor,
            "kind": kind,
            "key": f"{kind}:{i}",
            "body": b"seeded",
            "issuer_chain": None,
            "fetched_at": now - timedelta(hours=rng.randrange(72)),
            "next_update": now + timedelta(hours=rng.randrange(-24, 24 * 30)),
        }
        for vendor, kind in (("intel", "tcb_info"), ("intel", "qe_identity"), ("amd", "vcek"), ("amd", "crl"))
        for i in range(25)
    ]
    _insert(engine, Model, models)
    _insert(engine, ModelVersion, versions)
    _insert(engine, Customer, custs)
    _insert(engine, Entitlement, ents)
    _insert(engine, Deployment, deps)
    _insert(engine, Lease, leases)
    _insert(engine, Attestation, atts)
    _insert(engine, CachedCollateral, collateral)
    with Session(engine) as session:
        rebuild_decision_days(session)
        session.commit()
    return Fleet(customers, deployments, len(atts))
