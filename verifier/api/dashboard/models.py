"""The dashboard's models and reference values: every model with its versions (``GET /dashboard/models``), one
model's versions with their reference-value sets by platform (``GET /dashboard/models/{id}``), and the admin's
levers: create a model (``POST /dashboard/models``), a version (``POST .../{id}/versions``, its DEK generated or
imported, stored wrapped under the KEK), a draft reference-value set typed in as JSON (``GET|POST
.../{id}/reference-values/new``), activate or retire a set (``POST .../{id}/reference-values/{set}/status``, a
confirmed step), add a confidential ACI CCE policy to an SEV-SNP draft (``GET|POST .../{id}/cce-policy``: a
multipart upload whose SHA-256, the HOST_DATA, is shown before anything is stored), and "trust these measurements"
(``POST /dashboard/attestations/{id}/trust-measurements``): a draft set per CPU platform of an attestation's
evidence, from its verified claims, shown on the model page for review and activation.

Viewers read; every POST is an admin's, with the session's CSRF token, and ends in a redirect to the model's page
(post/redirect/get) or, for input the service refuses, the form again with the message (4xx, never a 500). HTTP
only: the reads are :mod:`verifier.dashboard.models`, every change :mod:`verifier.catalog.service` (the admin API's
functions, audited there with the actor ``staff:<username>``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from verifier import limits
from verifier.api.dashboard.deployments import platform_label, stamp
from verifier.api.dashboard.deps import AdminDep, Form, FormDep, StaffDep
from verifier.api.dashboard.rendering import base_path, render
from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.inputs import in_utc, instant_problem, name_problem
from verifier.catalog import service as catalog
from verifier.config import current_time
from verifier.dashboard.models import (
    ModelDetail,
    SetState,
    SetView,
    list_models,
    model_detail,
    model_id_of_version,
)
from verifier.dashboard.service import AttestationDetail
from verifier.db.models import RecordStatus, StaffRole
from verifier.errors import Code, KeywardError, NotFound, UsageError
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.registry import PLATFORMS
from verifier.staff.service import SignedIn
from verifier.wiring import kek_for

router = APIRouter()

#: Bounds of the forms' fields (the form as a whole is bounded by deps.MAX_FORM_BYTES).
MAX_DESCRIPTION: Final = 2000
MAX_VALUES_CHARS: Final = 48 * 1024
MAX_DEK_CHARS: Final = 100
#: What each finished action says on the model's page after its redirect (``?done=<key>``); nothing from the query
#: string is shown as such.
DONE: Final = {
    "model": "The model was created. Add a version next: each version has its own key and reference values.",
    "version": "The version was created with its key, stored wrapped under the provider KEK. Attestations for it "
    "are rejected until it has active reference values for their platforms.",
    "set": "The draft set was created. Review its values, then activate it: until then it is not in force.",
    "activated": "The set is active: decisions for its version and platform read it from now on (the newest "
    "active set in its validity window is the one in force).",
    "retired": "The set is retired: no decision reads it any more.",
    "trusted": "Draft reference values were created from the attestation's verified claims. Review them below, "
    "then activate them: the same evidence is then accepted.",
    "cce": "The CCE policy was added to an SEV-SNP draft. Review it below, then activate the draft.",
}
STATUS_LABELS: Final = {"draft": "Draft", "active": "Active", "retired": "Retired"}
_HEX: Final = re.compile(r"^[0-9a-fA-F]{16,}$")
_TARGET: Final = re.compile(r"^(new|draft):([0-9a-fA-F-]{36})$")


# -- shaping values for reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValueLine:
    """One reference value for reading: its name (``allowed_measurements.mrtd``) and its items, one per line."""

    name: str
    items: tuple[str, ...]
    mono: bool  # hex values: monospace, wrapped anywhere


def value_lines(values: Mapping[str, Any]) -> list[ValueLine]:
    """A set's values, a line per allow-list (one per measurement for Intel's ``allowed_measurements``)."""
    lines = []
    for name in sorted(values):
        value = values[name]
        if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
            for sub in sorted(value):
                items = tuple(str(i) for i in value[sub])
                lines.append(ValueLine(f"{name}.{sub}", items, all(_HEX.match(i) for i in items)))
        elif isinstance(value, list) and all(isinstance(i, str) for i in value):
            lines.append(ValueLine(name, tuple(value), bool(value) and all(_HEX.match(i) for i in value)))
        else:
            lines.append(ValueLine(name, (json.dumps(value, sort_keys=True),), False))
    return lines


def _template_helpers() -> dict[str, Any]:
    return {
        "platform_label": platform_label,
        "stamp": stamp,
        "value_lines": value_lines,
        "status_labels": STATUS_LABELS,
        "SetState": SetState,
    }


# -- the pages --------------------------------------------------------------------------------------------------


def _list_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: SignedIn,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
) -> Response:
    return render(
        request,
        "models.html",
        status_code=status_code,
        signed_in=signed_in,
        current="/models",
        models=list_models(session, current_time(settings)),
        may_edit=signed_in.may(StaffRole.ADMIN),
        error=error,
        form=form or {},
        **_template_helpers(),
    )


@router.get("/models", name="models")
def models(request: Request, session: SessionDep, settings: SettingsDep, signed_in: StaffDep) -> Response:
    return _list_page(request, session, settings, signed_in)


def _model_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: SignedIn,
    model_id: uuid.UUID,
    *,
    status_code: int = 200,
    done: str = "",
    error: str | None = None,
    form: Mapping[str, str] | None = None,
) -> Response:
    detail = model_detail(session, model_id, current_time(settings))
    return render(
        request,
        "model.html",
        status_code=status_code,
        signed_in=signed_in,
        current="/models",
        model=detail,
        may_edit=signed_in.may(StaffRole.ADMIN),
        done=DONE.get(done),
        error=error,
        form=form or {},
        **_template_helpers(),
    )


@router.get("/models/{model_id}", name="model")
def model(
    request: Request,
    model_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: StaffDep,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    return _model_page(request, session, settings, signed_in, model_id, done=done)


def _to_model(request: Request, model_id: uuid.UUID, done: str, anchor: str = "") -> RedirectResponse:
    target = f"{base_path(request)}/models/{model_id}?done={done}"
    return RedirectResponse(target + (f"#{anchor}" if anchor else ""), status_code=303)


# -- reading a form ---------------------------------------------------------------------------------------------


def _text(form: Mapping[str, str], name: str, *, label: str, most: int, required: bool = True) -> str:
    value = form.get(name, "").strip()
    if required and not value:
        raise UsageError(Code.USAGE_INVALID, f"{label} is required")
    if len(value) > most:
        raise UsageError(Code.USAGE_INVALID, f"{label} may have at most {most} characters", actual=len(value))
    return value


def _name(form: Mapping[str, str], name: str, *, label: str, most: int) -> str:
    """A required name field: :func:`_text`, then the admin API's rule (no control, invisible or bidi characters)."""
    value = _text(form, name, label=label, most=most)
    if problem := name_problem(value):
        raise UsageError(Code.USAGE_INVALID, f"{label} {problem}", actual=repr(value[:60]))
    return value


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as e:
        raise UsageError(Code.USAGE_INVALID, f"choose {what}", actual=value[:60]) from e


