"""attestation release fields

Revision ID: 31750326030f
Revises: afd6a353d521
Create Date: 2026-11-23 10:48:31.067735
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '31750326030f'
down_revision: str | None = 'afd6a353d521'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: plain ALTERs on PostgreSQL, copy-and-move on SQLite (the embedded development profile).
    with op.batch_alter_table('attestations') as batch:
        batch.add_column(sa.Column('model_version_id', sa.Uuid(), nullable=False))
        batch.add_column(sa.Column('deployment_name', sa.String(length=200), nullable=False))
        batch.add_column(sa.Column('wrapped_key', sa.Text(), nullable=True))
        batch.add_column(sa.Column('result_token', sa.Text(), nullable=True))
        batch.create_foreign_key(
            op.f('fk_attestations_model_version_id_model_versions'), 'model_versions', ['model_version_id'], ['id']
        )


def downgrade() -> None:
    with op.batch_alter_table('attestations') as batch:
        batch.drop_constraint(op.f('fk_attestations_model_version_id_model_versions'), type_='foreignkey')
        batch.drop_column('result_token')
        batch.drop_column('wrapped_key')
        batch.drop_column('deployment_name')
        batch.drop_column('model_version_id')
