"""deployment suspension: deployments.suspended_at

Staff may suspend one deployment (the dashboard's operator action): its live lease is revoked and new leases for
it are refused until it is reinstated. NULL: not suspended, as every deployment is today.

Revision ID: c15susp00001
Revises: a15staff0001
Create Date: 2026-12-06 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c15susp00001'
down_revision: str | None = 'a15staff0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("suspended_at")
