"""All SQL of the attestation domain: attestation requests, consumed nonces, leases, and what a decision and a
submission read about the licence and the model.

The hot-path statements (a decision's two catalog reads, the submission's licensed-version read, the answer read,
the nonce insert) are built once at import: statement construction and its cache key cost more than the round trip
on these paths (README bench). The caller owns the session and the transaction; writers flush at most and nothing
here commits. Rules (what may renew, who may release, what a scope revokes) are in the services:
:mod:`verifier.attestation.leases`, :mod:`verifier.attestation.challenges`, :mod:`verifier.attestation.catalog`.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    CursorResult,
    Row,
    String,
    and_,
    any_,
    bindparam,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import insert as insert_values
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import cast as sql_cast

from verifier.db.models import (
    AppraisalPolicy,
    Attestation,
    AttestationStatus,
    DecisionDay,
    Deployment,
    Entitlement,
    Lease,
    LeaseStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
    RejectionReasonDay,
    UsedNonce,
)
from verifier.db.queries import equals, page
from verifier.db.rows import entity, set_loaded, table

# -- a decision's reads (Core, built once: entities come back untracked, see verifier.db.rows) -------------------

_ATTESTATIONS: Final = table(Attestation)
_LEASES: Final = table(Lease)
_DEPLOYMENTS: Final = table(Deployment)
_VERSIONS: Final = table(ModelVersion)
_MODELS: Final = table(Model)
_ENTITLEMENTS: Final = table(Entitlement)
_POLICIES: Final = table(AppraisalPolicy)
_MODEL_KEYS: Final = table(ModelKey)
_REFERENCE_SETS: Final = table(ReferenceValueSet)

#: What a decision reads of its attestation: the request, never its earlier outcome (the 17 KB evidence among them).
_REQUEST_COLUMNS: Final = (
    "id",
    "entitlement_id",
    "deployment_id",
    "lease_id",
    "model_version_id",
    "deployment_name",
    "kind",
    "platforms",
    "status",
    "nonce",
    "nonce_holder",
    "enclave_jwk",
    "evidence",
    "created_at",
)
#: The attestation's request columns, its row locked ``FOR UPDATE``; parameter: id.
_LOCK_ATTESTATION: Final = (
    select(*(_ATTESTATIONS.c[k] for k in _REQUEST_COLUMNS))
    .where(_ATTESTATIONS.c.id == bindparam("id"))
    .with_for_update()
)
#: The rest of a decided attestation (what its decision wrote); parameter: id.
_DECIDED: Final = select(*(c for c in _ATTESTATIONS.c if c.name not in _REQUEST_COLUMNS)).where(
    _ATTESTATIONS.c.id == bindparam("id")
)

_NEWEST_KEY = (
    select(_MODEL_KEYS.c.id)
    .where(_MODEL_KEYS.c.model_version_id == bindparam("version"), _MODEL_KEYS.c.retired_at.is_(None))
    .order_by(_MODEL_KEYS.c.created_at.desc())
    .limit(1)
    .scalar_subquery()
)


def _insert_nonce_cte() -> Any:
    """:func:`_insert_nonce`'s PostgreSQL statement as a CTE named ``redeemed`` (parameters: nonce, used_at,
    expires_at)."""
    nonces = table(UsedNonce)
    return (
        postgresql_insert(nonces)
        .values(nonce=bindparam("nonce"), used_at=bindparam("used_at"), expires_at=bindparam("expires_at"))
        .on_conflict_do_nothing(index_elements=[nonces.c.nonce])
        .returning(nonces.c.nonce)
        .cte("redeemed")
    )


#: The catalog's five rows side by side, in this order (policy and key columns NULL when there is none), then one
#: active reference-value set (its columns NULL when there is none): a row per set that applies. Only the columns
#: a decision reads (the entities leave the others unloaded: None).
_CATALOG_COLUMNS: Final = (
    (_VERSIONS, ModelVersion, ("id", "model_id", "version")),
    (_MODELS, Model, ("id", "name")),
    (_ENTITLEMENTS, Entitlement, ("id", "customer_id", "model_id", "policy_id", "status")),
    (_POLICIES, AppraisalPolicy, ("id", "platform", "document")),
    (_MODEL_KEYS, ModelKey, ("id", "model_version_id", "kek_id", "wrapped_dek")),
    (
        _REFERENCE_SETS,
        ReferenceValueSet,
        ("id", "model_version_id", "platform", "status", "values", "valid_from", "valid_until"),
    ),
)


def _catalog_rows_query(platform_is_wanted: ColumnElement[bool]) -> Any:
    return (
        select(*(t.c[k] for t, _, keys in _CATALOG_COLUMNS for k in keys))
        .select_from(_VERSIONS)
        .join(_MODELS, _MODELS.c.id == _VERSIONS.c.model_id)
        .join(_ENTITLEMENTS, _ENTITLEMENTS.c.id == bindparam("entitlement"))
        .outerjoin(_POLICIES, _POLICIES.c.id == _ENTITLEMENTS.c.policy_id)
        .outerjoin(_MODEL_KEYS, _MODEL_KEYS.c.id == _NEWEST_KEY)
        .outerjoin(
            _REFERENCE_SETS,
            and_(
                _REFERENCE_SETS.c.model_version_id == _VERSIONS.c.id,
                platform_is_wanted,
                _REFERENCE_SETS.c.status == RecordStatus.ACTIVE.value,
                _REFERENCE_SETS.c.valid_from <= bindparam("now"),
            ),
        )
        .where(_VERSIONS.c.id == bindparam("version"))
        .subquery("catalog")
    )


#: The platforms as one array parameter on PostgreSQL (an expanding IN is rewritten on every execution), a list
#: SQLite expands.
_CATALOG_ROWS_POSTGRESQL = _catalog_rows_query(
    _REFERENCE_SETS.c.platform == any_(bindparam("platforms", type_=ARRAY(String)))
)
_CATALOG_ROWS_SQLITE = _catalog_rows_query(_REFERENCE_SETS.c.platform.in_(bindparam("platforms", expanding=True)))
_ONE_ROW = select(literal(1).label("one")).subquery("one")


def _catalog_read(redeemed: ColumnElement[Any], rows: Any) -> Any:
    """``redeemed``, then the catalog ``rows``; one row with NULLs for a catalog that is gone (parameters: version,
    entitlement, platforms, now)."""
    return select(redeemed.label("redeemed"), *rows.c).select_from(_ONE_ROW.outerjoin(rows, true()))


#: PostgreSQL: the nonce consumed (:func:`insert_used_nonce`'s INSERT, a data-modifying CTE) in the statement that
#: reads the catalog: ``redeemed`` counts the rows it inserted (0: already used). Parameters: nonce, used_at,
#: expires_at, and the catalog's.
_REDEEM: Final = _insert_nonce_cte()
_REDEEM_AND_READ_CATALOG: Final = _catalog_read(
    select(func.count()).select_from(_REDEEM).scalar_subquery(), _CATALOG_ROWS_POSTGRESQL
)
_READ_CATALOG_POSTGRESQL: Final = _catalog_read(null(), _CATALOG_ROWS_POSTGRESQL)
_READ_CATALOG_SQLITE: Final = _catalog_read(null(), _CATALOG_ROWS_SQLITE)

CatalogRows = tuple[
    tuple[ModelVersion, Model, Entitlement, AppraisalPolicy | None, ModelKey | None] | None, list[ReferenceValueSet]
]


def lock_attestation(session: Session, attestation_id: uuid.UUID) -> Attestation | None:
    """The attestation, its row locked ``FOR UPDATE`` until the transaction ends and read afresh (the decision's
    first read; :func:`verifier.attestation.flows.lock_attestation` raises for a missing one). One Core statement
    reading the request's columns (:data:`_REQUEST_COLUMNS`) of a pending one, a second for the rest of a decided
    one; the entity is the session's instance refreshed, or an untracked one (:func:`verifier.db.rows.entity`):
    the decision writes its outcome with :func:`record_decision` (which sets those columns on it), never by a
    flush."""
    row = session.execute(_LOCK_ATTESTATION, {"id": attestation_id}).one_or_none()
    if row is None:
        return None
    values = dict(row._mapping)
    if values["status"] != AttestationStatus.PENDING:  # decided (a redelivery): returned whole, as it is
        values.update(session.execute(_DECIDED, {"id": attestation_id}).one()._mapping)
    return entity(session, Attestation, values)


def read_catalog(
    session: Session, version_id: uuid.UUID, entitlement_id: uuid.UUID, platforms: Sequence[str], now: datetime
) -> CatalogRows:
    """((model version, model, entitlement, its policy, the newest unretired model key) or None if the version or
    entitlement is gone, the active reference-value sets of the version for ``platforms`` with ``valid_from <=
    now``, newest ``valid_from`` first), in one statement; untracked entities (read only)."""
    params = {"version": version_id, "entitlement": entitlement_id, "platforms": list(platforms), "now": now}
    statement = _READ_CATALOG_SQLITE if session.get_bind().dialect.name == "sqlite" else _READ_CATALOG_POSTGRESQL
    return _catalog_rows(session, session.execute(statement, params).all())


def redeem_nonce_and_read_catalog(
    session: Session,
    *,
    nonce: bytes,
    used_at: datetime,
    expires_at: datetime,
    version_id: uuid.UUID,
    entitlement_id: uuid.UUID,
    platforms: Sequence[str],
    now: datetime,
) -> tuple[bool, CatalogRows]:
    """(whether this call consumed ``nonce``: :func:`insert_used_nonce`, :func:`read_catalog`), in one statement on
    PostgreSQL, two on SQLite."""
    if session.get_bind().dialect.name == "sqlite":
        redeemed = insert_used_nonce(session, nonce, used_at, expires_at)
        return redeemed, read_catalog(session, version_id, entitlement_id, platforms, now)
    params = {
        "nonce": nonce,
        "used_at": used_at,
        "expires_at": expires_at,
        "version": version_id,
        "entitlement": entitlement_id,
        "platforms": list(platforms),
        "now": now,
    }
    rows = session.execute(_REDEEM_AND_READ_CATALOG, params).all()
    return bool(rows[0][0]), _catalog_rows(session, rows)


def _catalog_rows(session: Session, rows: Sequence[Row[Any]]) -> CatalogRows:
    """The catalog's entities from the rows of :func:`_catalog_read` (the catalog repeats on every row)."""
    version, model, entitlement, policy, key = (_part(session, rows[0], i) for i in range(5))
    if version is None or model is None or entitlement is None:
        return None, []
    sets = [rv for row in rows if (rv := _part(session, row, 5)) is not None]
    sets.sort(key=lambda rv: rv.valid_from, reverse=True)
    return (version, model, entitlement, policy, key), sets


