"""The dashboard's dependencies: the signed-in staff user (:func:`staff_user`), the form of a POST, its CSRF check,
the cookies' names and flags, and the client address.

:func:`staff_user` is the one way a dashboard view learns who is signed in. For a safe request (GET, HEAD) without
a live session it redirects to the sign-in page (:class:`LoginRequired`); for any other method it is a 401. Every
other method must carry the session's CSRF token in the form field ``csrf_token`` (403 ``auth.csrf_invalid``), and
the user's role must reach ``role`` (403 ``auth.forbidden``). The session is read with the request's own
transaction (see :mod:`verifier.api.deps`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Final
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from verifier.api.deps import SessionDep, SettingsDep
from verifier.config import Settings
from verifier.db.models import StaffRole
from verifier.errors import AuthError, Code, Forbidden, UsageError
from verifier.staff.service import SessionPolicy, SignedIn, csrf_matches, resolve_session

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: A dashboard form is small: anything larger is refused before it is parsed.
MAX_FORM_BYTES: Final = 64 * 1024
MAX_FORM_FIELDS: Final = 100
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


class LoginRequired(Exception):
    """A page was asked for without a live session: the app answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def now() -> datetime:
    """Sessions and sign-ins run on the real clock (never the simulation clock of development decisions)."""
    return datetime.now(UTC)


def secure_cookies(settings: Settings) -> bool:
    """Cookies are ``Secure`` (and ``__Host-`` prefixed) everywhere but development, which runs on plain HTTP."""
    return settings.environment != "development"


def session_cookie(settings: Settings) -> str:
    return "__Host-keyward_session" if secure_cookies(settings) else "keyward_session"


def login_cookie(settings: Settings) -> str:
    return "__Host-keyward_login" if secure_cookies(settings) else "keyward_login"


def client_address(request: Request) -> str:
    """The peer's address (behind a proxy, run uvicorn with ``--proxy-headers`` so this is the client's)."""
    return request.client.host if request.client else "unknown"


async def form_fields(request: Request) -> Mapping[str, str]:
    """The URL-encoded form of an unsafe request (the first value of each field); empty for a safe one and for a
    body that is not a form (which then has no CSRF token either). A form over :data:`MAX_FORM_BYTES` is a 400."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method in SAFE_METHODS or content_type != FORM_CONTENT_TYPE:
        return {}
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise UsageError(Code.REQUEST_INVALID, "the form is too large", expected=f"<= {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(Code.REQUEST_INVALID, "the form cannot be read") from e
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


FormDep = Annotated[Mapping[str, str], Depends(form_fields)]


def current_staff(request: Request, settings: SettingsDep, session: SessionDep) -> SignedIn | None:
    """The signed-in staff user, or None (no checks: the sign-in page uses this to skip a form)."""
    token = request.cookies.get(session_cookie(settings))
    return resolve_session(session, token, now=now(), policy=SessionPolicy.from_settings(settings))


def staff_user(role: StaffRole = StaffRole.VIEWER) -> Callable[..., SignedIn]:
    """Dependency factory: the signed-in staff user, whose role must reach ``role``; unsafe methods must carry the
    session's CSRF token (see the module docstring)."""

    def dependency(
        request: Request,
        signed_in: Annotated[SignedIn | None, Depends(current_staff)],
        form: FormDep,
    ) -> SignedIn:
        if signed_in is None:
            if request.method in SAFE_METHODS:
                raise LoginRequired(request.url.path)
            raise AuthError(Code.AUTH_MISSING, "sign in to the dashboard first")
        if request.method not in SAFE_METHODS and not csrf_matches(signed_in.csrf_token, form.get("csrf_token")):
            raise Forbidden(Code.AUTH_CSRF_INVALID, "the form's CSRF token is missing or wrong; reload the page")
        if not signed_in.may(role):
            raise Forbidden(
                Code.AUTH_FORBIDDEN,
                f"this needs the {role.value} role",
                expected=role.value,
                actual=signed_in.role.value,
            )
        return signed_in

    return dependency


StaffDep = Annotated[SignedIn, Depends(staff_user(StaffRole.VIEWER))]
OperatorDep = Annotated[SignedIn, Depends(staff_user(StaffRole.OPERATOR))]
AdminDep = Annotated[SignedIn, Depends(staff_user(StaffRole.ADMIN))]
