"""The dashboard's customers and entitlements: the list (``GET /dashboard/customers``), one customer's page
(``GET /dashboard/customers/{id}``), and the staff levers on them.

- Operators suspend or reinstate a customer (``POST .../suspend``, ``.../reinstate``), through a required
  confirmation box, as on a deployment's page.
- Admins create a customer (``GET/POST /dashboard/customers/new``), add an entitlement to one
  (``GET/POST .../entitlements/new``), change an entitlement's status (``POST .../entitlements/{id}/status``: all
  the admin API's ``PATCH /admin/entitlements/{id}`` changes), issue a licence key (``POST
  .../entitlements/{id}/licence-keys``) and revoke one (``POST .../licence-keys/{id}/revoke``).

A new licence key is shown once, in the issuing POST's own response (``Cache-Control: no-store``): it is never
stored, put in a redirect or shown again. Every other POST ends in a redirect back to the customer's page
(post/redirect/get) with a ``done`` key whose message is this module's (nothing from the query string is shown as
such). A form with a value it cannot take (an empty or too long name, a number out of range, an unknown model or
policy, a date it cannot read, a window that ends before it starts) is shown again with what is wrong, as a 400.

HTTP only: the reads are :mod:`verifier.dashboard.customers.service`'s; the changes are the admin API's service
functions (:mod:`verifier.entitlement.licensing`, :mod:`verifier.auth.credentials`), each audited as the staff
user (``staff:<username>``). This module parses the forms and renders.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from verifier import limits
from verifier.api.dashboard.deployments import ago, platform_label, stamp
from verifier.api.dashboard.deps import AdminDep, FormDep, OperatorDep, StaffDep
from verifier.api.dashboard.rendering import NO_STORE, base_path, render
from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.inputs import in_utc, instant_problem, name_problem
from verifier.auth import credentials
from verifier.config import current_time
from verifier.dashboard.customers.service import (
    EntitlementHeading,
    FormChoices,
    customer_detail,
    customer_entitlement,
    customer_entitlement_heading,
    customer_licence_key,
    form_choices,
    list_customers,
)
from verifier.db.models import CustomerStatus, EntitlementStatus, StaffRole
from verifier.entitlement import licensing
from verifier.entitlement.licensing import ENTITLEMENT_TRANSITIONS
from verifier.errors import Code, Conflict
from verifier.platforms.registry import PLATFORMS
from verifier.staff.service import SignedIn

router = APIRouter()

PAGE_SIZE: Final = 50
MAX_SEARCH: Final = 200
MAX_NAME: Final = limits.MAX_NAME_CHARS  # a customer's name and a licence key's label (the columns' length)
MAX_VERSION: Final = limits.MAX_VERSION_CHARS  # a model version (the column's length)
MAX_VERSIONS: Final = limits.MAX_ALLOWED_VERSIONS  # versions one entitlement lists
MAX_NUMBER_TEXT: Final = 12
MAX_DATE_TEXT: Final = 32
#: Bounds of an entitlement's numbers: the admin API's (``EntitlementCreate``), from verifier.limits.
SEATS: Final = (1, limits.MAX_SEATS)
MAX_GPUS: Final = (0, limits.MAX_ENTITLEMENT_GPUS)
LEASE_TTL: Final = (60, 7 * 24 * 3600)
DEFAULT_LEASE_TTL: Final = 3600
DEFAULT_KEY_LABEL: Final = "licence key"

#: What each finished action says on the customer's page after its redirect (``?done=<key>``).
DONE: Final = {
    "created": "The customer was created. Add an entitlement to licence a model to it.",
    "renamed": "The customer was renamed.",
    "suspended": "The customer is suspended: the live leases of all its entitlements were revoked, its licence keys "
    "are refused and its deployments get no new lease until it is reinstated.",
    "reinstated": "The customer is reinstated: its licence keys work again and its deployments may take leases.",
    "entitlement-created": "The entitlement was created. Issue a licence key for it so the customer's enclaves can "
    "use it.",
    "entitlement-edited": "The entitlement's terms were saved. They rule its decisions from now on; live leases run "
    "on to their expiry.",
    "entitlement-active": "The entitlement is active again.",
    "entitlement-suspended": "The entitlement is suspended: its live leases were revoked and it grants no lease "
    "until it is active again.",
    "entitlement-revoked": "The entitlement is revoked, for good: its live leases were revoked.",
    "key-revoked": "The licence key is revoked: it never authenticates again.",
}
CONFIRM_MISSING: Final = {
    "suspend": "Tick the confirmation box to suspend the customer.",
    "reinstate": "Tick the confirmation box to reinstate the customer.",
    "status": "Tick the confirmation box to change the entitlement's status.",
    "revoke": "Tick the confirmation box to revoke the licence key.",
}
#: The order an entitlement's next statuses are offered in: the least final first (never revoked by default).
STATUS_ORDER: Final = (EntitlementStatus.SUSPENDED, EntitlementStatus.ACTIVE, EntitlementStatus.REVOKED)
STATUS_LABELS: Final = {
    EntitlementStatus.ACTIVE: "Active",
    EntitlementStatus.SUSPENDED: "Suspended",
    EntitlementStatus.REVOKED: "Revoked",
}
TAG_LABELS: Final = {
    "admin:customer:status_changed": "Customer status changed",
    "admin:entitlement:created": "Entitlement created",
    "admin:entitlement:status_changed": "Entitlement status changed",
    "admin:credential:issued": "Licence key issued",
    "admin:credential:revoked": "Licence key revoked",
}


# -- shaping values for reading ---------------------------------------------------------------------------------


def duration(seconds: int) -> str:
    """A lease TTL for reading: "45 min", "1 h", "1 h 30 min", "2 days"."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}" if days else "", f"{hours} h" if hours else ""]
    parts += [f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p) or "0 s"


