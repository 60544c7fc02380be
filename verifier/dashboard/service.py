"""What the staff dashboard shows, read from the database: the overview, the deployments list, a deployment's
detail and an attestation's detail, each as frozen dataclasses a page renders.

Every function takes the caller's session first and ``now`` on the decision clock (:data:`~verifier.clock.DecisionTime`:
"today" is the UTC day of ``now``); it reads only, through :mod:`verifier.dashboard.repository`, and never commits.
The rules are here: what counts as a warning, the page bounds, the opaque keyset cursor. Not here: HTTP, access
control, templates (the dashboard's views), nor any write (the admin services).

What the stored decision does not say is not guessed silently: each evaluation records the reference-value set and
appraisal policy it was appraised against (``appraised_with``), and :class:`AttestationDetail` shows those rows. A
decision stored before Keyward recorded them shows instead the sets whose validity window held its decision time
and the entitlement's *current* policy, marked as read now, not recorded then (``inputs_recorded`` False).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from verifier.collateral.documents import INTEL
from verifier.collateral.freshness import AGEING_KINDS, Freshness
from verifier.collateral.selection import served_document_version
from verifier.dashboard import repository
from verifier.dashboard.repository import DeploymentQuery, DeploymentSort, LeaseState
from verifier.db.models import AttestationStatus, Deployment
from verifier.errors import Code, NotFound, UsageError, fault_of

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "AttestationDetail",
    "Bucket",
    "Count",
    "DeploymentDetail",
    "DeploymentPage",
    "DeploymentQuery",
    "DeploymentSort",
    "DeploymentSummary",
    "EntitlementWarning",
    "EvalNumberWarning",
    "EvaluationView",
    "LeaseState",
    "Overview",
    "PolicyView",
    "ReasonView",
    "ReferenceSetView",
    "StaleDocument",
    "TcbWarning",
    "TimelineEvent",
    "TokenView",
    "VendorFreshness",
    "attestation_detail",
    "deployment_detail",
    "list_deployments",
    "overview",
]

DEFAULT_PAGE = 50
MAX_PAGE = 200
#: TCB statuses a deployment may run on without a warning; any other accepted status (SWHardeningNeeded,
#: ConfigurationNeeded, OutOfDate accepted by a lenient policy) is one TCB recovery away from refusal.
CURRENT_TCB_STATUSES = ("UpToDate",)
_WARNINGS = 50  # at most this many rows per warning list
_TIMELINE = 200


# -- the overview -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """Decisions made in ``[start, start + width)``."""

    start: datetime
    accepted: int
    rejected: int


@dataclass(frozen=True, slots=True)
class Count:
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class VendorFreshness:
    """One vendor's cached collateral: how many documents, how many are past or near their next update."""

    vendor: str
    documents: int
    expired: int  # past next_update: a decision that needs one fails until it is fetched again
    due_soon: int  # next_update within the freshness window
    undated: int  # no readable next_update
    oldest_fetch: datetime | None
    next_expiry: datetime | None  # the soonest next_update still ahead


@dataclass(frozen=True, slots=True)
class EntitlementWarning:
    entitlement_id: uuid.UUID
    customer: str
    model: str
    valid_until: datetime | None
    seats: int
    seats_used: int
    expiring: bool  # ends within the warning window
    seats_near_limit: bool  # seats used at or over the warning ratio


@dataclass(frozen=True, slots=True)
class StaleDocument:
    """A cached vendor document the refresh has not kept fresh (no record of a failed fetch is kept: a document
    past its next update, or revocation/TCB data not fetched for twice the maximum age, is one that could not be
    refreshed)."""

    vendor: str
    kind: str
    key: str
    fetched_at: datetime
    next_update: datetime | None
    expired: bool


@dataclass(frozen=True, slots=True)
class TcbWarning:
    deployment_id: uuid.UUID
    deployment: str
    customer: str
    tcb_status: str


