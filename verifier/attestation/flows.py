"""The one orchestrator: decide a pending attestation and, on success, release a lease.

``decide_attestation(session, attestation_id, ctx, now)`` runs in the worker, in the caller's transaction:

1. Redeem the challenge nonce (single use across workers and restarts; a replay is a stored rejection). Its
   expiry is checked against when the evidence arrived (``created_at``), so a decision that waited for vendor
   collateral or was requeued after a lost dispatch is not rejected for the service's own delay.
2. Load the enclave's JWK; the default binding is REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint).
3. For every evidence item: parse -> verify -> appraise against the active reference values of the model version
   for that platform, merged with the entitlement's appraisal policy, with the binding as expected REPORTDATA.
4. Entitlement, locked and read afresh: active, its customer not suspended, in its window, platform and version
   allowed; a seat reserved (race-free: every seat decision for one entitlement is made one at a time). A seat is
   a deployment with one live lease: a new lease for a deployment supersedes (revokes) the one it held, so one
   licence seat never covers more than one running enclave.
5. Release: the model DEK unwrapped from the KEK and wrapped to the enclave key (compact JWE), and a signed EAR
   attestation-result token; only then are the deployment and the lease written.
6. The attestation row (claims, verdict with every reason, collateral, timings), the lease and a hash-chained
   audit event are written together; the caller commits once.

Rejections are results: any failure in 1-5 sets status ``rejected`` with its reasons and is audited the same way.
An unexpected exception while checking (a parser bug on hostile bytes) is a stored ``internal.error`` rejection,
logged with its traceback for staff, so a poisoned request cannot fail its task and be requeued forever; database
errors are not caught (the task retries them). In production, a policy asking to accept debug TEEs is overridden:
the host can read a debug TEE's memory, so the model key is never released to one.
Every check that can reject runs before anything but the redeemed nonce is written, so a rejection needs no
savepoint and leaves no half-made lease. The reads are few on purpose (one statement for the catalog, one for the
reference values, one for the seat): a decision is a handful of round trips to PostgreSQL.
The function is idempotent: a decided attestation is returned unchanged (a worker killed mid-task re-runs it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from verifier.appraisal.intel import parse_intel_policy
from verifier.appraisal.reference_values import require_identifying_reference_values
from verifier.appraisal.snp import parse_snp_policy
from verifier.attestation.challenges import redeem_challenge
from verifier.attestation.evaluation import Evaluation, evaluate_intel_quote, evaluate_snp_report
from verifier.audit.log import AuditTag, Entry, record_events
from verifier.collateral.cache import amd_crl_for, intel_collateral_for, vcek_from_cache
from verifier.db.models import (
    AppraisalPolicy,
    Attestation,
    AttestationStatus,
    Entitlement,
    Lease,
    LeaseStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.entitlement.service import Seat, check_entitlement_rules, lock_entitlement, reserve_seat, take_seat
from verifier.errors import Code, KeywardError, Reason
from verifier.keywrap.ear import ProviderKeyring, issue_ear
from verifier.keywrap.enclave import EnclaveKey, expected_report_data, parse_enclave_jwk, wrap_for_enclave
from verifier.keywrap.kek import KeyEncryptionKey
from verifier.platforms.amd_snp import PLATFORM_SNP, SnpVerificationCache
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX, IntelVerificationCache
from verifier.trust.intel_collateral import parse_collateral_json
from verifier.trust.store import TrustStore

INTEL_PLATFORMS = (PLATFORM_TDX, PLATFORM_SGX)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionContext:
    """Everything a decision needs besides the database: trust, keys, secrets and verification caches."""

    trust: TrustStore
    kek: KeyEncryptionKey
    keyring: ProviderKeyring
    challenge_secret: bytes
    intel_cache: IntelVerificationCache = field(default_factory=IntelVerificationCache)
    snp_cache: SnpVerificationCache = field(default_factory=SnpVerificationCache)
    production: bool = False  # the production profile: debug TEEs are never accepted, whatever a policy says


class _Rejected(Exception):
    def __init__(self, reasons: list[Reason]) -> None:
        super().__init__(", ".join(r.code.value for r in reasons))
        self.reasons = reasons


def model_key_context(model_version_id: str) -> bytes:
    """AES-GCM associated data binding a wrapped DEK to its model version."""
    return f"keyward:model-version:{model_version_id}".encode()


def decide_attestation(
    session: Session, attestation_id: Any, ctx: DecisionContext, now: datetime, *, received_at: datetime | None = None
) -> Attestation:
    """Lock the attestation row and decide it (:func:`decide_locked`)."""
    return decide_locked(session, lock_attestation(session, attestation_id), ctx, now, received_at=received_at)


def lock_attestation(session: Session, attestation_id: Any) -> Attestation:
    """The attestation, its row locked until the transaction ends and read afresh (``SELECT ... FOR UPDATE``)."""
    att = session.get(Attestation, attestation_id, with_for_update=True, populate_existing=True)
    if att is None:
        raise KeywardError(Code.ATTESTATION_NOT_FOUND, f"no attestation {attestation_id}")
    return att


@dataclass(frozen=True, slots=True)
class _Catalog:
    """What a decision reads about the licence and the model, in two statements (see :func:`_load_catalog`)."""

    version: ModelVersion
    model: Model
    entitlement: Entitlement  # as read before the lock; the seat step locks and reads it again
    policy: AppraisalPolicy | None
    model_key: ModelKey | None  # the newest unretired one
    reference_values: dict[str, ReferenceValueSet]  # per platform: the newest active set with valid_from <= now


def decide_locked(
    session: Session, att: Attestation, ctx: DecisionContext, now: datetime, *, received_at: datetime | None = None
) -> Attestation:
    """Decide ``att``, whose row the caller has locked (``SELECT ... FOR UPDATE``) in this transaction.

    Every check that can reject runs before anything is written except the redeemed nonce: a rejection adds only
    its verdict and audit event, and an accepted decision writes its deployment, lease and attestation once.
    ``received_at``: when the request arrived, on the clock of ``now`` (default: its ``created_at``).
    """
    if att.status != AttestationStatus.PENDING:
        return att  # idempotent: already decided
    started = time.perf_counter()
    evaluations: list[Evaluation] = []
    lease: Lease | None = None
    superseded: list[uuid.UUID] = []  # the deployment's earlier live leases this one replaces
    writing = False
    try:
        # 1-2. Freshness (as of the evidence's arrival) and the enclave key.
        received = att.created_at if received_at is None else received_at
        redeem_challenge(session, ctx.challenge_secret, att.nonce, now, received_at=received)
        key = parse_enclave_jwk(att.enclave_jwk)
        binding = expected_report_data(att.nonce, key)
        catalog = _load_catalog(session, att, now)
        # 3. Every evidence item, appraised against reference values + policy + binding.
        evaluations.extend(
            _evaluate(session, item, _binding_for(item, att.nonce, key, binding), catalog, ctx, now)
            for item in att.evidence
        )
        failed = [r for e in evaluations for r in e.reasons]
        if failed or not evaluations:
            raise _Rejected(failed or [Reason(Code.ATTESTATION_EVIDENCE_MALFORMED, "no evidence")])
        # 4. Licence and seat, on the entitlement locked and read afresh: every seat decision for one entitlement
        #    is made one at a time, until this transaction ends.
        entitlement = lock_entitlement(session, catalog.entitlement.id)
        version = catalog.version
        check_entitlement_rules(
            entitlement, platform=list(att.platforms), model_version=version.version, gpus=0, now=now
        )
        if catalog.model_key is None:
            raise KeywardError(Code.ATTESTATION_MODEL_KEY_MISSING, "the model version has no active key")
        ttl = timedelta(seconds=entitlement.lease_ttl_seconds)
        expires_at, renew_after = now + ttl, now + ttl * 2 / 3
        renewed: Lease | None = None
        seat: Seat | None = None
        if att.kind == "renew":
            # 5a. Renewal: the same enclave key, on a lease that is still live (revoked leases never renew).
            renewed = _renewable_lease(session, att, key.thumbprint_b64, now)
            lease_id, deployment_id = renewed.id, renewed.deployment_id
        else:
            # 5b. A new lease takes a seat (race-free: the entitlement row is locked until commit).
            seat = reserve_seat(session, entitlement, att.deployment_name, now=now)
            lease_id, deployment_id = uuid.uuid4(), seat.deployment_id
        # 5. Release: the model DEK wrapped to the enclave key, and the signed attestation result.
        dek = ctx.kek.unwrap(catalog.model_key.wrapped_dek, context=model_key_context(str(version.id)))
        wrapped_key = wrap_for_enclave(dek, key, kid=str(lease_id))
        result_token = issue_ear(
            ctx.keyring,
            now=now,
            attestation_id=str(att.id),
            lease_id=str(lease_id),
            expires_at=expires_at,
            evaluations=[e.to_json() for e in evaluations],
            nonce=att.nonce,
            enclave_key_thumbprint=key.thumbprint_b64,
            model=catalog.model.name,
            model_version=version.version,
            deployment=att.deployment_name,
            customer_id=str(entitlement.customer_id),
        )
        # Nothing below rejects: write the seat and the lease.
        writing = True
        if renewed is not None:
            renewed.expires_at, renewed.renew_after = expires_at, renew_after
            lease = renewed
        elif seat is not None:
            superseded = take_seat(session, entitlement.id, att.deployment_name, seat, now=now)
            lease = Lease(
                id=lease_id,
                entitlement_id=entitlement.id,
                deployment_id=deployment_id,
                model_version_id=version.id,
                enclave_key_thumbprint=key.thumbprint_b64,
                gpus=0,
                status=LeaseStatus.LIVE,
                issued_at=now,
                expires_at=expires_at,
                renew_after=renew_after,
            )
            session.add(lease)
        # The rows the attestation's foreign keys name go first (no relationship() tells the unit of work the order).
        session.flush()
        att.wrapped_key, att.result_token = wrapped_key, result_token
        att.deployment_id, att.lease_id = deployment_id, lease_id
        att.status = AttestationStatus.ACCEPTED
        reasons: list[Reason] = []
    except (_Rejected, KeywardError) as e:
        lease = None
        att.wrapped_key = att.result_token = None
        att.status = AttestationStatus.REJECTED
        reasons = e.reasons if isinstance(e, _Rejected) else [e.to_reason()]
    except SQLAlchemyError:
        raise  # the session is unusable; the task retries
    except Exception:
        if writing:
            raise  # a half-written lease must roll back with the transaction
        _log.exception("unexpected error deciding attestation %s: stored as internal.error", att.id)
        lease = None
        att.wrapped_key = att.result_token = None
        att.status = AttestationStatus.REJECTED
        reasons = [
            Reason(Code.INTERNAL_ERROR, "the verifier failed on this evidence; the provider's staff can see why")
        ]
    # 6. Record everything, pass or fail, with one audit event.
    att.claims = {e.platform or f"item{i}": e.claims for i, e in enumerate(evaluations)}
    att.collateral = {e.platform or f"item{i}": e.collateral for i, e in enumerate(evaluations)}
    att.verdict = {
        "accepted": att.status == AttestationStatus.ACCEPTED,
        "reasons": [r.to_json() for r in reasons],
        "evaluations": [e.to_json() for e in evaluations],
    }
    att.simulated = any(e.simulated for e in evaluations) or ctx.trust.simulated
    att.decided_at = now
    att.timings = {"decide_ms": round((time.perf_counter() - started) * 1000, 3)}
    accepted = att.status == AttestationStatus.ACCEPTED
    entries = [
        Entry(
            AuditTag.ATTESTATION_ACCEPTED if accepted else AuditTag.ATTESTATION_REJECTED,
            "worker",
            "attestation",
            str(att.id),
            {
                "entitlement_id": str(att.entitlement_id),
                "lease_id": str(lease.id) if lease else None,
                "reasons": [r.code.value for r in reasons],
                "simulated": att.simulated,
                "superseded_leases": [str(i) for i in superseded],
            },
        )
    ]
    if lease is not None:
        entries.append(
            Entry(
                AuditTag.LEASE_RENEWED if att.kind == "renew" else AuditTag.LEASE_ISSUED,
                "worker",
                "lease",
                str(lease.id),
                {"attestation_id": str(att.id), "expires_at": lease.expires_at.isoformat()},
            )
        )
    entries.extend(
        Entry(
            AuditTag.LEASE_SUPERSEDED,
            "worker",
            "lease",
            str(i),
            {"reason": "superseded", "by": str(lease.id) if lease else None, "attestation_id": str(att.id)},
        )
        for i in superseded
    )
    record_events(session, entries, at=now)  # flushes the attestation's changes with the events
    return att


def _binding_for(item: dict[str, Any], nonce: bytes, key: EnclaveKey, default: bytes) -> bytes:
    """The REPORTDATA an evidence item must carry.

    Default: SHA-512(nonce || thumbprint). Confidential ACI (SEV-SNP only): the SKR sidecar reports
    SHA-256(runtime data) in REPORT_DATA[0:32] and zeros after; the item then carries ``runtime_data`` (base64 of
    the exact JSON bytes), which must name this nonce (``"nonce"``, base64url) and this enclave key (one JWK in
    ``"keys"`` with the same RFC 7638 thumbprint).
    """
    runtime = item.get("runtime_data")
    if runtime is None:
        return default
    if item.get("type") != PLATFORM_SNP:
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, "runtime_data binding is for amd-sev-snp evidence")
    data = _b64(runtime, "runtime_data")
    try:
        doc = json.loads(data)
        claimed_nonce = base64.urlsafe_b64decode(doc["nonce"] + "=" * (-len(doc["nonce"]) % 4))
        thumbprints = {parse_enclave_jwk(k).thumbprint for k in doc["keys"]}
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as e:
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, f"runtime_data is not the expected JSON: {e}") from e
    if claimed_nonce != nonce or key.thumbprint not in thumbprints:
        raise KeywardError(Code.ATTESTATION_BINDING_MISMATCH, "runtime data does not name this nonce and enclave key")
    return hashlib.sha256(data).digest() + bytes(32)


def _renewable_lease(session: Session, att: Attestation, thumbprint: str, now: datetime) -> Lease:
    lease = session.get(Lease, att.lease_id, with_for_update=True) if att.lease_id else None
    if lease is None or lease.entitlement_id != att.entitlement_id:
        raise KeywardError(Code.LEASE_NOT_RENEWABLE, "no such lease")
    if lease.status != LeaseStatus.LIVE or lease.expires_at <= now:
        raise KeywardError(
            Code.LEASE_NOT_RENEWABLE,
            "the lease is not live (revoked, released or expired)",
            expected="live",
            actual=lease.status.value,
        )
    if lease.enclave_key_thumbprint != thumbprint:
        raise KeywardError(
            Code.LEASE_NOT_RENEWABLE,
            "renewal must come from the lease's enclave key",
            expected=lease.enclave_key_thumbprint,
            actual=thumbprint,
        )
    return lease


def _evaluate(
    session: Session,
    item: dict[str, Any],
    binding: bytes,
    catalog: _Catalog,
    ctx: DecisionContext,
    now: datetime,
) -> Evaluation:
    kind = item.get("type")
    if kind not in (*INTEL_PLATFORMS, PLATFORM_SNP):
        raise KeywardError(
            Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
            f"unsupported evidence type {kind!r}",
            expected="intel-tdx | intel-sgx | amd-sev-snp",
            actual=kind,
        )
    evidence = _b64(item.get("evidence"), "evidence")
    document = _policy_document(catalog, str(kind), now, production=ctx.production)
    document["expected_report_data"] = binding.hex()
    if kind == PLATFORM_SNP:
        # Revocation is checked unless the provider's policy says otherwise: the CRL rides along or comes from
        # the cache the fetchers fill (KDS, by product and chain).
        document.setdefault("require_crl", True)
        snp_policy = parse_snp_policy(document)
        cert_table = _b64(item["cert_table"], "cert_table") if item.get("cert_table") else None
        leaf = (
            _b64(item["vcek"], "vcek")
            if item.get("vcek")
            else (None if cert_table is not None else vcek_from_cache(session, evidence))
        )
        # A CRL that rides along is used only if it is for this chain and newer than the cached one.
        supplied_crl = _b64(item["crl"], "crl") if item.get("crl") else None
        crl = amd_crl_for(session, evidence, leaf, cert_table, supplied_crl, ctx.trust)
        # Confidential ACI: Microsoft's UVM endorsement, verified to its pinned root, vouches for MEASUREMENT.
        uvm = _b64(item["uvm_endorsement"], "uvm_endorsement") if item.get("uvm_endorsement") else None
        return evaluate_snp_report(
            evidence,
            leaf_der=leaf,
            cert_table=cert_table,
            trust=ctx.trust,
            now=now,
            policy=snp_policy,
            crl_der=crl,
            cache=ctx.snp_cache,
            uvm_endorsements=() if uvm is None else (uvm,),
        )
    # Collateral that rides along is weighed against the cache document by document; the newer is verified (an
    # attester cannot hide a revocation or a TCB recovery behind an older, still valid document).
    supplied = parse_collateral_json(str(item["collateral"])) if item.get("collateral") else None
    collateral = intel_collateral_for(session, evidence, supplied)
    result = evaluate_intel_quote(
        evidence, collateral, ctx.trust, now, parse_intel_policy(json.dumps(document)), ctx.intel_cache
    )
    if result.platform not in (None, kind):
        raise KeywardError(
            Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
            "evidence is not of its declared type",
            expected=str(kind),
            actual=str(result.platform),
        )
    return result


#: The decision's two catalog reads, built once (statement construction and its cache key cost more than the
#: round trip on this path); parameters: version, entitlement, platforms, now.
_NEWEST_KEY = (
    select(ModelKey.id)
    .where(ModelKey.model_version_id == bindparam("version"), ModelKey.retired_at.is_(None))
    .order_by(ModelKey.created_at.desc())
    .limit(1)
    .scalar_subquery()
)
_CATALOG = (
    select(ModelVersion, Model, Entitlement, AppraisalPolicy, ModelKey)
    .join(Model, Model.id == ModelVersion.model_id)
    .join(Entitlement, Entitlement.id == bindparam("entitlement"))
    .outerjoin(AppraisalPolicy, AppraisalPolicy.id == Entitlement.policy_id)
    .outerjoin(ModelKey, ModelKey.id == _NEWEST_KEY)
    .where(ModelVersion.id == bindparam("version"))
)
_REFERENCE_VALUES = (
    select(ReferenceValueSet)
    .where(
        ReferenceValueSet.model_version_id == bindparam("version"),
        ReferenceValueSet.platform.in_(bindparam("platforms", expanding=True)),
        ReferenceValueSet.status == RecordStatus.ACTIVE,
        ReferenceValueSet.valid_from <= bindparam("now"),
    )
    .order_by(ReferenceValueSet.valid_from.desc())
)


def _load_catalog(session: Session, att: Attestation, now: datetime) -> _Catalog:
    """The model version, its model, the entitlement, the entitlement's policy and the newest unretired model key in
    one statement; the active reference values for the attestation's platforms in a second."""
    row = session.execute(_CATALOG, {"version": att.model_version_id, "entitlement": att.entitlement_id}).one_or_none()
    if row is None:
        raise KeywardError(Code.ATTESTATION_NOT_FOUND, "model version or entitlement vanished")
    version, model, entitlement, policy, model_key = row
    platforms = sorted({str(i.get("type")) for i in att.evidence})
    reference_values: dict[str, ReferenceValueSet] = {}
    for rv in session.scalars(_REFERENCE_VALUES, {"version": version.id, "platforms": platforms, "now": now}):
        reference_values.setdefault(rv.platform, rv)
    return _Catalog(version, model, entitlement, policy, model_key, reference_values)


def _policy_document(catalog: _Catalog, platform: str, now: datetime, *, production: bool) -> dict[str, Any]:
    """The entitlement's appraisal policy for the platform, overlaid with the active reference values; in
    production, without any allowance for debug TEEs."""
    family = "snp" if platform == PLATFORM_SNP else "intel"
    rv = catalog.reference_values.get(platform)
    if rv is None or (rv.valid_until is not None and rv.valid_until <= now):
        raise KeywardError(
            Code.ATTESTATION_REFERENCE_VALUES_MISSING,
            f"no active reference values for {platform} on this model version",
            actual=platform,
        )
    require_identifying_reference_values(platform, rv.values)  # a set that pins no workload accepts any guest
    document: dict[str, Any] = {}
    policy = catalog.policy
    if policy is not None and policy.platform in (platform, family):
        document.update(policy.document)
    document.update(rv.values)
    if production and document.get("allow_debug"):
        _log.warning("policy for %s asks to accept debug TEEs: ignored in production", platform)
        document["allow_debug"] = False
    return document


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeywardError(Code.ATTESTATION_EVIDENCE_MALFORMED, f"{what} is not base64") from e
