"""the staff dashboard's reads: a deployment summary, rejection reason codes, indexes

The dashboard lists 10,000 deployments filtered and sorted by what their attestations say (last decision, TCB
status, platforms, simulated, lease state) and counts 100,000 attestations by period, outcome and reason. Reading
the attestations' JSON for that on every page is too slow, so the decision now keeps a summary on ``deployments``
and the reason codes on ``attestations``; this revision adds the columns, fills them from the stored decisions, and
adds the indexes the dashboard's queries use.

The backfill runs in Python over plain SQL so it is the same on PostgreSQL and SQLite; it reads each stored
decision once (the rejections' verdicts, and each deployment's newest acceptance).

Revision ID: b15dash00001
Revises: 7c3f9e2a1b64
Create Date: 2026-12-06 23:10:00.000000
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "b15dash00001"
down_revision: str | None = "7c3f9e2a1b64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("lease_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("platforms", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("tcb_status", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("simulated", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("last_attestation_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("last_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("last_decided_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("attestations") as batch:
        batch.add_column(sa.Column("reason_codes", sa.Text(), nullable=True))
    op.create_index("ix_deployments_last_attested", "deployments", ["last_attested_at", "id"], unique=False)
    op.create_index("ix_deployments_name_id", "deployments", ["name", "id"], unique=False)
    op.create_index("ix_attestations_deployment_decided", "attestations", ["deployment_id", "decided_at"], unique=False)
    op.create_index(
        "ix_attestations_named_decided",
        "attestations",
        ["entitlement_id", "deployment_name", "decided_at"],
        unique=False,
    )
    op.create_index("ix_attestations_decided_status", "attestations", ["decided_at", "status"], unique=False)
    op.create_index("ix_leases_deployment_issued", "leases", ["deployment_id", "issued_at"], unique=False)
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_leases_deployment_issued", table_name="leases")
    op.drop_index("ix_attestations_decided_status", table_name="attestations")
    op.drop_index("ix_attestations_named_decided", table_name="attestations")
    op.drop_index("ix_attestations_deployment_decided", table_name="attestations")
    op.drop_index("ix_deployments_name_id", table_name="deployments")
    op.drop_index("ix_deployments_last_attested", table_name="deployments")
    with op.batch_alter_table("attestations") as batch:
        batch.drop_column("reason_codes")
    with op.batch_alter_table("deployments") as batch:
        for column in (
            "last_decided_at",
            "last_status",
            "last_attestation_id",
            "simulated",
            "tcb_status",
            "platforms",
            "lease_id",
        ):
            batch.drop_column(column)


# -- the backfill (this revision's own copies of the rules; migrations never import the application) ------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _reason_codes(verdict: Any) -> str | None:
    codes = sorted({str(r["code"]) for r in (_json(verdict) or {}).get("reasons", []) if r.get("code")})
    return " ".join(codes) or None


def _tcb_status(verdict: Any) -> str | None:
    for evaluation in (_json(verdict) or {}).get("evaluations", []):
        if evaluation.get("tcb_status"):
            return str(evaluation["tcb_status"])
    return None


def _backfill(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    att = sa.Table(
        "attestations",
        meta,
        sa.Column("id", sa.Uuid()),
        sa.Column("entitlement_id", sa.Uuid()),
        sa.Column("deployment_id", sa.Uuid()),
        sa.Column("deployment_name", sa.String()),
        sa.Column("status", sa.String()),
        sa.Column("platforms", sa.JSON()),
        sa.Column("verdict", sa.JSON()),
        sa.Column("simulated", sa.Boolean()),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("reason_codes", sa.Text()),
    )
    dep = sa.Table(
        "deployments",
        meta,
        sa.Column("id", sa.Uuid()),
        sa.Column("entitlement_id", sa.Uuid()),
        sa.Column("name", sa.String()),
        sa.Column("last_attested_at", sa.DateTime(timezone=True)),
        sa.Column("lease_id", sa.Uuid()),
        sa.Column("platforms", sa.String()),
        sa.Column("tcb_status", sa.String()),
        sa.Column("simulated", sa.Boolean()),
        sa.Column("last_attestation_id", sa.Uuid()),
        sa.Column("last_status", sa.String()),
        sa.Column("last_decided_at", sa.DateTime(timezone=True)),
    )
    lease = sa.Table(
        "leases",
        meta,
        sa.Column("id", sa.Uuid()),
        sa.Column("deployment_id", sa.Uuid()),
        sa.Column("issued_at", sa.DateTime(timezone=True)),
    )

    # 1. Each deployment's newest lease, and the last decision naming it (a rejection names it only by name).
    newest_lease = (
        sa.select(lease.c.id)
        .where(lease.c.deployment_id == dep.c.id)
        .order_by(lease.c.issued_at.desc(), lease.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    last = (
        sa.select(att.c.id)
        .where(
            att.c.entitlement_id == dep.c.entitlement_id,
            att.c.deployment_name == dep.c.name,
            att.c.decided_at.is_not(None),
        )
        .order_by(att.c.decided_at.desc(), att.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(sa.update(dep).values(lease_id=newest_lease, last_attestation_id=last))
    of_last = att.alias("last")
    conn.execute(
        sa.update(dep).values(
            last_status=sa.select(of_last.c.status).where(of_last.c.id == dep.c.last_attestation_id).scalar_subquery(),
            last_decided_at=sa.select(of_last.c.decided_at)
            .where(of_last.c.id == dep.c.last_attestation_id)
            .scalar_subquery(),
        )
    )

    # 2. The platforms, TCB status and simulated flag of each deployment's newest acceptance; a renewal was not
    #    counted in last_attested_at before this revision, so it moves to that acceptance when it is later.
    inner = att.alias("newest")
    newest_accepted = (
        sa.select(inner.c.id)
        .where(inner.c.deployment_id == dep.c.id, inner.c.status == "accepted", inner.c.decided_at.is_not(None))
        .order_by(inner.c.decided_at.desc(), inner.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(dep.c.id, dep.c.last_attested_at, att.c.platforms, att.c.verdict, att.c.simulated, att.c.decided_at)
        .select_from(dep)
        .join(att, att.c.id == newest_accepted)
    ).all()
    updates = [
        {
            "d": row.id,
            "p": ",".join(sorted(set(_json(row.platforms) or []))) or None,
            "t": _tcb_status(row.verdict),
            "s": bool(row.simulated),
            "at": max(filter(None, (row.last_attested_at, row.decided_at))),
        }
        for row in rows
    ]
    set_summary = (
        sa.update(dep)
        .where(dep.c.id == sa.bindparam("d"))
        .values(
            platforms=sa.bindparam("p"),
            tcb_status=sa.bindparam("t"),
            simulated=sa.bindparam("s"),
            last_attested_at=sa.bindparam("at"),
        )
    )
    for i in range(0, len(updates), _BATCH):
        conn.execute(set_summary, updates[i : i + _BATCH])

    # 3. Each rejection's reason codes.
    set_codes = sa.update(att).where(att.c.id == sa.bindparam("a")).values(reason_codes=sa.bindparam("codes"))
    rejected = conn.execute(sa.select(att.c.id, att.c.verdict).where(att.c.status == "rejected")).all()
    codes = [{"a": r.id, "codes": _reason_codes(r.verdict)} for r in rejected]
    for i in range(0, len(codes), _BATCH):
        conn.execute(set_codes, codes[i : i + _BATCH])
