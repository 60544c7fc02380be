"""The decision on the embedded profile (SQLite): no data-modifying CTEs there, so the nonce, the catalog, the
lease, the attestation row, the deployment's summary and the audit events are written one statement each; the
outcome is the same as on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.integration.attestation.test_flows import NOW, SECRET, World, _codes, _submit, world  # noqa: F401
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import decide_attestation
from verifier.audit.log import verify_chain
from verifier.clock import Clock
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import AttestationStatus, Deployment, Lease, LeaseStatus


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A migrated SQLite database of the test's own (in place of the PostgreSQL test session)."""
    url = f"sqlite:///{tmp_path / 'keyward.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            yield s
    finally:
        engine.dispose()


def test_decide_attestation_on_sqlite_accepts_supersedes_and_rejects_a_replay(
    session: Session,
    world: World,  # noqa: F811
) -> None:
    assert session.get_bind().dialect.name == "sqlite"
    nonce = issue_challenge(SECRET, NOW).nonce
    first, _ = _submit(session, world, nonce=nonce)
    decided = decide_attestation(session, first.id, world.ctx, Clock.fixed(NOW))
    assert decided.status == AttestationStatus.ACCEPTED, _codes(decided)
    second, _ = _submit(session, world)
    again = decide_attestation(session, second.id, world.ctx, Clock.fixed(NOW))
    assert again.status == AttestationStatus.ACCEPTED, _codes(again)
    replay, _ = _submit(session, world, nonce=nonce, deployment="other")
    rejected = decide_attestation(session, replay.id, world.ctx, Clock.fixed(NOW))
    assert _codes(rejected) == ["challenge.replayed"]
    session.expire_all()
    leases = {lease.id: lease.status for lease in session.scalars(select(Lease))}
    assert leases == {decided.lease_id: LeaseStatus.REVOKED, again.lease_id: LeaseStatus.LIVE}
    deployment = session.get_one(Deployment, again.deployment_id)
    assert (deployment.lease_id, deployment.last_attestation_id) == (again.lease_id, again.id)
    assert verify_chain(session).intact