@dataclass(frozen=True, slots=True)
class EvalNumberWarning:
    """A live deployment whose last acceptance was judged with a TCB evaluation data number below the newest the
    collateral cache holds for its TCB Info: refused once the policy's minimum or Intel's recovery moves past it."""

    deployment_id: uuid.UUID
    deployment: str
    customer: str
    tcb_info: str | None  # "TDX:b0c06f000000" (its TCB Info's id and FMSPC); None: the decision did not record it
    judged_with: int
    newest: int  # for its TCB Info, or fleet-wide (the newest of any cached TCB Info) when tcb_info is None

    @property
    def fmspc(self) -> str | None:
        return self.tcb_info.partition(":")[2] or None if self.tcb_info else None

    @property
    def fleet_wide(self) -> bool:
        return self.tcb_info is None


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    live_deployments: int
    live_leases: int
    accepted_today: int
    rejected_today: int
    rejection_rate: float | None  # rejected / decided today; None before the first decision of the day
    hourly: tuple[Bucket, ...]  # the last 24 hours, the current hour last
    daily: tuple[Bucket, ...]  # the last 30 days, today last
    rejection_reasons: tuple[Count, ...]  # the top codes over the reasons window, most frequent first
    tcb_statuses: tuple[Count, ...]  # deployments by the TCB status of their last acceptance ("unknown": none)
    collateral: tuple[VendorFreshness, ...]
    entitlement_warnings: tuple[EntitlementWarning, ...]
    stale_collateral: tuple[StaleDocument, ...]
    tcb_warnings: tuple[TcbWarning, ...]  # live deployments on a TCB status other than CURRENT_TCB_STATUSES
    #: Live deployments judged with an older TCB evaluation data number than the cache's newest for their FMSPC.
    eval_number_warnings: tuple[EvalNumberWarning, ...] = ()

    @property
    def attestations_today(self) -> int:
        return self.accepted_today + self.rejected_today


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _buckets(session: Session, start: datetime, width: timedelta, n: int) -> tuple[Bucket, ...]:
    counts: dict[tuple[int, str], int] = {}
    for index, status, count in repository.decisions_by_bucket(
        session, start, start + width * n, int(width.total_seconds())
    ):
        counts[index, status] = count
    return tuple(
        Bucket(
            start + width * i,
            counts.get((i, AttestationStatus.ACCEPTED.value), 0),
            counts.get((i, AttestationStatus.REJECTED.value), 0),
        )
        for i in range(n)
    )


def _daily(session: Session, today: datetime, days: int) -> tuple[Bucket, ...]:
    """The last ``days`` days by day, today last: the finished days from the decisions' day counters, today
    counted from the attestations (its counters are still moving)."""
    first = today - timedelta(days=days - 1)
    counts = {(d, status): n for d, status, n in repository.decisions_by_day(session, first.date(), today.date())}
    finished = tuple(
        Bucket(
            day,
            counts.get((day.date(), AttestationStatus.ACCEPTED.value), 0),
            counts.get((day.date(), AttestationStatus.REJECTED.value), 0),
        )
        for day in (first + timedelta(days=i) for i in range(days - 1))
    )
    return finished + _buckets(session, today, timedelta(days=1), 1)


def _top_reasons(session: Session, start: datetime, end: datetime, top: int) -> tuple[Count, ...]:
    """The ``top`` reason codes of the rejections made in ``[start, end)``: the whole days inside it from the day
    counters, the parts of a day at either end (the window's first day after ``start``, and today) counted from
    the attestations. A rejection counts once under each of its codes (``unknown`` when it has none)."""
    counter: Counter[str] = Counter()
    first_day = _day_start(start)
    if first_day < start:
        first_day += timedelta(days=1)
    last_day = _day_start(end)
    partial = [(start, end)]
    if first_day < last_day:
        partial = [(start, first_day), (last_day, end)]
        for code, n in repository.rejections_by_code(session, first_day.date(), last_day.date()):
            counter[code or "unknown"] += n
    for lo, hi in partial:
        if lo < hi:
            for codes, n in repository.rejection_code_sets(session, lo, hi):
                for code in codes.split() or ["unknown"]:
                    counter[code] += n
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Count(code, n) for code, n in ranked[:top])


