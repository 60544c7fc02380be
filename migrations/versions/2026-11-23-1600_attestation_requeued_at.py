"""attestation requeued_at

Revision ID: 5b1e0c7d9a42
Revises: ca211707bd3a
Create Date: 2026-11-23 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5b1e0c7d9a42'
down_revision: str | None = 'ca211707bd3a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: the same DDL on PostgreSQL and SQLite (no batch mode needed).
    op.add_column('attestations', sa.Column('requeued_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attestations') as batch:
        batch.drop_column('requeued_at')
