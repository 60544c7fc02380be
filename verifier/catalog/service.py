"""The catalogue's rules, as staff change it: models and their versions, each version's DEK stored only wrapped
under the provider KEK (generated, or imported once), key rotation, reference value sets and their status
transitions, draft sets made from an attestation's verified claims ("trust these measurements") and confidential
ACI CCE policies added to a draft, and appraisal policies checked with the decision's own parser.

Free-form documents (a policy's ``document``, a set's ``values``) are bounded before anything is stored
(:func:`check_document`: depth, size, numbers JSON can carry), and a validity window must not be empty once an
omitted ``valid_from`` is now: ``request.invalid`` either way.

Policies are created and deleted, never changed. A policy an entitlement names is part of that entitlement's terms
(kept while the entitlement exists, revoked ones included, and its decisions name it), so deleting it is refused
(``resource.conflict`` naming the entitlements); a policy nothing names, such as one stored by mistake, is deleted.
To take a policy that entitlements name out of use, suspend or revoke them and issue entitlements with another.
Both are audited (``admin:policy:created``, ``admin:policy:deleted`` with the document's SHA-256).

Takes the caller's session and ``now`` (and the KEK where a key is stored); never commits and never returns a DEK.
Each change of a model, a version, a reference value set or a policy is audited in the caller's transaction with
``actor`` (``admin:<key id>`` from the admin API, ``staff:<username>`` from the dashboard). The SQL is in
:mod:`verifier.catalog.repository`; HTTP is in :mod:`verifier.api.admin.catalog` and the dashboard's
:mod:`verifier.api.dashboard.models`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from verifier import limits
from verifier.appraisal.snp import cce_policy_digest
from verifier.audit.log import AuditTag, record_event
from verifier.catalog import repository
from verifier.db.models import (
    AppraisalPolicy,
    Attestation,
    AttestationStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.db.queries import clash_is_conflict, get_or_404, insert_unique
from verifier.errors import Code, Conflict, NotFound, UsageError
from verifier.keywrap.kek import KeyEncryptionKey, model_key_context
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.registry import PLATFORMS, reference_values_problem, required_reference_values

#: Allowed reference-value status changes (a draft may also be abandoned straight to retired).
RV_TRANSITIONS: dict[RecordStatus, frozenset[RecordStatus]] = {
    RecordStatus.DRAFT: frozenset({RecordStatus.ACTIVE, RecordStatus.RETIRED}),
    RecordStatus.ACTIVE: frozenset({RecordStatus.RETIRED}),
    RecordStatus.RETIRED: frozenset(),
}

# -- models, versions, keys --------------------------------------------------------------------------------------


def create_model(session: Session, *, name: str, description: str, actor: str, now: datetime) -> Model:
    model = Model(name=name, description=description, created_at=now)
    insert_unique(session, model, "a model with this name")
    record_event(
        session,
        tag=AuditTag.MODEL_CREATED,
        actor=actor,
        subject_type="model",
        subject_id=str(model.id),
        data={"name": name},
        at=now,
    )
    return model


def model_dek(dek_b64: str | None) -> bytes:
    """The DEK to import (32 bytes of standard base64), or a fresh random one; ``usage.invalid`` otherwise."""
    if dek_b64 is None:
        return os.urandom(32)
    try:
        dek = base64.b64decode(dek_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError(Code.USAGE_INVALID, "dek_b64 is not base64") from e
    if len(dek) != 32:
        raise UsageError(Code.USAGE_INVALID, "a model DEK must be 32 bytes", expected=32, actual=len(dek))
    return dek


def _new_key(session: Session, kek: KeyEncryptionKey, version: ModelVersion, dek: bytes, now: datetime) -> ModelKey:
    key = ModelKey(
        model_version_id=version.id,
        kek_id=kek.kek_id,
        wrapped_dek=kek.wrap(dek, context=model_key_context(str(version.id))),
        created_at=now,
        retired_at=None,
    )
    repository.add_model_key(session, key)
    return key


def create_model_version(
    session: Session,
    kek: KeyEncryptionKey,
    model_id: uuid.UUID,
    *,
    version: str,
    dek_b64: str | None,
    actor: str,
    now: datetime,
) -> tuple[ModelVersion, ModelKey]:
    """A new version with its DEK (imported from ``dek_b64`` or generated), stored wrapped under the KEK."""
    get_or_404(session, Model, model_id, "model")
    dek = model_dek(dek_b64)  # a bad import is refused before anything is written
    row = ModelVersion(model_id=model_id, version=version, created_at=now)
    insert_unique(session, row, "this version of the model")
    key = _new_key(session, kek, row, dek, now)
    record_event(
        session,
        tag=AuditTag.MODEL_VERSION_CREATED,
        actor=actor,
        subject_type="model_version",
        subject_id=str(row.id),
        data={
            "model_id": str(model_id),
            "version": version,
            "key_id": str(key.id),
            "kek_id": key.kek_id,
            "dek": "generated" if dek_b64 is None else "imported",
        },
        at=now,
    )
    return row, key


@dataclass(frozen=True, slots=True)
class Rotation:
    version: ModelVersion
    active_key: ModelKey
    retired: list[ModelKey]


def rotate_model_key(
    session: Session,
    kek: KeyEncryptionKey,
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    *,
    dek_b64: str | None,
    now: datetime,
) -> Rotation:
    """Retire every current key of the version and store a new one (generated, or imported from ``dek_b64``)."""
    version = get_or_404(session, ModelVersion, version_id, "model version")
    if version.model_id != model_id:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "model version not found under this model", actual=version_id)
    dek = model_dek(dek_b64)
    current = repository.lock_current_keys(session, version.id)
    for old in current:
        old.retired_at = now
    session.flush()
    return Rotation(version, _new_key(session, kek, version, dek, now), current)


# -- reference values --------------------------------------------------------------------------------------------


def check_identifies(platform: str, values: dict[str, Any]) -> None:
    """400 ``request.invalid`` unless ``values`` parse as the platform's policy fields and pin its guest identity."""
    try:
        problem = reference_values_problem(platform, values)
    except UsageError as e:
        raise UsageError(
            Code.REQUEST_INVALID,
            f"values are not valid {platform} reference values: {e.message}",
            expected=e.expected,
            actual=e.actual,
        ) from e
    if problem is not None:
        raise UsageError(Code.REQUEST_INVALID, problem, expected=required_reference_values(platform), actual=platform)


