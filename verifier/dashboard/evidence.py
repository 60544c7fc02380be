"""An attestation's raw evidence for staff to download, as it was received: every download is an audit event
(``dashboard:evidence:downloaded``, actor ``staff:<username>``), in the caller's transaction.

Not here: HTTP (the dashboard's view sends it as an attachment), access control (any signed-in staff role may
download), committing (the request's transaction does).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from verifier.audit.log import AuditTag, record_event
from verifier.dashboard import repository
from verifier.errors import Code, NotFound

__all__ = ["EvidenceFile", "download_evidence"]


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    filename: str
    content: bytes  # the stored evidence items, as JSON


def download_evidence(session: Session, attestation_id: uuid.UUID, *, actor: str, now: datetime) -> EvidenceFile:
    """The stored evidence of ``attestation_id`` (its list of evidence items, as the API received them) as JSON,
    and an audit event saying who downloaded it. ``resource.not_found`` if there is no such attestation."""
    row = repository.attestation_context(session, attestation_id)
    if row is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "attestation not found", actual=attestation_id)
    att = row[0]
    if not att.evidence:
        raise NotFound(
            Code.RESOURCE_NOT_FOUND,
            "this attestation's raw evidence was purged by the retention policy; its decision and checks are kept",
            actual=attestation_id,
        )
    content = json.dumps(att.evidence, indent=2, sort_keys=True).encode()
    record_event(
        session,
        tag=AuditTag.EVIDENCE_DOWNLOADED,
        actor=actor,
        subject_type="attestation",
        subject_id=str(att.id),
        data={"bytes": len(content), "items": len(att.evidence)},
        at=now,
    )
    return EvidenceFile(f"attestation-{att.id}-evidence.json", content)
