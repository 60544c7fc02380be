"""All SQL of the staff dashboard's reads: the overview's counts and series, the deployments list (search, filters,
keyset pages), a deployment's timeline and an attestation's detail.

Fast with a large fleet because nothing here reads the attestations' JSON across many rows: a deployment's last
decision, platforms, TCB status and simulated flag are columns on ``deployments`` (kept by the decision:
:func:`verifier.attestation.flows.record`), a rejection's reason codes a column on ``attestations``, finished
days' counts by outcome and by reason code are read from the counters the decision keeps (``decision_days``,
``rejection_reason_days``), and the counts of the current day and hours from the ``(decided_at, status)`` index.
Pages are keyset pages: each statement is "rows after this key, in this order, LIMIT n", whatever page it is.

Takes typed values (the rules, the cursor and the limits are :mod:`verifier.dashboard.service`'s) and the
caller's session; reads only, and never commits. The statements are portable (PostgreSQL and the embedded
profile's SQLite) but for the epoch of a timestamp, which each dialect spells its own way.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Row,
    String,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.orm import Session, aliased

from verifier.db.models import (
    AppraisalPolicy,
    Attestation,
    AttestationStatus,
    AuditEvent,
    CachedCollateral,
    Customer,
    DecisionDay,
    Deployment,
    Entitlement,
    EntitlementStatus,
    Lease,
    LeaseStatus,
    Model,
    ModelVersion,
    ReferenceValueSet,
    RejectionReasonDay,
)


class LeaseState(StrEnum):
    """A deployment's newest lease as staff read it: ``live`` only while unexpired (a live lease past
    ``expires_at`` that the expiry job has not marked yet is ``expired``), ``none`` without a lease."""

    LIVE = "live"
    EXPIRED = "expired"
    REVOKED = "revoked"
    RELEASED = "released"
    NONE = "none"


class DeploymentSort(StrEnum):
    """The deployments list's orders, each ending in the deployment id (a unique tiebreak for keyset pages)."""

    LAST_ATTESTED = "last_attested"  # newest first, never-attested last
    NAME = "name"  # A to Z
    CUSTOMER = "customer"  # customer A to Z, then deployment name


@dataclass(frozen=True, slots=True)
class DeploymentQuery:
    """The deployments list's search and filters; None is "any". ``search`` is matched case-insensitively
    anywhere in the deployment's or its customer's name."""

    search: str | None = None
    customer_id: uuid.UUID | None = None
    model_id: uuid.UUID | None = None
    platform: str | None = None
    lease_state: LeaseState | None = None
    simulated: bool | None = None
    last_status: AttestationStatus | None = None


# -- the overview -------------------------------------------------------------------------------------------------


