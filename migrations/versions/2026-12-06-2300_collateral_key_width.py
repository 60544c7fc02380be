"""collateral_cache.key wide enough for NVIDIA OCSP CertID keys

An OCSP answer is cached by its CertID, ``sha384:<issuer name hash>:<issuer key hash>:<serial>``: 2 x 96 hex digits
and a serial of up to 40, ~240 characters. ``key`` was VARCHAR(200).

Revision ID: 7c3f9e2a1b64
Revises: 5b1e0c7d9a42
Create Date: 2026-12-06 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '7c3f9e2a1b64'
down_revision: str | None = '5b1e0c7d9a42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite (the embedded default) rebuilds the table; PostgreSQL alters the column in place.
    with op.batch_alter_table('collateral_cache') as batch:
        batch.alter_column('key', existing_type=sa.String(200), type_=sa.String(400), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('collateral_cache') as batch:
        batch.alter_column('key', existing_type=sa.String(400), type_=sa.String(200), existing_nullable=False)