def _when(form: Mapping[str, str], name: str, label: str) -> datetime | None:
    """An optional ``datetime-local`` field, read as UTC."""
    value = form.get(name, "").strip()
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value[:40])
    except ValueError as e:
        raise UsageError(
            Code.USAGE_INVALID, f"{label} is not a date and time (YYYY-MM-DDTHH:MM, UTC)", actual=value[:40]
        ) from e
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    if problem := instant_problem(at):
        raise UsageError(Code.USAGE_INVALID, f"{label} {problem}", actual=value[:40])
    return in_utc(at)


def _values(form: Mapping[str, str]) -> dict[str, Any]:
    text = _text(form, "values", label="The values", most=MAX_VALUES_CHARS)
    try:
        values = json.loads(text)
    except ValueError as e:
        raise UsageError(Code.USAGE_INVALID, f"the values are not JSON: {e}") from e
    if not isinstance(values, dict):
        raise UsageError(Code.USAGE_INVALID, "the values must be a JSON object ({...})", actual=type(values).__name__)
    return values


def _confirmed(form: Mapping[str, str]) -> bool:
    return form.get("confirm") == "yes"


# -- models and versions ----------------------------------------------------------------------------------------


@router.post("/models")
def create_model(
    request: Request, session: SessionDep, settings: SettingsDep, admin: AdminDep, form: FormDep
) -> Response:
    try:
        name = _name(form, "name", label="The model's name", most=limits.MAX_NAME_CHARS)
        description = _text(form, "description", label="The description", most=MAX_DESCRIPTION, required=False)
        created = catalog.create_model(
            session, name=name, description=description, actor=admin.actor, now=current_time(settings)
        )
    except KeywardError as e:
        return _list_page(request, session, settings, admin, status_code=e.http_status, error=e.message, form=form)
    return _to_model(request, created.id, "model")


