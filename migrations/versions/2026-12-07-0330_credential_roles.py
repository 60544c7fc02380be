"""credential roles: api_credentials.role

An ``admin`` credential has a role on the admin API, the staff accounts' roles (viewer < operator < admin). Every
admin credential issued before this had the whole admin API, so each becomes ``admin``; the other kinds have no
role (NULL).

Revision ID: e17role00001
Revises: e17cred00001
Create Date: 2026-12-07 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "e17role00001"
down_revision: str | None = "e17cred00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_credentials") as batch:
        batch.add_column(
            sa.Column(
                "role",
                sa.Enum("viewer", "operator", "admin", name="staffrole", native_enum=False, length=32),
                nullable=True,
            )
        )
    op.execute("UPDATE api_credentials SET role = 'admin' WHERE kind = 'admin'")


def downgrade() -> None:
    with op.batch_alter_table("api_credentials") as batch:
        batch.drop_column("role")