#: Where each of :data:`_CATALOG_COLUMNS` sits in a row of :func:`_catalog_read` (after ``redeemed``).
_CATALOG_SLICES: Final = [
    (
        cls,
        keys,
        1 + sum(len(before) for _, _, before in _CATALOG_COLUMNS[:i]),
        1 + sum(len(upto) for _, _, upto in _CATALOG_COLUMNS[: i + 1]),
    )
    for i, (_, cls, keys) in enumerate(_CATALOG_COLUMNS)
]


def _part(session: Session, row: Row[Any], i: int) -> Any:
    """The entity of the ``i``-th catalog table in ``row``, or None where its columns are NULL."""
    cls, keys, start, end = _CATALOG_SLICES[i]
    values = dict(zip(keys, row[start:end], strict=True))
    return None if values["id"] is None else entity(session, cls, values)


# -- a submission's reads (built once per shape) -----------------------------------------------------------------


def _licensed_version_query(*, named: bool) -> Any:
    """(entitlement id, its model id, the named model's id, the version's id) for the licence's entitlement and a
    model name: the newest version, or the named one (parameters: entitlement, model[, version])."""
    version_matches = ModelVersion.model_id == Model.id
    if named:
        version_matches &= ModelVersion.version == bindparam("version")
    return (
        select(Entitlement.id, Entitlement.model_id, Model.id, ModelVersion.id)
        .select_from(Entitlement)
        .outerjoin(Model, Model.name == bindparam("model"))
        .outerjoin(ModelVersion, version_matches)
        .where(Entitlement.id == bindparam("entitlement"))
        .order_by(ModelVersion.created_at.desc())
        .limit(1)
    )