def check_document(what: str, document: object) -> None:
    """``request.invalid`` (saying which ``what``) unless ``document`` nests at most
    :data:`~verifier.limits.MAX_ADMIN_DOCUMENT_DEPTH` deep, is at most
    :data:`~verifier.limits.MAX_ADMIN_DOCUMENT_BYTES` as compact JSON, and holds only numbers JSON can carry (no
    NaN or infinity, which the request parser accepts and no database stores). The depth is walked without
    recursion first, so a hostile document costs one pass and never a RecursionError."""
    most = limits.MAX_ADMIN_DOCUMENT_DEPTH
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > most:
                raise UsageError(
                    Code.REQUEST_INVALID,
                    f"the {what} nests too deep: at most {most} levels of objects and arrays",
                    expected=f"<= {most} levels",
                    actual=f"> {most} levels",
                )
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise UsageError(Code.REQUEST_INVALID, f"the {what} holds a number JSON cannot carry", actual=value)
    size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limits.MAX_ADMIN_DOCUMENT_BYTES:
        raise UsageError(
            Code.REQUEST_INVALID,
            f"the {what} is too large",
            expected=f"<= {limits.MAX_ADMIN_DOCUMENT_BYTES} bytes of JSON",
            actual=f"{size} bytes",
        )


def check_window(valid_from: datetime, valid_until: datetime | None) -> None:
    """``request.invalid`` if the window ``valid_from``..``valid_until`` is empty (``valid_from`` as stored: now,
    when the caller left it out). No end is an open window."""
    if valid_until is not None and valid_until <= valid_from:
        raise UsageError(
            Code.REQUEST_INVALID,
            "valid_until must be after valid_from (now, when valid_from is omitted): the window is empty",
            expected=f"> {valid_from.isoformat()}",
            actual=valid_until.isoformat(),
        )


