"""Committed, plausible deployments for the deployments pages' HTTP and browser tests (the app under test reads
them on its own connections): two customers, a TDX deployment with a live lease and a history (a rejection, a
renewal), a GPU deployment on a TCB status that needs attention, a simulated one whose lease expired, and one whose
last decision was a rejection. Every name holds the seed's token, so a search for it sees these rows only.
:func:`remove_deployments` deletes them again (their audit events stay: the log is append-only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from tests.integration.dashboard.world import make_attestation, make_deployment
from tests.support.factories import make_customer, make_entitlement, make_lease, make_model, make_model_version
from verifier.audit.log import AuditTag, record_event
from verifier.db.models import Attestation, Deployment, Entitlement, LeaseStatus, ModelVersion

TDX_CLAIMS = {
    "mrtd": "5d0a8f1e3c47b9e2a61f08d4c3b27e9a" * 3,
    "rtmr0": "e1c4a7b02f9d63851ce0a4b7d29f3e6c" * 3,
    "rtmr1": "0b7e3d9a6c12f4e8d5a1b903c7e2f6d4" * 3,
    "rtmr2": "00" * 48,
    "rtmr3": "00" * 48,
    "mrconfigid": "00" * 48,
    "tcb_status": "UpToDate",
    "td_attributes": {"debug": False, "sept_ve_disable": True},
    "report_data": "7f3c9a1e5b2d8c4f6a0e9b3d7c1f5a2e" * 4,
}


@dataclass(frozen=True, slots=True)
class SeededDeployments:
    token: str
    entitlements: tuple[Entitlement, ...]
    versions: tuple[ModelVersion, ...]
    live: Deployment  # TDX, live lease, accepted then rejected then renewed
    gpu: Deployment  # TDX + 8 GPUs, live lease, SWHardeningNeeded
    expired: Deployment  # simulated, lease expired
    rejected: Deployment  # its lease released, then its last decision a rejection

    @property
    def names(self) -> list[str]:
        return [d.name for d in (self.live, self.gpu, self.expired, self.rejected)]


def seed_deployments(engine: Engine, now: datetime) -> SeededDeployments:
    """The deployments described in the module docstring, committed; times relative to ``now``."""
    token = uuid.uuid4().hex[:8]
    with Session(engine, expire_on_commit=False) as s:
        llm = make_model(s, name=f"acme-llm-{token}")
        vision = make_model(s, name=f"vision-xl-{token}")
        llm_version = make_model_version(s, llm, version="1.2")
        vision_version = make_model_version(s, vision, version="3.0")
        acme = make_entitlement(
            s,
            customer=make_customer(s, name=f"Acme Robotics {token}"),
            model=llm,
            seats=5,
            allowed_platforms=("intel-tdx", "nvidia-gpu"),
            valid_until=now + timedelta(days=300),
        )
        globex = make_entitlement(
            s,
            customer=make_customer(s, name=f"Globex Research {token}"),
            model=vision,
            seats=5,
            allowed_platforms=("intel-tdx", "nvidia-gpu"),
            valid_until=now + timedelta(days=300),
        )

        live = make_deployment(s, acme, f"prod-eu-west-{token}", last_attested_at=now - timedelta(minutes=12))
        live.first_attested_at = now - timedelta(days=6, hours=3)
        first_lease = make_lease(s, live, llm_version, now=now - timedelta(days=6, hours=3), status=LeaseStatus.REVOKED)
        lease = make_lease(s, live, llm_version, now=now - timedelta(minutes=40))
        first = make_attestation(
            s,
            acme,
            llm_version,
            live.name,
            decided_at=now - timedelta(days=6, hours=3),
            deployment=live,
            lease=first_lease,
        )
        make_attestation(
            s,
            acme,
            llm_version,
            live.name,
            decided_at=now - timedelta(hours=2),
            codes=("intel.policy.measurement_not_allowed",),
            deployment=live,
        )
        make_attestation(
            s, acme, llm_version, live.name, decided_at=now - timedelta(minutes=40), deployment=live, lease=lease
        )
        renewal = make_attestation(
            s,
            acme,
            llm_version,
            live.name,
            decided_at=now - timedelta(minutes=12),
            deployment=live,
            lease=lease,
            kind="renew",
        )
        renewal.claims = first.claims = {"intel-tdx": TDX_CLAIMS}
        for at, tag, subject in (
            (now - timedelta(days=6, hours=3), AuditTag.LEASE_ISSUED, first_lease.id),
            (now - timedelta(minutes=40), AuditTag.LEASE_SUPERSEDED, first_lease.id),
            (now - timedelta(minutes=40), AuditTag.LEASE_ISSUED, lease.id),
            (now - timedelta(minutes=12), AuditTag.LEASE_RENEWED, lease.id),
        ):
            record_event(s, tag=tag, actor="worker", subject_type="lease", subject_id=str(subject), data={}, at=at)

        gpu = make_deployment(
            s,
            globex,
            f"gpu-cluster-a-{token}",
            last_attested_at=now - timedelta(minutes=3),
            platforms="intel-tdx,nvidia-gpu",
            tcb_status="SWHardeningNeeded",
        )
        gpu.first_attested_at = now - timedelta(days=21)
        gpu_lease = make_lease(s, gpu, vision_version, now=now - timedelta(minutes=3), gpus=8)
        make_attestation(
            s,
            globex,
            vision_version,
            gpu.name,
            decided_at=now - timedelta(minutes=3),
            deployment=gpu,
            lease=gpu_lease,
            platforms=("intel-tdx", "nvidia-gpu"),
        )

        expired = make_deployment(
            s, acme, f"dev-sandbox-{token}", last_attested_at=now - timedelta(days=2), simulated=True
        )
        old = make_lease(s, expired, llm_version, now=now - timedelta(days=2), status=LeaseStatus.EXPIRED)
        make_attestation(
            s, acme, llm_version, expired.name, decided_at=now - timedelta(days=2), deployment=expired, lease=old
        )

        rejected = make_deployment(s, globex, f"edge-tokyo-{token}", last_attested_at=now - timedelta(days=3))
        released = make_lease(s, rejected, vision_version, now=now - timedelta(days=3), status=LeaseStatus.RELEASED)
        make_attestation(
            s,
            globex,
            vision_version,
            rejected.name,
            decided_at=now - timedelta(days=3),
            deployment=rejected,
            lease=released,
        )
        make_attestation(
            s,
            globex,
            vision_version,
            rejected.name,
            decided_at=now - timedelta(minutes=25),
            codes=("entitlement.platform_not_allowed",),
            deployment=rejected,
        )
        s.commit()
    return SeededDeployments(token, (acme, globex), (llm_version, vision_version), live, gpu, expired, rejected)


def remove_deployments(engine: Engine, seeded: SeededDeployments) -> None:
    """Delete what :func:`seed_deployments` made (attestations, leases, deployments, entitlements, customers,
    models and versions)."""
    from tests.support.factories import delete_entitlement_tree

    with Session(engine) as s:
        for entitlement, version in zip(seeded.entitlements, seeded.versions, strict=True):
            s.execute(delete(Attestation).where(Attestation.entitlement_id == entitlement.id))
            delete_entitlement_tree(s, entitlement, version)
        s.commit()
