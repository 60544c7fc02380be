"""Operator commands of ``keyward``: ``keyward db upgrade``, ``keyward admin bootstrap`` and ``keyward staff create``.

``bootstrap`` creates the first staff (admin) credential directly in the database, because every other credential is
issued through the admin API by an admin. The token is printed once and never stored in clear. ``staff create``
creates a dashboard account (a person with a password and a role, separate from API credentials).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from verifier.auth.credentials import issue_credential
from verifier.config import get_settings
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import CredentialKind, StaffRole
from verifier.db.session import session_scope
from verifier.errors import KeywardError
from verifier.staff.service import check_password, check_username, create_staff_user


@click.group("db")
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration up to the newest (``alembic upgrade head``) on KEYWARD_DATABASE_URL."""
    upgrade_database(get_settings().database_url)


@click.group("admin")
def admin() -> None:
    """Provider staff credentials."""


@admin.command("bootstrap")
@click.option("--label", default="bootstrap admin", show_default=True, help="Who or what holds the credential.")
def admin_bootstrap(label: str) -> None:
    """Issue an admin credential and print it once (keep it in a secret store)."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:  # this command owns its one transaction
            pepper = settings.credential_pepper.get_secret_value().encode()
            _, token = issue_credential(session, pepper, CredentialKind.ADMIN, label=label, now=datetime.now(UTC))
    finally:
        engine.dispose()
    click.echo(token)


@click.group("staff")
def staff() -> None:
    """Staff accounts of the dashboard."""


@staff.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), required=True, help="What the user may do.")
def staff_create(username: str, role: str) -> None:
    """Create the dashboard account USERNAME on KEYWARD_DATABASE_URL. The password is read from standard input (its
    first line), or prompted for twice on a terminal. A weak password, an invalid or taken username: exit 2."""
    stdin = sys.stdin
    if stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = stdin.readline().rstrip("\r\n")
    try:
        check_username(username)  # before connecting: nothing to store
        check_password(username, password)
        settings = get_settings()
        engine = make_engine(settings.database_url)
        try:
            with session_scope(engine) as session:  # this command owns its one transaction
                create_staff_user(session, username, password, StaffRole(role), actor="cli", now=datetime.now(UTC))
        finally:
            engine.dispose()
    except KeywardError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(2)
    click.echo(f"created staff user {username} ({role})")