#: The QE Identity (its ``id``) a TCB Info's TEE (its ``id``) is judged with.
_QE_OF_TEE = {"TDX": "TD_QE", "SGX": "QE"}


def newest_eval_numbers(session: Session) -> dict[str, int]:
    """What a decision made now would be judged with, per cached TCB Info (``"TDX:b0c06f000000"``): the lower of
    that TCB Info's evaluation data number and its TEE's cached QE Identity's (as Intel reports it and the policy's
    ``min_tcb_eval_number`` compares; the TCB Info's alone when no QE Identity is cached). Read from the cached
    documents' own contents (:func:`~verifier.collateral.selection.served_document_version`); a body that cannot
    be read is left out."""
    tcb_infos: dict[str, int] = {}
    qe: dict[str, int] = {}
    for kind, body in repository.intel_tcb_documents(session, INTEL, ("tcb_info", "qe_identity")):
        version = served_document_version(kind, body)
        if version is None:
            continue
        into = tcb_infos if kind == "tcb_info" else qe
        into[version.subject] = max(version.number, into.get(version.subject, version.number))
    out = {}
    for subject, number in tcb_infos.items():
        qe_number = qe.get(_QE_OF_TEE.get(subject.partition(":")[0], ""))
        out[subject] = number if qe_number is None else min(number, qe_number)
    return out


def _eval_number_warnings(session: Session, now: datetime) -> tuple[EvalNumberWarning, ...]:
    newest = newest_eval_numbers(session)
    rows = repository.live_deployments_behind(
        session, now, newest=newest, fleet_newest=max(newest.values(), default=None), limit=_WARNINGS
    )
    return tuple(
        EvalNumberWarning(i, name, customer, info, judged, bar) for i, name, customer, info, judged, bar in rows
    )


def overview(
    session: Session,
    now: datetime,
    *,
    reasons_window: timedelta = timedelta(days=30),
    top_reasons: int = 10,
    expiry_warning: timedelta = timedelta(days=14),
    seat_ratio: float = 0.9,
    freshness: Freshness | None = None,
) -> Overview:
    """The overview at ``now``: live counts, today's decisions, the charts' series and the warnings.

    Warnings: active entitlements ending within ``expiry_warning`` or using at least ``seat_ratio`` of their seats;
    cached collateral past its next update, or revocation/TCB data not fetched for twice ``freshness.max_age``;
    deployments holding a live lease whose last acceptance was on a TCB status other than ``UpToDate``, or was
    judged with a TCB evaluation data number below the newest the collateral cache holds for its TCB Info (fleet-wide
    when the decision did not record its FMSPC; :func:`newest_eval_numbers`).
    """
    fresh = freshness or Freshness()
    today = _day_start(now)
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    live_deployments, live_leases = repository.live_counts(session, now)
    # The last 24 hours hold all of today up to the current hour's end: today's counts are their sum.
    hourly = _buckets(session, hour - timedelta(hours=23), timedelta(hours=1), 24)
    accepted = sum(b.accepted for b in hourly if b.start >= today)
    rejected = sum(b.rejected for b in hourly if b.start >= today)
    return Overview(
        now=now,
        live_deployments=live_deployments,
        live_leases=live_leases,
        accepted_today=accepted,
        rejected_today=rejected,
        rejection_rate=rejected / (accepted + rejected) if accepted + rejected else None,
        hourly=hourly,
        daily=_daily(session, today, 30),
        rejection_reasons=_top_reasons(session, now - reasons_window, now, top_reasons),
        tcb_statuses=tuple(
            sorted(
                (Count(status or "unknown", n) for status, n in repository.tcb_statuses(session)),
                key=lambda c: (-c.count, c.label),
            )
        ),
        collateral=tuple(
            VendorFreshness(*row) for row in repository.collateral_by_vendor(session, now, now + fresh.ahead)
        ),
        entitlement_warnings=tuple(
            EntitlementWarning(
                entitlement_id=ident,
                customer=customer,
                model=model,
                valid_until=valid_until,
                seats=seats,
                seats_used=int(used),
                expiring=valid_until is not None and valid_until <= now + expiry_warning,
                seats_near_limit=int(used) >= seats * seat_ratio,
            )
            for ident, customer, model, valid_until, seats, used in repository.entitlement_warnings(
                session, now, expiring_by=now + expiry_warning, seat_ratio=seat_ratio, limit=_WARNINGS
            )
        ),
        stale_collateral=tuple(
            StaleDocument(vendor, kind, key, fetched_at, next_update, next_update is not None and next_update <= now)
            for vendor, kind, key, fetched_at, next_update in repository.stale_collateral(
                session,
                now,
                ageing_kinds=sorted(AGEING_KINDS),
                fetched_before=now - 2 * fresh.max_age,
                limit=_WARNINGS,
            )
        ),
        tcb_warnings=tuple(
            TcbWarning(ident, name, customer, tcb or "")
            for ident, name, customer, tcb in repository.live_deployments_by_tcb(
                session, now, excluding=CURRENT_TCB_STATUSES, limit=_WARNINGS
            )
        ),
        eval_number_warnings=_eval_number_warnings(session, now),
    )


