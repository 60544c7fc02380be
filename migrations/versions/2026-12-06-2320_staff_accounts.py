"""staff accounts: staff_users, staff_sessions, staff_login_failures (the dashboard's sign-in)

Staff accounts are separate from API credentials: an Argon2id password hash and a role per person, server-side
sessions stored by the SHA-256 of their cookie token, and failed sign-ins per client address for the throttle.

Revision ID: a15staff0001
Revises: b15dash00001
Create Date: 2026-12-06 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'a15staff0001'
down_revision: str | None = 'b15dash00001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only: the same DDL on PostgreSQL and SQLite (no batch mode needed).
    op.create_table(
        'staff_users',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column(
            'role',
            sa.Enum('viewer', 'operator', 'admin', name='staffrole', native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            'status', sa.Enum('active', 'disabled', name='staffstatus', native_enum=False, length=32), nullable=False
        ),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('failed_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
        sa.UniqueConstraint('username', name=op.f('uq_staff_users_username')),
    )
    op.create_table(
        'staff_sessions',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('staff_user_id', sa.Uuid(), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['staff_user_id'],
            ['staff_users.id'],
            name=op.f('fk_staff_sessions_staff_user_id_staff_users'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_staff_sessions_token_hash')),
    )
    op.create_index(op.f('ix_staff_sessions_staff_user_id'), 'staff_sessions', ['staff_user_id'], unique=False)
    op.create_table(
        'staff_login_failures',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_login_failures')),
    )
    op.create_index(
        op.f('ix_staff_login_failures_address'), 'staff_login_failures', ['address', 'at'], unique=False
    )
    op.create_index(op.f('ix_staff_login_failures_at'), 'staff_login_failures', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_staff_login_failures_at'), table_name='staff_login_failures')
    op.drop_index(op.f('ix_staff_login_failures_address'), table_name='staff_login_failures')
    op.drop_table('staff_login_failures')
    op.drop_index(op.f('ix_staff_sessions_staff_user_id'), table_name='staff_sessions')
    op.drop_table('staff_sessions')
    op.drop_table('staff_users')