_NEWEST_VERSION: Final = _licensed_version_query(named=False)
_NAMED_VERSION: Final = _licensed_version_query(named=True)


def licensed_version(
    session: Session, entitlement_id: uuid.UUID, model: str, version: str | None
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID | None, uuid.UUID | None] | None:
    """(entitlement id, its licensed model id, the named model's id or None, the version's id or None), the newest
    version unless one is named, in one statement; None if there is no such entitlement."""
    params: dict[str, object] = {"entitlement": entitlement_id, "model": model}
    if version:
        params["version"] = version
    found = session.execute(_NAMED_VERSION if version else _NEWEST_VERSION, params).one_or_none()
    return None if found is None else (found[0], found[1], found[2], found[3])


# -- the deployment summary a decision keeps (the staff dashboard reads it; built once) ---------------------------

#: An acceptance (new lease or renewal), under the entitlement lock: its lease, platforms, TCB status, Intel TCB
#: evaluation number and TCB Info, simulated flag, and the last decision. Parameters (named apart from the
#: attestation's columns: the statement also runs as a CTE of :func:`record_decision`'s UPDATE): n_deployment,
#: n_lease, n_platforms, n_tcb, n_eval_number, n_tcb_info, n_simulated, n_attestation, n_now.
_NOTE_ACCEPTED = (
    update(_DEPLOYMENTS)
    .where(_DEPLOYMENTS.c.id == bindparam("n_deployment"))
    .values(
        lease_id=bindparam("n_lease"),
        platforms=bindparam("n_platforms"),
        tcb_status=bindparam("n_tcb"),
        tcb_eval_number=bindparam("n_eval_number"),
        tcb_info_id=bindparam("n_tcb_info"),
        simulated=bindparam("n_simulated"),
        last_attestation_id=bindparam("n_attestation"),
        last_status=AttestationStatus.ACCEPTED.value,
        last_decided_at=bindparam("n_now"),
        last_attested_at=bindparam("n_now"),
        first_attested_at=func.coalesce(_DEPLOYMENTS.c.first_attested_at, bindparam("n_now")),
    )
)
#: A rejection names its deployment only by (entitlement, name), and takes no lock: it never replaces a later
#: decision that committed first. Parameters: n_entitlement, n_name, n_attestation, n_now.
_NOTE_REJECTED = (
    update(_DEPLOYMENTS)
    .where(
        _DEPLOYMENTS.c.entitlement_id == bindparam("n_entitlement"),
        _DEPLOYMENTS.c.name == bindparam("n_name"),
        or_(_DEPLOYMENTS.c.last_decided_at.is_(None), _DEPLOYMENTS.c.last_decided_at <= bindparam("n_now")),
    )
    .values(
        last_attestation_id=bindparam("n_attestation"),
        last_status=AttestationStatus.REJECTED.value,
        last_decided_at=bindparam("n_now"),
    )
)


