"""A large, plausible fleet in bulk, for the dashboard's benchmark: customers, models, entitlements, deployments with
their newest lease, attestations over the last 30 days (accepted and rejected, with verdicts shaped like the
decision's) and cached collateral (Intel TCB Infos and QE Identities shaped as PCS serves them, unsigned: every
fourth FMSPC's TCB Info one evaluation number ahead of the number the fleet was judged with).

Rows go in with SQLAlchemy Core multi-row INSERTs in batches (100,000 attestations in seconds), not through the
ORM, and not through the decision: the summary columns a decision keeps on ``deployments``
(:func:`verifier.attestation.flows.record`) are written here to agree with the attestations seeded, and the
decisions' day counters are counted from the seeded rows
(:func:`verifier.attestation.repository.rebuild_decision_days`), and each decision's audit events (the decision,
and an acceptance's lease issued or renewed) are linked into a valid hash chain in decision order. The fleet's
shape is the same for a given ``seed`` (its ids are random). Test harness only; commits through the engine it is
given.
"""

from __future__ import annotations

import json
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
from verifier.audit.log import GENESIS, AuditTag, Entry, entry_hash
from verifier.db.models import (
    Attestation,
    AuditEvent,
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
    # Core INSERTs through a session, not a bare connection: the session hooks that replace the collateral
    # generation token see them (verifier/worker/collateral_rows.py), so a running worker reads the rows.
    with Session(engine) as session, session.begin():
        for batch in _batches(rows):
            session.execute(insert(table.__table__), list(batch))


_TEE_OF = {"intel-tdx": "TDX", "intel-sgx": "SGX"}
_FMSPCS = 12  # per Intel TEE
_NEWER_EVERY = 4  # every 4th FMSPC's cached TCB Info is one evaluation number ahead of what deployments were judged


def _fmspc(tee: str, i: int) -> str:
    return f"{0xB0C06F if tee == 'TDX' else 0x00906E:06x}{i:06x}"


def pcs_document(member: str, doc: dict[str, Any]) -> bytes:
    """A PCS response body shaped as Intel serves it (``{member: {...}, "signature": hex}``), unsigned: the
    dashboard reads its version, nothing verifies it."""
    return json.dumps({member: doc, "signature": "00" * 64}, separators=(",", ":")).encode()


def tcb_info_body(tee: str, fmspc: str, number: int, issued: datetime) -> bytes:
    """A TCB Info (``tee``: ``"TDX"`` or ``"SGX"``) of ``fmspc`` with evaluation data number ``number``."""
    iso = issued.strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {"id": tee, "version": 3, "issueDate": iso, "nextUpdate": iso, "fmspc": fmspc, "pceId": "0000"}
    return pcs_document("tcbInfo", {**doc, "tcbType": 0, "tcbEvaluationDataNumber": number, "tcbLevels": []})


def qe_identity_body(qe: str, number: int, issued: datetime) -> bytes:
    """A QE Identity (``qe``: ``"TD_QE"`` or ``"QE"``) with evaluation data number ``number``."""
    iso = issued.strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {"id": qe, "version": 2, "issueDate": iso, "nextUpdate": iso, "tcbEvaluationDataNumber": number}
    return pcs_document("enclaveIdentity", {**doc, "tcbLevels": []})


def _intel_collateral(platforms: tuple[str, ...], fmspc: str, number: int) -> dict[str, Any]:
    """Each platform's collateral summary as the decision stores it (Intel: ``collateral_json``'s fields)."""
    return {
        p: {
            "fmspc": fmspc,
            "tcb_eval_number": number,
            "tcb_info_eval_number": number,
            "qe_identity_eval_number": number,
        }
        if p in _TEE_OF
        else {}
        for p in platforms
    }


def _verdict(
    platforms: tuple[str, ...], tcb: str, codes: tuple[str, ...], collateral: dict[str, Any]
) -> dict[str, Any]:
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
                "collateral": collateral[p],
            }
            for i, p in enumerate(platforms)
        ],
    }


