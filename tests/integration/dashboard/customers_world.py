"""A small committed world for the customer pages' HTTP and browser tests (the app under test reads it on its own
connections), whose seats are known by construction:

- "Acme <token>": ``main`` (3 seats, active): two deployments each holding a live, unexpired lease (two seats), one
  whose live lease is past ``expires_at`` (no seat: the expiry job has not marked it yet), one whose lease was
  released, and an older revoked lease beside a live one (still one seat); ``small`` (1 seat, active, ends in 5
  days): one live lease, so at its limit and ending soon; ``old`` (5 seats, revoked): no lease. Acme: 3 seats used
  of 4 allowed (the revoked entitlement's seats do not count), 3 live leases, one live licence key on ``main``.
- "Globex <token>": no entitlement (0 of 0).

Every name holds the seed's token, so a search for it sees these rows (and customers a test creates with the
token in their name). :func:`remove_customers` deletes them again, with every customer whose name holds the token;
their audit events stay (the log is append-only).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from tests.integration.dashboard.world import make_deployment
from tests.support.factories import make_customer, make_entitlement, make_lease, make_model, make_model_version
from verifier.db.models import (
    ApiCredential,
    AppraisalPolicy,
    CredentialKind,
    Customer,
    Deployment,
    Entitlement,
    EntitlementStatus,
    Lease,
    LeaseStatus,
    Model,
    ModelVersion,
)


@dataclass(frozen=True, slots=True)
class SeededCustomers:
    token: str
    acme: uuid.UUID
    globex: uuid.UUID
    main: uuid.UUID  # Acme's 3-seat entitlement
    small: uuid.UUID  # Acme's 1-seat entitlement, ending soon
    old: uuid.UUID  # Acme's revoked entitlement
    model: uuid.UUID
    model_name: str
    policy: uuid.UUID
    key: uuid.UUID  # a live licence key of ``main``
    key_id: str
    live_leases: tuple[uuid.UUID, ...]  # the three live, unexpired leases


def seed_customers(engine: Engine, now: datetime) -> SeededCustomers:
    """The world of the module docstring, committed; times relative to ``now``."""
    token = uuid.uuid4().hex[:8]
    with Session(engine, expire_on_commit=False) as s:
        model = make_model(s, name=f"llm-{token}")
        version = make_model_version(s, model, version="1.0")
        make_model_version(s, model, version="1.1")
        policy = AppraisalPolicy(name=f"tdx-strict-{token}", platform="intel-tdx", document={}, created_at=now)
        s.add(policy)
        acme = make_customer(s, name=f"Acme {token}", now=now - timedelta(days=90))
        globex = make_customer(s, name=f"Globex {token}", now=now - timedelta(days=10))
        main = make_entitlement(
            s,
            customer=acme,
            model=model,
            seats=3,
            allowed_platforms=("intel-tdx", "nvidia-gpu"),
            valid_from=now - timedelta(days=60),
            valid_until=now + timedelta(days=300),
            now=now - timedelta(days=60),
        )
        small = make_entitlement(
            s,
            customer=acme,
            model=model,
            seats=1,
            allowed_platforms=("amd-sev-snp",),
            valid_from=now - timedelta(days=30),
            valid_until=now + timedelta(days=5),
            now=now - timedelta(days=30),
        )
        old = make_entitlement(
            s,
            customer=acme,
            model=model,
            seats=5,
            status=EntitlementStatus.REVOKED,
            allowed_platforms=("intel-tdx",),
            valid_from=now - timedelta(days=400),
            valid_until=now - timedelta(days=35),
            now=now - timedelta(days=400),
        )
        live = []
        for name in ("eu-1", "eu-2"):
            deployment = make_deployment(s, main, f"{name}-{token}", last_attested_at=now - timedelta(minutes=5))
            live.append(make_lease(s, deployment, version, now=now - timedelta(minutes=5)).id)
        make_lease(s, deployment, version, now=now - timedelta(hours=3), status=LeaseStatus.REVOKED)
        stale = make_deployment(s, main, f"stale-{token}", last_attested_at=now - timedelta(hours=2))
        make_lease(s, stale, version, now=now - timedelta(hours=2))  # live, but expired an hour ago
        gone = make_deployment(s, main, f"gone-{token}", last_attested_at=now - timedelta(days=1))
        make_lease(s, gone, version, now=now - timedelta(minutes=20), status=LeaseStatus.RELEASED)
        edge = make_deployment(s, small, f"edge-{token}", last_attested_at=now - timedelta(minutes=1))
        live.append(make_lease(s, edge, version, now=now - timedelta(minutes=1)).id)
        key = ApiCredential(
            kind=CredentialKind.ENCLAVE,
            key_id=uuid.uuid4().hex[:16],
            secret_hash=b"\0" * 32,
            customer_id=acme.id,
            entitlement_id=main.id,
            label=f"prod key {token}",
            created_at=now - timedelta(days=50),
        )
        s.add(key)
        s.commit()
        return SeededCustomers(
            token,
            acme.id,
            globex.id,
            main.id,
            small.id,
            old.id,
            model.id,
            model.name,
            policy.id,
            key.id,
            key.key_id,
            tuple(live),
        )


def remove_customers(engine: Engine, seeded: SeededCustomers) -> None:
    """Delete the seeded rows and every customer (with what it holds) whose name holds the seed's token."""
    with Session(engine) as s:
        customers = list(s.scalars(select(Customer.id).where(Customer.name.contains(seeded.token))))
        entitlements = select(Entitlement.id).where(Entitlement.customer_id.in_(customers))
        s.execute(delete(ApiCredential).where(ApiCredential.customer_id.in_(customers)))
        s.execute(delete(Lease).where(Lease.entitlement_id.in_(entitlements)))
        s.execute(delete(Deployment).where(Deployment.entitlement_id.in_(entitlements)))
        s.execute(delete(Entitlement).where(Entitlement.customer_id.in_(customers)))
        s.execute(delete(Customer).where(Customer.id.in_(customers)))
        s.execute(delete(ModelVersion).where(ModelVersion.model_id == seeded.model))
        s.execute(delete(Model).where(Model.id == seeded.model))
        s.execute(delete(AppraisalPolicy).where(AppraisalPolicy.id == seeded.policy))
        s.commit()
