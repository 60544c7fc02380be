"""All mapped tables (importing this package registers them on ``Base.metadata``)."""

from verifier.db.models.attestation import (
    Attestation,
    AttestationStatus,
    DecisionDay,
    Lease,
    LeaseStatus,
    RejectionReasonDay,
    UsedNonce,
)
from verifier.db.models.audit import AuditEvent
from verifier.db.models.catalog import AppraisalPolicy, Model, ModelKey, ModelVersion, RecordStatus, ReferenceValueSet
from verifier.db.models.collateral import CachedCollateral
from verifier.db.models.licensing import Deployment, Entitlement, EntitlementStatus
from verifier.db.models.ops import WorkerHeartbeat
from verifier.db.models.staff import StaffLoginFailure, StaffRole, StaffSession, StaffStatus, StaffUser
from verifier.db.models.tenancy import ApiCredential, CredentialKind, Customer, CustomerStatus

__all__ = [
    "ApiCredential",
    "AppraisalPolicy",
    "Attestation",
    "AttestationStatus",
    "AuditEvent",
    "CachedCollateral",
    "CredentialKind",
    "Customer",
    "CustomerStatus",
    "DecisionDay",
    "Deployment",
    "Entitlement",
    "EntitlementStatus",
    "Lease",
    "LeaseStatus",
    "Model",
    "ModelKey",
    "ModelVersion",
    "RecordStatus",
    "ReferenceValueSet",
    "RejectionReasonDay",
    "StaffLoginFailure",
    "StaffRole",
    "StaffSession",
    "StaffStatus",
    "StaffUser",
    "UsedNonce",
    "WorkerHeartbeat",
]