def _audit_chain(atts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit events the decisions of ``atts`` record, in decision order, linked as
    :func:`verifier.audit.log.record_events` links them."""
    rows: list[dict[str, Any]] = []
    prev = GENESIS
    for att in sorted(atts, key=lambda a: a["decided_at"]):
        accepted = att["status"] == "accepted"
        lease = str(att["lease_id"]) if accepted else None
        entries = [
            Entry(
                AuditTag.ATTESTATION_ACCEPTED if accepted else AuditTag.ATTESTATION_REJECTED,
                "worker",
                "attestation",
                str(att["id"]),
                {
                    "entitlement_id": str(att["entitlement_id"]),
                    "lease_id": lease,
                    "reasons": (att["reason_codes"] or "").split(),
                    "simulated": True,
                    "superseded_leases": [],
                },
            )
        ]
        if lease is not None:
            tag = AuditTag.LEASE_RENEWED if att["kind"] == "renew" else AuditTag.LEASE_ISSUED
            expires = (att["decided_at"] + timedelta(hours=1)).isoformat()
            entries.append(
                Entry(tag, "worker", "lease", lease, {"attestation_id": str(att["id"]), "expires_at": expires})
            )
        for entry in entries:
            digest = entry_hash(prev, att["decided_at"], entry)
            rows.append(
                {
                    "at": att["decided_at"],
                    "tag": entry.tag.value,
                    "actor": entry.actor,
                    "subject_type": entry.subject_type,
                    "subject_id": entry.subject_id,
                    "data": entry.data,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
    return rows


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
        tee = next((_TEE_OF[p] for p in platforms if p in _TEE_OF), None)
        fmspc = _fmspc(tee, (i // len(_PLATFORMS)) % _FMSPCS) if tee and i % 97 else ""  # 1 in 97: not recorded
        judged = _intel_collateral(platforms, fmspc, 17)
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
                    "verdict": _verdict(platforms, tcb, codes, judged),
                    "collateral": judged,
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
                "tcb_eval_number": 17 if tee else None,
                "tcb_info_id": f"{tee}:{fmspc}" if tee and fmspc else None,
                "simulated": True,
                "last_attestation_id": last["id"],
                "last_status": last["status"],
                "last_decided_at": last["decided_at"],
            }
        )
    intel_docs = [
        (
            "tcb_info",
            f"{tee.lower()}:{_fmspc(tee, j)}",
            tcb_info_body(tee, _fmspc(tee, j), 18 if j % _NEWER_EVERY == 0 else 17, now),
        )
        for tee in ("TDX", "SGX")
        for j in range(_FMSPCS)
    ] + [("qe_identity", tee, qe_identity_body(qe, 18, now)) for tee, qe in (("tdx", "TD_QE"), ("sgx", "QE"))]
    documents = [("intel", kind, key, body) for kind, key, body in intel_docs] + [
        ("amd", kind, f"{kind}:{i}", b"seeded") for kind in ("vcek", "crl") for i in range(25)
    ]
    collateral = [
        {
            "id": uuid.uuid4(),
            "vendor": vendor,
            "kind": kind,
            "key": key,
            "body": body,
            "issuer_chain": None,
            "fetched_at": now - timedelta(hours=rng.randrange(72)),
            "next_update": now + timedelta(hours=rng.randrange(-24, 24 * 30)),
        }
        for vendor, kind, key, body in documents
    ]
    _insert(engine, Model, models)
    _insert(engine, ModelVersion, versions)
    _insert(engine, Customer, custs)
    _insert(engine, Entitlement, ents)
    _insert(engine, Deployment, deps)
    _insert(engine, Lease, leases)
    _insert(engine, Attestation, atts)
    _insert(engine, CachedCollateral, collateral)
    _insert(engine, AuditEvent, _audit_chain(atts))
    with Session(engine) as session, session.begin():
        rebuild_decision_days(session)
    return Fleet(customers, deployments, len(atts))
