"""The answer an enclave gets for an attestation, as JSON-ready data: built by the API from a narrow read
(:func:`verifier.attestation.repository.answer_row`) and by the worker from the decision it just committed, which it
announces with the answer (:func:`verifier.broker.notify.publish_decided`), so a waiting request need not read it.

Customer-safe: which check failed (its code, fault and message); expected and actual values stay for staff.
"""

from __future__ import annotations

import uuid
from typing import Any

from verifier.attestation.repository import AnswerRow
from verifier.db.models import Attestation, AttestationStatus, Lease
from verifier.errors import with_fault


def answer_row_of(att: Attestation, lease: Lease | None) -> AnswerRow:
    """The :class:`AnswerRow` of a decision just recorded (the attestation and the lease it wrote), as the narrow
    read would return it after the commit."""
    verdict = att.verdict if isinstance(att.verdict, dict) else {}
    reasons = verdict.get("reasons")
    return AnswerRow(
        id=att.id,
        entitlement_id=att.entitlement_id,
        status=AttestationStatus(att.status),
        lease_id=att.lease_id,
        wrapped_key=att.wrapped_key,
        result_token=att.result_token,
        reasons=reasons if isinstance(reasons, list) else [],
        simulated=bool(att.simulated),
        lease_expires_at=lease.expires_at if lease is not None else None,
        lease_renew_after=lease.renew_after if lease is not None else None,
    )


def status_url(attestation_id: uuid.UUID) -> str:
    return f"/v1/attestations/{attestation_id}"


def answer_of(row: AnswerRow) -> dict[str, Any]:
    """The answer to the enclave (the enclave API's ``AttestationOut``), JSON-ready."""
    out: dict[str, Any] = {
        "id": str(row.id),
        "status": row.status.value,
        "status_url": status_url(row.id),
        "simulated": row.simulated,
    }
    if row.status == AttestationStatus.ACCEPTED and row.lease_id is not None:
        if row.lease_expires_at is not None and row.lease_renew_after is not None:
            out["lease"] = {
                "id": str(row.lease_id),
                "expires_at": row.lease_expires_at.isoformat(),
                "renew_after": row.lease_renew_after.isoformat(),
            }
        out["wrapped_key"], out["result_token"] = row.wrapped_key, row.result_token
    if row.status == AttestationStatus.REJECTED:
        out["reasons"] = [
            {"code": r["code"], "fault": with_fault(r)["fault"], "message": r["message"]} for r in row.reasons
        ]
    return out
