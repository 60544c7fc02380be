"""The one orchestrator: decide a pending attestation and, on success, release a lease.

``decide_attestation(session, attestation_id, ctx, clock)`` runs in the worker, in the caller's transaction, in
three phases (:func:`decide_locked`): :func:`check` -> :func:`release` -> :func:`record`.

Check (:class:`Accepted` or :class:`Rejected`; nothing is written but the redeemed nonce):

1. Redeem the challenge nonce (single use across workers and restarts; a replay is a stored rejection). Its
   expiry is checked against when the evidence arrived (``created_at`` on the decision clock,
   :meth:`~verifier.clock.Clock.decision_time_of`), so a decision that waited for vendor collateral or was requeued
   after a lost dispatch is not rejected for the service's own delay. But a request older than
   ``ctx.max_decision_age`` (Settings' ``max_decision_age_seconds``) is rejected ``attestation.request_stale``
   (its nonce spent): its client has given up and attested again, and a lease it released would only hold a seat.
2. Load the enclave's JWK; the default binding is REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint).
3. For every evidence item: parse -> verify -> appraise against the active reference values of the model version
   for that platform, merged with the entitlement's appraisal policy, with the binding as expected REPORTDATA.
4. Entitlement, locked and read afresh: active, its customer not suspended, in its window, platform and version
   allowed; a seat reserved (race-free: every seat decision for one entitlement is made one at a time). A seat is
   a deployment with one live lease: a new lease for a deployment supersedes (revokes) the one it held, so one
   licence seat never covers more than one running enclave; but a request never displaces a lease granted to a
   request of the deployment that arrived after it (``attestation.superseded_by_newer``): a late decision (a
   crashed worker's request, decided after the enclave retried) is rejected instead of revoking the live lease.
   A renewal needs its lease live and the same key.

Release (:class:`Released` or :class:`Rejected`; nothing is written):

5. The model DEK unwrapped from the KEK and wrapped to the enclave key (compact JWE), and a signed EAR
   attestation-result token.

Record (writes; the caller commits once):

6. The deployment and the lease (issued, or renewed; the deployment's earlier live leases superseded), the
   attestation row (claims, verdict with every reason, collateral, timings), hash-chained audit events and the
   day's decision counters (the staff dashboard's series read finished days there).

Rejections are results: any failure in 1-5 is a returned :class:`Rejected` with its reasons, stored and audited the
same way as an acceptance. An unexpected exception while checking or releasing (a parser bug on hostile bytes) is
a stored ``internal.error`` rejection, logged with its traceback for staff, so a poisoned request cannot fail its
task and be requeued forever; database errors are not caught (the task retries them), nor is anything raised while
recording (a half-written lease rolls back with the transaction). In production, a policy asking to accept debug
TEEs is overridden: the host can read a debug TEE's memory, so the model key is never released to one.
Every check that can reject runs before anything but the redeemed nonce is written, so a rejection needs no
savepoint and leaves no half-made lease. The reads are few on purpose (one statement redeems the nonce and reads
the catalog with its reference values, one locks the entitlement, one reads the seat) and every statement is
SQLAlchemy Core built once (the repositories'), its rows handed on as untracked entities
(:mod:`verifier.db.rows`): a decision is a handful of round trips to PostgreSQL and no ORM unit of work.
The function is idempotent: a decided attestation is returned unchanged (a worker killed mid-task re-runs it).

Here: the order of the steps, the writes and the audit. Elsewhere: the catalog and policy reads
(:mod:`verifier.attestation.catalog`), each evidence item's binding and evaluation (:mod:`verifier.attestation.items`),
the seat (:mod:`verifier.entitlement.service`), the nonce (:mod:`verifier.attestation.challenges`), the clocks
(:mod:`verifier.clock`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from verifier.attestation import repository
from verifier.attestation.catalog import Catalog, redeem_and_load_catalog
from verifier.attestation.context import DecisionContext
from verifier.attestation.items import attestation_rules, attested_gpus, evaluate_item, read_needs
from verifier.attestation.leases import NewLease, lease_times, renewable_lease, seat_new_lease
from verifier.audit.log import AuditTag, Entry, append_events
from verifier.clock import Clock, DecisionTime, WallTime
from verifier.collateral.documents import Documents
from verifier.db.models import Attestation, AttestationStatus, Entitlement, Lease, ModelKey
from verifier.db.pipeline import sent_together
from verifier.entitlement.service import Seat, check_entitlement_rules, lock_entitlement, reserve_seat
from verifier.errors import Code, KeywardError, NotFound, Reason, VerificationFailed
from verifier.keywrap.ear import issue_ear
from verifier.keywrap.enclave import EnclaveKey, expected_report_data, parse_enclave_jwk, wrap_for_enclave
from verifier.keywrap.kek import model_key_context
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.registry import Parsed, cpu_platforms, parse_evidence

__all__ = [
    "Accepted",
    "Decided",
    "DecisionContext",
    "Rejected",
    "Released",
    "check",
    "decide_attestation",
    "decide_locked",
    "decide_recorded",
    "lock_attestation",
    "record",
    "release",
]

_log = logging.getLogger(__name__)

_INTERNAL_ERROR = Reason(Code.INTERNAL_ERROR, "the verifier failed on this evidence; the provider's staff can see why")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A decision that failed a check: every reason, and the evaluations made before it (stored with it)."""

    reasons: tuple[Reason, ...]
    evaluations: tuple[Evaluation, ...] = ()


