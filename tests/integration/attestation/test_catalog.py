"""The decision's catalog read with the nonce's redemption in the same statement (PostgreSQL; two on SQLite): the
catalog, the newest active reference values per platform, the nonce consumed once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.factories import T0, make_entitlement, make_model, make_model_version
from verifier.attestation.catalog import load_catalog, redeem_and_load_catalog
from verifier.attestation.challenges import issue_challenge
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import Attestation, AttestationStatus, RecordStatus, ReferenceValueSet, UsedNonce
from verifier.errors import Code, VerificationFailed

SECRET = b"challenge-secret-for-tests-only!"


def _values(session: Session, version_id: uuid.UUID, platform: str, days_ago: int, **kw: object) -> ReferenceValueSet:
    rv = ReferenceValueSet(
        model_version_id=version_id,
        platform=platform,
        status=kw.get("status", RecordStatus.ACTIVE),
        values={"days_ago": days_ago},
        valid_from=T0 - timedelta(days=days_ago),
        valid_until=None,
        created_at=T0,
    )
    session.add(rv)
    session.flush()
    return rv


def _pending(session: Session, *, entitlement_id: uuid.UUID, version_id: uuid.UUID) -> Attestation:
    """An attestation (not stored: the catalog read needs only its ids, nonce and evidence types)."""
    return Attestation(
        id=uuid.uuid4(),
        entitlement_id=entitlement_id,
        model_version_id=version_id,
        deployment_name="d",
        kind="attest",
        platforms=["intel-tdx"],
        status=AttestationStatus.PENDING,
        nonce=issue_challenge(SECRET, T0).nonce,
        enclave_jwk={},
        evidence=[{"type": "intel-tdx"}],
        created_at=T0,
    )


def _world(session: Session) -> tuple[Attestation, ReferenceValueSet]:
    model = make_model(session)
    version = make_model_version(session, model)
    entitlement = make_entitlement(session, model=model)
    _values(session, version.id, "intel-tdx", 10)
    newest = _values(session, version.id, "intel-tdx", 2)
    _values(session, version.id, "intel-tdx", 1, status=RecordStatus.RETIRED)  # not active
    _values(session, version.id, "amd-sev-snp", 1)  # not the attestation's platform
    return _pending(session, entitlement_id=entitlement.id, version_id=version.id), newest


def _check_redeem_and_load(session: Session) -> None:
    att, newest = _world(session)
    catalog = redeem_and_load_catalog(session, SECRET, att, T0, T0)
    assert catalog is not None
    assert (catalog.version.id, catalog.entitlement.id, catalog.policy, catalog.model_key) == (
        att.model_version_id,
        att.entitlement_id,
        None,
        None,
    )
    assert {p: rv.id for p, rv in catalog.reference_values.items()} == {"intel-tdx": newest.id}
    assert session.scalar(select(UsedNonce.nonce).where(UsedNonce.nonce == att.nonce)) == att.nonce
    with pytest.raises(VerificationFailed) as exc:
        redeem_and_load_catalog(session, SECRET, att, T0 + timedelta(seconds=1), T0)
    assert exc.value.code is Code.CHALLENGE_REPLAYED


def test_redeem_and_load_catalog_reads_and_consumes_once(session: Session) -> None:
    _check_redeem_and_load(session)


def test_load_catalog_reads_without_the_nonce(session: Session) -> None:
    att, newest = _world(session)
    catalog = load_catalog(session, att, T0)
    assert (catalog.version.id, {p: rv.id for p, rv in catalog.reference_values.items()}) == (
        att.model_version_id,
        {"intel-tdx": newest.id},
    )
    assert session.scalar(select(UsedNonce.nonce).where(UsedNonce.nonce == att.nonce)) is None


def test_redeem_and_load_catalog_gone_still_consumes_the_nonce(session: Session) -> None:
    att, _ = _world(session)
    gone = _pending(session, entitlement_id=att.entitlement_id, version_id=uuid.uuid4())
    assert redeem_and_load_catalog(session, SECRET, gone, T0, T0) is None
    assert session.scalar(select(UsedNonce.nonce).where(UsedNonce.nonce == gone.nonce)) == gone.nonce


def test_redeem_and_load_catalog_invalid_nonce_writes_nothing(session: Session) -> None:
    att, _ = _world(session)
    att.nonce = bytes(32)
    with pytest.raises(VerificationFailed) as exc:
        redeem_and_load_catalog(session, SECRET, att, T0, T0)
    assert exc.value.code is Code.CHALLENGE_INVALID
    assert session.scalar(select(UsedNonce.nonce).where(UsedNonce.nonce == att.nonce)) is None


@pytest.fixture
def sqlite_session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'keyward.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as s, s.begin():
            yield s
    finally:
        engine.dispose()


def test_redeem_and_load_catalog_on_sqlite(sqlite_session: Session) -> None:
    """The embedded profile: the nonce's INSERT, then the catalog's read."""
    _check_redeem_and_load(sqlite_session)
