"""Crashes and restarts with real ``ccm run`` processes: nobody is lost to a budget wait, nobody is
rung twice, and agents are back at work within seconds of a restart.

The simulator's dial log is the witness: what reached the server, and when.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from sqlalchemy import select

from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.states import AttemptState
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, start_run, write_campaign
from tests.dialer.harness import check_dial_log

FINAL = {"completed", "customer_unanswered", "agent_unanswered", "agent_canceled", "agent_no_dial",
         "customer_no_dial", "unknown"}


def agents(n: int) -> list[tuple[str, str]]:
    return [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, n + 1)]


def numbers(n: int) -> list[str]:
    return [f"+9199{i:08d}" for i in range(n)]


Rows = tuple[dict[str, tuple[str, str | None]], dict[str, str], list[dict[str, object]]]


def ledger_rows(url: str) -> Rows:
    """customers (key -> state, final), attempts (uid -> state), leases."""
    ledger = Ledger(url)
    with ledger.read() as conn:
        customers = {k: (s, f) for k, s, f in conn.execute(
            select(t.customers.c.customer_key, t.customers.c.state, t.customers.c.final_status))}
        attempts = dict(conn.execute(select(t.attempts.c.uid, t.attempts.c.state)).all())
        joined = t.agent_leases.join(t.attempts, t.attempts.c.id == t.agent_leases.c.attempt_id, isouter=True)
        leases = [dict(r) for r in conn.execute(select(t.agent_leases, t.attempts.c.uid)
                                                .select_from(joined)).mappings()]
    ledger.close()
    return customers, attempts, leases


def test_sigkill_while_the_budget_is_the_bottleneck(tmp_path: Path, ledger_url: str) -> None:
    """Many agents, a small account budget: Make Calls queue for grants. Killed at random points,
    every customer that ends unknown had a Make Call that reached the server, every other customer
    is dialled in the end, and no agent is held for a call the server never saw."""
    rng = random.Random(20261201)
    scenario = Scenario.model_validate({
        "seed": 9, "time_scale": 30, "account": {"rate_limit_per_minute": 40},
        "agents": [{"user_id": u, "contact_uri": c} for u, c in agents(12)],
        "behaviour": {"talk_seconds": [20, 80], "agent_ring_seconds": [2, 5],
                      "customer_ring_seconds": [3, 10], "customer_answer_probability": 0.7,
                      "post_processing_seconds": [1, 3]}})
    with SimulatorServer(scenario) as sim:
        env = {**ccm_env(sim, ledger_url, tmp_path / "reports"), "EXOTEL_REQUESTS_PER_MINUTE": "40"}
        definition = write_campaign(tmp_path / "c", "budgeted", agents=agents(12), numbers=numbers(60),
                                    retry={"max_attempts": 2, "interval_minutes": 1})
        kills = 0
        while kills < 10:
            proc = start_run(definition, env, tmp_path / "run.log")
            time.sleep(rng.uniform(1.5, 4.0))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        for _ in range(6):  # then let it finish, resuming after every kill
            if start_run(definition, env, tmp_path / "run.log").wait(timeout=300) == 0 and all(
                    s == "done" for s, _ in ledger_rows(ledger_url)[0].values()):
                break
        log = sim.dial_log()
        received = set(sim.received_make_calls())
        cut_short = sim.counters().get("make_calls_cut_short", 0)  # the client went before its body was read
    assert kills >= 5, "the runs ended before they could be killed"
    report = check_dial_log(log, max_dials=2 + 3 + 1)
    assert report["overlaps"] == [] and report["too_many"] == {}
    customers, attempts, leases = ledger_rows(ledger_url)
    reached = {r["custom_field"] for r in log}
    assert reached <= set(attempts), "a call placed before its attempt was written"
    assert all(s == "done" and f in FINAL for s, f in customers.values())
    for uid, state in attempts.items():
        if state == "unknown":  # reached, or received and answered (a 429) as the process died
            assert uid in received, ("an attempt marked unknown although the server never received it "
                                     f"({cut_short} Make Call requests were cut short)")
    dialled = {r["customer"] for r in log}
    assert dialled == set(customers), "a customer was never dialled"
    assert all(lease["uid"] in received for lease in leases if lease["quarantine_until"]), \
        "an agent held for a call the server never saw"
    text = (tmp_path / "run.log").read_text()
    assert "Traceback" not in text


def test_after_a_restart_agents_are_back_within_seconds(tmp_path: Path, ledger_url: str) -> None:
    """With callbacks on, a run is killed mid-call; its calls end while nobody listens. The next run
    confirms them by GET at once and gives their agents new calls within seconds (not ~90 s)."""
    scenario = Scenario.model_validate({
        # 5x: the bound is 5 simulated seconds, one real second, so that a busy machine's scheduling
        # delays do not decide the test.
        "seed": 4, "time_scale": 5,
        "agents": [{"user_id": u, "contact_uri": c} for u, c in agents(6)],
        "behaviour": {"talk_seconds": [30, 40], "agent_ring_seconds": [1, 2], "customer_ring_seconds": [2, 4],
                      "agent_answer_probability": 1.0, "customer_answer_probability": 1.0,
                      "agent_cancel_probability": 0.0,  # an agent-side outcome cools its agent down
                      "post_processing_seconds": [1, 2]}})
    with SimulatorServer(scenario) as sim:
        env = ccm_env(sim, ledger_url, tmp_path / "reports")
        definition = write_campaign(tmp_path / "c", "restart", agents=agents(6), numbers=numbers(12),
                                    callbacks={"enabled": True, "listen": "127.0.0.1:0"},
                                    dialer={"wrap_up_seconds": 0})
        proc = start_run(definition, env, tmp_path / "first.log")
        watcher = Ledger(ledger_url)
        for _ in range(200):
            # Until six calls are live and the run has their call_sids: killed while a Make Call's
            # answer is on its way, the attempt is rightly unknown and its agent quarantined, which
            # is not the case under test.
            time.sleep(0.1)
            if len(sim.dial_log()) >= 6 and watcher.count("attempts", state=AttemptState.PLACED.value) >= 6:
                break
        watcher.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        live = sim.dial_log()
        time.sleep(max(0.0, (max(r["terminal"] for r in live) - sim.clock.time()) / 5) + 0.5)  # all over now
        restarted = start_run(definition, env, tmp_path / "second.log")
        assert restarted.wait(timeout=240) == 0, (tmp_path / "second.log").read_text()[-2000:]
        log = sim.dial_log()
    ledger = Ledger(ledger_url)
    runs = ledger.runs(ledger.campaign_id("restart") or 0)
    second_start = min(r["started_at"] for r in runs if r["status"] != "crashed")
    assert any(r["status"] == "crashed" for r in runs)  # the killed run is recorded as such
    old_agents = {r["agent"] for r in live}
    gaps = []
    for agent in old_agents:
        nxt = [r["created"] for r in log if r["agent"] == agent and r["created"] >= second_start]
        gaps.append(min(nxt, default=float("inf")) - second_start)  # inf: never called again
    detail = [(r["agent"], r["created"] - second_start, r["call_status"]) for r in log
              if r["created"] >= second_start - 60]
    assert max(gaps) < 5.0, (f"agents waited {sorted(gaps)} simulated seconds after the restart", detail)
