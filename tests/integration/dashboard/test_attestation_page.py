"""The attestation page over HTTP against real PostgreSQL, on attestations made by the real decision: a rejected
one reads as an answer with expected vs actual, an accepted one shows its decoded token, GPUs get a section each,
what was in force is labelled as read now; the raw evidence downloads as an audited attachment; unknown ids are
404s; signed out is a redirect to the sign-in page."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.integration.dashboard.attestation_world import WRONG_MRTD, Decided, decide_world
from tests.support.dashboard import DASHBOARD, StaffLogin, create_staff, post_login
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import Attestation, AuditEvent, StaffRole
from verifier.simulation.intel_quote_builder import TdReport


@pytest.fixture(scope="module")
def decided(engine: Engine) -> Decided:
    return decide_world(engine)


@pytest.fixture(scope="module")
def anonymous(database_url: str) -> Iterator[TestClient]:
    address = f"10.77.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    with TestClient(
        create_app(Settings(database_url=database_url)), client=(address, 50000), follow_redirects=False
    ) as client:
        yield client


@pytest.fixture(scope="module")
def viewer(engine: Engine) -> StaffLogin:
    return create_staff(engine, StaffRole.VIEWER, prefix="att-viewer")


@pytest.fixture(scope="module")
def client(database_url: str, viewer: StaffLogin) -> Iterator[TestClient]:
    address = f"10.78.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    with TestClient(
        create_app(Settings(database_url=database_url)), client=(address, 50000), follow_redirects=False
    ) as client:
        assert post_login(client, viewer.username, viewer.password).status_code == 303
        yield client


def _page(client: TestClient, attestation_id: uuid.UUID) -> str:
    response = client.get(f"{DASHBOARD}/attestations/{attestation_id}")
    assert response.status_code == 200, response.text
    return html.unescape(response.text)


def test_attestation_page_rejected_mrtd_reads_as_an_answer(client: TestClient, decided: Decided) -> None:
    page = _page(client, decided.rejected_mrtd)
    assert "Why it was rejected" in page
    phrase = rf"MRTD differs from the reference set '{re.escape(decided.model)} 1\.2 · intel-tdx' \([0-9a-f]{{8}}\)"
    assert re.search(phrase, page), page
    assert f"one of {TdReport().mrtd.hex()}" in page  # expected
    assert WRONG_MRTD.hex() in page  # actual
    assert "<code>intel.policy.measurement_not_allowed</code>" in page  # the code, small, beside it


def test_attestation_page_names_the_reference_set_and_policy_used(client: TestClient, decided: Decided) -> None:
    page = _page(client, decided.rejected_mrtd)
    assert "Reference values used" in page
    assert "Appraisal policy used" in page
    assert "valid at decision time" not in page  # recorded, not guessed


def test_attestation_page_accepted_shows_passed_checks_and_the_decoded_token(
    client: TestClient, decided: Decided
) -> None:
    page = _page(client, decided.accepted)
    assert "Every check passed" in page
    assert "decoded, not verified here" in page
    assert '"ear.status"' in page
    assert "pill-failed" not in page


def test_attestation_page_gpus_get_a_section_each(client: TestClient, decided: Decided) -> None:
    page = _page(client, decided.gpus)
    assert '<span class="device">GPU-0</span>' in page
    assert '<span class="device">GPU-1</span>' in page
    assert "Evidence items together" in page


def test_attestation_page_rejected_gpu_names_the_device_and_index(client: TestClient, decided: Decided) -> None:
    page = _page(client, decided.gpu_rejected)
    assert "GPU-1: measurement index 9 (SPDM block 10) differs from NVIDIA's signed VBIOS RIM" in page


def _stored_before_inputs_were_recorded(engine: Engine, attestation_id: uuid.UUID, **changes: object) -> uuid.UUID:
    """A copy of the attestation as a decision stored before the reference set and policy were recorded (and with
    ``changes``)."""
    with Session(engine) as session:
        att = session.get_one(Attestation, attestation_id)
        columns = {c.key: getattr(att, c.key) for c in Attestation.__table__.columns if c.key != "id"}
        verdict = dict(att.verdict or {})
        verdict["evaluations"] = [
            {k: v for k, v in e.items() if k != "appraised_with"} for e in verdict.get("evaluations", [])
        ]
        fields = {**columns, "verdict": verdict, "lease_id": None, "nonce": uuid.uuid4().bytes, **changes}
        copy = Attestation(**fields)
        session.add(copy)
        session.commit()
        return copy.id


def test_attestation_page_unrecorded_inputs_labelled_as_read_now(
    client: TestClient, decided: Decided, engine: Engine
) -> None:
    page = _page(client, _stored_before_inputs_were_recorded(engine, decided.rejected_mrtd))
    assert "Reference-value sets valid at decision time" in page
    assert "stored before Keyward recorded the set it used" in page
    assert "Current appraisal policy" in page
    assert "in force at decision time" in page  # the sentence says the set is a reading, not a record


def test_attestation_page_links_back_to_its_deployment(client: TestClient, decided: Decided) -> None:
    page = _page(client, decided.rejected_mrtd)
    assert f'href="{DASHBOARD}/deployments/{decided.deployment_id}"' in page


@pytest.mark.parametrize("ident", [str(uuid.UUID(int=1)), "not-a-uuid"], ids=["unknown", "malformed"])
def test_attestation_page_unknown_id_is_not_found(client: TestClient, ident: str) -> None:
    response = client.get(f"{DASHBOARD}/attestations/{ident}")
    assert response.status_code == 404
    assert "attestation not found" in response.text


def test_attestation_page_signed_out_redirects_to_sign_in(anonymous: TestClient, decided: Decided) -> None:
    response = anonymous.get(f"{DASHBOARD}/attestations/{decided.accepted}")
    assert response.status_code == 303
    assert response.headers["location"] == f"{DASHBOARD}/login?next={DASHBOARD}/attestations/{decided.accepted}"


def test_attestation_evidence_downloads_the_stored_json_and_is_audited(
    client: TestClient, decided: Decided, engine: Engine, viewer: StaffLogin
) -> None:
    response = client.get(f"{DASHBOARD}/attestations/{decided.rejected_mrtd}/evidence")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="attestation-{decided.rejected_mrtd}-evidence.json"'
    )
    with Session(engine) as s:
        stored = s.get_one(Attestation, decided.rejected_mrtd).evidence
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.tag == "dashboard:evidence:downloaded",
                AuditEvent.subject_id == str(decided.rejected_mrtd),
            )
        ).all()
    assert json.loads(response.content) == stored
    assert [e.actor for e in events] == [f"staff:{viewer.username}"]


def test_attestation_evidence_unknown_id_is_not_found_and_not_audited(client: TestClient, engine: Engine) -> None:
    ident = uuid.uuid4()
    assert client.get(f"{DASHBOARD}/attestations/{ident}/evidence").status_code == 404
    with Session(engine) as s:
        assert s.scalars(select(AuditEvent).where(AuditEvent.subject_id == str(ident))).all() == []


def test_attestation_evidence_signed_out_redirects(anonymous: TestClient, decided: Decided) -> None:
    response = anonymous.get(f"{DASHBOARD}/attestations/{decided.accepted}/evidence")
    assert response.status_code == 303


def test_attestation_evidence_purged_by_retention_says_so(client: TestClient, decided: Decided, engine: Engine) -> None:
    purged = _stored_before_inputs_were_recorded(engine, decided.rejected_mrtd, evidence=[])
    response = client.get(f"{DASHBOARD}/attestations/{purged}/evidence")
    assert response.status_code == 404
    assert "purged by the retention policy" in html.unescape(response.text)
    assert client.get(f"{DASHBOARD}/attestations/{purged}").status_code == 200  # the decision itself stays