def create_reference_values(
    session: Session,
    *,
    model_version_id: uuid.UUID,
    platform: str,
    status: RecordStatus,
    values: dict[str, Any],
    valid_from: datetime | None,
    valid_until: datetime | None,
    actor: str,
    now: datetime,
    from_attestation: uuid.UUID | None = None,
) -> ReferenceValueSet:
    """A new set; its values must pin the platform's guest identity (appraisal/reference_values.py).
    ``from_attestation``: the attestation whose claims it was drafted from (recorded in the audit event).
    ``request.invalid`` for values over the document limits or an empty validity window."""
    check_document("reference values", values)
    check_window(valid_from or now, valid_until)
    check_identifies(platform, values)
    get_or_404(session, ModelVersion, model_version_id, "model version")
    rv = ReferenceValueSet(
        model_version_id=model_version_id,
        platform=platform,
        status=status,
        values=values,
        valid_from=valid_from or now,
        valid_until=valid_until,
        created_at=now,
    )
    insert_unique(session, rv, "this reference value set")
    origin = {} if from_attestation is None else {"from_attestation": str(from_attestation)}
    record_event(
        session,
        tag=AuditTag.REFERENCE_VALUES_CREATED,
        actor=actor,
        subject_type="reference_value_set",
        subject_id=str(rv.id),
        data={
            "model_version_id": str(model_version_id),
            "platform": platform,
            "status": status.value,
            "valid_from": rv.valid_from.isoformat(),
            "valid_until": None if valid_until is None else valid_until.isoformat(),
            **origin,
        },
        at=now,
    )
    return rv


def change_reference_values_status(
    session: Session, rv_id: uuid.UUID, status: RecordStatus, *, actor: str, now: datetime
) -> ReferenceValueSet:
    """Draft -> active -> retired (or draft -> retired), the row locked; ``resource.conflict`` for any other change.
    Values themselves are immutable; a set stored before values had to pin a guest identity can be retired but not
    activated. The current status again changes nothing (and audits nothing)."""
    rv = get_or_404(session, ReferenceValueSet, rv_id, "reference value set", lock=True)
    if status == rv.status:
        return rv
    if status not in RV_TRANSITIONS[rv.status]:
        raise Conflict(
            Code.RESOURCE_CONFLICT,
            f"reference values cannot go from {rv.status.value} to {status.value}",
            expected=" | ".join(sorted(s.value for s in RV_TRANSITIONS[rv.status])) or "(none)",
            actual=status.value,
        )
    if status == RecordStatus.ACTIVE:
        check_identifies(rv.platform, rv.values)
    previous = rv.status
    rv.status = status
    session.flush()
    record_event(
        session,
        tag=AuditTag.REFERENCE_VALUES_STATUS_CHANGED,
        actor=actor,
        subject_type="reference_value_set",
        subject_id=str(rv.id),
        data={
            "model_version_id": str(rv.model_version_id),
            "platform": rv.platform,
            "from": previous.value,
            "to": status.value,
        },
        at=now,
    )
    return rv


# -- "trust these measurements": draft sets from an attestation's verified claims ---------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """One evaluation of a decided attestation, as stored in its verdict."""

    platform: str | None
    verified: bool
    claims: Mapping[str, Any]


def _refuse(message: str, *, expected: object | None = None, actual: object | None = None) -> Conflict:
    return Conflict(Code.RESOURCE_CONFLICT, message, expected=expected, actual=actual)


def observed_reference_values(
    status: str, platforms: Sequence[str], observed: Sequence[Observed]
) -> dict[str, dict[str, Any]]:
    """The reference values that pin an attestation's verified claims, per CPU platform of its evidence (each
    platform's registry mapping); pure. ``resource.conflict``, saying why, unless the attestation was decided, every
    evaluation of it passed verification (signatures, certificate chains, collateral: a rejection for its
    measurements or another appraisal rule is fine, a bad signature is not), and each such platform has one."""
    if status == AttestationStatus.PENDING.value:
        raise _refuse("the attestation is not decided yet: there are no verified claims to trust")
    unverified = sorted({o.platform or "evidence" for o in observed if not o.verified})
    if unverified:
        raise _refuse(
            "its evidence failed verification (signature, certificate chain or collateral): measurements that were "
            "not verified cannot be trusted",
            actual=", ".join(unverified),
        )
    drafts: dict[str, dict[str, Any]] = {}
    for platform in sorted(set(platforms)):
        entry = PLATFORMS.get(platform)
        if entry is None or entry.reference_values_from_claims is None:
            continue  # an accelerator: its reference values are the vendor's signed RIMs and a policy
        claims = [o.claims for o in observed if o.platform == platform]
        if not claims:
            raise _refuse(
                f"the attestation has no verified {platform} claims: it was rejected before its evidence was "
                "evaluated (see why it was rejected)",
                actual=platform,
            )
        values = [entry.reference_values_from_claims(c) for c in claims]
        if any(v != values[0] for v in values[1:]):
            raise _refuse(f"its {platform} items differ in their measurements: trust one at a time", actual=platform)
        check_identifies(platform, values[0])
        drafts[platform] = values[0]
    if not drafts:
        raise _refuse("the attestation carries no CPU evidence whose measurements could be trusted")
    return drafts


