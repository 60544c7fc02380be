"""decisions counted per day: decision_days, rejection_reason_days

The staff dashboard's overview counts 30 days of decisions by day and outcome and by reason code. Counting
``attestations`` for that on every recomputation costs more than the page's budget with 100,000 attestations, so
the decision now adds one to its day's counters in the transaction that records it, and the overview reads finished
days there (today still from ``attestations``). This revision creates the counters and fills them from the
decisions already stored.

The backfill runs in Python over plain SQL so it is the same on PostgreSQL and SQLite; it reads each decision's
``decided_at``, status and reason codes once (no JSON).

Revision ID: d15days00001
Revises: c15susp00001
Create Date: 2026-12-07 01:00:00.000000
"""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "d15days00001"
down_revision: str | None = "c15susp00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    decision_days = op.create_table(
        "decision_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "accepted", "rejected", name="attestationstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "status", name=op.f("pk_decision_days")),
    )
    reason_days = op.create_table(
        "rejection_reason_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("code", sa.String(length=120), nullable=False),
        sa.Column("rejections", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "code", name=op.f("pk_rejection_reason_days")),
    )
    _backfill(op.get_bind(), decision_days, reason_days)


def downgrade() -> None:
    op.drop_table("rejection_reason_days")
    op.drop_table("decision_days")


# -- the backfill (this revision's own copy of the rules; migrations never import the application) --------------


def _day(at: datetime) -> date:
    """The UTC day of a decision (SQLite hands back naive datetimes, stored in UTC)."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC).date()


def _backfill(conn: sa.Connection, decision_days: sa.Table, reason_days: sa.Table) -> None:
    att = sa.Table(
        "attestations",
        sa.MetaData(),
        sa.Column("status", sa.String()),
        sa.Column("reason_codes", sa.Text()),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    decided: Counter[tuple[date, str]] = Counter()
    reasons: Counter[tuple[date, str]] = Counter()
    rows = conn.execute(
        sa.select(att.c.decided_at, att.c.status, att.c.reason_codes).where(att.c.decided_at.is_not(None))
    )
    for decided_at, status, codes in rows:
        day = _day(decided_at)
        decided[day, status] += 1
        if status == "rejected":
            for code in set(codes.split() if codes else [""]):
                reasons[day, code] += 1
    days = [{"day": d, "status": s, "decisions": n} for (d, s), n in sorted(decided.items())]
    codes_rows = [{"day": d, "code": c, "rejections": n} for (d, c), n in sorted(reasons.items())]
    for table, values in ((decision_days, days), (reason_days, codes_rows)):
        for i in range(0, len(values), _BATCH):
            conn.execute(sa.insert(table), values[i : i + _BATCH])
