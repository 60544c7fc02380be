"""The dashboard's deployments: the list (``GET /dashboard/deployments``) and one deployment's page
(``GET /dashboard/deployments/{id}``), with the operator's levers on it: revoke its live lease, suspend or reinstate
it (``POST .../revoke-lease``, ``.../suspend``, ``.../reinstate``).

The list is a plain GET form (search, filters, order) whose "Next" link carries the opaque keyset cursor in the
query string, so it works without JavaScript; a cursor this list did not give is a 400 page. Every action is a POST
form with the session's CSRF token and a required confirmation box, for operators only (a viewer sees no form and
a viewer's POST is a 403), and ends in a redirect back to the deployment's page (post/redirect/get).

HTTP only: the reads are :mod:`verifier.dashboard.service`'s, the revocation is
:func:`verifier.attestation.leases.revoke_lease` (as in the admin API) and the suspension
:func:`verifier.entitlement.licensing.set_deployment_suspended`; each audits the change with the actor
``staff:<username>``. This module only parses the query, shapes values for reading (labels, times, claims) and
renders.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from verifier.api.dashboard.deps import FormDep, OperatorDep, StaffDep
from verifier.api.dashboard.rendering import base_path, render
from verifier.api.deps import SessionDep, SettingsDep
from verifier.attestation.leases import revoke_lease
from verifier.config import current_time
from verifier.dashboard.service import (
    DeploymentDetail,
    DeploymentQuery,
    DeploymentSort,
    LeaseState,
    TimelineEvent,
    deployment_detail,
    list_deployments,
)
from verifier.db.models import AttestationStatus, StaffRole
from verifier.entitlement.licensing import set_deployment_suspended
from verifier.errors import Code, Conflict, UsageError
from verifier.platforms.item import PLATFORM_NAMES
from verifier.staff.service import SignedIn

router = APIRouter()

PAGE_SIZE: Final = 50
MAX_SEARCH: Final = 200
PLATFORM_LABELS: Final = {
    "intel-tdx": "Intel TDX",
    "intel-sgx": "Intel SGX",
    "amd-sev-snp": "AMD SEV-SNP",
    "nvidia-gpu": "NVIDIA GPU",
    "azure-aci": "Confidential ACI",
    "azure-sev-snp-vtpm": "Azure CVM (SEV-SNP)",
    "azure-tdx-vtpm": "Azure CVM (TDX)",
}
SORT_LABELS: Final = {
    DeploymentSort.LAST_ATTESTED: "Last attested (newest first)",
    DeploymentSort.NAME: "Deployment name (A-Z)",
    DeploymentSort.CUSTOMER: "Customer (A-Z)",
}
LEASE_LABELS: Final = {
    LeaseState.LIVE: "Live",
    LeaseState.EXPIRED: "Expired",
    LeaseState.REVOKED: "Revoked",
    LeaseState.RELEASED: "Released",
    LeaseState.NONE: "No lease",
}
#: What each finished action says on the deployment's page after its redirect (``?done=<key>``); nothing from the
#: query string is shown as such.
DONE: Final = {
    "revoked": "The lease was revoked: its enclave cannot renew it. The audit log records it as admin:lease:revoked.",
    "suspended": "The deployment is suspended: its live lease was revoked and it gets no new lease until it is "
    "reinstated.",
    "reinstated": "The deployment is reinstated: its next attestation may take a lease again.",
}
CONFIRM_MISSING: Final = {
    "revoke": "Tick the confirmation box to revoke the lease.",
    "suspend": "Tick the confirmation box to suspend the deployment.",
    "reinstate": "Tick the confirmation box to reinstate the deployment.",
}
#: Timeline entries: (label, tone) by kind; a decision's kind is "<attest|renew>:<status>".
EVENT_LABELS: Final = {
    "attest:accepted": ("Attestation accepted", "ok"),
    "attest:rejected": ("Attestation rejected", "bad"),
    "attest:pending": ("Attestation pending", "wait"),
    "renew:accepted": ("Renewal accepted", "ok"),
    "renew:rejected": ("Renewal rejected", "bad"),
    "renew:pending": ("Renewal pending", "wait"),
    "worker:lease:issued": ("Lease issued", "ok"),
    "worker:lease:renewed": ("Lease renewed", "ok"),
    "worker:lease:superseded": ("Lease superseded by a newer one", "neutral"),
    "admin:lease:revoked": ("Lease revoked", "bad"),
    "beat:lease:expired": ("Lease expired", "neutral"),
    "enclave:lease:released": ("Lease released by the enclave", "neutral"),
}
_HEX: Final = re.compile(r"^[0-9a-fA-F]{24,}$")


# -- reading the query ------------------------------------------------------------------------------------------


def _bad_filter(name: str, value: str) -> UsageError:
    return UsageError(Code.REQUEST_INVALID, f"the filter '{name}' has no value '{value[:60]}'", actual=value[:60])


def _uuid_or_none(name: str, value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as e:
        raise _bad_filter(name, value) from e


_E = TypeVar("_E", LeaseState, AttestationStatus, DeploymentSort)


def _choice(name: str, value: str, kind: type[_E]) -> _E | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError as e:
        raise _bad_filter(name, value) from e


@dataclass(frozen=True, slots=True)
class ListForm:
    """The list's GET form as sent, each field a string ("" is "any"), and what it asks for."""

    q: str = ""
    customer: str = ""
    model: str = ""
    platform: str = ""
    lease: str = ""
    decision: str = ""
    simulated: str = ""
    sort: str = ""

    def query(self) -> DeploymentQuery:
        if self.platform and self.platform not in PLATFORM_LABELS and self.platform not in PLATFORM_NAMES:
            raise _bad_filter("platform", self.platform)
        if self.simulated not in ("", "yes", "no"):
            raise _bad_filter("simulated", self.simulated)
        status = _choice("decision", self.decision, AttestationStatus)
        if status is AttestationStatus.PENDING:
            raise _bad_filter("decision", self.decision)
        return DeploymentQuery(
            search=self.q.strip()[:MAX_SEARCH] or None,
            customer_id=_uuid_or_none("customer", self.customer),
            model_id=_uuid_or_none("model", self.model),
            platform=self.platform or None,
            lease_state=_choice("lease", self.lease, LeaseState),
            simulated=None if not self.simulated else self.simulated == "yes",
            last_status=status,
        )

    def order(self) -> DeploymentSort:
        return _choice("sort", self.sort, DeploymentSort) or DeploymentSort.LAST_ATTESTED

    def filtered(self) -> bool:
        fields = (self.customer, self.model, self.platform, self.lease, self.decision, self.simulated)
        return bool(self.q.strip()) or any(fields)

    def link(self, **change: str) -> str:
        """This form's query string with ``change`` applied, empty fields left out (for links that keep the
        filters: the next page, a customer's or model's rows)."""
        fields = {
            "q": self.q.strip(),
            "customer": self.customer,
            "model": self.model,
            "platform": self.platform,
            "lease": self.lease,
            "decision": self.decision,
            "simulated": self.simulated,
            "sort": self.sort,
            **change,
        }
        kept = {name: value for name, value in fields.items() if value}
        return "?" + urlencode(kept) if kept else "?"