@dataclass(frozen=True, slots=True)
class Note:
    """What a decision writes into its deployment's summary (:func:`accepted_note`, :func:`rejected_note`)."""

    accepted: bool
    params: dict[str, Any]


def accepted_note(
    *,
    deployment_id: uuid.UUID,
    lease_id: uuid.UUID,
    attestation_id: uuid.UUID,
    platforms: str | None,
    tcb_status: str | None,
    simulated: bool,
    now: datetime,
    tcb_eval_number: int | None = None,
    tcb_info_id: str | None = None,
) -> Note:
    """An acceptance for its deployment's summary (:data:`_NOTE_ACCEPTED`)."""
    return Note(
        True,
        {
            "n_deployment": deployment_id,
            "n_lease": lease_id,
            "n_platforms": platforms,
            "n_tcb": tcb_status,
            "n_eval_number": tcb_eval_number,
            "n_tcb_info": tcb_info_id,
            "n_simulated": simulated,
            "n_attestation": attestation_id,
            "n_now": now,
        },
    )


def rejected_note(*, entitlement_id: uuid.UUID, deployment_name: str, attestation_id: uuid.UUID, now: datetime) -> Note:
    """A rejection for the summary of the deployment it names, if there is one (:data:`_NOTE_REJECTED`)."""
    return Note(
        False,
        {"n_entitlement": entitlement_id, "n_name": deployment_name, "n_attestation": attestation_id, "n_now": now},
    )


# -- the decisions counted per day (the staff dashboard's finished days read them; built once per dialect) ---------


def decision_day(decided_at: datetime) -> date:
    """The UTC day a decision made at ``decided_at`` is counted under."""
    return decided_at.astimezone(UTC).date()


def rejection_codes(reason_codes: str | None) -> list[str]:
    """The codes a rejection is counted under in :class:`RejectionReasonDay`: each distinct stored code, or ``""``
    when it has none."""
    return reason_codes.split() if reason_codes else [""]


def _count_statements(insert: Any) -> tuple[Any, Any]:
    """INSERT ... ON CONFLICT DO UPDATE adding one to the day's counter (PostgreSQL and SQLite spell it alike)."""
    days, reasons = table(DecisionDay), table(RejectionReasonDay)
    decided = insert(days).values(day=bindparam("day"), status=bindparam("status"), decisions=1)
    reason = insert(reasons).values(day=bindparam("day"), code=bindparam("code"), rejections=1)
    return (
        decided.on_conflict_do_update(
            index_elements=[days.c.day, days.c.status], set_={"decisions": days.c.decisions + 1}
        ),
        reason.on_conflict_do_update(
            index_elements=[reasons.c.day, reasons.c.code], set_={"rejections": reasons.c.rejections + 1}
        ),
    )