def draft_reference_values_from_attestation(
    session: Session, attestation_id: uuid.UUID, *, actor: str, now: datetime
) -> list[ReferenceValueSet]:
    """One DRAFT set per CPU platform of the attestation's evidence, for its model version, pinning its verified
    claims (:func:`observed_reference_values`), each audited as created from the attestation. Drafts are not in
    force: an admin reviews and activates them."""
    att = get_or_404(session, Attestation, attestation_id, "attestation")
    verdict = att.verdict or {}
    observed = [
        Observed(e.get("platform"), e.get("verified") is True, e.get("claims") or {})
        for e in verdict.get("evaluations") or ()
        if isinstance(e, dict)
    ]
    values = observed_reference_values(AttestationStatus(att.status).value, att.platforms, observed)
    return [
        create_reference_values(
            session,
            model_version_id=att.model_version_id,
            platform=platform,
            status=RecordStatus.DRAFT,
            values=doc,
            valid_from=None,
            valid_until=None,
            actor=actor,
            now=now,
            from_attestation=att.id,
        )
        for platform, doc in values.items()
    ]


# -- confidential ACI: CCE policies ------------------------------------------------------------------------------

MAX_CCE_POLICY_NAME: Final = 100


def cce_policy_text(data: bytes) -> str:
    """An uploaded CCE policy (rego text, or its base64 from the ARM template's ``ccePolicy``) as stored in
    ``cce_policies``; ``usage.invalid`` for an empty, oversized or non-UTF-8 one."""
    if len(data) > limits.MAX_CCE_POLICY_BYTES:
        raise UsageError(
            Code.USAGE_INVALID,
            "the CCE policy is too large",
            expected=f"<= {limits.MAX_CCE_POLICY_BYTES} bytes",
            actual=len(data),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(Code.USAGE_INVALID, "the CCE policy is not UTF-8 text (rego, or its base64)") from e
    if not text.strip():
        raise UsageError(Code.USAGE_INVALID, "the CCE policy is empty")
    return text


def cce_policy_sha256(text: str) -> str:
    """The HOST_DATA a container group running this CCE policy reports: SHA-256 of the rego text, in hex."""
    return cce_policy_digest(text.encode()).hex()


def _cce_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_CCE_POLICY_NAME or not name.isprintable():
        raise UsageError(
            Code.USAGE_INVALID, "a CCE policy needs a name of 1-100 printable characters", actual=name[:120]
        )
    return name


def add_cce_policy(
    session: Session,
    *,
    model_version_id: uuid.UUID,
    draft_id: uuid.UUID | None,
    name: str,
    policy: str,
    require_uvm_endorsement: bool,
    actor: str,
    now: datetime,
) -> ReferenceValueSet:
    """Add a confidential ACI CCE policy (HOST_DATA = its SHA-256) to the version's reference values for
    ``amd-sev-snp``: to the draft ``draft_id`` (locked; it must be a draft of that version and platform, and have no
    policy of this name), or as a new draft (with ``require_uvm_endorsement`` when asked). Only a draft changes:
    active and retired sets stay immutable."""
    name = _cce_name(name)
    digest = cce_policy_sha256(policy)
    if draft_id is None:
        values: dict[str, Any] = {"cce_policies": {name: policy}}
        if require_uvm_endorsement:
            values["require_uvm_endorsement"] = True
        return create_reference_values(
            session,
            model_version_id=model_version_id,
            platform=PLATFORM_SNP,
            status=RecordStatus.DRAFT,
            values=values,
            valid_from=None,
            valid_until=None,
            actor=actor,
            now=now,
        )
    rv = get_or_404(session, ReferenceValueSet, draft_id, "reference value set", lock=True)
    if rv.model_version_id != model_version_id or rv.platform != PLATFORM_SNP:
        raise NotFound(Code.RESOURCE_NOT_FOUND, f"no {PLATFORM_SNP} set of this model version", actual=draft_id)
    if rv.status != RecordStatus.DRAFT:
        raise _refuse(
            f"only a draft takes a new CCE policy; this set is {rv.status.value}",
            expected=RecordStatus.DRAFT.value,
            actual=rv.status.value,
        )
    existing = rv.values.get("cce_policies") or {}
    if not isinstance(existing, dict):
        raise _refuse("this draft's cce_policies is not a name -> policy map", actual=type(existing).__name__)
    if name in existing:
        raise _refuse(f"this draft already has a CCE policy named {name!r}", actual=name)
    values = {**rv.values, "cce_policies": {**existing, name: policy}}
    check_document("reference values", values)
    check_identifies(rv.platform, values)
    rv.values = values
    session.flush()
    record_event(
        session,
        tag=AuditTag.REFERENCE_VALUES_DRAFT_CHANGED,
        actor=actor,
        subject_type="reference_value_set",
        subject_id=str(rv.id),
        data={"model_version_id": str(model_version_id), "cce_policy_added": name, "sha256": digest},
        at=now,
    )
    return rv


# -- policies ----------------------------------------------------------------------------------------------------


def check_policy(scope: str, document: dict[str, Any]) -> None:
    """Parse ``document`` with the registry's parser for ``scope``, a platform or its family: the decision's own."""
    for entry in PLATFORMS.values():
        if scope in (entry.name, entry.family):
            entry.policy(document)
            return


def _document_sha256(document: object) -> str:
    """SHA-256 of the document as canonical JSON (sorted keys, compact): what the audit log records of it."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def create_policy(
    session: Session, *, name: str, platform: str, document: dict[str, Any], actor: str, now: datetime
) -> AppraisalPolicy:
    """A new policy, audited ``admin:policy:created``. ``request.invalid`` for a document over the limits
    (:func:`check_document`), ``policy.invalid`` for one the decision could not parse (an unknown key, a wrong
    type): the admin who wrote it hears of a typo once, instead of every customer's decision being rejected for
    it."""
    check_document("policy document", document)
    check_policy(platform, document)
    policy = AppraisalPolicy(name=name, platform=platform, document=document, created_at=now)
    insert_unique(session, policy, "a policy with this name")
    record_event(
        session,
        tag=AuditTag.POLICY_CREATED,
        actor=actor,
        subject_type="policy",
        subject_id=str(policy.id),
        data={"name": name, "platform": platform, "document_sha256": _document_sha256(document)},
        at=now,
    )
    return policy


def delete_policy(session: Session, policy_id: uuid.UUID, *, actor: str, now: datetime) -> None:
    """Delete a policy no entitlement names (the row locked), audited ``admin:policy:deleted`` with its name,
    platform and document digest. ``resource.conflict`` naming the entitlements (a few) if any names it, revoked
    ones included: the policy is part of their terms. ``resource.not_found`` if there is no such policy."""
    policy = get_or_404(session, AppraisalPolicy, policy_id, "policy", lock=True)
    naming = repository.entitlements_naming_policy(session, policy.id, limit=5)
    if naming:
        raise _refuse(
            "entitlements name this policy: suspend or revoke them and issue entitlements with another policy; "
            "a policy an entitlement names stays as part of its terms",
            expected="no entitlement naming the policy",
            actual=", ".join(str(i) for i in naming),
        )
    data = {"name": policy.name, "platform": policy.platform, "document_sha256": _document_sha256(policy.document)}
    with clash_is_conflict("an entitlement named this policy meanwhile"):  # the foreign key, should one race us
        session.delete(policy)
        session.flush()
    record_event(
        session,
        tag=AuditTag.POLICY_DELETED,
        actor=actor,
        subject_type="policy",
        subject_id=str(policy_id),
        data=data,
        at=now,
    )