# -- shaping values for reading ---------------------------------------------------------------------------------


def platform_label(name: str) -> str:
    return PLATFORM_LABELS.get(name, name)


def ago(at: datetime | None, now: datetime) -> str:
    """``at`` relative to ``now``, coarsely: "just now", "5 min ago", "in 3 h", "2 days ago"."""
    if at is None:
        return "never"
    seconds = (now - at).total_seconds()
    later, seconds = seconds < 0, abs(seconds)
    if seconds < 45:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            text = f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
            break
    else:
        text = "1 min"
    return f"in {text}" if later else f"{text} ago"


def stamp(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class ClaimLine:
    name: str
    value: str
    mono: bool  # hex, ids and documents: a monospace font that wraps anywhere
    block: bool  # a nested document, shown as indented JSON


def claim_lines(claims: Mapping[str, Any]) -> list[ClaimLine]:
    """One platform's claims as name/value lines, in name order."""
    lines = []
    for name in sorted(claims):
        value = claims[name]
        if isinstance(value, dict | list):
            lines.append(ClaimLine(name, json.dumps(value, indent=2, sort_keys=True, default=str), True, True))
        elif isinstance(value, bool) or value is None:
            lines.append(ClaimLine(name, json.dumps(value), False, False))
        else:
            text = str(value)
            lines.append(ClaimLine(name, text, bool(_HEX.match(text)) or len(text) > 40, False))
    return lines


@dataclass(frozen=True, slots=True)
class EventView:
    event: TimelineEvent
    label: str
    tone: str  # ok, bad, wait, neutral: the dot's colour
    note: str  # the why: reason codes, a revocation's reason, a status change


def event_view(event: TimelineEvent) -> EventView:
    detail = event.detail
    if event.kind == "admin:deployment:status_changed":
        suspended = detail.get("to") == "suspended"
        label, tone = ("Deployment suspended", "bad") if suspended else ("Deployment reinstated", "ok")
    else:
        label, tone = EVENT_LABELS.get(event.kind, (event.kind, "neutral"))
    notes = []
    if reasons := detail.get("reasons"):
        notes.append(", ".join(str(r) for r in reasons))
    if reason := detail.get("reason"):
        notes.append(f"reason: {reason}")
    return EventView(event, label, tone, "; ".join(notes))


# -- pages ------------------------------------------------------------------------------------------------------


@router.get("/deployments", name="deployments")
def deployments(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: StaffDep,
    q: Annotated[str, Query(max_length=1000)] = "",
    customer: Annotated[str, Query(max_length=100)] = "",
    model: Annotated[str, Query(max_length=100)] = "",
    platform: Annotated[str, Query(max_length=100)] = "",
    lease: Annotated[str, Query(max_length=100)] = "",
    decision: Annotated[str, Query(max_length=100)] = "",
    simulated: Annotated[str, Query(max_length=100)] = "",
    sort: Annotated[str, Query(max_length=100)] = "",
    cursor: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    form = ListForm(q, customer, model, platform, lease, decision, simulated, sort)
    now = current_time(settings)
    query, order = form.query(), form.order()  # a filter with no such value: the 400 error page
    try:
        page = list_deployments(session, now, query, sort=order, cursor=cursor or None, limit=PAGE_SIZE)
    except UsageError as e:  # a cursor this list did not give (or one of another order)
        return render(
            request,
            "deployments_bad_request.html",
            status_code=400,
            signed_in=signed_in,
            current="/deployments",
            message=e.message,
            first_page=form.link(),
        )
    # A customer or model filter names it by id: its name comes from the rows (none shown: the id alone).
    first = page.rows[0] if page.rows else None
    return render(
        request,
        "deployments.html",
        signed_in=signed_in,
        current="/deployments",
        form=form,
        page=page,
        now=now,
        cursor=cursor,
        customer_name=first.customer if first and form.customer else None,
        model_name=first.model if first and form.model else None,
        platforms=[(name, platform_label(name)) for name in PLATFORM_NAMES],
        lease_states=list(LEASE_LABELS.items()),
        sorts=list(SORT_LABELS.items()),
        lease_labels=LEASE_LABELS,
        platform_label=platform_label,
        ago=ago,
        stamp=stamp,
    )


def _detail_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: SignedIn,
    deployment_id: uuid.UUID,
    *,
    status_code: int = 200,
    done: str = "",
    error: str | None = None,
) -> Response:
    now = current_time(settings)
    detail: DeploymentDetail = deployment_detail(session, deployment_id, now)
    claims = detail.latest_claims or {}
    return render(
        request,
        "deployment.html",
        status_code=status_code,
        signed_in=signed_in,
        current="/deployments",
        d=detail.summary,
        detail=detail,
        now=now,
        timeline=[event_view(e) for e in detail.timeline],
        claims=[(platform_label(p), claim_lines(c)) for p, c in sorted(claims.items()) if isinstance(c, dict)],
        may_act=signed_in.may(StaffRole.OPERATOR),
        done=DONE.get(done),
        error=error,
        lease_labels=LEASE_LABELS,
        platform_label=platform_label,
        ago=ago,
        stamp=stamp,
    )


@router.get("/deployments/{deployment_id}", name="deployment")
def deployment(
    request: Request,
    deployment_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    signed_in: StaffDep,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    return _detail_page(request, session, settings, signed_in, deployment_id, done=done)


def _confirmed(form: Mapping[str, str]) -> bool:
    return form.get("confirm") == "yes"


def _back(request: Request, deployment_id: uuid.UUID, done: str) -> RedirectResponse:
    return RedirectResponse(f"{base_path(request)}/deployments/{deployment_id}?done={done}", status_code=303)


@router.post("/deployments/{deployment_id}/revoke-lease")
def revoke_deployment_lease(
    request: Request,
    deployment_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    operator: OperatorDep,
    form: FormDep,
) -> Response:
    """Revoke the deployment's live lease: the form names it (``lease_id``), and it must still be the deployment's
    newest lease, so a page loaded before a newer lease was issued does not revoke that one unseen."""
    if not _confirmed(form):
        return _detail_page(
            request, session, settings, operator, deployment_id, status_code=400, error=CONFIRM_MISSING["revoke"]
        )
    now = current_time(settings)
    current = deployment_detail(session, deployment_id, now, limit=1).summary
    if current.lease_id is None or form.get("lease_id") != str(current.lease_id):
        raise Conflict(
            Code.RESOURCE_CONFLICT,
            "the deployment's lease changed since the page was loaded; reload it and decide again",
            expected=str(current.lease_id),
            actual=form.get("lease_id", "")[:40],
        )
    revoke_lease(session, current.lease_id, actor=operator.actor, now=now)
    return _back(request, deployment_id, "revoked")


@router.post("/deployments/{deployment_id}/suspend")
def suspend_deployment(
    request: Request,
    deployment_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    operator: OperatorDep,
    form: FormDep,
) -> Response:
    return _set_suspended(request, deployment_id, session, settings, operator, form, suspended=True)


@router.post("/deployments/{deployment_id}/reinstate")
def reinstate_deployment(
    request: Request,
    deployment_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    operator: OperatorDep,
    form: FormDep,
) -> Response:
    return _set_suspended(request, deployment_id, session, settings, operator, form, suspended=False)


def _set_suspended(
    request: Request,
    deployment_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    operator: SignedIn,
    form: Mapping[str, str],
    *,
    suspended: bool,
) -> Response:
    """Suspend (revoking its live lease) or reinstate the deployment, once the form confirms it."""
    action = "suspend" if suspended else "reinstate"
    if not _confirmed(form):
        return _detail_page(
            request, session, settings, operator, deployment_id, status_code=400, error=CONFIRM_MISSING[action]
        )
    set_deployment_suspended(session, deployment_id, suspended, actor=operator.actor, now=current_time(settings))
    return _back(request, deployment_id, "suspended" if suspended else "reinstated")
