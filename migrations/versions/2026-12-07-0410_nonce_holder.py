"""nonces bound to licence keys: attestations.nonce_holder

A challenge nonce's MAC names the key id of the licence key that asked for it, and the API stores that key id with
the request, for the decision to check the MAC again. Requests stored before this carry none (NULL): their nonces
were issued bound to no one, and are checked that way.

Revision ID: e17nonce0001
Revises: e17role00001
Create Date: 2026-12-07 04:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "e17nonce0001"
down_revision: str | None = "e17role00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attestations") as batch:
        batch.add_column(sa.Column("nonce_holder", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attestations") as batch:
        batch.drop_column("nonce_holder")
