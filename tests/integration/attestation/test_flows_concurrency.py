"""100 attestations decided concurrently (each in its own worker-like session and transaction) against a
10-seat entitlement: exactly 10 leases are released, the other 90 are stored as seats_exhausted."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from joserfc import jwk
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.support.service import pending_tdx_attestation, seed
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import decide_attestation
from verifier.clock import Clock
from verifier.config import Settings
from verifier.db.models import Attestation, AttestationStatus, Entitlement, Lease, LeaseStatus, ModelVersion
from verifier.simulation.intel_pki import SIM_NOW
from verifier.wiring import decision_context

N, SEATS = 100, 10


def test_concurrent_decisions_never_exceed_seats(database_url: str, engine: Engine) -> None:
    settings = Settings(database_url=database_url, allow_simulated_roots=True, simulation_time=SIM_NOW)
    seeded = seed(engine, settings, seats=SEATS)
    ctx = decision_context(settings)
    secret = settings.challenge_secret.get_secret_value().encode()
    ids: list[uuid.UUID] = []
    with Session(engine) as s:
        ent = s.get(Entitlement, seeded.entitlement_id)
        assert ent is not None
        version = s.scalars(select(ModelVersion).where(ModelVersion.model_id == ent.model_id)).one()
        for i in range(N):
            att = pending_tdx_attestation(
                ent.id,
                version.id,
                nonce=issue_challenge(secret, SIM_NOW).nonce,
                enclave_jwk=dict(jwk.ECKey.generate_key("P-256").as_dict(private=False)),
                deployment=f"dep-{i}",
            )
            s.add(att)
            s.flush()
            ids.append(att.id)
        s.commit()
    barrier = threading.Barrier(N)
    errors: list[BaseException] = []

    def worker(att_id: uuid.UUID) -> None:
        try:
            with Session(engine) as s:
                barrier.wait()
                decide_attestation(s, att_id, ctx, Clock.fixed(SIM_NOW + timedelta(seconds=1)))
                s.commit()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    with Session(engine) as s:
        statuses = s.scalars(select(Attestation.status).where(Attestation.id.in_(ids))).all()
        assert statuses.count(AttestationStatus.ACCEPTED) == SEATS
        assert statuses.count(AttestationStatus.REJECTED) == N - SEATS
        rejected = s.scalars(
            select(Attestation).where(Attestation.id.in_(ids), Attestation.status == AttestationStatus.REJECTED)
        ).all()
        assert {r["code"] for a in rejected for r in (a.verdict or {})["reasons"]} == {"entitlement.seats_exhausted"}
        live = s.scalar(
            select(func.count())
            .select_from(Lease)
            .where(Lease.entitlement_id == seeded.entitlement_id, Lease.status == LeaseStatus.LIVE)
        )
        assert live == SEATS