def day(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d")


def _helpers() -> dict[str, Any]:
    return {
        "ago": ago,
        "stamp": stamp,
        "day": day,
        "duration": duration,
        "platform_label": platform_label,
        "status_labels": STATUS_LABELS,
        "tag_labels": TAG_LABELS,
    }


# -- the list ---------------------------------------------------------------------------------------------------


@router.get("/customers", name="customers")
def customers(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: StaffDep,
    q: Annotated[str, Query(max_length=1000)] = "",
    cursor: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    now = current_time(settings)
    search = q.strip()[:MAX_SEARCH]
    page = list_customers(session, now, search=search or None, cursor=cursor or None, limit=PAGE_SIZE)
    return render(
        request,
        "customers.html",
        signed_in=signed_in,
        current="/customers",
        page=page,
        q=search,
        cursor=cursor,
        now=now,
        may_create=signed_in.may(StaffRole.ADMIN),
        **_helpers(),
    )


# -- a new customer ---------------------------------------------------------------------------------------------


def _customer_form(
    request: Request,
    signed_in: SignedIn,
    *,
    name: str = "",
    status: str = CustomerStatus.ACTIVE.value,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "customer_form.html",
        status_code=status_code,
        signed_in=signed_in,
        current="/customers",
        name=name,
        status=status,
        statuses=[s.value for s in CustomerStatus],
        errors=dict(errors or {}),
        max_name=MAX_NAME,
    )


@router.get("/customers/new", name="new_customer")
def new_customer(request: Request, admin: AdminDep) -> Response:
    return _customer_form(request, admin)


def _name_problem(name: str, what: str) -> str | None:
    """What is wrong with a name or label (``what``, capitalised: "The customer's name"), or None."""
    if not name:
        return f"{what} is required."
    if len(name) > MAX_NAME:
        return f"{what} is too long: at most {MAX_NAME} characters (this one has {len(name)})."
    if problem := name_problem(name):  # the admin API's rule: no control, invisible or bidi characters
        return f"{what} may not hold control characters, line breaks, or invisible or bidirectional ones ({problem})."
    return None


@router.post("/customers/new")
def create_customer(
    request: Request, session: SessionDep, settings: SettingsDep, admin: AdminDep, form: FormDep
) -> Response:
    name = form.get("name", "").strip()
    status_text = form.get("status", CustomerStatus.ACTIVE.value)
    errors: dict[str, str] = {}
    if problem := _name_problem(name, "The customer's name"):
        errors["name"] = problem
    status = next((s for s in CustomerStatus if s.value == status_text), None)
    if status is None:
        errors["status"] = "Choose the customer's status from the list."
    shown = {"name": name[: MAX_NAME * 2], "status": status_text[:20]}
    if errors or status is None:
        return _customer_form(request, admin, errors=errors, status_code=400, **shown)
    try:
        customer = licensing.create_customer(
            session, name=name, status=status, actor=admin.actor, now=current_time(settings)
        )
    except Conflict:
        errors["name"] = f"A customer named '{name}' already exists: choose another name."
        return _customer_form(request, admin, errors=errors, status_code=409, **shown)
    return _back(request, customer.id, "created")


# -- one customer -----------------------------------------------------------------------------------------------


def _detail_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: SignedIn,
    customer_id: uuid.UUID,
    *,
    status_code: int = 200,
    done: str = "",
    error: str | None = None,
    error_at: str = "",
) -> Response:
    now = current_time(settings)
    detail = customer_detail(session, customer_id, now)
    return render(
        request,
        "customer.html",
        status_code=status_code,
        signed_in=signed_in,
        current="/customers",
        c=detail,
        now=now,
        done=DONE.get(done),
        error=error,
        error_at=error_at,  # the entitlement or key whose form failed, to show the message beside it
        may_operate=signed_in.may(StaffRole.OPERATOR),
        may_admin=signed_in.may(StaffRole.ADMIN),
        transitions={s: [t for t in STATUS_ORDER if t in allowed] for s, allowed in ENTITLEMENT_TRANSITIONS.items()},
        default_key_label=DEFAULT_KEY_LABEL,
        max_name=MAX_NAME,
        **_helpers(),
    )


@router.get("/customers/{customer_id}", name="customer")
def customer(
    request: Request,
    customer_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: StaffDep,
    done: Annotated[str, Query(max_length=30)] = "",
) -> Response:
    return _detail_page(request, session, settings, signed_in, customer_id, done=done)


def _confirmed(form: Mapping[str, str]) -> bool:
    return form.get("confirm") == "yes"


def _back(request: Request, customer_id: uuid.UUID, done: str) -> RedirectResponse:
    return RedirectResponse(f"{base_path(request)}/customers/{customer_id}?done={done}", status_code=303)


@router.post("/customers/{customer_id}/rename")
def rename_customer(
    request: Request,
    customer_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """A new name through the same service as ``PATCH /admin/customers/{id}``; a taken name is a 409 on the page."""
    name = form.get("name", "").strip()
    if problem := _name_problem(name, "The customer's new name"):
        return _detail_page(request, session, settings, admin, customer_id, status_code=400, error=problem)
    try:
        licensing.rename_customer(session, customer_id, name, actor=admin.actor, now=current_time(settings))
    except Conflict:
        message = f"Another customer is named '{name}': choose another name."
        return _detail_page(request, session, settings, admin, customer_id, status_code=409, error=message)
    return _back(request, customer_id, "renamed")


@router.post("/customers/{customer_id}/suspend")
def suspend_customer(
    request: Request,
    customer_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    operator: OperatorDep,
    form: FormDep,
) -> Response:
    return _set_status(request, customer_id, session, settings, operator, form, CustomerStatus.SUSPENDED)


@router.post("/customers/{customer_id}/reinstate")
def reinstate_customer(
    request: Request,
    customer_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    operator: OperatorDep,
    form: FormDep,
) -> Response:
    return _set_status(request, customer_id, session, settings, operator, form, CustomerStatus.ACTIVE)


def _set_status(
    request: Request,
    customer_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    operator: SignedIn,
    form: Mapping[str, str],
    status: CustomerStatus,
) -> Response:
    """Suspend (revoking the live leases of all its entitlements) or reinstate the customer, once confirmed, by
    the domain's transition rules (:data:`~verifier.entitlement.licensing.CUSTOMER_TRANSITIONS`)."""
    suspend = status == CustomerStatus.SUSPENDED
    if not _confirmed(form):
        message = CONFIRM_MISSING["suspend" if suspend else "reinstate"]
        return _detail_page(request, session, settings, operator, customer_id, status_code=400, error=message)
    licensing.change_customer_status(session, customer_id, status, actor=operator.actor, now=current_time(settings))
    return _back(request, customer_id, "suspended" if suspend else "reinstated")


# -- entitlements -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Terms:
    """An entitlement's terms, parsed from its form."""

    model_id: uuid.UUID
    allowed_versions: tuple[str, ...]
    allowed_platforms: tuple[str, ...]
    seats: int
    max_gpus: int
    lease_ttl_seconds: int
    policy_id: uuid.UUID | None
    status: EntitlementStatus
    valid_from: datetime | None
    valid_until: datetime | None


@dataclass(frozen=True, slots=True)
class EntitlementForm:
    """The new-entitlement form as sent (each field a string, cut to a length it may be shown with again)."""

    model: str = ""
    versions: str = ""
    platforms: tuple[str, ...] = ()
    seats: str = "1"
    max_gpus: str = "0"
    lease_ttl: str = str(DEFAULT_LEASE_TTL)
    policy: str = ""
    status: str = EntitlementStatus.ACTIVE.value
    valid_from: str = ""
    valid_until: str = ""
    versions_cut: bool = False  # the versions field was longer than any list of allowed versions
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, form: Mapping[str, str]) -> EntitlementForm:
        """The form's fields; one longer than its limit is cut (a number, an id, a date or a status cut short
        is not valid; the versions field says it was cut)."""

        def text(name: str, limit: int) -> str:
            return form.get(name, "").strip()[:limit]

        versions_limit = MAX_VERSIONS * (MAX_VERSION + 2)
        return cls(
            model=text("model", 100),
            versions=text("versions", versions_limit),
            versions_cut=len(form.get("versions", "").strip()) > versions_limit,
            platforms=tuple(p for p in PLATFORMS if form.get(f"platform-{p}") == "yes"),
            seats=text("seats", 40),
            max_gpus=text("max_gpus", 40),
            lease_ttl=text("lease_ttl", 40),
            policy=text("policy", 100),
            status=text("status", 20),
            valid_from=text("valid_from", 60),
            valid_until=text("valid_until", 60),
        )

    def parse(self, choices: FormChoices, now: datetime) -> tuple[Terms | None, dict[str, str]]:
        """The terms, or None and what is wrong with each field (every field checked, not just the first)."""
        errors: dict[str, str] = {}
        model_id = _uuid(self.model)
        if model_id is None or choices.model(model_id) is None:
            errors["model"] = "Choose a model from the list."
        versions = tuple(dict.fromkeys(v.strip() for v in self.versions.replace("\n", ",").split(",") if v.strip()))
        if self.versions_cut:
            errors["versions"] = f"The versions are too long: at most {MAX_VERSIONS} of {MAX_VERSION} characters each."
        elif len(versions) > MAX_VERSIONS:
            errors["versions"] = f"List at most {MAX_VERSIONS} versions (this lists {len(versions)})."
        elif too_long := [v for v in versions if len(v) > MAX_VERSION]:
            errors["versions"] = f"A version is at most {MAX_VERSION} characters: '{too_long[0][:MAX_VERSION]}...'."
        elif bad := [v for v in versions if name_problem(v)]:
            errors["versions"] = f"A version may not hold control characters or invisible ones: {bad[0]!r}."
        if not self.platforms:
            errors["platforms"] = "Tick at least one platform."
        seats = _number(self.seats, "Seats", SEATS, errors, "seats")
        gpus = _number(self.max_gpus, "Max GPUs", MAX_GPUS, errors, "max_gpus")
        ttl = _number(self.lease_ttl, "The lease TTL", LEASE_TTL, errors, "lease_ttl")
        policy_id = None
        if self.policy:
            policy_id = _uuid(self.policy)
            if policy_id is None or choices.policy(policy_id) is None:
                errors["policy"] = "Choose a policy from the list, or none."
        status = next((s for s in EntitlementStatus if s.value == self.status), None)
        if status is None or status == EntitlementStatus.REVOKED:
            errors["status"] = "Choose active or suspended."
        valid_from = _instant(self.valid_from, "valid_from", errors)
        valid_until = _instant(self.valid_until, "valid_until", errors)
        readable = "valid_until" not in errors and "valid_from" not in errors
        if valid_until is not None and readable and valid_until <= (valid_from or now):
            start = "its start" if valid_from else "now"
            errors["valid_until"] = f"The end of the validity window must be after {start}."
        if errors or model_id is None or seats is None or gpus is None or ttl is None or status is None:
            return None, errors
        terms = Terms(model_id, versions, self.platforms, seats, gpus, ttl, policy_id, status, valid_from, valid_until)
        return terms, errors


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def _number(text: str, label: str, bounds: tuple[int, int], errors: dict[str, str], name: str) -> int | None:
    low, high = bounds
    if not text:
        errors[name] = f"{label}: enter a whole number from {low} to {high}."
        return None
    if len(text) > MAX_NUMBER_TEXT or not text.isascii() or not text.isdigit():
        errors[name] = f"{label}: '{text[:MAX_NUMBER_TEXT]}' is not a whole number from {low} to {high}."
        return None
    value = int(text)
    if not low <= value <= high:
        errors[name] = f"{label} must be from {low} to {high} (not {value})."
        return None
    return value


def _instant(text: str, name: str, errors: dict[str, str]) -> datetime | None:
    """A form's date or date and time, as UTC; "" is none."""
    if not text:
        return None
    try:
        if len(text) > MAX_DATE_TEXT:
            raise ValueError(text)
        at = datetime.fromisoformat(text)
    except ValueError:
        errors[name] = f"'{text[:MAX_DATE_TEXT]}' is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)."
        return None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    if problem := instant_problem(at):
        errors[name] = f"'{text}' {problem}."
        return None
    return in_utc(at)


def _entitlement_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: SignedIn,
    customer_id: uuid.UUID,
    form: EntitlementForm,
    *,
    choices: FormChoices | None = None,
    status_code: int = 200,
    editing: EntitlementHeading | None = None,
) -> Response:
    return render(
        request,
        "entitlement_form.html",
        status_code=status_code,
        signed_in=signed_in,
        current="/customers",
        c=customer_detail(session, customer_id, current_time(settings)),
        form=form,
        editing=editing,
        choices=choices or form_choices(session),
        platforms=list(PLATFORMS),
        platform_label=platform_label,
        statuses=[EntitlementStatus.ACTIVE.value, EntitlementStatus.SUSPENDED.value],
        seats_bounds=SEATS,
        gpu_bounds=MAX_GPUS,
        ttl_bounds=LEASE_TTL,
        max_versions=MAX_VERSIONS,
    )