# -- the deployments list -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeploymentSummary:
    """One row of the deployments list."""

    id: uuid.UUID
    name: str
    customer_id: uuid.UUID
    customer: str
    model_id: uuid.UUID
    model: str
    model_version: str | None  # of its newest lease
    platforms: tuple[str, ...]  # of its last acceptance
    gpus: int | None  # of its newest lease
    tcb_status: str | None
    first_attested_at: datetime | None
    last_attested_at: datetime | None
    last_status: str | None  # of the last decision naming it: accepted or rejected
    last_decided_at: datetime | None
    last_attestation_id: uuid.UUID | None
    lease_id: uuid.UUID | None
    lease_state: LeaseState
    lease_expires_at: datetime | None
    simulated: bool
    suspended_at: datetime | None = None  # set while staff have suspended it


@dataclass(frozen=True, slots=True)
class DeploymentPage:
    rows: tuple[DeploymentSummary, ...]
    next_cursor: str | None  # None on the last page


def _summary(row: Sequence[Any]) -> DeploymentSummary:
    dep: Deployment = row[0]
    customer_id, customer, model_id, model, version, gpus, expires_at, state = row[1:]
    return DeploymentSummary(
        id=dep.id,
        name=dep.name,
        customer_id=customer_id,
        customer=customer,
        model_id=model_id,
        model=model,
        model_version=version,
        platforms=tuple(dep.platforms.split(",")) if dep.platforms else (),
        gpus=gpus,
        tcb_status=dep.tcb_status,
        first_attested_at=dep.first_attested_at,
        last_attested_at=dep.last_attested_at,
        last_status=dep.last_status,
        last_decided_at=dep.last_decided_at,
        last_attestation_id=dep.last_attestation_id,
        lease_id=dep.lease_id,
        lease_state=LeaseState(state),
        lease_expires_at=expires_at,
        simulated=dep.simulated,
        suspended_at=dep.suspended_at,
    )


def _key(row: DeploymentSummary, by: DeploymentSort) -> list[Any]:
    """``row``'s values of the columns ``by`` orders on (:func:`verifier.dashboard.repository.sort_key`)."""
    if by is DeploymentSort.NAME:
        return [row.name, row.id]
    if by is DeploymentSort.CUSTOMER:
        return [row.customer, row.name, row.id]
    return [row.last_attested_at, row.id]


