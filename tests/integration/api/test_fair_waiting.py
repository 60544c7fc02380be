"""Fair waiting (issue 17, finding 3) on a real uvicorn with real PostgreSQL and Redis, and no worker (every request
stays pending, so every ``Prefer: wait`` waits its whole time): a waiting request holds no thread, so a flood of
waiting submissions from one licence leaves another licence's challenge and submission fast; and past
``licence_max_waiting`` a licence's further submissions are answered 202 at once instead of waiting.

The flood is bounded in CI (200 waiting requests, more than the 128 threads that used to be held one per waiting
request); ``KEYWARD_SLOW=1`` floods with 600.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from tests.support.browser import serve
from tests.support.databases import migrated_database
from tests.support.service import Seeded, purge_test_broker, seed, service_settings
from verifier.app import create_app
from verifier.client.keys import EnclaveKeyPair
from verifier.db.session import engine_for

FLOOD = 600 if os.environ.get("KEYWARD_SLOW") == "1" else 200
_KEY = EnclaveKeyPair.generate("P-256")


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Seeded, Seeded]]:
    """The app on a database of its own: the flood leaves hundreds of requests pending, which no other test's
    requeue should find."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    with migrated_database("keyward_fair") as database_url:
        settings = service_settings(database_url, max_wait_seconds=30, licence_requests_per_minute=0, **overrides)
        engine = create_engine(database_url, poolclass=NullPool)
        flooding, other = seed(engine, settings), seed(engine, settings)
        engine.dispose()
        try:
            with serve(create_app(settings)) as url:
                yield url, flooding, other
        finally:
            purge_test_broker()  # the flood's decide tasks: no worker of a later test should spend time on them
            engine_for(database_url).dispose()


async def _submission(http: httpx.AsyncClient, licence: Seeded) -> dict[str, Any]:
    """A well-formed submission (fresh nonce, a P-256 key): stored, never decided (no worker runs)."""
    headers = {"Authorization": f"Bearer {licence.licence}"}
    nonce_b64 = (await http.post("/v1/challenges", headers=headers)).json()["nonce"]
    evidence = [{"type": "intel-tdx", "evidence": base64.b64encode(b"\x04" * 64).decode()}]
    return {"nonce": nonce_b64, "model": licence.model, "deployment": "d", "enclave_key": _KEY.public_jwk,
            "evidence": evidence}  # fmt: skip


async def _submit(http: httpx.AsyncClient, licence: Seeded, body: dict[str, Any], wait: float) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {licence.licence}", "Prefer": f"wait={wait}"}
    started = time.monotonic()
    r = await http.post("/v1/attestations", json=body, headers=headers)
    return r.status_code, time.monotonic() - started


@pytest.mark.parametrize("served", [{"licence_max_waiting": 0}], indirect=True)
def test_waiting_flood_from_one_licence_leaves_another_fast(served: tuple[str, Seeded, Seeded]) -> None:
    url, flooding, other = served

    async def scenario() -> tuple[list[tuple[int, float]], float, tuple[int, float]]:
        limits = httpx.Limits(max_connections=FLOOD + 10)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            bodies = [await _submission(http, flooding) for _ in range(FLOOD)]
            flood = [asyncio.create_task(_submit(http, flooding, body, wait=8)) for body in bodies]
            await asyncio.sleep(2.0)  # the flood is stored and waiting (no worker: it waits its whole 8 s)
            started = time.monotonic()
            challenge = await http.post("/v1/challenges", headers={"Authorization": f"Bearer {other.licence}"})
            assert challenge.status_code == 200
            challenge_s = time.monotonic() - started
            submitted = await _submit(http, other, await _submission(http, other), wait=0)
            return await asyncio.gather(*flood), challenge_s, submitted

    flood, challenge_s, (status, submit_s) = asyncio.run(scenario())
    assert challenge_s < 1.5, f"another licence's challenge took {challenge_s:.2f} s during the flood"
    assert (status, submit_s < 1.5) == (202, True), (status, submit_s)
    assert {s for s, _ in flood} == {202}  # every flooding request stored and answered pending after its wait
    assert min(t for _, t in flood) >= 7.5  # ... and each really waited (none was turned away)


@pytest.mark.parametrize("served", [{"licence_max_waiting": 3}], indirect=True)
def test_waiting_cap_answers_a_licences_extra_waits_at_once(served: tuple[str, Seeded, Seeded]) -> None:
    url, flooding, other = served

    async def scenario() -> tuple[list[tuple[int, float]], tuple[int, float]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            bodies = [await _submission(http, flooding) for _ in range(6)]
            other_body = await _submission(http, other)
            waits = [asyncio.create_task(_submit(http, flooding, body, wait=4)) for body in bodies]
            await asyncio.sleep(1.0)
            others = await _submit(http, other, other_body, wait=2)  # another licence's own cap is untouched
            return await asyncio.gather(*waits), others

    waits, (other_status, other_s) = asyncio.run(scenario())
    assert all(status == 202 for status, _ in waits)
    assert sorted(t >= 3.5 for _, t in waits) == [False, False, False, True, True, True], waits
    assert (other_status, other_s >= 1.5) == (202, True)
