"""The client against the simulator over real HTTP, and protocol edge cases via MockTransport."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest

from ccm_tasks.clock import ManualClock
from ccm_tasks.exotel import errors as E
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.models import CallDetails, MakeCallRequest
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.support import Receiver, client_for, spec_example

CUSTOMER = "+919953123456"


def call(agent: str = "agent-001", customer: str = CUSTOMER, **extra: Any) -> MakeCallRequest:
    return MakeCallRequest.model_validate({
        "from": {"user_id": agent}, "to": {"customer_contact_uri": customer},
        "virtual_number": "+918045680000", **extra,
    })


async def follow(client: CCMClient, sim: SimulatorServer, sid: str) -> list[CallDetails]:
    seen = []
    while True:
        details = await client.get_call_details(sid)
        seen.append(details)
        if details.is_terminal:
            return seen
        await sim.clock.sleep(1.0)


# ----------------------------------------------------------------------------- lifecycle

async def test_lifecycle_agent_first_then_customer_then_post_processing() -> None:
    # A manual clock: each poll is one simulated second after the last, however loaded the
    # machine, so every phase (agent ring >= 4 s, customer ring >= 6 s) is seen.
    scenario = Scenario.model_validate({
        "seed": 3, "numbers": {CUSTOMER: "answers"},
        "behaviour": {"agent_ring_seconds": [4, 6], "customer_ring_seconds": [6, 8],
                      "talk_seconds": 20, "post_processing_seconds": 4}})
    sim = SimulatorServer(scenario, clock=ManualClock()).start()
    try:
        async with client_for(sim) as client:
            placed = await client.make_call(call(recording=True, custom_field="attempt-42"))
            assert placed.call_state == "active" and placed.call_status is None
            assert placed.custom_field == "attempt-42"
            seen = await follow(client, sim, placed.call_sid)
    finally:
        sim.stop()
    agent_states = [d.agent_leg_status for d in seen]
    customer_states = [d.customer_leg_status for d in seen]
    # The agent answers before the customer's leg shows any life.
    first_agent = agent_states.index("in-progress")
    first_customer = customer_states.index("in-progress")
    assert first_agent < first_customer
    assert all(s is None for s in customer_states[:first_agent + 1])
    # call_status arrives while call_state is still active (post-processing) ...
    assert any(d.call_status == "completed" and d.call_state == "active" for d in seen)
    final = seen[-1]
    # ... and only the terminal state carries everything.
    assert final.is_terminal and final.call_status == "completed"
    assert final.agent_leg_status == final.customer_leg_status == "completed"
    assert final.total_talk_time and final.total_talk_time > 0
    assert final.end_time and final.start_time and final.end_time > final.start_time
    assert len(final.recording_urls) == 1 and placed.call_sid in final.recording_urls[0]


async def test_no_recording_unless_asked(make_simulator) -> None:
    sim = make_simulator(numbers={CUSTOMER: "answers"})
    async with client_for(sim) as client:
        placed = await client.make_call(call())
        final = (await follow(client, sim, placed.call_sid))[-1]
    assert final.call_status == "completed" and final.recordings is None


@pytest.mark.parametrize(("behaviour", "status", "leg"), [
    ("never_answers", "customer_unanswered", "no-answer"),
    ("busy", "customer_unanswered", "busy"),
    ("failed", "customer_unanswered", "failed"),
    ("agent_cancels", "agent_canceled", "no-answer"),
    ("no_dial", "customer_no_dial", None),
])
async def test_customer_outcomes(make_simulator, behaviour: str, status: str, leg: str | None) -> None:
    sim = make_simulator(numbers={CUSTOMER: behaviour})
    async with client_for(sim) as client:
        placed = await client.make_call(call())
        final = (await follow(client, sim, placed.call_sid))[-1]
    assert final.call_status == status and final.customer_leg_status == leg
    assert final.agent_leg_status == "completed" and not final.total_talk_time


async def test_agent_that_never_answers(make_simulator) -> None:
    sim = make_simulator(agents=[{"user_id": "a1", "contact_uri": "+919800000001",
                                  "answer_probability": 0.0}])
    async with client_for(sim) as client:
        placed = await client.make_call(call("a1"))
        final = (await follow(client, sim, placed.call_sid))[-1]
    assert final.call_status == "agent_unanswered" and final.customer_leg_status is None
    assert final.agent_leg_status in ("no-answer", "busy", "failed")


async def test_attempt_time_out_and_max_time_limit_are_honoured(make_simulator) -> None:
    sim = make_simulator(numbers={CUSTOMER: "answers"},
                         behaviour={"talk_seconds": 600, "customer_ring_seconds": 5})
    async with client_for(sim) as client:
        placed = await client.make_call(call(max_time_limit=60))
        final = (await follow(client, sim, placed.call_sid))[-1]
        assert final.total_talk_time == 60
        placed = await client.make_call(call("agent-002", "+919953000002", attempt_time_out=3))
        final = (await follow(client, sim, placed.call_sid))[-1]
    assert final.call_status in ("agent_unanswered", "customer_unanswered")


async def test_make_call_by_contact_uri(simulator: SimulatorServer) -> None:
    async with client_for(simulator) as client:
        placed = await client.make_call(MakeCallRequest.model_validate({
            "from": {"user_contact_uri": "+919800000003"}, "to": {"customer_contact_uri": CUSTOMER},
            "virtual_number": "08045680000"}))
    assert placed.assigned_agent_details and placed.assigned_agent_details.user_id == "agent-003"


# ----------------------------------------------------------------------------- error categories

def _agents(**devices: str) -> list[dict[str, str]]:
    return [{"user_id": uid, "contact_uri": f"+9198000000{i:02d}", "device": dev}
            for i, (uid, dev) in enumerate(devices.items(), start=1)]


@pytest.mark.parametrize(("agent", "cls", "code", "category"), [
    ("off", E.AgentUnavailableError, 1012, "agent_unavailable"),
    ("unverified", E.AgentInvalidError, 10705, "agent_invalid"),
    ("missing", E.AgentUnavailableError, 10806, "agent_unavailable"),
    ("nobody", E.AgentInvalidError, 10731, "agent_invalid"),
])
async def test_agent_errors(make_simulator, agent: str, cls: type, code: int, category: str) -> None:
    sim = make_simulator(agents=_agents(off="off", unverified="unverified", missing="missing"))
    async with client_for(sim) as client:
        with pytest.raises(cls) as info:
            await client.make_call(call(agent))
    assert info.value.code == code and info.value.category == category
    assert info.value.request_id and len(info.value.request_id) == 32
    assert client.stats["post_sent"] == 1  # never retried


async def test_agent_busy_with_our_own_call_and_with_a_manual_call(make_simulator) -> None:
    sim = make_simulator(agents=[*_agents(a1="on"), {"user_id": "manual", "contact_uri": "+919800000099",
                                                      "busy_periods": [[0, 100000]]}])
    async with client_for(sim) as client:
        await client.make_call(call("a1"))
        with pytest.raises(E.AgentBusyError) as info:
            await client.make_call(call("a1", "+919953000001"))
        assert info.value.code == 10706 and info.value.category == "agent_busy"
        with pytest.raises(E.AgentBusyError):
            await client.make_call(call("manual"))
    counters = sim.counters()
    assert counters["agent_busy_api"] == 1 and counters["agent_busy_manual"] == 1


async def test_campaign_fatal_errors(make_simulator) -> None:
    sim = make_simulator(agents=[{"user_id": "sip", "contact_uri": "sip:asha@pbx.example.com"}])
    settings = sim.client_settings()
    async with CCMClient(**{**settings, "api_token": "wrong"}, clock=sim.clock) as client:
        with pytest.raises(E.AuthenticationError) as auth:
            await client.make_call(call())
    assert (auth.value.http_status, auth.value.code, auth.value.category) == (401, 1010, "campaign_fatal")
    async with CCMClient(**{**settings, "account_sid": "other"}, clock=sim.clock) as client:
        with pytest.raises(E.AccountNotFoundError) as acct:
            await client.get_call_details("abc")
    assert acct.value.code == 1017
    async with client_for(sim) as client:
        with pytest.raises(E.VirtualNumberNotFoundError) as vn:
            await client.make_call(MakeCallRequest.model_validate({
                "from": {"user_id": "sip"}, "to": {"customer_contact_uri": CUSTOMER},
                "virtual_number": "+911111111111"}))
        assert vn.value.code == 10716
        with pytest.raises(E.VoipNotAllowedError) as voip:
            await client.make_call(call("sip"))
        assert (voip.value.http_status, voip.value.code) == (405, 10712)
        # 400/1002: our model never sends it, so bypass validation to see the server's answer.
        bad = MakeCallRequest.model_construct(**call().__dict__)
        object.__setattr__(bad, "recording_channels", "stereo")
        object.__setattr__(bad, "recording", True)
        with pytest.raises(E.BadRequestError) as channels:
            await client.make_call(bad)
        assert (channels.value.http_status, channels.value.code) == (400, 1002)


async def test_missing_account_sid_is_1001(simulator: SimulatorServer) -> None:
    acc = simulator.scenario.account
    async with httpx.AsyncClient(base_url=simulator.base_url, auth=(acc.api_key, acc.api_token)) as http:
        response = await http.post("/v2/accounts//calls", json={})
    err = E.error_from_response(http_status=response.status_code, body=response.content,
                                method="POST", path="/v2/accounts//calls")
    assert isinstance(err, E.BadRequestError) and err.code == 1001


async def test_unknown_call_sid(simulator: SimulatorServer) -> None:
    async with client_for(simulator) as client:
        with pytest.raises(E.CallNotFoundError) as info:
            await client.get_call_details("0123456789abcdef")
    assert (info.value.http_status, info.value.code, info.value.category) == (404, 3043, "call_not_found")
    assert client.stats["get_sent"] == 1


async def test_invalid_request_is_refused_before_sending(simulator: SimulatorServer) -> None:
    async with client_for(simulator) as client:
        with pytest.raises(E.InvalidRequestError, match="recording_channels"):
            await client.make_call({"from": {"user_id": "a"}, "to": {"customer_contact_uri": CUSTOMER},
                                    "virtual_number": "+918045680000", "recording_channels": "dual"})
    assert client.stats["post_sent"] == 0
    assert simulator.counters().get("post_requests", 0) == 0


# ----------------------------------------------------------------------------- 429, 5xx, faults

class RecordingGate:
    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.limited: list[float | None] = []

    async def acquire(self, kind: str) -> None:
        self.acquired.append(kind)

    def on_rate_limited(self, retry_after: float | None) -> None:
        self.limited.append(retry_after)


async def test_429_get_is_retried_after_retry_after_and_post_is_not(make_simulator) -> None:
    sim = make_simulator(account={"rate_limit_per_minute": 2}, time_scale=120)
    gate = RecordingGate()
    async with client_for(sim, gate=gate, max_retries=3) as client:
        placed = await client.make_call(call())
        await client.get_call_details(placed.call_sid)  # budget now spent for this minute
        with pytest.raises(E.RateLimitError) as info:
            await client.make_call(call("agent-002", "+919953000009"))
        assert info.value.retry_after and 0 < info.value.retry_after <= 60
        assert client.stats["post_sent"] == 2  # the rejected POST was not retried
        started = sim.clock.time()
        details = await client.get_call_details(placed.call_sid)  # waits out Retry-After, then succeeds
        waited = sim.clock.time() - started
    assert details.call_sid == placed.call_sid
    assert waited >= 1.0
    assert gate.limited and gate.acquired.count("get") >= 3
    assert sim.counters()["rate_limited"] >= 2


async def test_5xx_get_is_retried_a_bounded_number_of_times(make_simulator) -> None:
    sim = make_simulator(faults={"server_error_rate": 1.0, "methods": ["GET"]})
    async with client_for(sim, max_retries=2, backoff_base=0.01) as client:
        placed = await client.make_call(call())
        with pytest.raises(E.ServerError) as info:
            await client.get_call_details(placed.call_sid)
    assert (500, info.value.code) in E.ERROR_TABLE
    assert info.value.category == "retry_later"
    assert client.stats["get_sent"] == 3 and sim.counters()["injected_5xx"] == 3


async def test_5xx_on_make_call_is_not_retried(make_simulator) -> None:
    sim = make_simulator(faults={"server_error_rate": 1.0, "methods": ["POST"]})
    async with client_for(sim) as client:
        with pytest.raises(E.ServerError):
            await client.make_call(call())
    assert sim.counters()["post_requests"] == 1 and sim.dial_log() == []


async def test_dropped_connection_after_make_call_is_outcome_unknown(make_simulator) -> None:
    sim = make_simulator(faults={"drop_connection_rate": 1.0, "methods": ["POST"]})
    async with client_for(sim) as client:
        with pytest.raises(E.OutcomeUnknownError) as info:
            await client.make_call(call(custom_field="attempt-7"))
    assert info.value.category == "outcome_unknown"
    assert isinstance(info.value.__cause__, httpx.HTTPError)
    log = sim.dial_log()
    # The call exists (the customer's phone rings) although we never learned its sid: exactly one.
    assert len(log) == 1 and log[0]["custom_field"] == "attempt-7"
    assert sim.counters()["post_requests"] == 1 and client.stats["outcome_unknown"] == 1


async def test_make_call_timeout_is_outcome_unknown(make_simulator) -> None:
    sim = make_simulator(faults={"hang_rate": 1.0, "hang_seconds": 5, "methods": ["POST"]})
    async with client_for(sim, timeout=httpx.Timeout(0.3)) as client:
        with pytest.raises(E.OutcomeUnknownError):
            await client.make_call(call())
    assert sim.counters()["post_requests"] == 1 and len(sim.dial_log()) == 1


async def test_get_survives_dropped_connections(make_simulator) -> None:
    sim = make_simulator(faults={"drop_connection_rate": 0.5, "methods": ["GET"]}, seed=11)
    async with client_for(sim, max_retries=8, backoff_base=0.001) as client:
        placed = await client.make_call(call())
        for _ in range(10):
            assert (await client.get_call_details(placed.call_sid)).call_sid == placed.call_sid
    assert sim.counters()["injected_drops"] >= 1
    assert client.stats["get_retries"] == sim.counters()["injected_drops"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connect_error_is_retried_then_raised_even_for_make_call() -> None:
    clock = ManualClock()
    async with CCMClient(base_url=f"http://127.0.0.1:{_closed_port()}", api_key="k", api_token="t",
                         account_sid="sid", clock=clock, max_retries=2) as client:
        with pytest.raises(E.ConnectError) as info:
            await client.make_call(call())
    assert info.value.category == "retry_later"
    assert client.stats["post_tries"] == 3
    assert client.stats["post_sent"] == 0  # none reached a socket: nothing was sent


async def test_send_hook_runs_once_the_connection_is_there(simulator: SimulatorServer) -> None:
    """The send journal's hook fires when the request's bytes start to go out: once per POST on a
    real connection, and never for a request that could not connect (provably not sent)."""
    sent: list[int] = []
    async with client_for(simulator) as client:
        await client.make_call(call(), on_send=lambda: sent.append(1))
    assert sent == [1]
    assert len(simulator.dial_log()) == 1
    async with CCMClient(base_url=f"http://127.0.0.1:{_closed_port()}", api_key="k", api_token="t",
                         account_sid="sid", clock=ManualClock(), max_retries=1) as client:
        with pytest.raises(E.ConnectError):
            await client.make_call(call(), on_send=lambda: sent.append(2))
    assert sent == [1]


# ----------------------------------------------------------------------------- protocol edge cases

def _ok(data: dict[str, Any] | None = None, method: str = "GET") -> httpx.Response:
    body = spec_example("gcd_00_get_call_details_response")
    body["method"] = method
    if data is not None:
        body["response"]["data"] = data
    return httpx.Response(200, json=body)


def mock_client(
    responses: list[Any], clock: ManualClock | None = None, **kw: Any
) -> tuple[CCMClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    client = CCMClient(base_url="https://ccm-api.exotel.com", api_key="k", api_token="t",
                       account_sid="sid", transport=httpx.MockTransport(handler),
                       clock=clock or ManualClock(), **kw)
    return client, seen


async def test_make_call_is_retried_after_a_connect_error() -> None:
    req = httpx.Request("POST", "https://x")
    client, seen = mock_client([httpx.ConnectError("refused", request=req), _ok(method="POST")])
    async with client:
        details = await client.make_call(call())
    assert details.call_sid and len(seen) == 2


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                                 httpx.WriteTimeout])
async def test_make_call_never_retried_after_sending(exc: type[httpx.HTTPError]) -> None:
    req = httpx.Request("POST", "https://x")
    client, seen = mock_client([exc("boom", request=req), _ok(method="POST")])
    async with client:
        with pytest.raises(E.OutcomeUnknownError):
            await client.make_call(call())
    assert len(seen) == 1


async def test_get_retried_after_timeout_and_broken_connection() -> None:
    req = httpx.Request("GET", "https://x")
    client, seen = mock_client([httpx.ReadTimeout("slow", request=req),
                                httpx.RemoteProtocolError("cut", request=req), _ok()])
    async with client:
        details = await client.get_call_details("sid1")
    assert details.is_terminal and len(seen) == 3


@pytest.mark.parametrize("content", [b"<html>oops</html>", b'{"request_id": "abc", "resp',
                                     b'{"request_id": "abc"}', b""])
async def test_unreadable_success_bodies(content: bytes) -> None:
    client, seen = mock_client([httpx.Response(200, content=content)] * 4, max_retries=3)
    async with client:
        with pytest.raises(E.MalformedResponseError):
            await client.get_call_details("sid1")
    assert len(seen) == 4  # GET retried, then gives up
    client, seen = mock_client([httpx.Response(200, content=content)])
    async with client:
        with pytest.raises(E.OutcomeUnknownError, match="may exist"):
            await client.make_call(call())
    assert len(seen) == 1


async def test_error_inside_a_200_envelope_is_mapped() -> None:
    body = spec_example("gcd_00_get_call_details_response")
    body["response"].update({"code": 404, "status": "failure", "data": None,
                             "error_data": {"code": 3044, "description": "Call not found", "message": "x"}})
    client, _ = mock_client([httpx.Response(200, json=body)])
    async with client:
        with pytest.raises(E.CallNotFoundError) as info:
            await client.get_call_details("sid1")
    assert info.value.code == 3044


async def test_retry_after_is_honoured_on_the_clock() -> None:
    clock = ManualClock()
    client, seen = mock_client([httpx.Response(429, headers={"Retry-After": "7"}), _ok()], clock=clock)
    start = clock.time()
    async with client:
        await client.get_call_details("sid1")
    assert clock.time() - start == pytest.approx(7.0)
    assert len(seen) == 2


async def test_backoff_grows_and_is_bounded() -> None:
    clock = ManualClock()
    client, _ = mock_client([httpx.Response(503)] * 6, clock=clock, max_retries=5,
                            backoff_base=1.0, backoff_max=4.0)
    start = clock.time()
    async with client:
        with pytest.raises(E.ServerError):
            await client.get_call_details("sid1")
    waited = clock.time() - start
    assert 0.5 + 1 + 2 + 2 + 2 <= waited <= 1 + 2 + 4 + 4 + 4


async def test_cancellation_is_not_swallowed() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return _ok()

    client = CCMClient(base_url="https://x.example", api_key="k", api_token="t", account_sid="s",
                       transport=httpx.MockTransport(slow))
    task = asyncio.create_task(client.get_call_details("sid1"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.aclose()


async def test_request_carries_basic_auth_and_json(simulator: SimulatorServer) -> None:
    client, seen = mock_client([_ok(method="POST")])
    async with client:
        await client.make_call(call(custom_field="c1"))
    request = seen[0]
    assert request.headers["authorization"] == "Basic azp0"  # base64("k:t")
    assert request.url.path == "/v2/accounts/sid/calls" and "@" not in str(request.url)
    assert json.loads(request.content)["from"] == {"user_id": "agent-001"}


# ----------------------------------------------------------------------------- callbacks

async def test_status_callbacks_per_leg_and_terminal(make_simulator, receiver: Receiver) -> None:
    sim = make_simulator(numbers={CUSTOMER: "answers"})
    async with client_for(sim) as client:
        placed = await client.make_call(call(recording=True, custom_field="attempt-9", status_callback=[
            {"event": "answered", "url": f"{receiver.url}/cb/answered"},
            {"event": "terminal", "url": f"{receiver.url}/cb/terminal"}]))
        await follow(client, sim, placed.call_sid)
    for _ in range(100):
        if len(receiver.bodies()) >= 3:
            break
        await asyncio.sleep(0.02)
    from ccm_tasks.exotel.models import StatusCallbackPayload

    payloads = [StatusCallbackPayload.model_validate(b) for b in receiver.bodies()]
    assert [p.event_details.event_type for p in payloads] == ["answered", "answered", "terminal"]
    agent_answered, customer_answered, terminal = payloads
    assert agent_answered.call_details.agent_leg_status == "in-progress"
    assert agent_answered.call_details.customer_leg_status is None
    assert customer_answered.call_details.customer_leg_status == "in-progress"
    assert terminal.call_details.is_terminal and terminal.call_details.call_status == "completed"
    assert terminal.call_details.recording_urls
    assert {p.call_details.custom_field for p in payloads} == {"attempt-9"}
    assert [r["path"] for r in receiver.received] == ["cb/answered", "cb/answered", "cb/terminal"]
    # Same shape as the spec's examples: identical key sets at every level.
    example = spec_example("mc_03_callback_terminal")
    got = receiver.bodies()[-1]
    assert set(got) == set(example)
    got_d, ex_d = got["call_details"], example["call_details"]
    assert set(got_d) == set(ex_d)
    assert set(got_d["assigned_agent_details"]) == set(ex_d["assigned_agent_details"])
    assert set(got_d["customer_details"]) == set(ex_d["customer_details"])


async def test_only_subscribed_events_are_sent(make_simulator, receiver: Receiver) -> None:
    sim = make_simulator(numbers={CUSTOMER: "answers"})
    async with client_for(sim) as client:
        placed = await client.make_call(call(status_callback=[
            {"event": "terminal", "url": f"{receiver.url}/t"}]))
        await follow(client, sim, placed.call_sid)
    for _ in range(100):
        if receiver.bodies():
            break
        await asyncio.sleep(0.02)
    assert [b["event_details"]["event_type"] for b in receiver.bodies()] == ["terminal"]