@dataclass(frozen=True, slots=True)
class Accepted:
    """Every check passed: what the release and the record need."""

    evaluations: tuple[Evaluation, ...]
    key: EnclaveKey
    catalog: Catalog
    model_key: ModelKey  # the catalog's, known to exist
    entitlement: Entitlement  # locked until the transaction ends
    tenure: Lease | Seat  # the live lease a renewal extends, or the seat a new lease takes
    lease_id: uuid.UUID
    deployment_id: uuid.UUID
    expires_at: DecisionTime
    renew_after: DecisionTime
    gpus: int = 0  # attested GPUs: the lease's, billed as GPU time


@dataclass(frozen=True, slots=True)
class Released:
    """An accepted decision with its key released: the wrapped DEK (compact JWE) and the signed EAR."""

    accepted: Accepted
    wrapped_key: str
    result_token: str


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision as recorded: the attestation and, for an acceptance made now, its lease as written."""

    attestation: Attestation
    lease: Lease | None


def decide_attestation(
    session: Session,
    attestation_id: Any,
    ctx: DecisionContext,
    clock: Clock,
    *,
    evidence: Sequence[Parsed] | None = None,
) -> Attestation:
    """Lock the attestation row and decide it (:func:`decide_locked`)."""
    att = lock_attestation(session, attestation_id)
    return decide_locked(session, att, ctx, clock, evidence=evidence)


def lock_attestation(session: Session, attestation_id: Any) -> Attestation:
    """The attestation, its row locked until the transaction ends and read afresh (``SELECT ... FOR UPDATE``)."""
    att = repository.lock_attestation(session, attestation_id)
    if att is None:
        raise NotFound(Code.ATTESTATION_NOT_FOUND, f"no attestation {attestation_id}")
    return att


def decide_locked(
    session: Session,
    att: Attestation,
    ctx: DecisionContext,
    clock: Clock,
    *,
    evidence: Sequence[Parsed] | None = None,
    documents: Documents | None = None,
) -> Attestation:
    """:func:`decide_recorded`, the attestation alone."""
    return decide_recorded(session, att, ctx, clock, evidence=evidence, documents=documents).attestation


def decide_recorded(
    session: Session,
    att: Attestation,
    ctx: DecisionContext,
    clock: Clock,
    *,
    evidence: Sequence[Parsed] | None = None,
    documents: Documents | None = None,
) -> Decided:
    """Decide ``att``, whose row the caller has locked (``SELECT ... FOR UPDATE``) in this transaction; returns it
    with the lease an acceptance wrote (:class:`Decided`; no lease for one decided before: it is returned unchanged).

    1. Read the decision clock once; the request arrived at its ``created_at`` (real time) on that clock.
    2. :func:`check` (steps 1-4 of the module docstring): :class:`Accepted` or :class:`Rejected`.
    3. :func:`release` (step 5), if accepted: :class:`Released` or :class:`Rejected`.
    4. :func:`record` (step 6): the lease if released, the attestation row and the audit events, pass or fail.

    ``evidence``: ``att.evidence`` already parsed (:func:`~verifier.platforms.registry.parse_evidence`; the task
    parses once for the prefetch and the decision); parsed here when not given. ``documents``: the cached documents
    its items need, read in this transaction (the task's prefetch check reads them); read here when not given.
    """
    if att.status != AttestationStatus.PENDING:
        return Decided(att, None)  # idempotent: already decided
    started = time.perf_counter()
    now = clock.decision_time()
    received = clock.decision_time_of(WallTime(att.created_at), now)
    checked = check(session, att, ctx, now, received, evidence, documents)
    outcome = release(att, ctx, checked, now) if isinstance(checked, Accepted) else checked
    return Decided(att, record(session, att, ctx, outcome, now, started))


# -- Check ---------------------------------------------------------------------------------------------------------


def check(
    session: Session,
    att: Attestation,
    ctx: DecisionContext,
    now: DecisionTime,
    received: DecisionTime,
    evidence: Sequence[Parsed] | None,
    documents: Documents | None = None,
) -> Accepted | Rejected:
    """Steps 1-4: the nonce, the enclave key, every evidence item, the licence and the seat. Pure after its reads;
    writes only the redeemed nonce. A raised :class:`~verifier.errors.KeywardError` is a rejection with its reason,
    any other exception an ``internal.error`` rejection (logged); database errors propagate."""
    evaluations: list[Evaluation] = []  # kept when a later step rejects: the verdict stores them
    try:
        return _check(session, att, ctx, now, received, evidence, documents, evaluations)
    except SQLAlchemyError:
        raise  # the session is unusable; the task retries
    except Exception as e:  # every other failure is a stored rejection
        return Rejected(_reasons_for(e, att), tuple(evaluations))


def _check(
    session: Session,
    att: Attestation,
    ctx: DecisionContext,
    now: DecisionTime,
    received: DecisionTime,
    evidence: Sequence[Parsed] | None,
    documents: Documents | None,
    evaluations: list[Evaluation],
) -> Accepted | Rejected:
    # 1-2. Freshness (as of the evidence's arrival; the nonce is spent either way) and the enclave key. The nonce is
    #      consumed in the statement that reads the catalog.
    catalog = redeem_and_load_catalog(session, ctx.challenge_secret, att, now, received)
    _check_age(now, received, ctx.max_decision_age)
    key = parse_enclave_jwk(att.enclave_jwk)
    binding = expected_report_data(att.nonce, key)
    if catalog is None:
        raise NotFound(Code.MODEL_VERSION_NOT_FOUND, "model version or entitlement vanished")
    # 3. Every evidence item, parsed once, appraised against reference values + policy + binding with the cached
    #    documents its platform says it needs (one statement for all items).
    items = parse_evidence(att.evidence, ctx.collateral_cache) if evidence is None else evidence
    if documents is None:
        documents = read_needs(session, items)
    evaluations.extend(evaluate_item(item, documents, att.nonce, key, binding, catalog, ctx, now) for item in items)
    failed = tuple(r for e in evaluations for r in e.reasons)
    if failed or not evaluations:
        return Rejected(failed or (Reason(Code.ATTESTATION_EVIDENCE_MALFORMED, "no evidence"),), tuple(evaluations))
    #    The items together: each platform's rules over the whole attestation (GPUs bound to CPU evidence, each
    #    device once, the GPU count, protected PCIe).
    together = attestation_rules(items, evaluations, catalog, ctx, now)
    if together:
        return Rejected(together, tuple(evaluations))
    gpus = attested_gpus(items)
    # 4. Licence and seat, on the entitlement locked and read afresh: every seat decision for one entitlement is
    #    made one at a time, until this transaction ends. GPUs are licensed by count (``max_gpus``), not platform.
    entitlement = lock_entitlement(session, catalog.entitlement.id)
    check_entitlement_rules(
        entitlement, platform=cpu_platforms(att.platforms), model_version=catalog.version.version, gpus=gpus, now=now
    )
    if catalog.model_key is None:
        return Rejected(
            (Reason(Code.ATTESTATION_MODEL_KEY_MISSING, "the model version has no active key"),), tuple(evaluations)
        )
    tenure: Lease | Seat
    if att.kind == "renew":  # the same enclave key, on a lease that is still live (revoked leases never renew)
        tenure = renewable_lease(
            session, att.lease_id, entitlement_id=att.entitlement_id, thumbprint=key.thumbprint_b64, now=now
        )
        if tenure.gpus != gpus:  # billed as the lease's GPUs x its time: a renewal attests the same GPUs
            return Rejected(
                (
                    Reason(
                        Code.NVIDIA_POLICY_GPU_COUNT,
                        "a renewal must attest as many GPUs as its lease holds; attest for a new lease instead",
                        expected=str(tenure.gpus),
                        actual=str(gpus),
                    ),
                ),
                tuple(evaluations),
            )
        lease_id, deployment_id = tenure.id, tenure.deployment_id
    else:  # a new lease takes a seat (race-free: the entitlement row is locked until commit), unless a newer
        #    request of the deployment already holds it
        tenure = reserve_seat(
            session,
            entitlement,
            att.deployment_name,
            now=now,
            newer_than=(att.created_at, received - _CLOCK_SKEW_MARGIN),
        )
        lease_id, deployment_id = uuid.uuid4(), tenure.deployment_id
    expires_at, renew_after = lease_times(now, entitlement.lease_ttl_seconds)
    return Accepted(
        evaluations=tuple(evaluations),
        key=key,
        catalog=catalog,
        model_key=catalog.model_key,
        entitlement=entitlement,
        tenure=tenure,
        lease_id=lease_id,
        deployment_id=deployment_id,
        expires_at=DecisionTime(expires_at),
        renew_after=DecisionTime(renew_after),
        gpus=gpus,
    )


def _check_age(now: DecisionTime, received: DecisionTime, limit: timedelta) -> None:
    """``attestation.request_stale`` if the request arrived more than ``limit`` before ``now``: nobody waits for
    that decision any more (the client gave up and attested again), and a lease it released would hold a seat."""
    waited = now - received
    if waited > limit:
        raise VerificationFailed(
            Code.ATTESTATION_REQUEST_STALE,
            "the request waited too long for its decision; attest again with a fresh nonce",
            expected=f"decided within {limit} of arrival",
            actual=waited,
        )


#: Slack for the hosts' clocks in the index bound of the seat's newer-request check (never in its comparison): a
#: request of the deployment accepted after this one arrived was decided after ``received - margin``.
_CLOCK_SKEW_MARGIN: Final = timedelta(minutes=5)


def _reasons_for(error: Exception, att: Attestation) -> tuple[Reason, ...]:
    """A check's or release's failure as stored reasons: ours carries its code; anything else is a verifier bug,
    logged with its traceback for staff and stored as ``internal.error``."""
    if isinstance(error, KeywardError):
        return (error.to_reason(),)
    _log.exception("unexpected error deciding attestation %s: stored as internal.error", att.id)
    return (_INTERNAL_ERROR,)


# -- Release -------------------------------------------------------------------------------------------------------


def release(att: Attestation, ctx: DecisionContext, accepted: Accepted, now: DecisionTime) -> Released | Rejected:
    """Step 5: the model DEK unwrapped from the KEK and wrapped to the enclave key, and the signed attestation
    result. Writes nothing; a failure is a rejection as in :func:`check`."""
    try:
        version, entitlement = accepted.catalog.version, accepted.entitlement
        dek = ctx.kek.unwrap(accepted.model_key.wrapped_dek, context=model_key_context(str(version.id)))
        wrapped_key = wrap_for_enclave(dek, accepted.key, kid=str(accepted.lease_id))
        result_token = issue_ear(
            ctx.keyring,
            now=now,
            attestation_id=str(att.id),
            lease_id=str(accepted.lease_id),
            expires_at=accepted.expires_at,
            evaluations=accepted.evaluations,
            nonce=att.nonce,
            enclave_key_thumbprint=accepted.key.thumbprint_b64,
            model=accepted.catalog.model.name,
            model_version=version.version,
            deployment=att.deployment_name,
            customer_id=str(entitlement.customer_id),
            issuer=ctx.issuer,
        )
    except SQLAlchemyError:
        raise  # the session is unusable; the task retries
    except Exception as e:  # every other failure is a stored rejection
        return Rejected(_reasons_for(e, att), accepted.evaluations)
    return Released(accepted, wrapped_key, result_token)


# -- Record --------------------------------------------------------------------------------------------------------


def record(
    session: Session,
    att: Attestation,
    ctx: DecisionContext,
    outcome: Released | Rejected,
    now: DecisionTime,
    started: float,
) -> Lease | None:
    """Step 6: for a release, the seat and the lease; then the attestation row, its deployment's summary, its audit
    events and the day's counters, pass or fail; returns the lease written, if any. The lease, the attestation row
    and the summary are one statement (:func:`~verifier.attestation.repository.record_decision`). Nothing written
    here is read back, so on PostgreSQL every statement is sent in one round trip
    (:func:`~verifier.db.pipeline.sent_together`); only touching an existing deployment, which reads the leases it
    supersedes, waits for its answer first. Catches nothing: a failure here rolls the whole decision back (the task
    retries)."""
    with ExitStack() as writes:
        together: bool | None = None  # whether the writes are being sent together yet
        superseded: list[uuid.UUID] = []  # the deployment's earlier live leases the new one replaces
        reasons: tuple[Reason, ...] = ()
        new_lease: dict[str, Any] | None = None
        renewed: tuple[Lease, DecisionTime, DecisionTime] | None = None
        if isinstance(outcome, Released):
            accepted = outcome.accepted
            status, evaluations = AttestationStatus.ACCEPTED, accepted.evaluations
            if isinstance(accepted.tenure, Lease):  # a renewal extends its lease
                renewed = (accepted.tenure, accepted.expires_at, accepted.renew_after)
            else:  # the seat taken now (superseding the deployment's live leases); the lease written with the rest
                if accepted.tenure.new:  # an INSERT: sent with the writes below
                    together = writes.enter_context(sent_together(session))
                new_lease, superseded = seat_new_lease(
                    session,
                    NewLease(
                        lease_id=accepted.lease_id,
                        entitlement_id=accepted.entitlement.id,
                        deployment_name=att.deployment_name,
                        seat=accepted.tenure,
                        model_version_id=accepted.catalog.version.id,
                        thumbprint=accepted.key.thumbprint_b64,
                        now=now,
                        expires_at=accepted.expires_at,
                        renew_after=accepted.renew_after,
                        gpus=accepted.gpus,
                    ),
                )
            released: dict[str, Any] = {
                "wrapped_key": outcome.wrapped_key,
                "result_token": outcome.result_token,
                "deployment_id": accepted.deployment_id,
                "lease_id": accepted.lease_id,
            }
        else:
            status, reasons, evaluations = AttestationStatus.REJECTED, outcome.reasons, outcome.evaluations
            released = {
                "wrapped_key": None,
                "result_token": None,
                "deployment_id": att.deployment_id,
                "lease_id": att.lease_id,
            }
        claims: dict[str, Any] = {}
        collateral: dict[str, Any] = {}
        for i, e in enumerate(evaluations):  # each evaluation's dicts built once, for the columns and the verdict
            claims[e.platform or f"item{i}"] = e.claims
            collateral[e.platform or f"item{i}"] = e.collateral
        simulated = any(e.simulated for e in evaluations) or ctx.trust.simulated
        reason_codes = " ".join(sorted({r.code.value for r in reasons})) or None
        if together is None:  # the writes from here on
            together = writes.enter_context(sent_together(session))
        lease = repository.record_decision(
            session,
            att,
            {
                "status": status,
                "claims": claims,
                "collateral": collateral,
                "verdict": {
                    "accepted": status == AttestationStatus.ACCEPTED,
                    "reasons": [r.to_json() for r in reasons],
                    "evaluations": [e.to_json() for e in evaluations],
                },
                "simulated": simulated,
                "reason_codes": reason_codes,
                "decided_at": now,
                "timings": {"decide_ms": round((time.perf_counter() - started) * 1000, 3)},
                **released,
            },
            note=_deployment_note(att, status, released, evaluations, simulated=simulated, now=now),
            new_lease=new_lease,
            renewed=renewed,
        )
        entries = [_decision_entry(att, lease, reasons, superseded)]
        if lease is not None:
            entries.append(_lease_entry(att, lease))
            entries.extend(_superseded_entry(att, lease, i) for i in superseded)
        append_events(session, entries, at=now)
        # Counted after the audit append: its lock orders the decisions' transactions (see count_decision).
        repository.count_decision(session, decided_at=now, status=status, reason_codes=reason_codes)
        return lease


def _deployment_note(
    att: Attestation,
    status: AttestationStatus,
    released: dict[str, Any],
    evaluations: Sequence[Evaluation],
    *,
    simulated: bool,
    now: DecisionTime,
) -> repository.Note:
    """The deployment's summary for the staff dashboard: an acceptance's lease, platforms, TCB status (the first
    evaluation that has one: the CPU evidence's), Intel TCB evaluation number and TCB Info (:func:`_intel_judgement`)
    and simulated flag; the last decision naming it, pass or fail."""
    if status == AttestationStatus.ACCEPTED:
        return repository.accepted_note(
            deployment_id=released["deployment_id"],
            lease_id=released["lease_id"],
            attestation_id=att.id,
            platforms=",".join(sorted(set(att.platforms))) or None,
            tcb_status=next((e.tcb_status for e in evaluations if e.tcb_status), None),
            simulated=simulated,
            now=now,
            **_intel_judgement(evaluations),
        )
    return repository.rejected_note(
        entitlement_id=att.entitlement_id, deployment_name=att.deployment_name, attestation_id=att.id, now=now
    )


#: The id an Intel platform's TCB Info names itself with (``tcbInfo.id``; SGX's v2 TCB Info has none and is SGX's).
_TCB_INFO_IDS = {"intel-tdx": "TDX", "intel-sgx": "SGX", "azure-tdx-vtpm": "TDX"}  # Azure's: its TD quote's


def _intel_judgement(evaluations: Sequence[Evaluation]) -> dict[str, Any]:
    """The TCB evaluation data number the first Intel evaluation was judged with (what the policy's
    ``min_tcb_eval_number`` compares: the lower of the TCB Info's and the QE Identity's) and its TCB Info as
    ``"<id>:<fmspc>"`` (None when the collateral did not record the FMSPC); both None without Intel evidence."""
    for e in evaluations:
        number, fmspc = e.collateral.get("tcb_eval_number"), e.collateral.get("fmspc")
        if e.platform in _TCB_INFO_IDS and type(number) is int:
            tcb_info = f"{_TCB_INFO_IDS[e.platform]}:{fmspc.lower()}" if isinstance(fmspc, str) and fmspc else None
            return {"tcb_eval_number": number, "tcb_info_id": tcb_info}
    return {"tcb_eval_number": None, "tcb_info_id": None}


def _decision_entry(
    att: Attestation, lease: Lease | None, reasons: Sequence[Reason], superseded: Sequence[uuid.UUID]
) -> Entry:
    """``worker:attestation:accepted`` or ``...:rejected``, with the reasons' codes."""
    return Entry(
        AuditTag.ATTESTATION_ACCEPTED if att.status == AttestationStatus.ACCEPTED else AuditTag.ATTESTATION_REJECTED,
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


def _lease_entry(att: Attestation, lease: Lease) -> Entry:
    """``worker:lease:issued``, or ``...:renewed`` for a renewal."""
    return Entry(
        AuditTag.LEASE_RENEWED if att.kind == "renew" else AuditTag.LEASE_ISSUED,
        "worker",
        "lease",
        str(lease.id),
        {"attestation_id": str(att.id), "expires_at": lease.expires_at.isoformat()},
    )


def _superseded_entry(att: Attestation, lease: Lease, superseded: uuid.UUID) -> Entry:
    """``worker:lease:superseded`` for an earlier live lease of the deployment, naming the lease that replaced it."""
    return Entry(
        AuditTag.LEASE_SUPERSEDED,
        "worker",
        "lease",
        str(superseded),
        {"reason": "superseded", "by": str(lease.id), "attestation_id": str(att.id)},
    )
