"""worker heartbeats

Revision ID: c2b28b4814cb
Revises: 31750326030f
Create Date: 2026-11-23 11:55:57.847780
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c2b28b4814cb'
down_revision: str | None = '31750326030f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table only: the same DDL on PostgreSQL and SQLite (no batch mode needed).
    op.create_table(
        'worker_heartbeats',
        sa.Column('hostname', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('hostname', 'pid', name=op.f('pk_worker_heartbeats')),
    )


def downgrade() -> None:
    op.drop_table('worker_heartbeats')
