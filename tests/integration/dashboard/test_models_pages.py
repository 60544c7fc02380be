"""The models and reference values pages over HTTP against real PostgreSQL: viewers read, admins change; each
change goes through the catalogue service and is audited with the staff user as actor; refused input shows the
form again with the message (4xx, never a 500). "Trust these measurements" round trip on attestations made by the
real decision: the draft made from a rejected attestation's claims, once activated, accepts the same workload;
an attestation whose signature failed is refused. CCE policy uploads (multipart): the hash shown, a draft made or
extended, oversized and missing files refused.

The app runs on the simulation clock at SIM_NOW, the time the simulated evidence is dated at, so that sets made
through the pages are valid when the decision runs there."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.integration.dashboard.models_world import OBSERVED_TD, TrustWorld, decide_again, trust_world
from tests.support.dashboard import DASHBOARD, StaffLogin, create_staff, csrf_token, post_login
from tests.support.factories import make_model, make_model_version
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import (
    AttestationStatus,
    AuditEvent,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
    StaffRole,
)
from verifier.limits import MAX_CCE_POLICY_BYTES
from verifier.simulation.intel_pki import SIM_NOW
from verifier.simulation.intel_quote_builder import TdReport

REGO = b'package policy\n\napi_version := "0.10.0"\nmount_device := {"allowed": true}\n'


@pytest.fixture(scope="module")
def world(engine: Engine) -> TrustWorld:
    return trust_world(engine)


def _client(database_url: str, login: StaffLogin) -> Iterator[TestClient]:
    address = f"10.91.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    settings = Settings(database_url=database_url, simulation_time=SIM_NOW)
    with TestClient(create_app(settings), client=(address, 50000), follow_redirects=False) as client:
        assert post_login(client, login.username, login.password).status_code == 303
        yield client


@pytest.fixture(scope="module")
def admin_login(engine: Engine) -> StaffLogin:
    return create_staff(engine, StaffRole.ADMIN, prefix="models-admin")


@pytest.fixture(scope="module")
def admin(database_url: str, admin_login: StaffLogin) -> Iterator[TestClient]:
    yield from _client(database_url, admin_login)


@pytest.fixture(scope="module")
def viewer(database_url: str, engine: Engine) -> Iterator[TestClient]:
    yield from _client(database_url, create_staff(engine, StaffRole.VIEWER, prefix="models-viewer"))


@pytest.fixture(scope="module")
def operator(database_url: str, engine: Engine) -> Iterator[TestClient]:
    yield from _client(database_url, create_staff(engine, StaffRole.OPERATOR, prefix="models-operator"))


@pytest.fixture
def bare(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    """A new model with one version and nothing else, committed: (model id, version id)."""
    with Session(engine, expire_on_commit=False) as s:
        model = make_model(s, name=f"bare-{uuid.uuid4().hex[:8]}")
        version = make_model_version(s, model, version="1.0")
        s.commit()
    return model.id, version.id


def _csrf(client: TestClient, path: str = "/models") -> str:
    page = client.get(DASHBOARD + path)
    assert page.status_code == 200, page.text
    return csrf_token(page.text)


def _post(client: TestClient, path: str, data: dict[str, str], **kwargs: Any) -> Any:
    return client.post(DASHBOARD + path, data={"csrf_token": _csrf(client), **data}, **kwargs)


def _text(response: Any) -> str:
    return html.unescape(response.text)


def _events(engine: Engine, tag: str, subject_id: object) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(
            s.scalars(select(AuditEvent).where(AuditEvent.tag == tag, AuditEvent.subject_id == str(subject_id)))
        )


def _sets(engine: Engine, version_id: uuid.UUID) -> list[ReferenceValueSet]:
    with Session(engine) as s:
        rows = select(ReferenceValueSet).where(ReferenceValueSet.model_version_id == version_id)
        return list(s.scalars(rows.order_by(ReferenceValueSet.created_at)))


def _add_set(engine: Engine, version_id: uuid.UUID, status: RecordStatus, values: dict[str, Any]) -> uuid.UUID:
    with Session(engine) as s:
        rv = ReferenceValueSet(
            model_version_id=version_id,
            platform="intel-tdx",
            status=status,
            values=values,
            valid_from=SIM_NOW,
            valid_until=None,
            created_at=SIM_NOW,
        )
        s.add(rv)
        s.commit()
        return rv.id


# -- reading ----------------------------------------------------------------------------------------------------


def test_models_page_lists_models_with_their_versions_for_a_viewer(viewer: TestClient, world: TrustWorld) -> None:
    response = viewer.get(f"{DASHBOARD}/models")
    assert response.status_code == 200
    page = _text(response)
    assert world.model in page
    assert f'href="/dashboard/models/{world.model_id}"' in page
    assert "2 active" in page  # the TDX and the GPU sets of version 1.2
    assert 'aria-current="page">Models' in page
    assert 'action="/dashboard/models"' not in page  # no create form for a viewer


def test_models_page_signed_out_redirects_to_sign_in(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url)), follow_redirects=False) as client:
        response = client.get(f"{DASHBOARD}/models")
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"{DASHBOARD}/login")


def test_model_page_shows_sets_by_platform_with_their_values(viewer: TestClient, world: TrustWorld) -> None:
    page = _text(viewer.get(f"{DASHBOARD}/models/{world.model_id}"))
    assert "Version 1.2" in page
    assert "Intel TDX" in page
    assert "NVIDIA GPU" in page
    assert "allowed_measurements.mrtd" in page
    assert f'<div class="mono">{TdReport().mrtd.hex()}</div>' in page
    assert ">in force<" in page
    assert "/status" not in page  # no status forms for a viewer
    assert "New reference-value set" not in page


def test_model_page_unknown_model_is_404(viewer: TestClient) -> None:
    assert viewer.get(f"{DASHBOARD}/models/{uuid.uuid4()}").status_code == 404


# -- roles ------------------------------------------------------------------------------------------------------


POSTS = [
    "/models",
    "/models/{model}/versions",
    "/models/{model}/reference-values",
    "/models/{model}/reference-values/{set}/status",
    "/models/{model}/cce-policy",
    "/attestations/{attestation}/trust-measurements",
]


@pytest.mark.parametrize("path", POSTS, ids=["model", "version", "set", "status", "cce", "trust"])
@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_models_posts_need_the_admin_role(
    request: pytest.FixtureRequest, world: TrustWorld, path: str, role: str
) -> None:
    client: TestClient = request.getfixturevalue(role)
    target = path.format(model=world.model_id, set=uuid.uuid4(), attestation=world.rejected_mrtd)
    response = _post(client, target, {"name": "x", "version": "9", "status": "active", "confirm": "yes"})
    assert response.status_code == 403
    assert "this needs the admin role" in _text(response)


def test_models_post_without_csrf_token_is_403(admin: TestClient) -> None:
    response = admin.post(f"{DASHBOARD}/models", data={"name": f"no-csrf-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 403


def test_admin_pages_are_forbidden_to_a_viewer(viewer: TestClient, world: TrustWorld) -> None:
    for path in ("reference-values/new", "cce-policy"):
        assert viewer.get(f"{DASHBOARD}/models/{world.model_id}/{path}").status_code == 403


# -- models and versions ----------------------------------------------------------------------------------------


def test_create_model_redirects_to_it_and_audits(admin: TestClient, engine: Engine, admin_login: StaffLogin) -> None:
    name = f"vision-{uuid.uuid4().hex[:8]}"
    response = _post(admin, "/models", {"name": f"  {name} ", "description": "A vision model"})
    assert response.status_code == 303
    with Session(engine) as s:
        model = s.scalars(select(Model).where(Model.name == name)).one()
    assert response.headers["location"] == f"{DASHBOARD}/models/{model.id}?done=model"
    [event] = _events(engine, "admin:model:created", model.id)
    assert event.actor == f"staff:{admin_login.username}"
    assert "The model was created" in _text(admin.get(response.headers["location"]))


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [("", 400, "name is required"), ("x" * 201, 400, "at most 200 characters"), (None, 409, "already exists")],
    ids=["empty", "too-long", "duplicate"],
)
def test_create_model_refused_shows_the_form_again(
    admin: TestClient, world: TrustWorld, name: str | None, status: int, says: str
) -> None:
    response = _post(admin, "/models", {"name": world.model if name is None else name, "description": "kept"})
    assert response.status_code == status
    page = _text(response)
    assert says in page
    assert ">kept</textarea>" in page  # what was typed is kept


def test_create_version_stores_a_wrapped_key_and_audits(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    model_id, _ = bare
    dek = base64.b64encode(bytes(range(32))).decode()
    response = _post(admin, f"/models/{model_id}/versions", {"version": "2.0", "dek_b64": dek})
    assert response.status_code == 303
    with Session(engine) as s:
        version = s.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == "2.0")
        ).one()
        key = s.scalars(select(ModelKey).where(ModelKey.model_version_id == version.id)).one()
    assert bytes(range(32)) not in key.wrapped_dek
    assert response.headers["location"].endswith(f"?done=version#version-{version.id}")
    [event] = _events(engine, "admin:model_version:created", version.id)
    assert event.data["dek"] == "imported"
    assert dek not in str(event.data)


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        ({"version": ""}, 400, "version is required"),
        ({"version": "1.0"}, 409, "already exists"),
        ({"version": "3.0", "dek_b64": "not base64!"}, 400, "dek_b64 is not base64"),
        ({"version": "3.0", "dek_b64": base64.b64encode(b"short").decode()}, 400, "must be 32 bytes"),
    ],
    ids=["empty", "duplicate", "dek-not-base64", "dek-short"],
)
def test_create_version_refused_shows_the_page_again(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID], data: dict[str, str], status: int, says: str
) -> None:
    model_id, _ = bare
    response = _post(admin, f"/models/{model_id}/versions", data)
    assert response.status_code == status
    assert says in _text(response)
    assert data.get("dek_b64", "@@") not in response.text  # a key is never echoed back
    with Session(engine) as s:
        assert len(s.scalars(select(ModelVersion).where(ModelVersion.model_id == model_id)).all()) == 1


# -- reference-value sets ---------------------------------------------------------------------------------------

MRTD = "ab" * 48


def test_create_reference_values_makes_an_audited_draft(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    model_id, version_id = bare
    assert admin.get(f"{DASHBOARD}/models/{model_id}/reference-values/new").status_code == 200
    values = '{"allowed_measurements": {"mrtd": ["' + MRTD + '"]}}'
    response = _post(
        admin,
        f"/models/{model_id}/reference-values",
        {"version_id": str(version_id), "platform": "intel-tdx", "values": values, "valid_until": "2027-01-01T00:00"},
    )
    assert response.status_code == 303
    [rv] = _sets(engine, version_id)
    assert (rv.status, rv.values) == (RecordStatus.DRAFT, {"allowed_measurements": {"mrtd": [MRTD]}})
    assert rv.valid_from == SIM_NOW  # the decision clock of the app
    assert rv.valid_until is not None
    assert rv.valid_until.isoformat() == "2027-01-01T00:00:00+00:00"
    assert response.headers["location"].endswith(f"?done=set#set-{rv.id}")
    [event] = _events(engine, "admin:reference_values:created", rv.id)
    assert event.data["status"] == "draft"
    page = _text(admin.get(response.headers["location"]))
    assert "Draft" in page
    assert MRTD in page


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"values": "{not json"}, "the values are not JSON"),
        ({"values": "[1, 2]"}, "must be a JSON object"),
        ({"values": "{}"}, "pin no guest identity"),
        ({"values": '{"allowed_measurements": {"mrtd": ["00"]}}'}, "48-byte values"),
        ({"values": '{"allow_debuug": true, "allowed_measurements": {"mrtd": ["' + MRTD + '"]}}'}, "allow_debuug"),
        ({"platform": "intel-tdz"}, "choose a platform"),
        ({"version_id": "nope"}, "choose a version"),
        ({"version_id": str(uuid.uuid4())}, "one of this model's versions"),
        ({"valid_from": "2027-01-01T00:00", "valid_until": "2026-01-01T00:00"}, "valid until must be after"),
        ({"valid_from": "yesterday"}, "is not a date and time"),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-identity",
        "short-mrtd",
        "unknown-key",
        "unknown-platform",
        "version-not-uuid",
        "version-of-another-model",
        "window-inverted",
        "bad-time",
    ],
)
def test_create_reference_values_refused_shows_the_form_with_the_message(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID], data: dict[str, str], says: str
) -> None:
    model_id, version_id = bare
    form = {
        "version_id": str(version_id),
        "platform": "intel-tdx",
        "values": '{"allowed_measurements": {"mrtd": ["' + MRTD + '"]}}',
        **data,
    }
    response = _post(admin, f"/models/{model_id}/reference-values", form)
    assert response.status_code == 400
    page = _text(response)
    assert says in page
    assert "New reference-value set" in page  # the form again
    assert _sets(engine, version_id) == []


def test_activate_then_retire_a_set_audits_each_change(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    model_id, version_id = bare
    rv_id = _add_set(engine, version_id, RecordStatus.DRAFT, {"allowed_measurements": {"mrtd": [MRTD]}})
    path = f"/models/{model_id}/reference-values/{rv_id}/status"

    response = _post(admin, path, {"status": "active", "confirm": "yes"})
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"?done=activated#set-{rv_id}")
    assert _sets(engine, version_id)[0].status == RecordStatus.ACTIVE
    assert "in force" in _text(admin.get(response.headers["location"]))

    assert _post(admin, path, {"status": "retired", "confirm": "yes"}).status_code == 303
    assert _sets(engine, version_id)[0].status == RecordStatus.RETIRED
    changes = [(e.data["from"], e.data["to"]) for e in _events(engine, "admin:reference_values:status_changed", rv_id)]
    assert sorted(changes) == [("active", "retired"), ("draft", "active")]


def test_change_status_without_confirmation_changes_nothing(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    model_id, version_id = bare
    rv_id = _add_set(engine, version_id, RecordStatus.DRAFT, {"allowed_measurements": {"mrtd": [MRTD]}})
    response = _post(admin, f"/models/{model_id}/reference-values/{rv_id}/status", {"status": "active"})
    assert response.status_code == 400
    assert "Tick the confirmation box to activate the set" in _text(response)
    assert _sets(engine, version_id)[0].status == RecordStatus.DRAFT


@pytest.mark.parametrize(
    ("start", "status", "code", "says"),
    [
        (RecordStatus.RETIRED, "active", 409, "cannot go from retired to active"),
        (RecordStatus.DRAFT, "draft", 400, "must be active or retired"),
    ],
    ids=["retired-to-active", "to-draft"],
)
def test_change_status_refused(
    admin: TestClient,
    engine: Engine,
    bare: tuple[uuid.UUID, uuid.UUID],
    start: RecordStatus,
    status: str,
    code: int,
    says: str,
) -> None:
    model_id, version_id = bare
    rv_id = _add_set(engine, version_id, start, {"allowed_measurements": {"mrtd": [MRTD]}})
    response = _post(admin, f"/models/{model_id}/reference-values/{rv_id}/status", {"status": status, "confirm": "yes"})
    assert response.status_code == code
    assert says in _text(response)
    assert _sets(engine, version_id)[0].status == start


def test_change_status_of_another_models_set_is_404(
    admin: TestClient, engine: Engine, world: TrustWorld, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    _, version_id = bare
    rv_id = _add_set(engine, version_id, RecordStatus.DRAFT, {"allowed_measurements": {"mrtd": [MRTD]}})
    path = f"/models/{world.model_id}/reference-values/{rv_id}/status"
    assert _post(admin, path, {"status": "active", "confirm": "yes"}).status_code == 404
    assert _sets(engine, version_id)[0].status == RecordStatus.DRAFT


# -- trust these measurements -----------------------------------------------------------------------------------


def test_trust_measurements_round_trip_accepts_the_same_workload(
    admin: TestClient, viewer: TestClient, engine: Engine, world: TrustWorld
) -> None:
    # Before: the same workload is rejected for its MRTD.
    assert decide_again(engine, world).status == AttestationStatus.REJECTED
    offer = _text(admin.get(f"{DASHBOARD}/attestations/{world.rejected_mrtd}"))
    assert "Trust these measurements" in offer
    assert OBSERVED_TD.mrtd.hex() in offer
    assert "trust-measurements" not in viewer.get(f"{DASHBOARD}/attestations/{world.rejected_mrtd}").text

    response = _post(admin, f"/attestations/{world.rejected_mrtd}/trust-measurements", {})
    assert response.status_code == 303
    draft = _sets(engine, world.version.id)[-1]
    assert response.headers["location"] == f"{DASHBOARD}/models/{world.model_id}?done=trusted#set-{draft.id}"
    assert (draft.platform, draft.status) == ("intel-tdx", RecordStatus.DRAFT)
    assert draft.values == {
        "allowed_measurements": {
            "mrtd": [OBSERVED_TD.mrtd.hex()],
            "rtmr0": [OBSERVED_TD.rtmr0.hex()],
            "rtmr1": [OBSERVED_TD.rtmr1.hex()],
            "rtmr2": [OBSERVED_TD.rtmr2.hex()],
        }
    }
    [event] = _events(engine, "admin:reference_values:created", draft.id)
    assert event.data["from_attestation"] == str(world.rejected_mrtd)
    assert "Draft reference values were created" in _text(admin.get(response.headers["location"]))
    # A draft is not in force: still rejected.
    assert decide_again(engine, world).status == AttestationStatus.REJECTED

    activated = _post(
        admin, f"/models/{world.model_id}/reference-values/{draft.id}/status", {"status": "active", "confirm": "yes"}
    )
    assert activated.status_code == 303

    again = decide_again(engine, world)
    assert again.status == AttestationStatus.ACCEPTED, again.verdict
    assert decide_again(engine, world, TdReport()).status == AttestationStatus.REJECTED  # the old MRTD is not in force


def test_trust_measurements_bad_signature_refused(admin: TestClient, engine: Engine, world: TrustWorld) -> None:
    page = _text(admin.get(f"{DASHBOARD}/attestations/{world.bad_signature}"))
    assert "These measurements cannot be trusted: its evidence failed verification" in page
    assert "trust-measurements" not in page  # no button
    before = len(_sets(engine, world.version.id))

    response = _post(admin, f"/attestations/{world.bad_signature}/trust-measurements", {})

    assert response.status_code == 409
    assert "failed verification (signature, certificate chain or collateral)" in _text(response)
    assert len(_sets(engine, world.version.id)) == before


def test_trust_measurements_unknown_attestation_is_404(admin: TestClient) -> None:
    assert _post(admin, f"/attestations/{uuid.uuid4()}/trust-measurements", {}).status_code == 404


# -- CCE policies -----------------------------------------------------------------------------------------------


def _upload(client: TestClient, model_id: uuid.UUID, data: dict[str, str], content: bytes | None = REGO) -> Any:
    files = {"policy": ("policy.rego", content, "text/plain")} if content is not None else {"x": ("", b"", "")}
    token = _csrf(client, f"/models/{model_id}/cce-policy")
    return client.post(f"{DASHBOARD}/models/{model_id}/cce-policy", data={"csrf_token": token, **data}, files=files)


def test_cce_policy_hash_is_shown_and_nothing_stored(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    model_id, version_id = bare
    response = _upload(admin, model_id, {"intent": "hash"}, base64.b64encode(REGO))
    assert response.status_code == 200
    assert hashlib.sha256(REGO).hexdigest() in response.text  # base64 of rego hashes as the rego itself
    assert _sets(engine, version_id) == []


def test_cce_policy_added_as_a_new_draft_then_to_that_draft(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    model_id, version_id = bare
    response = _upload(
        admin, model_id, {"intent": "add", "name": "runtime-v1", "target": f"new:{version_id}", "require_uvm": "yes"}
    )
    assert response.status_code == 303
    [rv] = _sets(engine, version_id)
    assert (rv.platform, rv.status) == ("amd-sev-snp", RecordStatus.DRAFT)
    assert rv.values == {"cce_policies": {"runtime-v1": REGO.decode()}, "require_uvm_endorsement": True}
    assert _events(engine, "admin:reference_values:created", rv.id)
    page = _text(admin.get(response.headers["location"]))
    assert "cce_policies.runtime-v1" in page
    assert hashlib.sha256(REGO).hexdigest() in page

    other = b"package policy\n# v2\n"
    second = _upload(admin, model_id, {"intent": "add", "name": "runtime-v2", "target": f"draft:{rv.id}"}, other)
    assert second.status_code == 303
    [rv] = _sets(engine, version_id)
    assert set(rv.values["cce_policies"]) == {"runtime-v1", "runtime-v2"}
    [event] = _events(engine, "admin:reference_values:draft_changed", rv.id)
    assert event.data["sha256"] == hashlib.sha256(other).hexdigest()


@pytest.mark.parametrize(
    ("data", "content", "status", "says"),
    [
        ({"intent": "add", "name": "x"}, b"a" * (MAX_CCE_POLICY_BYTES + 1), 413, "the upload is too large"),
        ({"intent": "add", "name": "x"}, None, 400, "choose the CCE policy file"),
        ({"intent": "add", "name": "x"}, b"\xff\xfe\x00rego", 400, "not UTF-8"),
        ({"intent": "add", "name": "x"}, b"   \n", 400, "the CCE policy is empty"),
        ({"intent": "add", "name": ""}, REGO, 400, "name is required"),
        ({"intent": "add", "name": "x", "target": "draft:" + str(uuid.uuid4())}, REGO, 400, "no longer a draft"),
        ({"intent": "add", "name": "x", "target": "somewhere"}, REGO, 400, "choose where the policy goes"),
    ],
    ids=["too-large", "no-file", "not-utf8", "blank", "no-name", "unknown-draft", "bad-target"],
)
def test_cce_policy_refused(
    admin: TestClient,
    engine: Engine,
    bare: tuple[uuid.UUID, uuid.UUID],
    data: dict[str, str],
    content: bytes | None,
    status: int,
    says: str,
) -> None:
    model_id, version_id = bare
    form = {"target": f"new:{version_id}", **data}
    response = _upload(admin, model_id, form, content)
    assert response.status_code == status
    assert says in _text(response)
    assert "<!doctype html>" in response.text.lower()  # an HTML page, never JSON or a traceback
    assert _sets(engine, version_id) == []


def test_cce_policy_to_an_active_set_refused(
    admin: TestClient, engine: Engine, bare: tuple[uuid.UUID, uuid.UUID]
) -> None:
    model_id, version_id = bare
    response = _upload(admin, model_id, {"intent": "add", "name": "v1", "target": f"new:{version_id}"})
    [rv] = _sets(engine, version_id)
    path = f"/models/{model_id}/reference-values/{rv.id}/status"
    assert _post(admin, path, {"status": "active", "confirm": "yes"}).status_code == 303
    response = _upload(admin, model_id, {"intent": "add", "name": "v2", "target": f"draft:{rv.id}"})
    assert response.status_code == 400
    assert "no longer a draft" in _text(response)


def test_cce_policy_upload_without_csrf_token_is_403(admin: TestClient, world: TrustWorld) -> None:
    response = admin.post(
        f"{DASHBOARD}/models/{world.model_id}/cce-policy",
        data={"intent": "hash"},
        files={"policy": ("p.rego", REGO, "text/plain")},
    )
    assert response.status_code == 403


def test_models_pages_render_no_inline_style(admin: TestClient, world: TrustWorld) -> None:
    for path in ("/models", f"/models/{world.model_id}", f"/models/{world.model_id}/cce-policy"):
        page = admin.get(DASHBOARD + path).text
        assert not re.search(r"style=|<style|<script(?! src)", page), path
