"""Operator commands of ``keyward``: ``keyward db upgrade`` and ``keyward admin bootstrap``.

``bootstrap`` creates the first staff (admin) credential directly in the database, because every other credential is
issued through the admin API by an admin. The token is printed once and never stored in clear.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from verifier.auth.credentials import issue_credential
from verifier.config import get_settings
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import CredentialKind
from verifier.db.session import session_scope


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