@router.post("/models/{model_id}/versions")
def create_version(
    request: Request,
    model_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    try:
        version = _name(form, "version", label="The version", most=limits.MAX_VERSION_CHARS)
        dek = _text(form, "dek_b64", label="The imported key", most=MAX_DEK_CHARS, required=False) or None
        row, _ = catalog.create_model_version(
            session,
            kek_for(settings),
            model_id,
            version=version,
            dek_b64=dek,
            actor=admin.actor,
            now=current_time(settings),
        )
    except NotFound:
        raise
    except KeywardError as e:
        kept = {k: v for k, v in form.items() if k != "dek_b64"}  # a key is never echoed back
        return _model_page(
            request, session, settings, admin, model_id, status_code=e.http_status, error=e.message, form=kept
        )
    return _to_model(request, model_id, "version", f"version-{row.id}")


# -- reference-value sets ---------------------------------------------------------------------------------------


def _new_set_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    admin: SignedIn,
    model_id: uuid.UUID,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
) -> Response:
    detail = model_detail(session, model_id, current_time(settings))
    return render(
        request,
        "reference_values_new.html",
        status_code=status_code,
        signed_in=admin,
        current="/models",
        model=detail,
        platforms=[(name, platform_label(name), entry.required_reference_values) for name, entry in PLATFORMS.items()],
        error=error,
        form=form or {},
    )


@router.get("/models/{model_id}/reference-values/new", name="new_reference_values")
def new_reference_values(
    request: Request, model_id: uuid.UUID, session: SessionDep, settings: SettingsDep, admin: AdminDep
) -> Response:
    return _new_set_page(request, session, settings, admin, model_id)


def _version_of(detail: ModelDetail, version_id: uuid.UUID) -> uuid.UUID:
    if all(v.id != version_id for v in detail.versions):
        raise UsageError(Code.USAGE_INVALID, "choose one of this model's versions", actual=str(version_id))
    return version_id


