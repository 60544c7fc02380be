"""EnclaveSession: attest, renew at renew_after on an injected clock (no real waiting), retry, release."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.unit.client.fake_keyward import LICENCE, TTL, EchoProvider, FakeClock, FakeKeyward
from verifier.client import (
    AttestationRejected,
    ClientError,
    EnclaveSession,
    KeywardClient,
    Lease,
    TransportError,
)

RENEW_AFTER = (TTL * 2 / 3).total_seconds()  # 600 s


@pytest.fixture
def server() -> FakeKeyward:
    return FakeKeyward()


def _session(server: FakeKeyward, **kw: object) -> EnclaveSession:
    client = KeywardClient("https://keyward.test", LICENCE, http=server.client(), sleep=server.clock.sleep)
    return EnclaveSession(
        client,
        EchoProvider(),
        model="llm",
        deployment="eu-1",
        clock=server.clock,
        **kw,  # type: ignore[arg-type]
    )


def test_enclave_session_context_attests_and_releases(server: FakeKeyward) -> None:
    with _session(server) as session:
        assert session.dek == server.dek
        lease = session.lease
        assert lease is not None
        assert session.seconds_until_renewal() == RENEW_AFTER
    assert server.released == [lease.id]
    assert session.lease is None


def test_enclave_session_keep_alive_renews_at_renew_after(server: FakeKeyward) -> None:
    session = _session(server)
    first = session.start()
    renewed: list[Lease] = []
    done = session.keep_alive(server.clock.sleep, on_renewed=renewed.append, max_renewals=3)
    assert done == 3
    assert server.clock.slept == [RENEW_AFTER] * 3
    assert [lease.id for lease in renewed] == [first.id] * 3
    assert renewed[-1].expires_at == server.clock.now + TTL
    assert session.dek == server.dek
    # Each renewal used a fresh challenge and the same enclave key.
    provider = session.provider
    assert isinstance(provider, EchoProvider)
    assert len({b.nonce for b in provider.bindings}) == 4
    assert len({tuple(sorted(b.public_jwk.items())) for b in provider.bindings}) == 1


def test_enclave_session_keep_alive_retries_transport_errors(server: FakeKeyward) -> None:
    session = _session(server)
    session.start()
    server.faults += [httpx.ConnectError("down"), (503, b"unavailable"), httpx.ConnectError("down")]
    assert session.keep_alive(server.clock.sleep, max_renewals=1) == 1
    assert server.clock.slept == [RENEW_AFTER, 1.0, 2.0, 4.0]  # back-off between the failed attempts


def test_enclave_session_keep_alive_gives_up_when_lease_expires(server: FakeKeyward) -> None:
    session = _session(server, max_backoff=60.0)
    session.start()
    server.faults += [httpx.ConnectError("down")] * 100
    with pytest.raises(TransportError):
        session.keep_alive(server.clock.sleep)
    assert sum(server.clock.slept) == pytest.approx(TTL.total_seconds())  # retried right up to the expiry


def test_enclave_session_keep_alive_rejection_is_raised(server: FakeKeyward) -> None:
    session = _session(server)
    lease = session.start()
    server.leases[lease.id]["revoked"] = True
    with pytest.raises(AttestationRejected) as exc:
        session.keep_alive(server.clock.sleep)
    assert exc.value.codes == ["lease.not_renewable"]
    assert server.clock.slept == [RENEW_AFTER]  # no retry


def test_enclave_session_stop_ends_keep_alive(server: FakeKeyward) -> None:
    session = _session(server)
    session.start()
    session.stop()
    assert session.keep_alive() == 0  # the default sleep is the stop event: returns at once


def test_enclave_session_sleep_asks_to_stop(server: FakeKeyward) -> None:
    session = _session(server)
    session.start()
    assert session.keep_alive(lambda _: True) == 0
    assert len(server.leases) == 1


def test_enclave_session_needs_start(server: FakeKeyward) -> None:
    session = _session(server)
    with pytest.raises(ClientError, match="start"):
        _ = session.dek
    session.close()  # nothing to release
    assert server.released == []


def test_enclave_session_clock_ahead_of_server_paces_renewals(server: FakeKeyward) -> None:
    ahead = FakeClock(now=server.clock.now + timedelta(hours=1))  # renew_after is already past on this clock
    client = KeywardClient("https://keyward.test", LICENCE, http=server.client())
    session = EnclaveSession(client, EchoProvider(), model="llm", deployment="eu-1", clock=ahead, min_interval=5)
    session.start()
    assert session.keep_alive(ahead.sleep, max_renewals=3) == 3
    assert ahead.slept == [5.0, 5.0, 5.0]
