"""Attestations for the models pages' tests, made by the real decision from simulated TDX evidence and committed
(the app under test reads them on its own connection): one model whose version 1.2 has an active TDX set, a
quote rejected because its MRTD is not that set's, and a quote whose signature does not verify. The decision
context is kept, so a test can decide the same workload again after trusting its measurements. Names carry a
random suffix so that runs and tests never collide.

Built from the attestation page's world (its catalogue and decision helpers)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, replace

from joserfc import jwk
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.integration.dashboard.attestation_world import (
    SECRET,
    WRONG_MRTD,
    _catalog,
    _context,
    _decide,
)
from tests.support.service import pending_tdx_attestation
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.flows import DecisionContext, decide_attestation
from verifier.clock import Clock
from verifier.db.models import Attestation, AttestationStatus, Entitlement, ModelVersion
from verifier.simulation.intel_pki import SIM_NOW
from verifier.simulation.intel_quote_builder import TdReport

#: The workload the tests trust: the default TD with another MRTD.
OBSERVED_TD = replace(TdReport(), mrtd=WRONG_MRTD)


@dataclass(frozen=True)
class TrustWorld:
    ctx: DecisionContext
    entitlement: Entitlement
    version: ModelVersion
    model: str
    model_id: uuid.UUID
    accepted: uuid.UUID
    rejected_mrtd: uuid.UUID
    bad_signature: uuid.UUID


def _bad_signature(
    session: Session, entitlement: Entitlement, version: ModelVersion, ctx: DecisionContext
) -> uuid.UUID:
    """A TDX quote with one byte of its TD report changed after signing: its signature does not verify."""
    nonce = issue_challenge(SECRET, SIM_NOW).nonce
    public = dict(jwk.ECKey.generate_key("P-384").as_dict(private=False))
    att = pending_tdx_attestation(entitlement.id, version.id, nonce=nonce, enclave_jwk=public, deployment="tampered")
    quote = bytearray(base64.b64decode(att.evidence[0]["evidence"]))
    quote[200] ^= 0x01  # inside the TD report body, which the quote's signature covers
    att.evidence = [{**att.evidence[0], "evidence": base64.b64encode(bytes(quote)).decode()}]
    session.add(att)
    session.flush()
    return decide_attestation(session, att.id, ctx, Clock.fixed(SIM_NOW)).id


def trust_world(engine: Engine) -> TrustWorld:
    """The world of the module docstring, committed."""
    suffix = uuid.uuid4().hex[:6]
    ctx = _context()
    with Session(engine, expire_on_commit=False) as session:
        entitlement, version, model = _catalog(session, ctx, suffix)
        deployment = f"trust-{suffix}"
        accepted = _decide(session, ctx, entitlement, version, deployment)
        rejected = _decide(session, ctx, entitlement, version, deployment, td=OBSERVED_TD)
        bad = _bad_signature(session, entitlement, version, ctx)
        session.commit()
        statuses = {a: session.get_one(Attestation, a).status for a in (accepted, rejected, bad)}
    assert statuses == {
        accepted: AttestationStatus.ACCEPTED,
        rejected: AttestationStatus.REJECTED,
        bad: AttestationStatus.REJECTED,
    }
    return TrustWorld(ctx, entitlement, version, model, version.model_id, accepted, rejected, bad)


def decide_again(engine: Engine, world: TrustWorld, td: TdReport = OBSERVED_TD) -> Attestation:
    """A new attestation of the same workload (a fresh challenge and enclave key), decided now, committed."""
    with Session(engine, expire_on_commit=False) as session:
        att_id = _decide(session, world.ctx, world.entitlement, world.version, f"again-{uuid.uuid4().hex[:6]}", td=td)
        session.commit()
        return session.get_one(Attestation, att_id)
