"""Request and response bodies of the admin API (``/v1/admin``).

No response model has a field for a model DEK or a wrapped DEK: key material never leaves through this API. The
only secret that does is a freshly issued API credential's token, in :class:`IssuedCredential`, exactly once.

Every request value is bounded like enclave input (issue 17): names and labels by the one rule
(:data:`verifier.api.inputs.Name`), timestamps to what both databases hold (:data:`verifier.api.inputs.Instant`,
in UTC), integers by the product's bounds in :mod:`verifier.limits` (never near PostgreSQL's INTEGER). A validity
window is checked where an omitted ``valid_from`` becomes now, in the services; free-form documents where they are
stored (:func:`verifier.catalog.service.check_document`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from verifier import limits
from verifier.api.inputs import ApiInput, Instant, Name, VersionLabel
from verifier.db.models import (
    AttestationStatus,
    CredentialKind,
    CustomerStatus,
    EntitlementStatus,
    LeaseStatus,
    RecordStatus,
    StaffRole,
)
from verifier.errors import with_fault
from verifier.platforms.registry import PlatformName, PolicyScope

#: Evidence platforms (reference values, entitlements, attestation filters): the registry's.
Platform = PlatformName
#: A policy may also name a whole family ("intel" covers TDX and SGX), as the decision flow accepts.
PolicyPlatform = PolicyScope
#: Platforms one entitlement may list: each platform a few times over at most (repeats are kept once).
MAX_PLATFORMS = 4 * len(get_args(PlatformName))


class _In(ApiInput):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- customers -----------------------------------------------------------------------------------------------


class CustomerCreate(_In):
    name: Name
    status: CustomerStatus = CustomerStatus.ACTIVE


class CustomerOut(_Out):
    id: uuid.UUID
    name: str
    status: CustomerStatus
    created_at: datetime


class CustomerPatch(_In):
    """Rename a customer, and/or suspend (``suspended``) or reinstate (``active``) it. Suspending revokes every live
    lease of its entitlements, and its licence keys stop authenticating until it is active again."""

    name: Name | None = None
    status: CustomerStatus | None = None

    @model_validator(mode="after")
    def _something(self) -> CustomerPatch:
        if self.name is None and self.status is None:
            raise ValueError("name a field to change: name, status or both")
        return self


# -- models, versions, keys ------------------------------------------------------------------------------------


class ModelCreate(_In):
    name: Name
    description: str = Field(default="", max_length=2000)


class ModelOut(_Out):
    id: uuid.UUID
    name: str
    description: str
    created_at: datetime


class ModelVersionCreate(_In):
    version: VersionLabel
    #: Import an existing 32-byte DEK (standard base64); omitted: a fresh random DEK is generated.
    dek_b64: str | None = None


class KeyRotate(_In):
    dek_b64: str | None = None


class ModelKeyOut(_Out):
    """Metadata of a wrapped DEK: which KEK wraps it and when it was created/retired. Never the key itself."""

    id: uuid.UUID
    kek_id: str
    created_at: datetime
    retired_at: datetime | None


class ModelVersionOut(_Out):
    id: uuid.UUID
    model_id: uuid.UUID
    version: str
    created_at: datetime
    active_key: ModelKeyOut


class KeyRotated(_Out):
    model_version_id: uuid.UUID
    active_key: ModelKeyOut
    retired_key_ids: list[uuid.UUID]


# -- reference values, policies --------------------------------------------------------------------------------


class ReferenceValueCreate(_In):
    model_version_id: uuid.UUID
    platform: Platform
    status: RecordStatus = RecordStatus.DRAFT
    values: dict[str, Any]
    valid_from: Instant | None = None  # omitted: now
    valid_until: Instant | None = None  # after valid_from (now when omitted): checked in the service


class ReferenceValuePatch(_In):
    status: RecordStatus


class ReferenceValueOut(_Out):
    id: uuid.UUID
    model_version_id: uuid.UUID
    platform: str
    status: RecordStatus
    values: dict[str, Any]
    valid_from: datetime
    valid_until: datetime | None
    created_at: datetime


class PolicyCreate(_In):
    name: Name
    platform: PolicyPlatform
    document: dict[str, Any]


class PolicyOut(_Out):
    id: uuid.UUID
    name: str
    platform: str
    document: dict[str, Any]
    created_at: datetime


# -- entitlements and credentials ------------------------------------------------------------------------------


class EntitlementCreate(_In):
    customer_id: uuid.UUID
    model_id: uuid.UUID
    allowed_versions: list[VersionLabel] = Field(default_factory=list, max_length=limits.MAX_ALLOWED_VERSIONS)
    allowed_platforms: list[Platform] = Field(min_length=1, max_length=MAX_PLATFORMS)  # repeats are kept once
    seats: int = Field(ge=1, le=limits.MAX_SEATS)
    max_gpus: int = Field(default=0, ge=0, le=limits.MAX_ENTITLEMENT_GPUS)
    lease_ttl_seconds: int = Field(ge=60, le=7 * 24 * 3600)
    policy_id: uuid.UUID | None = None
    valid_from: Instant | None = None  # omitted: now
    valid_until: Instant | None = None  # after valid_from (now when omitted): checked in the service
    status: EntitlementStatus = EntitlementStatus.ACTIVE


class EntitlementOut(_Out):
    id: uuid.UUID
    customer_id: uuid.UUID
    model_id: uuid.UUID
    allowed_versions: list[str]
    allowed_platforms: list[str]
    seats: int
    max_gpus: int
    lease_ttl_seconds: int
    policy_id: uuid.UUID | None
    status: EntitlementStatus
    valid_from: datetime
    valid_until: datetime | None
    created_at: datetime


class EntitlementPatch(_In):
    """Change the terms and/or the status. Terms: each field given replaces the current one (``policy_id`` or
    ``valid_until`` given as null removes it); the customer and model never change. Status: ``active`` <->
    ``suspended``, and either -> ``revoked`` (final); suspending or revoking revokes the entitlement's live leases."""

    status: EntitlementStatus | None = None
    allowed_versions: list[VersionLabel] | None = Field(default=None, max_length=limits.MAX_ALLOWED_VERSIONS)
    allowed_platforms: list[Platform] | None = Field(default=None, min_length=1, max_length=MAX_PLATFORMS)
    seats: int | None = Field(default=None, ge=1, le=limits.MAX_SEATS)
    max_gpus: int | None = Field(default=None, ge=0, le=limits.MAX_ENTITLEMENT_GPUS)
    lease_ttl_seconds: int | None = Field(default=None, ge=60, le=7 * 24 * 3600)
    policy_id: uuid.UUID | None = None
    valid_from: Instant | None = None
    valid_until: Instant | None = None  # after valid_from: checked in the service

    @model_validator(mode="after")
    def _something(self) -> EntitlementPatch:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        for name in ("status", "allowed_versions", "allowed_platforms", "seats", "max_gpus", "lease_ttl_seconds"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if "valid_from" in self.model_fields_set and self.valid_from is None:
            raise ValueError("valid_from cannot be null")
        return self

    def changes_terms(self) -> bool:
        return bool(self.model_fields_set - {"status"})


class LicenceKeyCreate(_In):
    label: Name = "licence key"
    expires_at: Instant | None = None  # omitted: no expiry


class CredentialCreate(_In):
    kind: Literal["admin", "billing-read"]
    label: Name
    customer_id: uuid.UUID | None = None  # billing-read only: an admin credential is never of one customer
    role: Literal["viewer", "operator", "admin"] | None = None  # admin only; omitted: admin
    expires_at: Instant | None = None  # omitted: no expiry


class CredentialRotate(_In):
    """Issue a successor; the old credential keeps working for ``grace_seconds`` more (at most 7 days)."""

    grace_seconds: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    expires_at: Instant | None = None  # the successor's own expiry; omitted: none


class CredentialOut(_Out):
    id: uuid.UUID
    kind: CredentialKind
    key_id: str
    label: str
    customer_id: uuid.UUID | None
    entitlement_id: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    role: StaffRole | None  # admin credentials only


class IssuedCredential(BaseModel):
    """A new credential and its plaintext token: shown in this response only, never stored, never shown again."""

    credential: CredentialOut
    token: str


# -- leases, deployments, attestations -------------------------------------------------------------------------


class LeaseOut(_Out):
    id: uuid.UUID
    entitlement_id: uuid.UUID
    deployment_id: uuid.UUID
    model_version_id: uuid.UUID
    enclave_key_thumbprint: str
    gpus: int
    status: LeaseStatus
    issued_at: datetime
    expires_at: datetime
    renew_after: datetime
    ended_at: datetime | None


class DeploymentOut(_Out):
    id: uuid.UUID
    entitlement_id: uuid.UUID
    name: str
    first_attested_at: datetime | None
    last_attested_at: datetime | None


class AttestationSummary(_Out):
    id: uuid.UUID
    entitlement_id: uuid.UUID
    deployment_id: uuid.UUID | None
    lease_id: uuid.UUID | None
    model_version_id: uuid.UUID
    deployment_name: str
    kind: str
    platforms: list[str]
    status: AttestationStatus
    simulated: bool
    created_at: datetime
    decided_at: datetime | None


class AttestationDetail(AttestationSummary):
    """Staff view: every reason with full detail, the claims, collateral used and timings."""

    enclave_jwk: dict[str, Any]
    claims: dict[str, Any] | None
    verdict: dict[str, Any] | None
    collateral: dict[str, Any] | None
    timings: dict[str, Any] | None
    result_token: str | None

    @field_validator("verdict")
    @classmethod
    def _reason_faults(cls, verdict: dict[str, Any] | None) -> dict[str, Any] | None:
        """Every reason with its fault, also in verdicts stored before reasons carried one."""
        if verdict is None:
            return None
        out = {**verdict, "reasons": [with_fault(r) for r in verdict.get("reasons") or ()]}
        if "evaluations" in verdict:
            out["evaluations"] = [
                {**e, "reasons": [with_fault(r) for r in e.get("reasons") or ()]} for e in verdict["evaluations"]
            ]
        return out
