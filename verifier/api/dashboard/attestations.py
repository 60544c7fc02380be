"""An attestation's page: why it was accepted or rejected, every check with expected vs actual, per evaluation (the
CPU report, each GPU), what was in force, the collateral, the decoded result token, timings; and its raw evidence
as a download.

Paths: ``GET /dashboard/attestations/{id}`` (any signed-in role) and ``GET /dashboard/attestations/{id}/evidence``
(any signed-in role; audited as ``dashboard:evidence:downloaded``). HTTP only: the reads are
:func:`verifier.dashboard.service.attestation_detail`, the sentences :mod:`verifier.dashboard.explain`, the download
:func:`verifier.dashboard.evidence.download_evidence`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from verifier.api.dashboard.deps import StaffDep, now
from verifier.api.dashboard.models import trust_offer
from verifier.api.dashboard.rendering import render
from verifier.api.deps import SessionDep
from verifier.dashboard.evidence import download_evidence
from verifier.dashboard.explain import explain_detail
from verifier.dashboard.service import attestation_detail
from verifier.db.models import StaffRole
from verifier.errors import Code, NotFound

router = APIRouter()


def _attestation_id(text: str) -> uuid.UUID:
    """The path's id; anything that is not a UUID names no attestation (a 404, as an unknown one)."""
    try:
        return uuid.UUID(text)
    except ValueError as e:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "attestation not found", actual=text[:64]) from e


def pretty(doc: Mapping[str, Any] | None) -> str:
    """A JSON document indented for a ``<pre>``."""
    return json.dumps(doc, indent=2, sort_keys=True, default=str)


@router.get("/attestations/{attestation_id}", name="attestation")
def attestation(request: Request, attestation_id: str, session: SessionDep, signed_in: StaffDep) -> Response:
    detail = attestation_detail(session, _attestation_id(attestation_id))
    return render(
        request,
        "attestation.html",
        signed_in=signed_in,
        current="/deployments",
        detail=detail,
        explained=explain_detail(detail),
        pretty=pretty,
        trust=trust_offer(detail) if signed_in.may(StaffRole.ADMIN) else None,
    )


@router.get("/attestations/{attestation_id}/evidence", name="attestation_evidence")
def attestation_evidence(attestation_id: str, session: SessionDep, signed_in: StaffDep) -> Response:
    evidence = download_evidence(session, _attestation_id(attestation_id), actor=signed_in.actor, now=now())
    return Response(
        evidence.content,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{evidence.filename}"'},
    )