_COUNT_POSTGRESQL: Final = _count_statements(postgresql_insert)
_COUNT_SQLITE: Final = _count_statements(sqlite_insert)


def count_decision(
    session: Session, *, decided_at: datetime, status: AttestationStatus, reason_codes: str | None
) -> None:
    """Add one decision to its day's counters: its outcome, and a rejection's reason codes. Call it once per
    decision, in the transaction that records it (a rollback takes the count back with the decision). Each counter
    row stays locked until that transaction ends; the decision counts after its audit append, whose lock already
    orders every decision's transaction, so the counters add no wait of their own."""
    decided, reason = _COUNT_SQLITE if session.get_bind().dialect.name == "sqlite" else _COUNT_POSTGRESQL
    day = decision_day(decided_at)
    session.execute(decided, {"day": day, "status": AttestationStatus(status).value})
    if status == AttestationStatus.REJECTED:
        session.execute(reason, [{"day": day, "code": c} for c in sorted(set(rejection_codes(reason_codes)))])


def rebuild_decision_days(session: Session) -> tuple[int, int]:
    """Count every decided attestation afresh into the day counters, replacing what they held: for rows written
    without a decision (seeded fleets, test worlds, a repair). Reads ``attestations`` once, streamed; returns the
    rows written (decision days, reason days)."""
    decided: Counter[tuple[date, str]] = Counter()
    reasons: Counter[tuple[date, str]] = Counter()
    rows = session.execute(
        select(Attestation.decided_at, Attestation.status, Attestation.reason_codes)
        .where(Attestation.decided_at.is_not(None))
        .execution_options(yield_per=5000)
    )
    for decided_at, status, codes in rows:
        day = decision_day(cast("datetime", decided_at))  # decided: not NULL
        decided[day, AttestationStatus(status).value] += 1
        if status == AttestationStatus.REJECTED:
            for code in set(rejection_codes(codes)):
                reasons[day, code] += 1
    session.execute(delete(DecisionDay))
    session.execute(delete(RejectionReasonDay))
    if decided:
        session.execute(
            insert_values(DecisionDay),
            [{"day": d, "status": s, "decisions": n} for (d, s), n in sorted(decided.items())],
        )
    if reasons:
        session.execute(
            insert_values(RejectionReasonDay),
            [{"day": d, "code": c, "rejections": n} for (d, c), n in sorted(reasons.items())],
        )
    return len(decided), len(reasons)


# -- consumed nonces ---------------------------------------------------------------------------------------------


def _insert_nonce(insert: Any) -> Any:
    """INSERT ... ON CONFLICT (nonce) DO NOTHING RETURNING nonce, built once per dialect: a row comes back only if
    this statement inserted it (rowcount is not portable here)."""
    nonces = table(UsedNonce)
    return (
        insert(nonces)
        .values(nonce=bindparam("nonce"), used_at=bindparam("used_at"), expires_at=bindparam("expires_at"))
        .on_conflict_do_nothing(index_elements=[nonces.c.nonce])
        .returning(nonces.c.nonce)
    )


_INSERT_NONCE_POSTGRESQL: Final = _insert_nonce(postgresql_insert)
_INSERT_NONCE_SQLITE: Final = _insert_nonce(sqlite_insert)


def insert_used_nonce(session: Session, nonce: bytes, now: datetime, expires_at: datetime) -> bool:
    """Insert the used-nonce row unless one exists; True if this call inserted it. One round trip; the caller's
    transaction stays usable either way (no SAVEPOINT needed)."""
    statement = _INSERT_NONCE_SQLITE if session.get_bind().dialect.name == "sqlite" else _INSERT_NONCE_POSTGRESQL
    values = {"nonce": nonce, "used_at": now, "expires_at": expires_at}
    return session.execute(statement, values).scalar_one_or_none() is not None


def delete_used_nonces(session: Session, *, expired_before: datetime) -> int:
    """Delete consumed nonces whose expiry is at or before ``expired_before``; how many."""
    result = cast(
        "CursorResult[Any]",
        session.execute(
            delete(UsedNonce).where(UsedNonce.expires_at <= expired_before),
            execution_options={"synchronize_session": False},
        ),
    )
    return result.rowcount


# -- pending requests --------------------------------------------------------------------------------------------