def encode_cursor(sort: DeploymentSort, key: Sequence[Any]) -> str:
    """The opaque cursor of the row whose ``sort`` key is ``key``: base64url JSON, no padding."""
    values = [v.isoformat() if isinstance(v, datetime) else None if v is None else str(v) for v in key]
    raw = json.dumps([sort.value, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bad_cursor(detail: str) -> UsageError:
    return UsageError(Code.REQUEST_INVALID, "the page cursor is not one this list gave", actual=detail)


def decode_cursor(sort: DeploymentSort, cursor: str) -> list[Any]:
    """The sort key a cursor of :func:`encode_cursor` holds; ``request.invalid`` for anything else, or a cursor of
    another order."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as e:
        raise _bad_cursor("not base64url JSON") from e
    if not isinstance(doc, list) or not doc or doc[0] != sort.value:
        raise _bad_cursor("another order's cursor")
    values = doc[1:]
    try:
        if sort is DeploymentSort.LAST_ATTESTED:
            at, ident = values
            return [None if at is None else datetime.fromisoformat(at), uuid.UUID(ident)]
        if sort is DeploymentSort.NAME:
            name, ident = values
            return [str(name), uuid.UUID(ident)]
        customer, name, ident = values
        return [str(customer), str(name), uuid.UUID(ident)]
    except (TypeError, ValueError) as e:
        raise _bad_cursor("malformed key") from e


def list_deployments(
    session: Session,
    now: datetime,
    query: DeploymentQuery | None = None,
    *,
    sort: DeploymentSort = DeploymentSort.LAST_ATTESTED,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> DeploymentPage:
    """One page of deployments matching ``query`` in ``sort``'s order, after ``cursor`` (the previous page's
    ``next_cursor``; None: the first page). ``limit`` is held to 1..:data:`MAX_PAGE`. The order ends in the
    deployment id, so pages neither repeat nor skip a row while the rows keep their keys."""
    size = max(1, min(limit, MAX_PAGE))
    after = decode_cursor(sort, cursor) if cursor else None
    rows = [
        _summary(r)
        for r in repository.deployment_rows(
            session, query or DeploymentQuery(), sort=sort, after=after, limit=size + 1, now=now
        )
    ]
    more = len(rows) > size
    rows = rows[:size]
    return DeploymentPage(tuple(rows), encode_cursor(sort, _key(rows[-1], sort)) if more else None)


# -- a deployment's detail ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One thing that happened to a deployment. ``kind``: ``attest:accepted``, ``renew:rejected``,
    ``attest:pending`` (a decision, from the attestation) or an audit tag (``worker:lease:superseded``,
    ``admin:lease:revoked``, ``beat:lease:expired``, ...)."""

    at: datetime
    kind: str
    actor: str
    attestation_id: uuid.UUID | None = None
    lease_id: uuid.UUID | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeploymentDetail:
    summary: DeploymentSummary
    timeline: tuple[TimelineEvent, ...]  # newest first
    latest_acceptance_id: uuid.UUID | None
    latest_claims: Mapping[str, Any] | None  # per platform, of the newest acceptance


def deployment_detail(
    session: Session, deployment_id: uuid.UUID, now: datetime, *, limit: int = _TIMELINE
) -> DeploymentDetail:
    """The deployment's row, its timeline (its decisions, and the audit events of its leases and of the deployment
    itself: issued, renewed, superseded, revoked, expired, released), newest first and at most ``limit`` entries,
    and the claims of its newest acceptance. ``resource.not_found`` if there is no such deployment."""
    row = repository.deployment_row(session, deployment_id, now)
    if row is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "deployment not found", actual=deployment_id)
    summary = _summary(row)
    deployment: Deployment = row[0]
    events: list[TimelineEvent] = [
        TimelineEvent(
            at=decided_at or created_at,
            kind=f"{kind}:{AttestationStatus(status).value}",
            actor="worker" if decided_at else "enclave",
            attestation_id=ident,
            lease_id=lease_id,
            detail={"reasons": codes.split()} if codes else {},
        )
        for ident, kind, status, created_at, decided_at, codes, lease_id in repository.decisions_naming(
            session, deployment, limit=limit
        )
    ]
    leases = repository.lease_ids(session, deployment_id, limit=limit)
    subjects = [("lease", str(i)) for i in leases] + [("deployment", str(deployment_id))]
    events.extend(
        TimelineEvent(
            at=event.at,
            kind=event.tag,
            actor=event.actor,
            attestation_id=_uuid(event.data.get("attestation_id")),
            lease_id=uuid.UUID(event.subject_id) if event.subject_type == "lease" else None,
            detail=dict(event.data),
        )
        for event in repository.audit_events_about(session, subjects, limit=limit)
    )
    events.sort(key=lambda e: e.at, reverse=True)
    latest = repository.latest_acceptance(session, deployment_id)
    return DeploymentDetail(
        summary=summary,
        timeline=tuple(events[:limit]),
        latest_acceptance_id=latest.id if latest else None,
        latest_claims=latest.claims if latest else None,
    )


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


