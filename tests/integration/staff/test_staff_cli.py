"""``keyward staff create`` against real PostgreSQL: the password from standard input, refusals (weak password,
invalid or taken username) with exit status 2 and a clear message, and the account it creates signs in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from verifier.cli import main
from verifier.config import get_settings
from verifier.db.models import StaffRole, StaffStatus, StaffUser
from verifier.staff.service import verify_password

PASSWORD = "a long enough password"  # noqa: S105 - a test account


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("KEYWARD_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _name() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def _stored(engine: Engine, username: str) -> StaffUser | None:
    with Session(engine) as s:
        return s.scalars(select(StaffUser).where(StaffUser.username == username)).one_or_none()


def test_staff_create_reads_the_password_from_stdin(run: CliRunner, engine: Engine) -> None:
    name = _name()
    result = run.invoke(main, ["staff", "create", name, "--role", "operator"], input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert f"created staff user {name} (operator)" in result.output
    user = _stored(engine, name)
    assert user is not None
    assert (user.role, user.status) == (StaffRole.OPERATOR, StaffStatus.ACTIVE)
    assert PASSWORD not in user.password_hash
    assert verify_password(user.password_hash, PASSWORD)


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("weak-pw", "elevenchars", "at least 12 characters"),
        ("Bad Name", PASSWORD, "a username is 1 to 64 lower-case letters"),
    ],
    ids=["weak-password", "invalid-username"],
)
def test_staff_create_refused_with_exit_2(
    run: CliRunner, engine: Engine, username: str, password: str, message: str
) -> None:
    result = run.invoke(main, ["staff", "create", username, "--role", "viewer"], input=password + "\n")

    assert result.exit_code == 2
    assert message in result.output
    assert _stored(engine, username) is None


def test_staff_create_taken_username_exit_2(run: CliRunner, engine: Engine) -> None:
    name = _name()
    assert run.invoke(main, ["staff", "create", name, "--role", "admin"], input=PASSWORD + "\n").exit_code == 0

    again = run.invoke(main, ["staff", "create", name, "--role", "viewer"], input="another long password\n")

    assert again.exit_code == 2
    assert "a staff user with this username already exists" in again.output
    user = _stored(engine, name)
    assert user is not None
    assert user.role == StaffRole.ADMIN


def test_staff_create_role_required(run: CliRunner) -> None:
    result = run.invoke(main, ["staff", "create", _name()], input=PASSWORD + "\n")
    assert result.exit_code == 2
    assert "--role" in result.output