def claim_stale_pending(session: Session, *, sent_before: datetime, limit: int, now: datetime) -> list[uuid.UUID]:
    """The ids of pending attestations last sent (created or requeued) at or before ``sent_before``, oldest first, at
    most ``limit``, locked ``FOR UPDATE SKIP LOCKED`` (rows a worker is deciding right now are skipped) and marked
    ``requeued_at = now``. Reads ids only, never the evidence."""
    last_sent = func.coalesce(Attestation.requeued_at, Attestation.created_at)
    ids = list(
        session.scalars(
            select(Attestation.id)
            .where(Attestation.status == AttestationStatus.PENDING, last_sent <= sent_before)
            .order_by(Attestation.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(update(Attestation).where(Attestation.id.in_(ids)).values(requeued_at=now))
    return ids


# -- the staff view of attestations ------------------------------------------------------------------------------


def list_attestations(
    session: Session,
    *,
    customer_id: uuid.UUID | None,
    model_id: uuid.UUID | None,
    status: AttestationStatus | None,
    platform: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
) -> list[Attestation]:
    """Newest first; ``created_from`` inclusive, ``created_to`` exclusive."""
    query = select(Attestation).order_by(Attestation.created_at.desc(), Attestation.id)
    if customer_id is not None:
        query = query.join(Entitlement, Entitlement.id == Attestation.entitlement_id)
    if model_id is not None:
        query = query.join(ModelVersion, ModelVersion.id == Attestation.model_version_id)
    # Portable (PostgreSQL and the SQLite profile): the JSON list's text holds the quoted platform name; the names
    # come from a fixed set without quotes or wildcards, so the match is exact.
    on_platform = None if platform is None else sql_cast(Attestation.platforms, String).like(f'%"{platform}"%')
    return page(
        session,
        query,
        where=(
            equals(Entitlement.customer_id, customer_id),
            equals(ModelVersion.model_id, model_id),
            equals(Attestation.status, status),
            on_platform,
            None if created_from is None else Attestation.created_at >= created_from,
            None if created_to is None else Attestation.created_at < created_to,
        ),
        limit=limit,
        offset=offset,
    )


def get_attestation(session: Session, attestation_id: uuid.UUID) -> Attestation | None:
    return session.get(Attestation, attestation_id)


# -- leases ------------------------------------------------------------------------------------------------------


def get_lease(session: Session, lease_id: uuid.UUID, *, lock: bool = False) -> Lease | None:
    """The lease; ``lock``: its row locked ``FOR UPDATE`` until the transaction ends (kept as loaded, as before)."""
    return session.get(Lease, lease_id, with_for_update=lock or None)


def lock_lease_afresh(session: Session, lease_id: uuid.UUID) -> Lease | None:
    """The lease, its row locked ``FOR UPDATE`` and read afresh."""
    return session.get(Lease, lease_id, with_for_update=True, populate_existing=True)


#: The lease a renewal extends, locked and read afresh (Core, built once; parameter: id).
_LOCK_LEASE: Final = select(_LEASES).where(_LEASES.c.id == bindparam("id")).with_for_update()


def lock_lease(session: Session, lease_id: uuid.UUID) -> Lease | None:
    """The lease, its row locked ``FOR UPDATE`` until the transaction ends and read afresh, in one Core statement
    (the session's instance refreshed, or an untracked one: :func:`verifier.db.rows.entity`)."""
    row = session.execute(_LOCK_LEASE, {"id": lease_id}).one_or_none()
    return None if row is None else entity(session, Lease, row._mapping)


def insert_lease(session: Session, values: dict[str, Any]) -> Lease:
    """Insert a lease of ``values`` (every column) now (:data:`_NEW_LEASE`); the lease as an untracked entity."""
    session.execute(_NEW_LEASE, {f"l_{k}": v for k, v in values.items()})
    return entity(session, Lease, values)


def extend_lease(session: Session, lease: Lease, *, expires_at: datetime, renew_after: datetime) -> None:
    """Write the lease's new ``expires_at`` and ``renew_after`` now (:data:`_RENEWED_LEASE`), and set them on
    ``lease``."""
    session.execute(_RENEWED_LEASE, {"l_id": lease.id, "l_expires_at": expires_at, "l_renew_after": renew_after})
    set_loaded(lease, {"expires_at": expires_at, "renew_after": renew_after})


# -- the decision's write of its attestation ---------------------------------------------------------------------

#: What a decision writes on its attestation row.
DECIDED_COLUMNS: Final = (
    "status",
    "claims",
    "collateral",
    "verdict",
    "simulated",
    "reason_codes",
    "decided_at",
    "timings",
    "wrapped_key",
    "result_token",
    "deployment_id",
    "lease_id",
)
#: The attestation's decision (parameters: att_id, and a_<column> for each of :data:`DECIDED_COLUMNS`).
_RECORD_DECISION: Final = (
    update(_ATTESTATIONS)
    .where(_ATTESTATIONS.c.id == bindparam("att_id"))
    .values({c: bindparam(f"a_{c}") for c in DECIDED_COLUMNS})
)
#: A new lease (parameters: l_<column> for each of its columns), and a renewal's new times (parameters: l_id,
#: l_expires_at, l_renew_after), as :func:`record_decision` writes them.
_NEW_LEASE: Final = insert_values(_LEASES).values({c.name: bindparam(f"l_{c.name}") for c in _LEASES.c})
_RENEWED_LEASE: Final = (
    update(_LEASES)
    .where(_LEASES.c.id == bindparam("l_id"))
    .values(expires_at=bindparam("l_expires_at"), renew_after=bindparam("l_renew_after"))
)


@functools.cache
def _recording(accepted: bool, lease: str | None) -> Any:
    """PostgreSQL: the attestation's UPDATE with the deployment's note and the lease's write (``"new"``,
    ``"renewed"`` or None) as data-modifying CTEs, one statement per shape (built once). The CTEs' rows are
    checked against the foreign keys when the statement ends, so the attestation may name the lease it inserts."""
    statement = _RECORD_DECISION.add_cte((_NOTE_ACCEPTED if accepted else _NOTE_REJECTED).cte("noted"))
    if lease is not None:
        statement = statement.add_cte((_NEW_LEASE if lease == "new" else _RENEWED_LEASE).cte("leased"))
    return statement


def record_decision(
    session: Session,
    att: Attestation,
    values: dict[str, Any],
    *,
    note: Note,
    new_lease: dict[str, Any] | None = None,
    renewed: tuple[Lease, datetime, datetime] | None = None,
) -> Lease | None:
    """Write a decision now: the attestation's ``values`` (:data:`DECIDED_COLUMNS`), its deployment's ``note``, and
    for an acceptance its lease: ``new_lease`` (every column of a new one, its deployment already written) or
    ``renewed`` (the lease, its new ``expires_at`` and ``renew_after``). One statement on PostgreSQL
    (:func:`_recording`); one per row on SQLite. ``values`` are set on ``att`` as loaded values (nothing for a
    flush to write again); returns the lease as written (untracked when new), or None."""
    params: dict[str, Any] = {"att_id": att.id, **{f"a_{k}": v for k, v in values.items()}, **note.params}
    lease: Lease | None = None
    shape: str | None = None
    if new_lease is not None:
        params.update({f"l_{k}": v for k, v in new_lease.items()})
        shape = "new"
    elif renewed is not None:
        lease, expires_at, renew_after = renewed
        params.update({"l_id": lease.id, "l_expires_at": expires_at, "l_renew_after": renew_after})
        shape = "renewed"
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_recording(note.accepted, shape), params)
    else:  # SQLite has no data-modifying CTEs: the lease first (the attestation names it), then the rest
        if shape is not None:
            session.execute(_NEW_LEASE if shape == "new" else _RENEWED_LEASE, params)
        session.execute(_RECORD_DECISION, params)
        session.execute(_NOTE_ACCEPTED if note.accepted else _NOTE_REJECTED, params)
    set_loaded(att, values)
    if new_lease is not None:
        return entity(session, Lease, new_lease)
    if lease is not None and renewed is not None:
        set_loaded(lease, {"expires_at": renewed[1], "renew_after": renewed[2]})
    return lease


def list_leases(
    session: Session, *, entitlement_id: uuid.UUID | None, status: LeaseStatus | None, limit: int, offset: int
) -> list[Lease]:
    """Newest issued first."""
    return page(
        session,
        select(Lease).order_by(Lease.issued_at.desc(), Lease.id),
        where=(equals(Lease.entitlement_id, entitlement_id), equals(Lease.status, status)),
        limit=limit,
        offset=offset,
    )


def lock_due_leases(session: Session, now: datetime, *, batch: int) -> list[Lease]:
    """Live leases with ``expires_at <= now``, soonest first, at most ``batch``, locked ``SKIP LOCKED``."""
    return list(
        session.scalars(
            select(Lease)
            .where(Lease.status == LeaseStatus.LIVE, Lease.expires_at <= now)
            .order_by(Lease.expires_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    )


def revoke_live(
    session: Session,
    *,
    entitlement_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    now: datetime,
    deployment_id: uuid.UUID | None = None,
) -> Sequence[Row[uuid.UUID, uuid.UUID, uuid.UUID]]:
    """Revoke (``ended_at = now``) every live lease of the deployment, of the entitlement, or of every entitlement
    of the customer (the first given), in one UPDATE; (lease id, entitlement id, deployment id) of each."""
    scope = (
        Lease.deployment_id == deployment_id
        if deployment_id is not None
        else Lease.entitlement_id == entitlement_id
        if entitlement_id is not None
        else Lease.entitlement_id.in_(select(Entitlement.id).where(Entitlement.customer_id == customer_id))
    )
    return session.execute(
        update(Lease)
        .where(scope, Lease.status == LeaseStatus.LIVE)
        .values(status=LeaseStatus.REVOKED, ended_at=now)
        .returning(Lease.id, Lease.entitlement_id, Lease.deployment_id)
        .execution_options(synchronize_session="fetch")
    ).all()


# -- evidence retention ---------------------------------------------------------------------------------------------


def purge_evidence(session: Session, *, decided_before: datetime, now: datetime, limit: int) -> int:
    """Empty the stored evidence (``[]``) of up to ``limit`` attestations decided before ``decided_before`` whose
    lease, if any, is not live at ``now``; the decision (status, claims, verdict, reasons) stays. Two statements;
    returns how many were emptied."""
    lease_live = (
        select(Lease.id)
        .where(Lease.id == Attestation.lease_id, Lease.status == LeaseStatus.LIVE, Lease.expires_at > now)
        .exists()
    )
    ids = list(
        session.scalars(
            select(Attestation.id)
            .where(
                Attestation.status != AttestationStatus.PENDING,
                Attestation.decided_at < decided_before,
                func.json_array_length(Attestation.evidence) > 0,
                ~lease_live,
            )
            .order_by(Attestation.decided_at)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            update(Attestation).where(Attestation.id.in_(ids)).values(evidence=[]),
            execution_options={"synchronize_session": False},
        )
    return len(ids)


# -- the enclave API's hot path: the request stored with one autocommit INSERT, the answer read narrowly -----------
# The INSERT runs on an autocommit connection (verifier.db.session.autocommit): one statement is the request's whole
# transaction, durable when it returns, so the decide task can be sent right after. The answer read takes the dozen
# columns an answer shows (and the verdict's reasons, not its evaluations), never the 20 KB of evidence.

#: Every column a pending request sets; parameters named as the columns.
_INSERT_REQUEST: Final = insert_values(Attestation)
#: The answer's columns, with its lease's times; parameter: id.
_ANSWER_COLUMNS: Final = (
    select(
        Attestation.id,
        Attestation.entitlement_id,
        Attestation.status,
        Attestation.lease_id,
        Attestation.wrapped_key,
        Attestation.result_token,
        Attestation.verdict["reasons"],
        Attestation.simulated,
        Lease.expires_at,
        Lease.renew_after,
    )
    .outerjoin(Lease, Lease.id == Attestation.lease_id)
    .where(Attestation.id == bindparam("id"))
)


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """What an answer to the enclave shows of a stored attestation (``reasons``: the verdict's, as stored)."""

    id: uuid.UUID
    entitlement_id: uuid.UUID
    status: AttestationStatus
    lease_id: uuid.UUID | None
    wrapped_key: str | None
    result_token: str | None
    reasons: list[dict[str, Any]]
    simulated: bool
    lease_expires_at: datetime | None
    lease_renew_after: datetime | None


def store_request(connection: Connection, values: Mapping[str, Any]) -> None:
    """INSERT the pending request (``values``: its columns, ``id`` included) on ``connection``, an autocommit
    connection: the statement is its own transaction and owner."""
    connection.execute(_INSERT_REQUEST, dict(values))


async def store_request_on_loop(connection: AsyncConnection, values: Mapping[str, Any]) -> None:
    """:func:`store_request` on an asyncio autocommit connection."""
    await connection.execute(_INSERT_REQUEST, dict(values))


def answer_row(connection: Connection, attestation_id: uuid.UUID) -> AnswerRow | None:
    """The answer's columns of ``attestation_id``, or None; one statement."""
    found = connection.execute(_ANSWER_COLUMNS, {"id": attestation_id}).first()
    if found is None:
        return None
    id_, entitlement, status, lease, wrapped, token, reasons, simulated, expires, renew = found
    return AnswerRow(
        id_,
        entitlement,
        AttestationStatus(status),
        lease,
        wrapped,
        token,
        reasons if isinstance(reasons, list) else [],
        bool(simulated),
        expires,
        renew,
    )