# -- an attestation's detail --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReasonView:
    """One failed check as stored: the code, whose fault, what it means, expected vs actual."""

    code: str
    fault: str
    message: str
    expected: str | None
    actual: str | None


@dataclass(frozen=True, slots=True)
class EvaluationView:
    """One evidence item's result (one CPU report, or one GPU), every check that failed with its reason."""

    platform: str | None
    device: str | None
    verified: bool
    accepted: bool
    simulated: bool
    tcb_status: str | None
    advisory_ids: tuple[str, ...]
    reasons: tuple[ReasonView, ...]
    claims: Mapping[str, Any]
    collateral: Mapping[str, Any]
    #: The ids of the reference-value set and policy it was appraised against, as the decision recorded them
    #: (None for decisions stored before they were).
    appraised_with: Mapping[str, str | None] | None = None


@dataclass(frozen=True, slots=True)
class ReferenceSetView:
    id: uuid.UUID
    platform: str
    status: str  # now, not when the decision was made
    valid_from: datetime
    valid_until: datetime | None
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PolicyView:
    id: uuid.UUID
    name: str
    platform: str
    document: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TokenView:
    """The EAR result token's JOSE header and claims, base64url-decoded; not verified here (``/.well-known``'s
    keys verify it)."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AttestationDetail:
    id: uuid.UUID
    kind: str
    status: str
    deployment_name: str
    deployment_id: uuid.UUID | None  # the deployment of that name, if one exists (a rejection may name none)
    entitlement_id: uuid.UUID
    customer: str
    model: str
    model_version: str
    platforms: tuple[str, ...]
    created_at: datetime
    decided_at: datetime | None
    simulated: bool
    lease_id: uuid.UUID | None
    reasons: tuple[ReasonView, ...]  # why it was rejected (every reason); empty for an acceptance
    evaluations: tuple[EvaluationView, ...]
    collateral: Mapping[str, Any]  # per platform: the collateral versions verified with
    timings: Mapping[str, Any]
    token: TokenView | None
    #: The reference-value sets and appraisal policies the decision's evaluations were appraised against (their
    #: status is today's). When ``inputs_recorded`` is False (a decision stored before they were recorded): the sets
    #: of the model version for these platforms whose validity window held the decision time, newest first, and
    #: the entitlement's policy as it is now.
    reference_sets: tuple[ReferenceSetView, ...]
    policies: tuple[PolicyView, ...]
    inputs_recorded: bool


def _reason(doc: Mapping[str, Any]) -> ReasonView:
    code = str(doc.get("code", ""))
    expected, actual = doc.get("expected"), doc.get("actual")
    return ReasonView(
        code=code,
        fault=str(doc.get("fault") or fault_of(code).value),
        message=str(doc.get("message", "")),
        expected=None if expected is None else str(expected),
        actual=None if actual is None else str(actual),
    )


def _evaluation(doc: Mapping[str, Any]) -> EvaluationView:
    return EvaluationView(
        platform=doc.get("platform"),
        device=doc.get("device"),
        verified=bool(doc.get("verified")),
        accepted=bool(doc.get("accepted")),
        simulated=bool(doc.get("simulated")),
        tcb_status=doc.get("tcb_status"),
        advisory_ids=tuple(doc.get("advisory_ids") or ()),
        reasons=tuple(_reason(r) for r in doc.get("reasons") or ()),
        claims=doc.get("claims") or {},
        collateral=doc.get("collateral") or {},
        appraised_with=_appraised_with(doc.get("appraised_with")),
    )


def _appraised_with(value: object) -> Mapping[str, str | None] | None:
    """A recorded ``appraised_with`` whose ids read as UUIDs; None for anything else (never trusted blindly)."""
    if not isinstance(value, dict):
        return None
    ids: dict[str, str | None] = {}
    for name in ("reference_values", "policy"):
        ident = value.get(name)
        if ident is not None:
            try:
                ident = str(uuid.UUID(str(ident)))
            except ValueError:
                return None
        ids[name] = ident
    return ids


def _b64url_json(part: str) -> Mapping[str, Any]:
    doc = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def decode_token(token: str | None) -> TokenView | None:
    """A compact JWS's header and claims, unverified; None when there is none or it does not decode."""
    if not token:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        return TokenView(_b64url_json(parts[0]), _b64url_json(parts[1]))
    except (binascii.Error, ValueError):
        return None


