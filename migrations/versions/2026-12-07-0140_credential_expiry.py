"""credential expiry: api_credentials.expires_at

A credential may expire (issued with an expiry, or cut short by a rotation's grace period); an expired credential
never authenticates. NULL: no expiry, as every credential today.

Revision ID: e17cred00001
Revises: d15tcbe00001
Create Date: 2026-12-07 01:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "e17cred00001"
down_revision: str | None = "d15tcbe00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_credentials") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_credentials") as batch:
        batch.drop_column("expires_at")