def _live(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return Lease.status == LeaseStatus.LIVE, Lease.expires_at > now


def live_counts(session: Session, now: datetime) -> tuple[int, int]:
    """(deployments holding a live, unexpired lease; such leases), in one statement."""
    deployments, leases = session.execute(
        select(func.count(distinct(Lease.deployment_id)), func.count()).where(*_live(now))
    ).one()
    return int(deployments), int(leases)


def _epoch_seconds(session: Session, column: Any) -> ColumnElement[int]:
    if session.get_bind().dialect.name == "sqlite":
        return extract("epoch", column)  # CAST(STRFTIME('%s', ...) AS INTEGER): whole seconds already
    return cast(func.floor(extract("epoch", column)), BigInteger)


def decisions_by_bucket(
    session: Session, start: datetime, end: datetime, width_seconds: int
) -> list[tuple[int, str, int]]:
    """(bucket, status, count) of the decisions made in ``[start, end)``, bucket ``n`` holding those made
    ``[start + n * width, start + (n + 1) * width)``; empty buckets are absent."""
    offset = _epoch_seconds(session, Attestation.decided_at) - int(start.timestamp())
    bucket = (offset // width_seconds).label("bucket")  # offset >= 0: floor division is integer division
    rows = session.execute(
        select(bucket, Attestation.status, func.count())
        .where(Attestation.decided_at >= start, Attestation.decided_at < end)
        .group_by(bucket, Attestation.status)
    ).all()
    return [(int(b), AttestationStatus(s).value, int(n)) for b, s, n in rows]


def rejection_code_sets(session: Session, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """(space-separated reason codes, rejections) for the rejections made in ``[start, end)``, grouped by their
    set of codes (few distinct sets; the caller splits and sums them)."""
    rows = session.execute(
        select(Attestation.reason_codes, func.count())
        .where(
            Attestation.decided_at >= start,
            Attestation.decided_at < end,
            Attestation.status == AttestationStatus.REJECTED,
        )
        .group_by(Attestation.reason_codes)
    ).all()
    return [(codes or "", int(n)) for codes, n in rows]


def decisions_by_day(session: Session, first: date, end: date) -> list[tuple[date, str, int]]:
    """(day, status, decisions) from the day counters for the days ``[first, end)``; days without decisions are
    absent."""
    rows = session.execute(
        select(DecisionDay.day, DecisionDay.status, DecisionDay.decisions).where(
            DecisionDay.day >= first, DecisionDay.day < end
        )
    ).all()
    return [(day, AttestationStatus(status).value, int(n)) for day, status, n in rows]


def rejections_by_code(session: Session, first: date, end: date) -> list[tuple[str, int]]:
    """(reason code, rejections) summed over the day counters of the days ``[first, end)``; ``""`` counts the
    rejections stored without a code."""
    rows = session.execute(
        select(RejectionReasonDay.code, func.sum(RejectionReasonDay.rejections))
        .where(RejectionReasonDay.day >= first, RejectionReasonDay.day < end)
        .group_by(RejectionReasonDay.code)
    ).all()
    return [(code, int(n)) for code, n in rows]


def tcb_statuses(session: Session) -> list[tuple[str | None, int]]:
    """(TCB status of the deployment's last acceptance or None, deployments)."""
    rows = session.execute(select(Deployment.tcb_status, func.count()).group_by(Deployment.tcb_status)).all()
    return [(status, int(n)) for status, n in rows]


def live_deployments_by_tcb(
    session: Session, now: datetime, *, excluding: Sequence[str], limit: int
) -> Sequence[Row[uuid.UUID, str, str, str | None]]:
    """(deployment id, name, customer name, TCB status) of deployments holding a live lease whose TCB status is
    known and not one of ``excluding``, by name; at most ``limit``."""
    return session.execute(
        select(Deployment.id, Deployment.name, Customer.name, Deployment.tcb_status)
        .join(Lease, Lease.id == Deployment.lease_id)
        .join(Entitlement, Entitlement.id == Deployment.entitlement_id)
        .join(Customer, Customer.id == Entitlement.customer_id)
        .where(*_live(now), Deployment.tcb_status.is_not(None), Deployment.tcb_status.not_in(excluding))
        .order_by(Deployment.name, Deployment.id)
        .limit(limit)
    ).all()


def intel_tcb_documents(session: Session, vendor: str, kinds: Sequence[str]) -> Sequence[Row[str, bytes]]:
    """(kind, body) of ``vendor``'s cached documents of ``kinds`` (the TCB Infos and QE Identities: one per FMSPC
    and one per TEE, a few dozen rows)."""
    return session.execute(
        select(CachedCollateral.kind, CachedCollateral.body).where(
            CachedCollateral.vendor == vendor, CachedCollateral.kind.in_(list(kinds))
        )
    ).all()


def live_deployments_behind(
    session: Session, now: datetime, *, newest: Mapping[str, int], fleet_newest: int | None, limit: int
) -> Sequence[Row[uuid.UUID, str, str, str | None, int, int]]:
    """(deployment id, name, customer name, TCB Info judged with, evaluation number judged with, the newest it is
    compared with) of deployments holding a live lease whose last acceptance was judged with a TCB evaluation data
    number below ``newest[its TCB Info]``, or below ``fleet_newest`` when it recorded no TCB Info (a TCB Info
    missing from ``newest`` is compared with nothing); by name, at most ``limit``."""
    if not newest and fleet_newest is None:
        return []
    recorded: ColumnElement[Any] = (
        case(dict(newest), value=Deployment.tcb_info_id, else_=literal(None, Integer))
        if newest
        else literal(None, Integer)
    )
    threshold = case((Deployment.tcb_info_id.is_(None), literal(fleet_newest, Integer)), else_=recorded)
    return session.execute(
        select(
            Deployment.id,
            Deployment.name,
            Customer.name,
            Deployment.tcb_info_id,
            Deployment.tcb_eval_number,
            threshold.label("newest"),
        )
        .join(Lease, Lease.id == Deployment.lease_id)
        .join(Entitlement, Entitlement.id == Deployment.entitlement_id)
        .join(Customer, Customer.id == Entitlement.customer_id)
        .where(*_live(now), Deployment.tcb_eval_number.is_not(None), Deployment.tcb_eval_number < threshold)
        .order_by(Deployment.name, Deployment.id)
        .limit(limit)
    ).all()


def collateral_by_vendor(
    session: Session, now: datetime, soon: datetime
) -> Sequence[Row[str, int, int, int, int, datetime | None, datetime | None]]:
    """Per vendor: (vendor, documents, past their next update, next update before ``soon``, without a next
    update, oldest fetch, soonest next update still ahead), from the cache's columns (no bodies)."""
    nu = CachedCollateral.next_update
    return session.execute(
        select(
            CachedCollateral.vendor,
            func.count(),
            func.count(case((nu <= now, 1))),
            func.count(case((and_(nu > now, nu <= soon), 1))),
            func.count(case((nu.is_(None), 1))),
            func.min(CachedCollateral.fetched_at),
            func.min(case((nu > now, nu))),
        )
        .group_by(CachedCollateral.vendor)
        .order_by(CachedCollateral.vendor)
    ).all()


def stale_collateral(
    session: Session, now: datetime, *, ageing_kinds: Sequence[str], fetched_before: datetime, limit: int
) -> Sequence[Row[str, str, str, datetime, datetime | None]]:
    """(vendor, kind, key, fetched_at, next_update) of cached documents the refresh has not kept fresh: past their
    next update, or revocation/TCB data (``ageing_kinds``) last fetched before ``fetched_before``; soonest first."""
    nu = CachedCollateral.next_update
    return session.execute(
        select(
            CachedCollateral.vendor,
            CachedCollateral.kind,
            CachedCollateral.key,
            CachedCollateral.fetched_at,
            nu,
        )
        .where(
            or_(
                nu <= now,
                and_(CachedCollateral.kind.in_(ageing_kinds), CachedCollateral.fetched_at < fetched_before),
            )
        )
        .order_by(nu.asc().nulls_first(), CachedCollateral.fetched_at, CachedCollateral.id)
        .limit(limit)
    ).all()


def entitlement_warnings(
    session: Session, now: datetime, *, expiring_by: datetime, seat_ratio: float, limit: int
) -> Sequence[Row[uuid.UUID, str, str, datetime | None, int, int]]:
    """(entitlement id, customer name, model name, valid_until, seats, seats in use) of active entitlements that end
    by ``expiring_by`` or whose seats in use are at least ``seat_ratio`` of their seats; soonest end first."""
    in_use = (
        select(Lease.entitlement_id, func.count(distinct(Lease.deployment_id)).label("used"))
        .where(*_live(now))
        .group_by(Lease.entitlement_id)
        .subquery()
    )
    used = func.coalesce(in_use.c.used, 0)
    expiring = and_(Entitlement.valid_until.is_not(None), Entitlement.valid_until <= expiring_by)
    return session.execute(
        select(Entitlement.id, Customer.name, Model.name, Entitlement.valid_until, Entitlement.seats, used)
        .join(Customer, Customer.id == Entitlement.customer_id)
        .join(Model, Model.id == Entitlement.model_id)
        .outerjoin(in_use, in_use.c.entitlement_id == Entitlement.id)
        .where(
            Entitlement.status == EntitlementStatus.ACTIVE,
            or_(Entitlement.valid_until.is_(None), Entitlement.valid_until > now),
            or_(expiring, used >= Entitlement.seats * literal(seat_ratio)),
        )
        .order_by(Entitlement.valid_until.asc().nulls_last(), Entitlement.id)
        .limit(limit)
    ).all()


# -- the deployments list -----------------------------------------------------------------------------------------

_Version = aliased(ModelVersion)


def _lease_state(now: datetime) -> ColumnElement[str]:
    return case(
        (Lease.id.is_(None), LeaseState.NONE.value),
        (and_(Lease.status == LeaseStatus.LIVE, Lease.expires_at <= now), LeaseState.EXPIRED.value),
        else_=type_coerce(Lease.status, String),
    )


def _deployment_select(now: datetime) -> Any:
    return (
        select(
            Deployment,
            Customer.id,
            Customer.name,
            Model.id,
            Model.name,
            _Version.version,
            Lease.gpus,
            Lease.expires_at,
            _lease_state(now),
        )
        .join(Entitlement, Entitlement.id == Deployment.entitlement_id)
        .join(Customer, Customer.id == Entitlement.customer_id)
        .join(Model, Model.id == Entitlement.model_id)
        .outerjoin(Lease, Lease.id == Deployment.lease_id)
        .outerjoin(_Version, _Version.id == Lease.model_version_id)
    )


def _like_escaped(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _lease_state_is(state: LeaseState, now: datetime) -> ColumnElement[bool]:
    if state is LeaseState.NONE:
        return Lease.id.is_(None)
    if state is LeaseState.LIVE:
        return and_(*_live(now))
    if state is LeaseState.EXPIRED:
        return or_(Lease.status == LeaseStatus.EXPIRED, and_(Lease.status == LeaseStatus.LIVE, Lease.expires_at <= now))
    return Lease.status == LeaseStatus(state.value)


def _filters(query: DeploymentQuery, now: datetime) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.search:
        pattern = _like_escaped(query.search)
        where.append(or_(Deployment.name.ilike(pattern, escape="\\"), Customer.name.ilike(pattern, escape="\\")))
    if query.customer_id is not None:
        where.append(Entitlement.customer_id == query.customer_id)
    if query.model_id is not None:
        where.append(Entitlement.model_id == query.model_id)
    if query.platform:
        where.append(("," + Deployment.platforms + ",").like(_like_escaped(f",{query.platform},"), escape="\\"))
    if query.lease_state is not None:
        where.append(_lease_state_is(query.lease_state, now))
    if query.simulated is not None:
        where.append(Deployment.simulated == query.simulated)
    if query.last_status is not None:
        where.append(Deployment.last_status == query.last_status.value)
    return where


def sort_key(sort: DeploymentSort) -> tuple[Any, ...]:
    """The columns a page of ``sort`` is ordered by, the deployment id last; a row's values of these are its key."""
    if sort is DeploymentSort.NAME:
        return Deployment.name, Deployment.id
    if sort is DeploymentSort.CUSTOMER:
        return Customer.name, Deployment.name, Deployment.id
    return Deployment.last_attested_at, Deployment.id


def _order(sort: DeploymentSort) -> list[Any]:
    if sort is DeploymentSort.LAST_ATTESTED:
        return [Deployment.last_attested_at.desc().nulls_last(), Deployment.id.desc()]
    return list(sort_key(sort))


def _after(sort: DeploymentSort, key: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after the row whose sort key is ``key``, in ``sort``'s order."""
    if sort is DeploymentSort.LAST_ATTESTED:
        at, ident = key
        if at is None:  # among the never-attested, which come last
            return and_(Deployment.last_attested_at.is_(None), Deployment.id < ident)
        return or_(
            tuple_(Deployment.last_attested_at, Deployment.id) < tuple_(at, ident),
            Deployment.last_attested_at.is_(None),
        )
    return tuple_(*sort_key(sort)) > tuple_(*key)


def deployment_rows(
    session: Session,
    query: DeploymentQuery,
    *,
    sort: DeploymentSort,
    after: Sequence[Any] | None,
    limit: int,
    now: datetime,
) -> list[Row[Any]]:
    """Up to ``limit`` rows of :func:`_deployment_select` matching ``query``, in ``sort``'s order, after the row
    whose sort key is ``after`` (from the start when None). Each row: (Deployment, customer id, customer name,
    model id, model name, model version, lease GPUs, lease expiry, lease state)."""
    where = _filters(query, now)
    if after is not None:
        where.append(_after(sort, after))
    return list(session.execute(_deployment_select(now).where(*where).order_by(*_order(sort)).limit(limit)).all())


def deployment_row(session: Session, deployment_id: uuid.UUID, now: datetime) -> Row[Any] | None:
    """The :func:`deployment_rows` row of one deployment, or None."""
    return session.execute(_deployment_select(now).where(Deployment.id == deployment_id)).one_or_none()


# -- a deployment's timeline and an attestation's detail ----------------------------------------------------------


def decisions_naming(
    session: Session, deployment: Deployment, *, limit: int
) -> Sequence[Row[uuid.UUID, str, AttestationStatus, datetime, datetime | None, str | None, uuid.UUID | None]]:
    """(id, kind, status, created_at, decided_at, reason codes, lease id) of the newest ``limit`` requests naming
    ``deployment`` (its entitlement and name: a rejection has no deployment id), pending ones included."""
    return session.execute(
        select(
            Attestation.id,
            Attestation.kind,
            Attestation.status,
            Attestation.created_at,
            Attestation.decided_at,
            Attestation.reason_codes,
            Attestation.lease_id,
        )
        .where(
            Attestation.entitlement_id == deployment.entitlement_id,
            Attestation.deployment_name == deployment.name,
        )
        .order_by(Attestation.decided_at.desc().nulls_first(), Attestation.created_at.desc(), Attestation.id)
        .limit(limit)
    ).all()


def lease_ids(session: Session, deployment_id: uuid.UUID, *, limit: int) -> list[uuid.UUID]:
    """The deployment's newest ``limit`` leases' ids."""
    return list(
        session.scalars(
            select(Lease.id)
            .where(Lease.deployment_id == deployment_id)
            .order_by(Lease.issued_at.desc(), Lease.id)
            .limit(limit)
        )
    )


def audit_events_about(session: Session, subjects: Sequence[tuple[str, str]], *, limit: int) -> list[AuditEvent]:
    """The newest ``limit`` audit events whose (subject type, subject id) is one of ``subjects``."""
    if not subjects:
        return []
    return list(
        session.scalars(
            select(AuditEvent)
            .where(tuple_(AuditEvent.subject_type, AuditEvent.subject_id).in_(list(subjects)))
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )


def latest_acceptance(session: Session, deployment_id: uuid.UUID) -> Attestation | None:
    """The deployment's newest accepted attestation."""
    return session.scalars(
        select(Attestation)
        .where(Attestation.deployment_id == deployment_id, Attestation.status == AttestationStatus.ACCEPTED)
        .order_by(Attestation.decided_at.desc(), Attestation.id.desc())
        .limit(1)
    ).one_or_none()


def attestation_context(
    session: Session, attestation_id: uuid.UUID
) -> Row[Attestation, str, str, str, AppraisalPolicy | None, Deployment | None] | None:
    """(Attestation, customer name, model name, model version, the entitlement's appraisal policy or None, the
    deployment named by it or None)."""
    return session.execute(
        select(Attestation, Customer.name, Model.name, ModelVersion.version, AppraisalPolicy, Deployment)
        .join(Entitlement, Entitlement.id == Attestation.entitlement_id)
        .join(Customer, Customer.id == Entitlement.customer_id)
        .join(ModelVersion, ModelVersion.id == Attestation.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .outerjoin(AppraisalPolicy, AppraisalPolicy.id == Entitlement.policy_id)
        .outerjoin(
            Deployment,
            and_(
                Deployment.entitlement_id == Attestation.entitlement_id,
                Deployment.name == Attestation.deployment_name,
            ),
        )
        .where(Attestation.id == attestation_id)
    ).one_or_none()


def appraisal_inputs(
    session: Session, set_ids: Sequence[uuid.UUID], policy_ids: Sequence[uuid.UUID]
) -> tuple[list[ReferenceValueSet], list[AppraisalPolicy]]:
    """The reference-value sets and appraisal policies with these ids (those that still exist), in id order."""
    sets = (
        list(
            session.scalars(
                select(ReferenceValueSet).where(ReferenceValueSet.id.in_(list(set_ids))).order_by(ReferenceValueSet.id)
            )
        )
        if set_ids
        else []
    )
    policies = (
        list(
            session.scalars(
                select(AppraisalPolicy).where(AppraisalPolicy.id.in_(list(policy_ids))).order_by(AppraisalPolicy.id)
            )
        )
        if policy_ids
        else []
    )
    return sets, policies


def reference_sets_in_force(
    session: Session, model_version_id: uuid.UUID, platforms: Sequence[str], at: datetime
) -> list[ReferenceValueSet]:
    """The model version's reference-value sets for ``platforms`` whose validity window holds ``at``, newest
    first, whatever their status now."""
    return list(
        session.scalars(
            select(ReferenceValueSet)
            .where(
                ReferenceValueSet.model_version_id == model_version_id,
                ReferenceValueSet.platform.in_(list(platforms)),
                ReferenceValueSet.valid_from <= at,
                or_(ReferenceValueSet.valid_until.is_(None), ReferenceValueSet.valid_until > at),
            )
            .order_by(ReferenceValueSet.valid_from.desc(), ReferenceValueSet.id)
        )
    )


# -- models and their reference values ---------------------------------------------------------------------------

#: The catalogue is small (models and versions number in the tens): the models page reads it whole, up to this.
MAX_CATALOG_ROWS = 1000


def all_models(session: Session) -> list[Model]:
    """Every model, by name."""
    return list(session.scalars(select(Model).order_by(Model.name, Model.id).limit(MAX_CATALOG_ROWS)))


def model_versions(session: Session, model_id: uuid.UUID | None = None) -> list[ModelVersion]:
    """Every version (of ``model_id``, or of every model), newest first."""
    statement = select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id)
    if model_id is not None:
        statement = statement.where(ModelVersion.model_id == model_id)
    return list(session.scalars(statement.limit(MAX_CATALOG_ROWS)))


def reference_set_counts(session: Session) -> list[tuple[uuid.UUID, str, int]]:
    """(model version id, status, how many reference-value sets) for every version that has any."""
    rows = session.execute(
        select(ReferenceValueSet.model_version_id, ReferenceValueSet.status, func.count()).group_by(
            ReferenceValueSet.model_version_id, ReferenceValueSet.status
        )
    )
    return [(version, str(status), int(n)) for version, status, n in rows]


def live_leases_by_version(session: Session, now: datetime) -> list[tuple[uuid.UUID, int]]:
    """(model version id, live unexpired leases) for every version that has any (read by the ``expires_at``
    index: only unexpired leases are visited)."""
    rows = session.execute(
        select(Lease.model_version_id, func.count()).where(*_live(now)).group_by(Lease.model_version_id)
    )
    return [(version, int(n)) for version, n in rows]


def reference_sets_of_model(session: Session, model_id: uuid.UUID) -> list[ReferenceValueSet]:
    """Every reference-value set of the model's versions, by platform, newest ``valid_from`` first."""
    return list(
        session.scalars(
            select(ReferenceValueSet)
            .join(ModelVersion, ModelVersion.id == ReferenceValueSet.model_version_id)
            .where(ModelVersion.model_id == model_id)
            .order_by(ReferenceValueSet.platform, ReferenceValueSet.valid_from.desc(), ReferenceValueSet.id)
            .limit(MAX_CATALOG_ROWS)
        )
    )


def policies_of_model(session: Session, model_id: uuid.UUID) -> list[tuple[AppraisalPolicy, int]]:
    """The appraisal policies the model's entitlements name, with how many entitlements name each."""
    rows = session.execute(
        select(AppraisalPolicy, func.count(Entitlement.id))
        .join(Entitlement, Entitlement.policy_id == AppraisalPolicy.id)
        .where(Entitlement.model_id == model_id)
        .group_by(AppraisalPolicy.id)
        .order_by(AppraisalPolicy.name)
    )
    return [(policy, int(n)) for policy, n in rows]
