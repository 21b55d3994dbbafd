"""The simulator over HTTP: control API, dial log, rate limit headers, callback delivery rules."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ccm_tasks.simulator.server import SimulatorServer, fetch_dial_log
from tests.exotel.test_exotel_client import call, follow
from tests.support import Receiver, client_for


async def test_health_stats_and_dial_log(simulator: SimulatorServer) -> None:
    async with client_for(simulator) as client:
        placed = await client.make_call(call(custom_field="x1"))
        await client.get_call_details(placed.call_sid)
    async with httpx.AsyncClient(base_url=simulator.base_url) as http:
        health = (await http.get("/_sim/health")).json()
        stats = (await http.get("/_sim/stats")).json()["counters"]
    assert health["ok"] and health["time_scale"] == 600
    assert stats["post_requests"] == 1 and stats["get_requests"] == 1 and stats["calls_placed"] == 1
    log = await fetch_dial_log(simulator.base_url)
    assert [r["custom_field"] for r in log] == ["x1"]


async def test_device_can_be_switched_at_runtime(simulator: SimulatorServer) -> None:
    from ccm_tasks.exotel.errors import AgentUnavailableError

    async with httpx.AsyncClient(base_url=simulator.base_url) as http:
        assert (await http.post("/_sim/agents/agent-001", json={"device": "off"})).status_code == 200
        assert (await http.post("/_sim/agents/ghost", json={"device": "off"})).status_code == 404
        assert (await http.post("/_sim/agents/agent-001", json={"device": "x"})).status_code == 400
    async with client_for(simulator) as client:
        with pytest.raises(AgentUnavailableError):
            await client.make_call(call())


async def test_429_carries_retry_after_and_an_envelope(make_simulator) -> None:
    sim = make_simulator(account={"rate_limit_per_minute": 1}, time_scale=1)
    acc = sim.scenario.account
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(acc.api_key, acc.api_token)) as http:
        await http.get(f"/v2/accounts/{acc.sid}/calls/x")
        response = await http.get(f"/v2/accounts/{acc.sid}/calls/x")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    body = response.json()
    assert body["http_code"] == 429 and body["response"]["status"] == "failure"


async def test_bad_json_and_missing_fields_are_400(simulator: SimulatorServer) -> None:
    acc = simulator.scenario.account
    path = f"/v2/accounts/{acc.sid}/calls"
    async with httpx.AsyncClient(base_url=simulator.base_url, auth=(acc.api_key, acc.api_token)) as http:
        not_json = await http.post(path, content=b"{nope", headers={"content-type": "application/json"})
        missing = await http.post(path, json={"from": {"user_id": "agent-001"}})
    assert not_json.status_code == 400 and missing.status_code == 400
    assert "to" in missing.json()["response"]["error_data"]["description"]


async def _collect(receiver: Receiver, at_least: int) -> None:
    for _ in range(200):
        if len(receiver.bodies()) >= at_least:
            return
        await asyncio.sleep(0.02)


async def test_callbacks_can_be_repeated_dropped_and_retried(make_simulator) -> None:
    flaky = Receiver(status_code=500)
    flaky.server.start()
    try:
        sim = make_simulator(numbers={"+919953123456": "answers"},
                             callbacks={"repeat_rate": 1.0})
        async with client_for(sim) as client:
            placed = await client.make_call(call(status_callback=[
                {"event": "terminal", "url": f"{flaky.url}/t"}]))
            await follow(client, sim, placed.call_sid)
        await _collect(flaky, 6)
        await asyncio.sleep(0.2)
        # Answered 500: Exotel's 2 retries, for the delivery and for its repeat.
        assert len(flaky.bodies()) == 6
        counters = sim.counters()
        assert counters["callbacks_undelivered"] == 2 and counters["callbacks_repeated"] == 1
    finally:
        flaky.server.stop()


async def test_dropped_callbacks_and_terminal_without_recordings(make_simulator, receiver: Receiver) -> None:
    sim = make_simulator(numbers={"+919953123456": "answers"},
                         callbacks={"drop_rate": 0.0, "terminal_without_recordings_rate": 1.0})
    async with client_for(sim) as client:
        placed = await client.make_call(call(recording=True, status_callback=[
            {"event": "terminal", "url": f"{receiver.url}/t"}]))
        final = (await follow(client, sim, placed.call_sid))[-1]
    await _collect(receiver, 1)
    assert receiver.bodies()[0]["call_details"]["recordings"] is None
    assert final.recording_urls  # GET has them

    sim2 = make_simulator(numbers={"+919953123456": "answers"}, callbacks={"drop_rate": 1.0})
    async with client_for(sim2) as client:
        placed = await client.make_call(call(status_callback=[
            {"event": "terminal", "url": f"{receiver.url}/t2"}]))
        await follow(client, sim2, placed.call_sid)
    await asyncio.sleep(0.1)
    assert sim2.counters()["callbacks_dropped"] == 1
    assert all(r["path"] != "t2" for r in receiver.received)


async def test_latency_fault(make_simulator) -> None:
    sim = make_simulator(faults={"latency_seconds": 0.05})
    async with client_for(sim) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await client.make_call(call())
        assert loop.time() - t0 >= 0.05