@router.post("/models/{model_id}/reference-values")
def create_reference_values(
    request: Request,
    model_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """A DRAFT set, typed in as JSON; the same checks as the admin API (the platform's policy parser, a pinned
    guest identity): a refusal shows the form again with the message."""
    now = current_time(settings)
    detail = model_detail(session, model_id, now)
    try:
        version_id = _version_of(detail, _uuid(form.get("version_id", ""), "a version"))
        platform = form.get("platform", "")
        if platform not in PLATFORMS:
            raise UsageError(Code.USAGE_INVALID, "choose a platform", actual=platform[:40])
        values = _values(form)
        valid_from = _when(form, "valid_from", "Valid from")
        valid_until = _when(form, "valid_until", "Valid until")
        if valid_until is not None and valid_until <= (valid_from or now):
            raise UsageError(Code.USAGE_INVALID, "valid until must be after valid from")
        rv = catalog.create_reference_values(
            session,
            model_version_id=version_id,
            platform=platform,
            status=RecordStatus.DRAFT,
            values=values,
            valid_from=valid_from,
            valid_until=valid_until,
            actor=admin.actor,
            now=now,
        )
    except KeywardError as e:
        return _new_set_page(
            request, session, settings, admin, model_id, status_code=e.http_status, error=e.message, form=form
        )
    return _to_model(request, model_id, "set", f"set-{rv.id}")


def _set_of(detail: ModelDetail, rv_id: uuid.UUID) -> SetView:
    for version in detail.versions:
        for platform in version.platforms:
            for s in platform.sets:
                if s.id == rv_id:
                    return s
    raise NotFound(Code.RESOURCE_NOT_FOUND, "reference value set not found under this model", actual=rv_id)


@router.post("/models/{model_id}/reference-values/{rv_id}/status")
def change_status(
    request: Request,
    model_id: uuid.UUID,
    rv_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """Activate or retire a set of this model, once the form confirms it; a change the rules refuse (a retired set
    activated again) shows the model's page with the message."""
    now = current_time(settings)
    _set_of(model_detail(session, model_id, now), rv_id)
    wanted = form.get("status", "")
    if wanted not in (RecordStatus.ACTIVE.value, RecordStatus.RETIRED.value):
        raise UsageError(Code.USAGE_INVALID, "the status must be active or retired", actual=wanted[:20])
    verb = "activate" if wanted == RecordStatus.ACTIVE.value else "retire"
    if not _confirmed(form):
        message = f"Tick the confirmation box to {verb} the set."
        return _model_page(request, session, settings, admin, model_id, status_code=400, error=message)
    try:
        catalog.change_reference_values_status(session, rv_id, RecordStatus(wanted), actor=admin.actor, now=now)
    except KeywardError as e:
        return _model_page(request, session, settings, admin, model_id, status_code=e.http_status, error=e.message)
    return _to_model(request, model_id, "activated" if verb == "activate" else "retired", f"set-{rv_id}")


# -- confidential ACI: a CCE policy -----------------------------------------------------------------------------


def _cce_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    admin: SignedIn,
    model_id: uuid.UUID,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
    digest: str | None = None,
    filename: str | None = None,
) -> Response:
    detail = model_detail(session, model_id, current_time(settings))
    return render(
        request,
        "cce_policy.html",
        status_code=status_code,
        signed_in=admin,
        current="/models",
        model=detail,
        platform=PLATFORM_SNP,
        max_kib=limits.MAX_CCE_POLICY_BYTES // 1024,
        error=error,
        form=form or {},
        digest=digest,
        filename=filename,
        stamp=stamp,
    )


@router.get("/models/{model_id}/cce-policy", name="cce_policy")
def cce_policy(
    request: Request, model_id: uuid.UUID, session: SessionDep, settings: SettingsDep, admin: AdminDep
) -> Response:
    return _cce_page(request, session, settings, admin, model_id)


def _target(form: Mapping[str, str], detail: ModelDetail) -> tuple[uuid.UUID, uuid.UUID | None]:
    """(model version, draft or None for a new one) from ``new:<version id>`` or ``draft:<set id>``."""
    found = _TARGET.match(form.get("target", ""))
    if found is None:
        raise UsageError(Code.USAGE_INVALID, "choose where the policy goes: a new draft or an existing one")
    kind, ident = found.group(1), _uuid(found.group(2), "a target")
    if kind == "new":
        return _version_of(detail, ident), None
    for version in detail.versions:
        if any(s.id == ident for s in version.drafts(PLATFORM_SNP)):
            return version.id, ident
    raise UsageError(Code.USAGE_INVALID, "that draft is no longer a draft of this model", actual=str(ident))


def _uploaded_policy(form: Form) -> tuple[str, str]:
    upload = form.files.get("policy")
    if upload is None or not upload.data:
        raise UsageError(Code.USAGE_INVALID, "choose the CCE policy file (rego, or its base64 from the ARM template)")
    return catalog.cce_policy_text(upload.data), upload.filename[:200]


@router.post("/models/{model_id}/cce-policy")
def add_cce_policy(
    request: Request,
    model_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    form: FormDep,
) -> Response:
    """``intent=hash`` shows the uploaded policy's SHA-256 and stores nothing; ``intent=add`` adds it to the chosen
    SEV-SNP draft (or a new one) and shows the model's page."""
    now = current_time(settings)
    detail = model_detail(session, model_id, now)
    kept = {"name": form.get("name", ""), "target": form.get("target", ""), "require_uvm": form.get("require_uvm", "")}
    filename: str | None = None
    try:
        text, filename = _uploaded_policy(form)
        digest = catalog.cce_policy_sha256(text)
        if form.get("intent") != "add":
            return _cce_page(request, session, settings, admin, model_id, form=kept, digest=digest, filename=filename)
        version_id, draft_id = _target(form, detail)
        rv = catalog.add_cce_policy(
            session,
            model_version_id=version_id,
            draft_id=draft_id,
            name=_text(form, "name", label="The policy's name", most=catalog.MAX_CCE_POLICY_NAME),
            policy=text,
            require_uvm_endorsement=form.get("require_uvm") == "yes",
            actor=admin.actor,
            now=now,
        )
    except KeywardError as e:
        return _cce_page(
            request,
            session,
            settings,
            admin,
            model_id,
            status_code=e.http_status,
            error=e.message,
            form=kept,
            filename=filename,
        )
    return _to_model(request, model_id, "cce", f"set-{rv.id}")


# -- trust these measurements -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustOffer:
    """What the attestation page offers an admin: the drafts its verified claims would make, or why none."""

    drafts: Mapping[str, Mapping[str, Any]]  # platform -> values
    refusal: str | None


def trust_offer(detail: AttestationDetail) -> TrustOffer:
    """The drafts "trust these measurements" would create for ``detail`` (the service's own rule), or why not."""
    observed = [catalog.Observed(e.platform, e.verified, e.claims) for e in detail.evaluations]
    try:
        drafts = catalog.observed_reference_values(detail.status, detail.platforms, observed)
    except KeywardError as e:
        return TrustOffer({}, e.message)
    return TrustOffer(drafts, None)


@router.post("/attestations/{attestation_id}/trust-measurements")
def trust_measurements(
    request: Request,
    attestation_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
) -> Response:
    """Draft sets from the attestation's verified claims (a 409 page saying why, for one whose evidence failed
    verification), then the model's page with the drafts for review."""
    drafts = catalog.draft_reference_values_from_attestation(
        session, attestation_id, actor=admin.actor, now=current_time(settings)
    )
    model_id = model_id_of_version(session, drafts[0].model_version_id)
    return _to_model(request, model_id, "trusted", f"set-{drafts[0].id}")
