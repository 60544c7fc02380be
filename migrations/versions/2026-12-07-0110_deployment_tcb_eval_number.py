"""deployments.tcb_eval_number, deployments.tcb_info_id: the Intel TCB evaluation a deployment was judged with

The staff dashboard's overview warns of live deployments judged with a TCB evaluation data number below the newest
the collateral cache holds for their FMSPC (they will be refused once the policy's minimum or Intel's recovery
moves past it). The decision now keeps the number and the TCB Info (``"TDX:b0c06f000000"``) of a deployment's last
acceptance on ``deployments``, beside its TCB status; this revision adds the columns and fills them from each
deployment's newest acceptance (its stored ``collateral``: ``tcb_eval_number`` and ``fmspc`` per Intel platform).

The backfill runs in Python over plain SQL so it is the same on PostgreSQL and SQLite.

It also rebuilds ``ix_deployments_last_attested`` in the deployments list's default order (``last_attested_at DESC
NULLS LAST, id DESC``): the ascending index could not serve that order, so each first page joined and sorted all
10,000 deployments (~100 ms) instead of reading 51 index entries (~1 ms). SQLite refuses NULLS LAST in an index and
orders NULL lowest anyway, so there it is ``DESC``.

Revision ID: d15tcbe00001
Revises: d15days00001
Create Date: 2026-12-07 01:10:00.000000
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "d15tcbe00001"
down_revision: str | None = "d15days00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000
_TCB_INFO_IDS = {"intel-tdx": "TDX", "intel-sgx": "SGX"}  # this revision's own copy of the decision's rule


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("tcb_eval_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tcb_info_id", sa.String(length=40), nullable=True))
    _backfill(op.get_bind())
    nulls_last = " NULLS LAST" if op.get_bind().dialect.name == "postgresql" else ""
    op.drop_index("ix_deployments_last_attested", table_name="deployments")
    op.create_index(
        "ix_deployments_last_attested",
        "deployments",
        [sa.text(f"last_attested_at DESC{nulls_last}"), sa.text("id DESC")],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_deployments_last_attested", table_name="deployments")
    op.create_index("ix_deployments_last_attested", "deployments", ["last_attested_at", "id"], unique=False)
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("tcb_info_id")
        batch.drop_column("tcb_eval_number")


def _judgement(platforms: Any, collateral: Any) -> tuple[int | None, str | None]:
    doc = json.loads(collateral) if isinstance(collateral, str | bytes) else collateral
    names = json.loads(platforms) if isinstance(platforms, str | bytes) else platforms
    for platform in names or []:
        item = (doc or {}).get(platform) or {}
        number, fmspc = item.get("tcb_eval_number"), item.get("fmspc")
        if platform in _TCB_INFO_IDS and type(number) is int:
            tcb_info = f"{_TCB_INFO_IDS[platform]}:{fmspc.lower()}" if isinstance(fmspc, str) and fmspc else None
            return number, tcb_info
    return None, None


def _backfill(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    att = sa.Table(
        "attestations",
        meta,
        sa.Column("id", sa.Uuid()),
        sa.Column("deployment_id", sa.Uuid()),
        sa.Column("status", sa.String()),
        sa.Column("platforms", sa.JSON()),
        sa.Column("collateral", sa.JSON()),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    dep = sa.Table(
        "deployments",
        meta,
        sa.Column("id", sa.Uuid()),
        sa.Column("tcb_eval_number", sa.Integer()),
        sa.Column("tcb_info_id", sa.String()),
    )
    inner = att.alias("newest")
    newest_accepted = (
        sa.select(inner.c.id)
        .where(inner.c.deployment_id == dep.c.id, inner.c.status == "accepted", inner.c.decided_at.is_not(None))
        .order_by(inner.c.decided_at.desc(), inner.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(dep.c.id, att.c.platforms, att.c.collateral).select_from(dep).join(att, att.c.id == newest_accepted)
    ).all()
    updates = []
    for row in rows:
        number, tcb_info = _judgement(row.platforms, row.collateral)
        if number is not None:
            updates.append({"d": row.id, "n": number, "t": tcb_info})
    statement = (
        sa.update(dep)
        .where(dep.c.id == sa.bindparam("d"))
        .values(tcb_eval_number=sa.bindparam("n"), tcb_info_id=sa.bindparam("t"))
    )
    for i in range(0, len(updates), _BATCH):
        conn.execute(statement, updates[i : i + _BATCH])