@router.get("/customers/{customer_id}/entitlements/new", name="new_entitlement")
def new_entitlement(
    request: Request, customer_id: uuid.UUID, session: SessionDep, settings: SettingsDep, admin: AdminDep
) -> Response:
    return _entitlement_form(request, session, settings, admin, customer_id, EntitlementForm())


@router.post("/customers/{customer_id}/entitlements/new")
def create_entitlement(
    request: Request,
    customer_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    now = current_time(settings)
    sent = EntitlementForm.read(form)
    choices = form_choices(session)
    terms, errors = sent.parse(choices, now)
    if terms is None:
        shown = replace(sent, errors=errors)
        return _entitlement_form(
            request, session, settings, admin, customer_id, shown, choices=choices, status_code=400
        )
    licensing.create_entitlement(
        session,
        customer_id=customer_id,
        model_id=terms.model_id,
        allowed_versions=terms.allowed_versions,
        allowed_platforms=terms.allowed_platforms,
        seats=terms.seats,
        max_gpus=terms.max_gpus,
        lease_ttl_seconds=terms.lease_ttl_seconds,
        policy_id=terms.policy_id,
        status=terms.status,
        valid_from=terms.valid_from,
        valid_until=terms.valid_until,
        actor=admin.actor,
        now=now,
    )
    return _back(request, customer_id, "entitlement-created")


def _form_time(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _editable(
    session: SessionDep, customer_id: uuid.UUID, entitlement_id: uuid.UUID
) -> tuple[EntitlementHeading, licensing.EntitlementTerms]:
    """The customer's entitlement whose terms may change, and its terms (``resource.not_found`` for another
    customer's, ``resource.conflict`` once revoked)."""
    heading = customer_entitlement_heading(session, customer_id, entitlement_id)
    if heading.status == EntitlementStatus.REVOKED:
        raise Conflict(Code.RESOURCE_CONFLICT, "a revoked entitlement's terms cannot change", actual="revoked")
    return heading, licensing.entitlement_terms(session, entitlement_id)


@router.get("/customers/{customer_id}/entitlements/{entitlement_id}/edit", name="edit_entitlement")
def edit_entitlement(
    request: Request,
    customer_id: uuid.UUID,
    entitlement_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
) -> Response:
    editing, terms = _editable(session, customer_id, entitlement_id)
    form = EntitlementForm(
        model=str(editing.model_id),
        versions=", ".join(terms.allowed_versions),
        platforms=tuple(terms.allowed_platforms),
        seats=str(terms.seats),
        max_gpus=str(terms.max_gpus),
        lease_ttl=str(terms.lease_ttl_seconds),
        policy="" if terms.policy_id is None else str(terms.policy_id),
        status=editing.status.value,
        valid_from=_form_time(terms.valid_from),
        valid_until=_form_time(terms.valid_until),
    )
    return _entitlement_form(request, session, settings, admin, customer_id, form, editing=editing)


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/edit")
def save_entitlement_terms(
    request: Request,
    customer_id: uuid.UUID,
    entitlement_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """New terms through the same service as ``PATCH /admin/entitlements/{id}``; the model and the status stay
    (the status has its own, confirmed, control). A form shows times to the second: a time sent back as shown
    keeps the stored one."""
    now = current_time(settings)
    editing, current = _editable(session, customer_id, entitlement_id)
    sent = replace(EntitlementForm.read(form), model=str(editing.model_id), status=editing.status.value)
    choices = form_choices(session)
    parsed, errors = sent.parse(choices, now)
    if not sent.valid_from and "valid_from" not in errors:
        errors["valid_from"] = "Enter the start of the validity window (an entitlement always has one)."
        parsed = None
    if parsed is None or parsed.valid_from is None:
        shown = replace(sent, errors=errors)
        return _entitlement_form(
            request, session, settings, admin, customer_id, shown, choices=choices, status_code=400, editing=editing
        )

    def kept(sent_at: datetime | None, stored: datetime | None) -> datetime | None:
        same = sent_at is not None and stored is not None and sent_at == stored.replace(microsecond=0)
        return stored if same else sent_at

    terms = licensing.EntitlementTerms(
        allowed_versions=parsed.allowed_versions,
        allowed_platforms=parsed.allowed_platforms,
        seats=parsed.seats,
        max_gpus=parsed.max_gpus,
        lease_ttl_seconds=parsed.lease_ttl_seconds,
        policy_id=parsed.policy_id,
        valid_from=kept(parsed.valid_from, current.valid_from) or parsed.valid_from,
        valid_until=kept(parsed.valid_until, current.valid_until),
    )
    licensing.change_entitlement_terms(session, entitlement_id, terms, actor=admin.actor, now=now)
    return _back(request, customer_id, "entitlement-edited")


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/status")
def change_entitlement_status(
    request: Request,
    customer_id: uuid.UUID,
    entitlement_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """The entitlement's status, as ``PATCH /admin/entitlements/{id}`` changes it, by the domain's transition rules
    (a change they do not allow is a 409), once confirmed; its terms have their own form (``/edit``)."""
    customer_entitlement(session, customer_id, entitlement_id)
    status = next((s for s in EntitlementStatus if s.value == form.get("status")), None)
    error = CONFIRM_MISSING["status"] if not _confirmed(form) else None
    if status is None:
        error = "Choose the entitlement's new status from the list."
    if error is not None or status is None:
        return _detail_page(
            request, session, settings, admin, customer_id, status_code=400, error=error, error_at=str(entitlement_id)
        )
    licensing.change_entitlement_status(session, entitlement_id, status, actor=admin.actor, now=current_time(settings))
    return _back(request, customer_id, f"entitlement-{status.value}")


# -- licence keys -----------------------------------------------------------------------------------------------


@router.post("/customers/{customer_id}/entitlements/{entitlement_id}/licence-keys")
def issue_licence_key(
    request: Request,
    customer_id: uuid.UUID,
    entitlement_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """Issue a licence key for the entitlement and show it in this response only (``no-store``): reloading the
    customer's page never shows it again, and no redirect carries it."""
    customer_entitlement(session, customer_id, entitlement_id)
    label = form.get("label", "").strip() or DEFAULT_KEY_LABEL
    if problem := _name_problem(label, "The key's label"):
        return _detail_page(
            request, session, settings, admin, customer_id, status_code=400, error=problem, error_at=str(entitlement_id)
        )
    now = current_time(settings)
    row, token = credentials.issue_licence_key(
        session,
        settings.credential_pepper.get_secret_value().encode(),
        entitlement_id,
        label=label,
        actor=admin.actor,
        now=now,
    )
    detail = customer_detail(session, customer_id, now)
    return render(
        request,
        "licence_key.html",
        headers=NO_STORE,
        signed_in=admin,
        current="/customers",
        c=detail,
        entitlement=next(e for e in detail.entitlements if e.id == entitlement_id),
        key_id=row.key_id,
        label=row.label,
        token=token,
        **_helpers(),
    )


@router.post("/customers/{customer_id}/licence-keys/{credential_id}/revoke")
def revoke_licence_key(
    request: Request,
    customer_id: uuid.UUID,
    credential_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """Revoke one of the customer's licence keys, once confirmed (one already revoked is a 409)."""
    customer_licence_key(session, customer_id, credential_id)
    if not _confirmed(form):
        return _detail_page(
            request,
            session,
            settings,
            admin,
            customer_id,
            status_code=400,
            error=CONFIRM_MISSING["revoke"],
            error_at=str(credential_id),
        )
    credentials.revoke_credential(session, credential_id, actor=admin.actor, now=current_time(settings))
    return _back(request, customer_id, "key-revoked")
