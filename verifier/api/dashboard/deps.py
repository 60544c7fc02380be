"""The dashboard's dependencies: the signed-in staff user (:func:`staff_user`), the form of a POST (URL-encoded, or
multipart with at most one file: :func:`form_fields`), its CSRF check, the cookies' names and flags, and the client
address.

:func:`staff_user` is the one way a dashboard view learns who is signed in. For a safe request (GET, HEAD) without
a live session it redirects to the sign-in page (:class:`LoginRequired`); for any other method it is a 401. Every
other method must carry the session's CSRF token in the form field ``csrf_token`` (403 ``auth.csrf_invalid``), and
the user's role must reach ``role`` (403 ``auth.forbidden``). The session is read with the request's own
transaction (see :mod:`verifier.api.deps`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from verifier import limits
from verifier.api.deps import SessionDep, SettingsDep
from verifier.config import Settings
from verifier.db.models import StaffRole
from verifier.errors import AuthError, Code, Forbidden, RequestTooLarge, UsageError
from verifier.staff.service import SessionPolicy, SignedIn, csrf_matches, resolve_session

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: A dashboard form is small: anything larger is refused before it is parsed.
MAX_FORM_BYTES: Final = 64 * 1024
MAX_FORM_FIELDS: Final = 100
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
MULTIPART_CONTENT_TYPE: Final = "multipart/form-data"
#: A multipart form carries one file at most (a CCE policy), of at most this many bytes; its text fields are
#: bounded as a URL-encoded form's are, and the whole body by the sum (a 413 beyond it).
MAX_UPLOAD_BYTES: Final = limits.MAX_CCE_POLICY_BYTES
MAX_UPLOAD_FILES: Final = 1
MAX_MULTIPART_BYTES: Final = MAX_UPLOAD_BYTES + MAX_FORM_BYTES


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


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file field of a multipart form: what the browser named it, and its bytes (bounded by the parser)."""

    filename: str
    content_type: str
    data: bytes


class Form(dict[str, str]):
    """A POST's text fields (the first value of each) and, for a multipart form, its file fields by name."""

    def __init__(self, fields: Iterable[tuple[str, str]] = (), files: Mapping[str, UploadedFile] | None = None) -> None:
        super().__init__()
        for name, value in fields:
            self.setdefault(name, value)
        self.files: dict[str, UploadedFile] = dict(files or {})


async def _bounded_body(request: Request, limit: int, too_large: Callable[[], Exception]) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large()
    return bytes(body)


async def form_fields(request: Request) -> Form:
    """The form of an unsafe request: URL-encoded, or multipart (at most :data:`MAX_UPLOAD_FILES` file of at most
    :data:`MAX_UPLOAD_BYTES`, :data:`MAX_FORM_FIELDS` fields); empty for a safe request and for a body that is
    neither (which then has no CSRF token either). A URL-encoded form over :data:`MAX_FORM_BYTES` or a form that
    cannot be read is a 400; a multipart body over :data:`MAX_MULTIPART_BYTES` is a 413."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method in SAFE_METHODS:
        return Form()
    if content_type == MULTIPART_CONTENT_TYPE:
        return await _multipart(request)
    if content_type != FORM_CONTENT_TYPE:
        return Form()
    body = await _bounded_body(
        request,
        MAX_FORM_BYTES,
        lambda: UsageError(Code.REQUEST_INVALID, "the form is too large", expected=f"<= {MAX_FORM_BYTES} bytes"),
    )
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(Code.REQUEST_INVALID, "the form cannot be read") from e
    return Form(pairs)


def _upload_too_large() -> RequestTooLarge:
    return RequestTooLarge(
        Code.REQUEST_TOO_LARGE,
        f"the upload is too large: a file may have at most {MAX_UPLOAD_BYTES // 1024} KiB",
        expected=f"<= {MAX_UPLOAD_BYTES} bytes",
    )


async def _multipart(request: Request) -> Form:
    """Read the whole (bounded) body first, then parse it: the parser never sees more than the limit."""
    body = await _bounded_body(request, MAX_MULTIPART_BYTES, _upload_too_large)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers,
        replay(),
        max_files=MAX_UPLOAD_FILES,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=MAX_FORM_BYTES,
    )
    try:
        items = (await parser.parse()).multi_items()
    except MultiPartException as e:
        raise UsageError(Code.REQUEST_INVALID, f"the form cannot be read: {e.message}") from e
    fields: list[tuple[str, str]] = []
    files: dict[str, UploadedFile] = {}
    try:
        for name, value in items:
            if isinstance(value, UploadFile):
                data = await value.read(MAX_UPLOAD_BYTES + 1)
                if len(data) > MAX_UPLOAD_BYTES:
                    raise _upload_too_large()
                files.setdefault(name, UploadedFile(value.filename or "", value.content_type or "", data))
            else:
                fields.append((name, value))
    finally:
        for _, value in items:
            if isinstance(value, UploadFile):
                await value.close()
    return Form(fields, files)


FormDep = Annotated[Form, Depends(form_fields)]


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
