"""KeywardClient against an in-memory Keyward (tests/unit/client/fake_keyward.py): the flow, polling and error kinds."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.unit.client.fake_keyward import LICENCE, EchoProvider, FakeKeyward
from verifier.client import (
    AttestationRejected,
    ClientError,
    DecisionTimeout,
    EnclaveKeyPair,
    KeywardClient,
    Lease,
    RequestRefused,
    TransportError,
)


@pytest.fixture
def server() -> FakeKeyward:
    return FakeKeyward()


def _client(server: FakeKeyward, licence: str = LICENCE) -> KeywardClient:
    clock = server.clock
    return KeywardClient(
        "https://keyward.test", licence, http=server.client(), monotonic=clock.monotonic, sleep=clock.sleep
    )


def _attest(client: KeywardClient, provider: EchoProvider | None = None) -> Lease:
    return client.attest(model="llm", deployment="eu-1", provider=provider or EchoProvider(), wait=5)


def test_keyward_client_attest_accepted(server: FakeKeyward) -> None:
    lease = _client(server).attest(model="llm", deployment="eu-1", provider=EchoProvider(), model_version="2.0")
    assert lease.unwrap() == server.dek
    assert lease.id in server.leases
    assert lease.simulated is True
    challenge, submit = server.requests
    assert challenge.url.path == "/v1/challenges"
    assert submit.headers["Prefer"] == "wait=10"
    assert submit.extensions["timeout"]["read"] == 40.0  # the client's 5 s would cut the long poll short
    assert challenge.extensions["timeout"]["read"] == 5.0  # otherwise the injected client's own timeout
    assert all(r.headers["Authorization"] == f"Bearer {LICENCE}" for r in server.requests)
    body = json.loads(submit.content)
    assert (body["model"], body["model_version"], body["deployment"]) == ("llm", "2.0", "eu-1")
    assert "d" not in body["enclave_key"]  # the public JWK only
    assert lease.wrapped_key not in repr(lease)


def test_keyward_client_uses_given_key(server: FakeKeyward) -> None:
    key = EnclaveKeyPair.generate("RSA-3072")
    lease = _client(server).attest(model="llm", deployment="eu-1", provider=EchoProvider(), key=key)
    assert lease.key is key
    assert lease.unwrap() == server.dek


def test_keyward_client_pending_then_polled(server: FakeKeyward) -> None:
    server.outcome, server.pending_polls = "pending", 4
    assert _attest(_client(server)).unwrap() == server.dek
    assert server.clock.slept == [0.25, 0.5, 1.0, 2.0, 2.0]  # doubling, capped at max_poll_interval
    assert [r.method for r in server.requests] == ["POST", "POST"] + ["GET"] * 5


def test_keyward_client_decision_timeout(server: FakeKeyward) -> None:
    server.outcome, server.pending_polls = "pending", None
    client = _client(server)
    with pytest.raises(DecisionTimeout) as exc:
        client.attest(model="llm", deployment="eu-1", provider=EchoProvider(), deadline=10)
    assert exc.value.code == "client.decision_timeout"
    assert isinstance(exc.value, TransportError)
    assert sum(server.clock.slept) == pytest.approx(10)


def test_keyward_client_rejected_with_codes(server: FakeKeyward) -> None:
    server.outcome = "reject"
    with pytest.raises(AttestationRejected) as exc:
        _attest(_client(server))
    assert exc.value.codes == ["intel.policy.td_debug"]
    assert exc.value.attestation_id in server.attestations


def test_keyward_client_binding_is_what_the_server_checks(server: FakeKeyward) -> None:
    with pytest.raises(AttestationRejected) as exc:
        _attest(_client(server), EchoProvider(tamper=True))
    assert exc.value.codes == ["intel.policy.report_data_mismatch"]


def _refusal(status: int, code: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"code": code, "message": "m", "expected": None, "actual": None}}).encode()


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        (_refusal(401, "auth.invalid"), RequestRefused, "auth.invalid"),
        (_refusal(403, "auth.forbidden"), RequestRefused, "auth.forbidden"),
        (_refusal(400, "keywrap.jwk_weak"), RequestRefused, "keywrap.jwk_weak"),
        (_refusal(500, "attestation.not_found"), RequestRefused, "attestation.not_found"),
        (
            (422, b'{"detail": [{"loc": ["body", "nonce"], "msg": "Field required"}]}'),
            RequestRefused,
            "request.invalid",
        ),
        (_refusal(500, "internal.error"), TransportError, "client.transport"),
        ((502, b"<html>bad gateway</html>"), TransportError, "client.transport"),
        ((200, b"not json"), TransportError, "client.transport"),
        ((200, b'{"nonce": 5}'), TransportError, "client.transport"),
        (httpx.ConnectError("connection refused"), TransportError, "client.transport"),
        (httpx.ReadTimeout("timed out"), TransportError, "client.transport"),
    ],
    ids=[
        "401",
        "403",
        "400",
        "500-with-code",
        "422-validation",
        "500-internal",
        "502-html",
        "200-not-json",
        "200-wrong-shape",
        "connect-error",
        "read-timeout",
    ],
)
def test_keyward_client_error_kinds(
    server: FakeKeyward, fault: tuple[int, bytes] | Exception, kind: type[ClientError], code: str
) -> None:
    server.faults.append(fault)
    with pytest.raises(kind) as exc:
        _client(server).challenge()
    assert LICENCE not in str(exc.value)
    codes = exc.value.codes if isinstance(exc.value, RequestRefused) else [exc.value.code]
    assert codes == [code]


def test_keyward_client_wrong_licence_refused(server: FakeKeyward) -> None:
    with pytest.raises(RequestRefused) as exc:
        _client(server, licence="kw_wrong").challenge()
    assert exc.value.status == 401
    assert exc.value.codes == ["auth.invalid"]


def test_keyward_client_renew_same_key_same_lease(server: FakeKeyward) -> None:
    client = _client(server)
    lease = client.attest(model="llm", deployment="eu-1", provider=EchoProvider())
    server.clock.sleep(700)
    renewed = client.renew(lease, EchoProvider())
    assert renewed.id == lease.id
    assert renewed.key is lease.key
    assert renewed.expires_at > lease.expires_at
    assert renewed.unwrap() == server.dek
    assert server.requests[-1].url.path == f"/v1/leases/{lease.id}/renew"


def test_keyward_client_renew_by_id_needs_key(server: FakeKeyward) -> None:
    client = _client(server)
    lease = client.attest(model="llm", deployment="eu-1", provider=EchoProvider())
    with pytest.raises(ValueError, match="enclave key"):
        client.renew(lease.id, EchoProvider())
    assert client.renew(lease.id, EchoProvider(), key=lease.key).id == lease.id
    with pytest.raises(AttestationRejected) as exc:  # another key cannot renew it
        client.renew(lease.id, EchoProvider(), key=EnclaveKeyPair.generate())
    assert exc.value.codes == ["lease.not_renewable"]


def test_keyward_client_release(server: FakeKeyward) -> None:
    client = _client(server)
    lease = client.attest(model="llm", deployment="eu-1", provider=EchoProvider())
    client.release(lease)
    client.release("another-id")
    assert server.released == [lease.id, "another-id"]


def test_keyward_client_owns_only_its_own_http_client(server: FakeKeyward) -> None:
    http = server.client()
    with KeywardClient("https://keyward.test", LICENCE, http=http) as client:
        client.challenge()
    assert not http.is_closed
    with KeywardClient("https://keyward.test", LICENCE) as own:
        pass
    assert own._http.is_closed


def _unavailable() -> tuple[int, bytes]:
    return _refusal(503, "service.unavailable")


def test_keyward_client_retries_unavailable_challenge_then_succeeds(server: FakeKeyward) -> None:
    server.faults.extend([_unavailable(), _unavailable()])
    assert _client(server).challenge().nonce
    assert len(server.requests) == 3


def test_keyward_client_unavailable_retries_are_bounded(server: FakeKeyward) -> None:
    server.faults.extend([_unavailable()] * 10)
    with pytest.raises(RequestRefused) as exc:
        _client(server).challenge()
    assert exc.value.status == 503
    assert exc.value.codes == ["service.unavailable"]
    assert len(server.requests) == 4  # the first try and three more


def test_keyward_client_never_repeats_a_submission(server: FakeKeyward) -> None:
    """A 503 on POST /v1/attestations is reported, not retried: the request may have been stored."""
    server.path_faults["POST /v1/attestations"] = [_unavailable()] * 3
    with pytest.raises(RequestRefused) as exc:
        _client(server).attest(model="m", deployment="d", provider=EchoProvider(), wait=0)
    assert exc.value.codes == ["service.unavailable"]
    assert [r.url.path for r in server.requests] == ["/v1/challenges", "/v1/attestations"]


def test_keyward_client_retries_unavailable_status_poll(server: FakeKeyward) -> None:
    """Asking for the decision changes nothing: a 503 there is tried again, and the decision arrives."""
    server.outcome = "pending"
    server.path_faults["GET /v1/attestations/"] = [_unavailable(), _unavailable()]
    lease = _client(server).attest(model="m", deployment="d", provider=EchoProvider(), wait=0)
    assert lease.unwrap() == server.dek
    polls = [r for r in server.requests if r.method == "GET"]
    assert len(polls) == 3