def attestation_detail(session: Session, attestation_id: uuid.UUID) -> AttestationDetail:
    """Everything stored about one attestation, for staff. ``resource.not_found`` if there is none."""
    row = repository.attestation_context(session, attestation_id)
    if row is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "attestation not found", actual=attestation_id)
    att, customer, model, version, policy, deployment = row
    verdict = att.verdict or {}
    platforms = tuple(att.platforms)
    evaluations = tuple(_evaluation(e) for e in verdict.get("evaluations") or ())
    recorded = [e.appraised_with for e in evaluations if e.appraised_with is not None]
    inputs_recorded = bool(recorded) or not evaluations  # no evaluation: nothing was appraised
    if inputs_recorded:
        sets, policies = repository.appraisal_inputs(
            session,
            sorted({uuid.UUID(ids["reference_values"]) for ids in recorded if ids.get("reference_values")}),
            sorted({uuid.UUID(ids["policy"]) for ids in recorded if ids.get("policy")}),
        )
    else:
        sets = repository.reference_sets_in_force(
            session, att.model_version_id, platforms, att.decided_at or att.created_at
        )
        policies = [] if policy is None else [policy]
    return AttestationDetail(
        id=att.id,
        kind=att.kind,
        status=AttestationStatus(att.status).value,
        deployment_name=att.deployment_name,
        deployment_id=deployment.id if deployment else None,
        entitlement_id=att.entitlement_id,
        customer=customer,
        model=model,
        model_version=version,
        platforms=platforms,
        created_at=att.created_at,
        decided_at=att.decided_at,
        simulated=att.simulated,
        lease_id=att.lease_id,
        reasons=tuple(_reason(r) for r in verdict.get("reasons") or ()),
        evaluations=evaluations,
        collateral=att.collateral or {},
        timings=att.timings or {},
        token=decode_token(att.result_token),
        reference_sets=tuple(
            ReferenceSetView(s.id, s.platform, s.status.value, s.valid_from, s.valid_until, s.values) for s in sets
        ),
        policies=tuple(PolicyView(p.id, p.name, p.platform, p.document) for p in policies),
        inputs_recorded=inputs_recorded,
    )
