"""The engine against the simulator over real HTTP with a real SQLite ledger.

Every test checks the invariants on the simulator's dial log, not only the engine's own account:
no agent ever has two calls between one's creation and the other's terminal state, no 10706 is
caused by us, every customer ends with exactly one final outcome, nobody is dialled more often than
the policy allows, and every call carries the uid of an attempt written before it was placed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ccm_tasks.dialer.engine import CampaignEngine
from ccm_tasks.dialer.policy import Policy
from ccm_tasks.dialer.progress import RunResult
from ccm_tasks.dialer.window import DialWindow
from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.harness import (
    check_dial_log,
    customers,
    fast_scenario,
    final_states,
    make_engine,
    quick_config,
    roster,
    sim_agents,
)

FINAL = {"completed", "customer_unanswered", "agent_unanswered", "agent_canceled", "agent_no_dial",
         "customer_no_dial", "unknown"}


def attempt_uids(ledger: Ledger) -> dict[str, str]:
    from sqlalchemy import select

    from ccm_tasks.ledger import schema as t

    with ledger.read() as conn:
        return dict(conn.execute(select(t.attempts.c.uid, t.attempts.c.state)).all())


def assert_invariants(sim: SimulatorServer, ledger: Ledger, engine: CampaignEngine, *,
                      all_final: bool = True) -> dict[str, Any]:
    log = sim.dial_log()
    report = check_dial_log(log, max_dials=engine.cfg.policy.max_dials())
    assert report["overlaps"] == [], report["overlaps"][:5]
    assert report["too_many"] == {}
    assert sim.counters().get("agent_busy_api", 0) == 0, "a 10706 caused by our own call"
    uids = attempt_uids(ledger)
    sent = [row["custom_field"] for row in log if row["custom_field"]]
    assert len(sent) == len(set(sent)), "an attempt was POSTed twice"
    assert set(sent) <= set(uids), "a call without an attempt written before it"
    states = final_states(ledger, engine.campaign_id)
    if all_final:
        assert set(states.values()) <= FINAL, Counter(states.values())
    # Customers marked unknown are never dialled again after the unknown attempt.
    return {"log": log, "states": states, "report": report}


async def run(engine: CampaignEngine, limit: float = 60) -> RunResult:
    return await asyncio.wait_for(engine.run(), limit)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    book = Ledger(ledger_url)
    yield book
    book.close()


# ----------------------------------------------------------------------------- properties

SCENARIOS = {
    "mostly_answered": {"customer_answer_probability": 0.8},
    "hard_to_reach": {"customer_answer_probability": 0.2, "customer_busy_share": 0.4},
    "flaky_agents": {"agent_answer_probability": 0.6, "agent_cancel_probability": 0.15,
                     "agent_no_dial_probability": 0.05, "customer_no_dial_probability": 0.05},
}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_invariants_across_seeds_and_scenarios(ledger: Ledger, seed: int, name: str) -> None:
    agents = roster(8)
    sc = fast_scenario(seed=seed, agents=sim_agents(agents), behaviour=SCENARIOS[name])
    people = [{**c, "preferred_agent": f"agent-00{i % 5 + 1}" if i % 4 == 0 else None}
              for i, c in enumerate(customers(70))]
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=people,
                             config=quick_config(policy=Policy(max_attempts=3, interval_seconds=60,
                                                               max_agent_side_retries=2)))
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine)
    assert result.status == "completed" and result.exit_code == 0
    assert len(checked["states"]) == 70
    # The ledger's attempts match the dial log one for one.
    assert ledger.count("attempts", campaign_id=engine.campaign_id, state="terminal") == len(checked["log"])
    # Retries really happened where the scenario makes people hard to reach.
    if name == "hard_to_reach":
        assert max(checked["report"]["per_customer"].values()) >= 2


async def test_sticky_customers_get_their_agent(ledger: Ledger) -> None:
    agents = roster(4)
    sc = fast_scenario(agents=sim_agents(agents), behaviour={"customer_answer_probability": 1.0,
                                                             "agent_answer_probability": 1.0,
                                                             "agent_cancel_probability": 0})
    people = [{**c, "preferred_agent": "agent-002"} for c in customers(6)] + customers(10, start=100)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=people,
                             config=quick_config(sticky_wait=3600))
        await run(engine)
        log = assert_invariants(sim, ledger, engine)["log"]
    sticky_numbers = {p["phone"] for p in people[:6]}
    assert {r["agent"] for r in log if r["customer"] in sticky_numbers} == {"agent-002"}


# ----------------------------------------------------------------------------- error categories

async def test_agent_busy_on_a_manual_call_cools_down_and_customer_goes_back(ledger: Ledger) -> None:
    agents = roster(2)
    sc = fast_scenario(agents=[{"user_id": "agent-001", "contact_uri": agents[0].contact_uri,
                                "busy_periods": [[0, 300]]},
                               {"user_id": "agent-002", "contact_uri": agents[1].contact_uri}])
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(12),
                             config=quick_config())
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine)
        counters = sim.counters()
    assert result.status == "completed"
    assert counters["agent_busy_manual"] >= 1
    assert ledger.count("attempts", error_category="agent_busy") == counters["agent_busy_manual"]
    assert any(r["agent"] == "agent-001" for r in checked["log"])  # it came back after the manual call
    # A refused POST did not use up the customer's attempts.
    rows = {r.customer_key: r for r in ledger.customer_rows(engine.campaign_id)}
    assert all(r.attempts <= 3 for r in rows.values())


async def test_unavailable_agent_is_paused_and_rechecked(ledger: Ledger) -> None:
    agents = roster(2)
    sc = fast_scenario(agents=[{"user_id": "agent-001", "contact_uri": agents[0].contact_uri,
                                "device": "off"},
                               {"user_id": "agent-002", "contact_uri": agents[1].contact_uri}],
                       time_scale=300)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(20),
                             config=quick_config(agent_recheck=60))

        async def switch_on() -> None:
            while ledger.count("attempts", error_category="agent_unavailable") == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            async with httpx.AsyncClient(base_url=sim.base_url) as http:
                await http.post("/_sim/agents/agent-001", json={"device": "on"})

        flip = asyncio.create_task(switch_on())
        result = await run(engine)
        await flip
        checked = assert_invariants(sim, ledger, engine)
    assert result.status == "completed"
    assert ledger.count("attempts", error_category="agent_unavailable") >= 1
    assert any(r["agent"] == "agent-001" for r in checked["log"])
    assert "agent-001" not in result.paused_agents  # it took calls once switched on


async def test_invalid_agent_is_dropped_and_reported(ledger: Ledger) -> None:
    agents = roster(3)
    sc = fast_scenario(agents=[{"user_id": "agent-001", "contact_uri": agents[0].contact_uri,
                                "device": "unverified"},
                               *sim_agents(agents[1:])])
    people = [{**c, "preferred_agent": "agent-001"} for c in customers(3)] + customers(8, start=50)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=people,
                             config=quick_config(sticky_wait=3600))
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine)
    assert result.status == "completed" and "agent-001" in result.dropped_agents
    assert "unverified" in result.dropped_agents["agent-001"]
    assert all(r["agent"] != "agent-001" for r in checked["log"])
    assert ledger.count("events", kind="agent_dropped") == 1


async def test_unknown_agent_everywhere_means_no_agents(ledger: Ledger) -> None:
    agents = roster(2)
    stranger = [{"user_id": "someone", "contact_uri": "+919811111111"}]
    with SimulatorServer(fast_scenario(agents=stranger)) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(5),
                             config=quick_config())
        result = await run(engine)
        assert sim.dial_log() == []
    assert result.status == "no_agents" and result.exit_code == 1
    assert set(final_states(ledger, engine.campaign_id).values()) == {"pending"}


async def test_campaign_fatal_stops_dialling_and_resumes_after_the_fix(ledger: Ledger) -> None:
    agents = roster(3)
    with SimulatorServer(fast_scenario(agents=sim_agents(agents))) as sim:
        wrong = quick_config(virtual_number="+914444444444")
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(10), config=wrong)
        result = await run(engine)
        assert result.status == "fatal" and result.exit_code == 1
        assert "virtual_number" in result.reason or "10716" in result.reason
        assert sim.dial_log() == []
        assert set(final_states(ledger, engine.campaign_id).values()) == {"pending"}
        # The operator fixes the definition and runs again: it resumes, nothing was used up.
        ledger.release_campaign(engine.campaign_id, engine.holder_id, "fatal", result.reason, 0)
        fixed = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(10),
                            config=quick_config())
        result2 = await run(fixed)
        assert_invariants(sim, ledger, fixed)
    assert result2.status == "completed"


async def test_bad_credentials_are_fatal(ledger: Ledger) -> None:
    agents = roster(2)
    with SimulatorServer(fast_scenario(agents=sim_agents(agents))) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(4),
                             config=quick_config(), client_kw={"api_token": "nope"})
        result = await run(engine)
    assert result.status == "fatal" and "1010" in result.reason


async def test_server_errors_back_off_and_lose_nothing(ledger: Ledger) -> None:
    agents = roster(4)
    sc = fast_scenario(agents=sim_agents(agents), faults={"server_error_rate": 0.25})
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(25),
                             config=quick_config(), client_kw={"backoff_base": 0.01})
        result = await run(engine)
        assert_invariants(sim, ledger, engine)
        assert sim.counters()["injected_5xx"] > 0
    assert result.status == "completed"


async def test_outcome_unknown_is_never_redialled(ledger: Ledger) -> None:
    agents = roster(4)
    sc = fast_scenario(agents=sim_agents(agents), faults={"drop_connection_rate": 0.25, "methods": ["POST"]},
                       seed=8)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(30),
                             config=quick_config(max_time_limit=120, stuck_grace=60))
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine)
        drops = sim.counters()["injected_drops"]
    assert result.status == "completed" and drops > 0
    unknown = [k for k, v in checked["states"].items() if v == "unknown"]
    assert len(unknown) == drops == result.unknown
    per_customer = checked["report"]["per_customer"]
    for number in unknown:
        # The dropped POST placed a call; nothing was placed for that customer after it.
        calls = [r for r in checked["log"] if r["customer"] == number]
        last = max(calls, key=lambda r: r["created"])
        assert ledger.attempt_by_uid(last["custom_field"])["state"] == "unknown"  # type: ignore[index]
        assert per_customer[number] == len(calls)
    assert ledger.count("events", kind="outcome_unknown") == drops


async def test_get_errors_are_retried(ledger: Ledger) -> None:
    agents = roster(3)
    sc = fast_scenario(agents=sim_agents(agents), faults={"server_error_rate": 0.3,
                                                          "drop_connection_rate": 0.1, "methods": ["GET"]})
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(12),
                             config=quick_config(), client_kw={"backoff_base": 0.01})
        result = await run(engine)
        assert_invariants(sim, ledger, engine)
    assert result.status == "completed"


async def test_429s_shrink_the_budget_and_lose_nothing(ledger: Ledger) -> None:
    agents = roster(6)
    # At 50x the poll floor (0.05 s real) still lets us ask far more than the account's 30/min.
    sc = fast_scenario(agents=sim_agents(agents), account={"rate_limit_per_minute": 30}, time_scale=50)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(15),
                             config=quick_config(), per_minute=200)
        result = await run(engine, limit=120)
        assert_invariants(sim, ledger, engine)
        limited = sim.counters().get("rate_limited", 0)
    assert result.status == "completed"
    assert limited > 0 and engine.budget.rate_limited > 0
    assert engine.budget.factor < 1.0


async def test_zero_429s_when_the_budget_matches_the_account(ledger: Ledger) -> None:
    agents = roster(20)
    sc = fast_scenario(agents=sim_agents(agents), account={"rate_limit_per_minute": 60}, time_scale=300)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(30),
                             config=quick_config(), per_minute=60)
        result = await run(engine, limit=120)
        assert_invariants(sim, ledger, engine)
        assert sim.counters().get("rate_limited", 0) == 0
    assert result.status == "completed"


async def test_stuck_call_is_reported_and_its_agent_stays_leased(ledger: Ledger) -> None:
    agents = roster(2)
    stuck_number = customers(1)[0]["phone"]
    sc = fast_scenario(agents=sim_agents(agents), numbers={stuck_number: "stuck"}, time_scale=2000)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(6),
                             config=quick_config(max_time_limit=100, attempt_time_out=20, stuck_grace=100))
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine, all_final=False)
    assert result.status == "completed" and result.stuck == 1
    assert checked["states"][stuck_number] == "calling"
    stuck_agent = next(r["agent"] for r in checked["log"] if r["customer"] == stuck_number)
    assert {lease["agent_key"] for lease in ledger.leases()} == {stuck_agent}
    assert ledger.count("events", kind="call_stuck") == 1
    # The stuck call's agent was never given another customer.
    assert sum(1 for r in checked["log"] if r["agent"] == stuck_agent) == 1 or all(
        r["created"] < next(x["created"] for x in checked["log"] if x["customer"] == stuck_number)
        for r in checked["log"] if r["agent"] == stuck_agent and r["customer"] != stuck_number)


# ----------------------------------------------------------------------------- time

async def test_end_time_stops_new_calls_and_live_ones_finish(ledger: Ledger) -> None:
    agents = roster(3)
    sc = fast_scenario(agents=sim_agents(agents), time_scale=300, behaviour={
        "talk_seconds": 100, "agent_ring_seconds": 3, "customer_ring_seconds": 4,
        "agent_answer_probability": 1, "customer_answer_probability": 1, "agent_cancel_probability": 0})
    with SimulatorServer(sc) as sim:
        end = sim.clock.time() + 270
        window = DialWindow(start=__import__("datetime").time(0), end=__import__("datetime").time(23, 59, 59),
                            end_at=end)
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(40),
                             config=quick_config(window=window))
        result = await run(engine)
        returned_at = sim.clock.time()
        checked = assert_invariants(sim, ledger, engine, all_final=False)
    assert result.status == "campaign_ended" and result.exit_code == 0
    # The last check runs just before a Make Call leaves; the simulator stamps its arrival a few
    # milliseconds later, which at 300x is up to a few simulated seconds (20 ms real allowed).
    latency = 0.020 * 300
    assert all(r["created"] < end + latency for r in checked["log"])
    # Live calls were finished, not cut: every placed call was followed to a confirmed terminal
    # state before the run returned.
    assert ledger.count("attempts", state="terminal") == len(checked["log"])
    assert returned_at >= max(r["terminal"] for r in checked["log"])
    states = Counter(checked["states"].values())
    assert states["pending"] == result.pending > 0 and "calling" not in states


@pytest.mark.parametrize("within", [30.0, 0.3])
async def test_a_drain_ends_cancelled_whether_or_not_live_calls_finish_in_time(ledger: Ledger,
                                                                               within: float) -> None:
    """SIGTERM's drain: no new calls; live ones followed for ``within`` real seconds; ``cancelled``
    either way. Calls finished in time free their agents; calls cut off keep their leases (they may
    still be live) for the next run to confirm."""
    agents = roster(3)
    sc = fast_scenario(agents=sim_agents(agents), time_scale=60, behaviour={
        "talk_seconds": 60, "agent_ring_seconds": 2, "customer_ring_seconds": 2,
        "agent_answer_probability": 1, "customer_answer_probability": 1, "agent_cancel_probability": 0})
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(12),
                             config=quick_config())
        task = asyncio.create_task(engine.run())
        while engine.state.live_calls < 3:  # noqa: ASYNC110 - the engine has no event for this
            await asyncio.sleep(0.05)
        engine.drain("cancelled (SIGTERM)", within)
        drained_at = sim.clock.time()
        result = await asyncio.wait_for(task, 60)
        checked = assert_invariants(sim, ledger, engine, all_final=False)
    assert result.status == "cancelled" and result.exit_code == 0
    assert all(r["created"] < drained_at + 2 for r in checked["log"]), "a Make Call after the drain began"
    held = [lease for lease in ledger.leases() if lease["available_at"] is None]
    if within > 5:
        assert result.reason == "cancelled (SIGTERM)"
        assert ledger.count("attempts", state="placed") == 0 and held == []
    else:
        assert result.reason.startswith("cancelled (SIGTERM); live calls left after 0.3s")
        assert ledger.count("attempts", state="placed") == len(held) == 3


async def test_start_time_in_the_future_waits(ledger: Ledger) -> None:
    agents = roster(2)
    with SimulatorServer(fast_scenario(agents=sim_agents(agents))) as sim:
        start = sim.clock.time() + 600
        window = DialWindow(start=__import__("datetime").time(0), end=__import__("datetime").time(23, 59, 59),
                            start_at=start)
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(4),
                             config=quick_config(window=window))
        result = await run(engine)
        log = assert_invariants(sim, ledger, engine)["log"]
    assert result.status == "completed"
    assert min(r["created"] for r in log) >= start


async def test_closed_window_without_waiting_ends_at_once(ledger: Ledger) -> None:
    agents = roster(2)
    with SimulatorServer(fast_scenario(agents=sim_agents(agents))) as sim:
        window = DialWindow(start_at=sim.clock.time() + 10 * 86400)
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(4),
                             config=quick_config(window=window, wait_for_window=False))
        result = await run(engine)
        assert sim.dial_log() == []
    assert result.status == "window_closed" and "opens" in result.reason


async def test_a_429_burst_costs_its_retry_after_not_a_minute(ledger: Ledger) -> None:
    """The account's limit drops for a while (another client spent it): the dialer pauses exactly
    as long as the server's Retry-After says, then dials again and its rate recovers."""
    agents = roster(10)
    # 10x: the bound below is 5 simulated seconds, half a real second, so that a loaded machine's
    # scheduling delays (CI runs two suites at once) do not decide the test.
    scale = 10
    sc = fast_scenario(agents=sim_agents(agents), account={"rate_limit_per_minute": 200}, time_scale=scale,
                       behaviour={"talk_seconds": [20, 60]})
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(400),
                             config=quick_config(max_pending_posts=4), per_minute=200)
        task = asyncio.create_task(engine.run())
        await asyncio.sleep(60 / scale)  # a minute of normal dialling
        burst_start = sim.clock.time()
        sim.call_soon(lambda: sim.account.set_rate_limit(4))
        for _ in range(100):  # until the burst has earned some 429s
            await asyncio.sleep(2 / scale)
            if engine.budget.rate_limited >= 3:
                break
        await asyncio.sleep(10 / scale)
        burst_end = sim.clock.time()
        sim.call_soon(lambda: sim.account.set_rate_limit(200))
        blocked_until = engine.budget.blocked_until
        await asyncio.sleep(120 / scale)  # two minutes after the burst
        engine.request_stop("test over")
        await asyncio.wait_for(task, 60)
        log = sim.dial_log()
        assert_invariants(sim, ledger, engine, all_final=False)
    assert engine.budget.rate_limited >= 3
    after = sorted(r["created"] for r in log if r["created"] > burst_end)
    resume = max(burst_end, blocked_until)
    assert after and after[0] - resume <= 5.0, f"first Make Call {after[0] - resume:.1f}s after the pause"
    # One overload episode is one back-off step: nothing paused new calls beyond the server's word.
    assert engine.state.held.post_paused_until <= blocked_until + 1.0
    before = [t for t in (r["created"] for r in log) if burst_start - 60 <= t < burst_start]
    recovered = [t for t in after if resume + 60 <= t < resume + 120]
    assert len(recovered) >= 0.5 * len(before), (len(before), len(recovered))


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)  # about time zones, not the ledger
async def test_recipients_are_called_only_in_their_own_hours(ledger: Ledger) -> None:
    """Window 09:00-21:00 Asia/Kolkata from 19:25 IST: Indian numbers at once; New York numbers only
    from 09:00 in New York (19:30 IST); Los Angeles numbers never (their 09:00 is after 21:00 IST)."""
    from datetime import UTC, datetime

    start = datetime(2026, 12, 2, 13, 55, tzinfo=UTC)  # 19:25 IST, 08:55 in New York, 05:55 in LA
    ny_opens = datetime(2026, 12, 2, 14, 0, tzinfo=UTC).timestamp()
    india = [f"+9199{i:08d}" for i in range(8)]
    new_york = [f"+1212555{i:04d}" for i in range(4)]
    los_angeles = [f"+1310555{i:04d}" for i in range(4)]
    people = [{"customer_key": n, "phone": n} for n in india + new_york + los_angeles]
    agents = roster(4)
    sc = fast_scenario(agents=sim_agents(agents), time_scale=300, start_time=start.isoformat(),
                       behaviour={"talk_seconds": [30, 60]})
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=people,
                             config=quick_config(window=DialWindow()))
        result = await run(engine, limit=120)
        log = sim.dial_log()
    assert result.status == "window_closed"
    first = {
        n: min((r["created"] for r in log if r["customer"] == n), default=None) for n in india + new_york
    }
    assert all(first[n] is not None and first[n] < ny_opens for n in india[:4])  # India at once
    assert all(first[n] is not None and first[n] >= ny_opens for n in new_york)  # New York from its 09:00
    assert not [r for r in log if r["customer"] in los_angeles]  # never outside their own hours
    closes = datetime(2026, 12, 2, 15, 30, tzinfo=UTC).timestamp()  # 21:00 IST
    assert all(r["created"] < closes for r in log)
