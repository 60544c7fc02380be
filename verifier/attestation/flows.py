"""The one orchestrator: decide a pending attestation and, on success, release a lease.

``decide_attestation(session, attestation_id, ctx, now)`` runs in the worker, in the caller's transaction:

1. Redeem the challenge nonce (single use across workers and restarts; a replay is a stored rejection). Its
   expiry is checked against when the evidence arrived (``created_at``), so a decision that waited for vendor
   collateral or was requeued after a lost dispatch is not rejected for the service's own delay.
2. Load the enclave's JWK; the default binding is REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint).
3. For every evidence item: parse -> verify -> appraise against the active reference values of the model version
   for that platform, merged with the entitlement's appraisal policy, with the binding as expected REPORTDATA.
4. Entitlement, locked and read afresh: active, its customer not suspended, in its window, platform and version
   allowed; a seat reserved (race-free: every seat decision for one entitlement is made one at a time). A seat is
   a deployment with one live lease: a new lease for a deployment supersedes (revokes) the one it held, so one
   licence seat never covers more than one running enclave.
5. Release: the model DEK unwrapped from the KEK and wrapped to the enclave key (compact JWE), and a signed EAR
   attestation-result token; only then are the deployment and the lease written.
6. The attestation row (claims, verdict with every reason, collateral, timings), the lease and a hash-chained
   audit event are written together; the caller commits once.

Rejections are results: any failure in 1-5 sets status ``rejected`` with its reasons and is audited the same way.
An unexpected exception while checking (a parser bug on hostile bytes) is a stored ``internal.error`` rejection,
logged with its traceback for staff, so a poisoned request cannot fail its task and be requeued forever; database
errors are not caught (the task retries them). In production, a policy asking to accept debug TEEs is overridden:
the host can read a debug TEE's memory, so the model key is never released to one.
Every check that can reject runs before anything but the redeemed nonce is written, so a rejection needs no
savepoint and leaves no half-made lease. The reads are few on purpose (one statement for the catalog, one for the
reference values, one for the seat): a decision is a handful of round trips to PostgreSQL.
The function is idempotent: a decided attestation is returned unchanged (a worker killed mid-task re-runs it).

Here: the order of the steps, the writes and the audit. Elsewhere: the catalog and policy reads
(:mod:`verifier.attestation.catalog`), each evidence item's binding and evaluation (:mod:`verifier.attestation.items`),
the seat (:mod:`verifier.entitlement.service`), the nonce (:mod:`verifier.attestation.challenges`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from verifier.attestation.catalog import load_catalog
from verifier.attestation.challenges import redeem_challenge
from verifier.attestation.context import DecisionContext
from verifier.attestation.items import evaluate_item, read_needs
from verifier.audit.log import AuditTag, Entry, record_events
from verifier.db.models import Attestation, AttestationStatus, Lease, LeaseStatus
from verifier.entitlement.service import Seat, check_entitlement_rules, lock_entitlement, reserve_seat, take_seat
from verifier.errors import Code, Conflict, InternalError, KeywardError, NotFound, Reason
from verifier.keywrap.ear import issue_ear
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk, wrap_for_enclave
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.registry import Parsed, parse_evidence

__all__ = ["DecisionContext", "decide_attestation", "decide_locked", "lock_attestation", "model_key_context"]

_log = logging.getLogger(__name__)


class _Rejected(Exception):
    def __init__(self, reasons: list[Reason]) -> None:
        super().__init__(", ".join(r.code.value for r in reasons))
        self.reasons = reasons


def model_key_context(model_version_id: str) -> bytes:
    """AES-GCM associated data binding a wrapped DEK to its model version."""
    return f"keyward:model-version:{model_version_id}".encode()


def decide_attestation(
    session: Session,
    attestation_id: Any,
    ctx: DecisionContext,
    now: datetime,
    *,
    received_at: datetime | None = None,
    evidence: Sequence[Parsed] | None = None,
) -> Attestation:
    """Lock the attestation row and decide it (:func:`decide_locked`)."""
    att = lock_attestation(session, attestation_id)
    return decide_locked(session, att, ctx, now, received_at=received_at, evidence=evidence)


def lock_attestation(session: Session, attestation_id: Any) -> Attestation:
    """The attestation, its row locked until the transaction ends and read afresh (``SELECT ... FOR UPDATE``)."""
    att = session.get(Attestation, attestation_id, with_for_update=True, populate_existing=True)
    if att is None:
        raise NotFound(Code.ATTESTATION_NOT_FOUND, f"no attestation {attestation_id}")
    return att


def decide_locked(
    session: Session,
    att: Attestation,
    ctx: DecisionContext,
    now: datetime,
    *,
    received_at: datetime | None = None,
    evidence: Sequence[Parsed] | None = None,
) -> Attestation:
    """Decide ``att``, whose row the caller has locked (``SELECT ... FOR UPDATE``) in this transaction.

    Every check that can reject runs before anything is written except the redeemed nonce: a rejection adds only
    its verdict and audit event, and an accepted decision writes its deployment, lease and attestation once.
    ``received_at``: when the request arrived, on the clock of ``now`` (default: its ``created_at``).
    ``evidence``: ``att.evidence`` already parsed (:func:`~verifier.platforms.registry.parse_evidence`; the task
    parses once for the prefetch and the decision); parsed here when not given.
    """
    if att.status != AttestationStatus.PENDING:
        return att  # idempotent: already decided
    started = time.perf_counter()
    evaluations: list[Evaluation] = []
    lease: Lease | None = None
    superseded: list[uuid.UUID] = []  # the deployment's earlier live leases this one replaces
    writing = False
    try:
        # 1-2. Freshness (as of the evidence's arrival) and the enclave key.
        received = att.created_at if received_at is None else received_at
        redeem_challenge(session, ctx.challenge_secret, att.nonce, now, received_at=received)
        key = parse_enclave_jwk(att.enclave_jwk)
        binding = expected_report_data(att.nonce, key)
        catalog = load_catalog(session, att, now)
        # 3. Every evidence item, parsed once, appraised against reference values + policy + binding with the
        #    cached documents its platform says it needs (one statement for all items).
        items = parse_evidence(att.evidence) if evidence is None else evidence
        documents = read_needs(session, items)
        evaluations.extend(evaluate_item(item, documents, att.nonce, key, binding, catalog, ctx, now) for item in items)
        failed = [r for e in evaluations for r in e.reasons]
        if failed or not evaluations:
            raise _Rejected(failed or [Reason(Code.ATTESTATION_EVIDENCE_MALFORMED, "no evidence")])
        # 4. Licence and seat, on the entitlement locked and read afresh: every seat decision for one entitlement
        #    is made one at a time, until this transaction ends.
        entitlement = lock_entitlement(session, catalog.entitlement.id)
        version = catalog.version
        check_entitlement_rules(
            entitlement, platform=list(att.platforms), model_version=version.version, gpus=0, now=now
        )
        if catalog.model_key is None:
            raise InternalError(Code.ATTESTATION_MODEL_KEY_MISSING, "the model version has no active key")
        ttl = timedelta(seconds=entitlement.lease_ttl_seconds)
        expires_at, renew_after = now + ttl, now + ttl * 2 / 3
        renewed: Lease | None = None
        seat: Seat | None = None
        if att.kind == "renew":
            # 5a. Renewal: the same enclave key, on a lease that is still live (revoked leases never renew).
            renewed = _renewable_lease(session, att, key.thumbprint_b64, now)
            lease_id, deployment_id = renewed.id, renewed.deployment_id
        else:
            # 5b. A new lease takes a seat (race-free: the entitlement row is locked until commit).
            seat = reserve_seat(session, entitlement, att.deployment_name, now=now)
            lease_id, deployment_id = uuid.uuid4(), seat.deployment_id
        # 5. Release: the model DEK wrapped to the enclave key, and the signed attestation result.
        dek = ctx.kek.unwrap(catalog.model_key.wrapped_dek, context=model_key_context(str(version.id)))
        wrapped_key = wrap_for_enclave(dek, key, kid=str(lease_id))
        result_token = issue_ear(
            ctx.keyring,
            now=now,
            attestation_id=str(att.id),
            lease_id=str(lease_id),
            expires_at=expires_at,
            evaluations=evaluations,
            nonce=att.nonce,
            enclave_key_thumbprint=key.thumbprint_b64,
            model=catalog.model.name,
            model_version=version.version,
            deployment=att.deployment_name,
            customer_id=str(entitlement.customer_id),
        )
        # Nothing below rejects: write the seat and the lease.
        writing = True
        if renewed is not None:
            renewed.expires_at, renewed.renew_after = expires_at, renew_after
            lease = renewed
        elif seat is not None:
            superseded = take_seat(session, entitlement.id, att.deployment_name, seat, now=now)
            lease = Lease(
                id=lease_id,
                entitlement_id=entitlement.id,
                deployment_id=deployment_id,
                model_version_id=version.id,
                enclave_key_thumbprint=key.thumbprint_b64,
                gpus=0,
                status=LeaseStatus.LIVE,
                issued_at=now,
                expires_at=expires_at,
                renew_after=renew_after,
            )
            session.add(lease)
        # The rows the attestation's foreign keys name go first (no relationship() tells the unit of work the order).
        session.flush()
        att.wrapped_key, att.result_token = wrapped_key, result_token
        att.deployment_id, att.lease_id = deployment_id, lease_id
        att.status = AttestationStatus.ACCEPTED
        reasons: list[Reason] = []
    except (_Rejected, KeywardError) as e:
        lease = None
        att.wrapped_key = att.result_token = None
        att.status = AttestationStatus.REJECTED
        reasons = e.reasons if isinstance(e, _Rejected) else [e.to_reason()]
    except SQLAlchemyError:
        raise  # the session is unusable; the task retries
    except Exception:
        if writing:
            raise  # a half-written lease must roll back with the transaction
        _log.exception("unexpected error deciding attestation %s: stored as internal.error", att.id)
        lease = None
        att.wrapped_key = att.result_token = None
        att.status = AttestationStatus.REJECTED
        reasons = [
            Reason(Code.INTERNAL_ERROR, "the verifier failed on this evidence; the provider's staff can see why")
        ]
    # 6. Record everything, pass or fail, with one audit event.
    att.claims = {e.platform or f"item{i}": e.claims for i, e in enumerate(evaluations)}
    att.collateral = {e.platform or f"item{i}": e.collateral for i, e in enumerate(evaluations)}
    att.verdict = {
        "accepted": att.status == AttestationStatus.ACCEPTED,
        "reasons": [r.to_json() for r in reasons],
        "evaluations": [e.to_json() for e in evaluations],
    }
    att.simulated = any(e.simulated for e in evaluations) or ctx.trust.simulated
    att.decided_at = now
    att.timings = {"decide_ms": round((time.perf_counter() - started) * 1000, 3)}
    accepted = att.status == AttestationStatus.ACCEPTED
    entries = [
        Entry(
            AuditTag.ATTESTATION_ACCEPTED if accepted else AuditTag.ATTESTATION_REJECTED,
            "worker",
            "attestation",
            str(att.id),
            {
                "entitlement_id": str(att.entitlement_id),
                "lease_id": str(lease.id) if lease else None,
                "reasons": [r.code.value for r in reasons],
                "simulated": att.simulated,
                "superseded_leases": [str(i) for i in superseded],
            },
        )
    ]
    if lease is not None:
        entries.append(
            Entry(
                AuditTag.LEASE_RENEWED if att.kind == "renew" else AuditTag.LEASE_ISSUED,
                "worker",
                "lease",
                str(lease.id),
                {"attestation_id": str(att.id), "expires_at": lease.expires_at.isoformat()},
            )
        )
    entries.extend(
        Entry(
            AuditTag.LEASE_SUPERSEDED,
            "worker",
            "lease",
            str(i),
            {"reason": "superseded", "by": str(lease.id) if lease else None, "attestation_id": str(att.id)},
        )
        for i in superseded
    )
    record_events(session, entries, at=now)  # flushes the attestation's changes with the events
    return att


def _renewable_lease(session: Session, att: Attestation, thumbprint: str, now: datetime) -> Lease:
    lease = session.get(Lease, att.lease_id, with_for_update=True) if att.lease_id else None
    if lease is None or lease.entitlement_id != att.entitlement_id:
        raise Conflict(Code.LEASE_NOT_RENEWABLE, "no such lease")
    if lease.status != LeaseStatus.LIVE or lease.expires_at <= now:
        raise Conflict(
            Code.LEASE_NOT_RENEWABLE,
            "the lease is not live (revoked, released or expired)",
            expected="live",
            actual=lease.status.value,
        )
    if lease.enclave_key_thumbprint != thumbprint:
        raise Conflict(
            Code.LEASE_NOT_RENEWABLE,
            "renewal must come from the lease's enclave key",
            expected=lease.enclave_key_thumbprint,
            actual=thumbprint,
        )
    return lease
