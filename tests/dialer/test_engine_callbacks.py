"""The engine with status callbacks from the simulator over real HTTP; polling as the safety net.

These run at 100x, not 600x: a safety poll is due ~90 simulated seconds after the last news of a
call, which at 600x is only 150 ms of real time, and a busy machine can delay a callback that long.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.harness import (
    customers,
    fast_scenario,
    finish,
    make_engine,
    open_ledger,
    quick_config,
    roster,
    settle,
    sim_agents,
    stop_receivers,
)
from tests.dialer.test_engine import assert_invariants, run


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    yield open_ledger(tmp_path)
    stop_receivers()


def resolved_by(ledger: Ledger) -> Counter[str]:
    from sqlalchemy import select

    from ccm_tasks.ledger import schema as t

    with ledger.read() as conn:
        return Counter(r for (r,) in conn.execute(select(t.attempts.c.resolved_by)
                                                    .where(t.attempts.c.state == "terminal")))


async def test_callbacks_resolve_calls_without_polling(ledger: Ledger) -> None:
    agents = roster(5)
    with SimulatorServer(fast_scenario(agents=sim_agents(agents), time_scale=100)) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(30),
                             config=quick_config(), callbacks=True)
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine)
        counters = sim.counters()
    assert result.status == "completed"
    calls = len(checked["log"])
    by = resolved_by(ledger)
    assert sum(by.values()) == calls and by["callback"] >= 0.8 * calls, by
    # Safety polls only where a callback was late (on a loaded machine, some are): a small fraction
    # of what polling alone spends here (~20 GETs per call).
    assert counters.get("get_requests", 0) <= 0.25 * calls
    assert ledger.count("callback_events", event_type="terminal") == calls


async def test_thirty_percent_of_callbacks_lost(ledger: Ledger) -> None:
    agents = roster(5)
    sc = fast_scenario(agents=sim_agents(agents), callbacks={"drop_rate": 0.3}, seed=12)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(40),
                             config=quick_config(talk_window=120), callbacks=True)
        result = await run(engine, limit=120)
        checked = assert_invariants(sim, ledger, engine)
        dropped = sim.counters()["callbacks_dropped"]
    assert result.status == "completed" and dropped > 0
    by = resolved_by(ledger)
    assert by["poll"] > 0 and by["callback"] > 0 and sum(by.values()) == len(checked["log"])


async def test_repeated_callbacks_change_nothing(ledger: Ledger) -> None:
    agents = roster(4)
    sc = fast_scenario(agents=sim_agents(agents), callbacks={"repeat_rate": 1.0}, time_scale=100)
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(25),
                             config=quick_config(), callbacks=True)
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine)
        delivered = settle(sim, "callbacks_delivered")  # the last repeats may still be on their way
        counters = sim.counters()
    assert result.status == "completed"
    assert counters["callbacks_repeated"] > 0
    assert delivered == 2 * ledger.count("callback_events")
    assert ledger.count("attempts", state="terminal") == len(checked["log"])


async def test_a_terminal_callback_resolves_an_unknown_make_call(ledger: Ledger) -> None:
    agents = roster(3)
    sc = fast_scenario(agents=sim_agents(agents), seed=8,
                       faults={"drop_connection_rate": 0.3, "methods": ["POST"]})
    with SimulatorServer(sc) as sim:
        config = quick_config(max_time_limit=3000, stuck_grace=3000)  # quarantine: over an hour
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(20),
                             config=config, callbacks=True)
        result = await run(engine)
        drops = sim.counters()["injected_drops"]
        assert result.status == "completed" and drops > 0
        in_run = ledger.count("attempts", state="terminal", resolved_by="callback")
        # A lost Make Call whose call was still live when every customer was final leaves the run
        # with it unknown; its callback is still recorded, and the next run resolves it.
        settle(sim, "callbacks_delivered")
        finish(engine)
        again = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(20),
                            config=config, callbacks=True)
        await run(again)
        checked = assert_invariants(sim, ledger, again)
    assert in_run > 0
    assert ledger.count("attempts", state="unknown") == 0
    assert "unknown" not in checked["states"].values()
    assert ledger.count("events", kind="outcome_unknown") == drops
    # The agents were freed by the callbacks, long before the hour-long quarantine: the run took
    # far less simulated time than one quarantine.
    assert max(r["created"] for r in checked["log"]) - min(r["created"] for r in checked["log"]) < 3000


async def test_a_terminal_callback_without_recordings_gets_one_get(ledger: Ledger) -> None:
    agents = roster(3)
    sc = fast_scenario(agents=sim_agents(agents), callbacks={"terminal_without_recordings_rate": 1.0},
                       time_scale=100,
                       behaviour={"agent_answer_probability": 1, "customer_answer_probability": 1,
                                  "agent_cancel_probability": 0, "talk_seconds": [10, 30]})
    with SimulatorServer(sc) as sim:
        engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(12),
                             config=quick_config(recording=True), callbacks=True)
        result = await run(engine)
        checked = assert_invariants(sim, ledger, engine)
        gets = sim.counters().get("get_requests", 0)
    assert result.status == "completed"
    assert gets == len(checked["log"])  # exactly one confirming GET per call, no more
    from sqlalchemy import select

    from ccm_tasks.ledger import schema as t

    with ledger.read() as conn:
        recs = [r for (r,) in conn.execute(select(t.attempts.c.recordings))]
    assert all(recs)  # the GET filled in what the callback left open


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_receiver_in_another_process_reaches_the_dialer_through_the_ledger(
        ledger: Ledger, tmp_path: Path) -> None:
    import os

    port = _free_port()
    agents = roster(4)
    with SimulatorServer(fast_scenario(agents=sim_agents(agents), time_scale=200)) as sim:
        # The receiver shares the simulator's clock explicitly, as `ccm simulator` tells one to.
        env = {**os.environ, "CCM_SIM_CLOCK": sim.clock.spec}  # type: ignore[attr-defined]
        proc = subprocess.Popen([sys.executable, "-m", "ccm_tasks.cli", "callbacks", "--port", str(port),  # noqa: ASYNC220
                                 "--ledger", str(tmp_path / "ledger.sqlite")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=1) as http:
                for _ in range(100):
                    try:
                        if (await http.get(base + "/v1/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
            engine = make_engine(sim, ledger, campaign="c1", agents=agents, people=customers(16),
                                 config=quick_config(), callbacks=base)
            result = await run(engine)
            checked = assert_invariants(sim, ledger, engine)
        finally:
            proc.terminate()
            out = proc.communicate(timeout=10)[0]
    assert result.status == "completed"
    assert resolved_by(ledger)["callback"] >= 0.8 * len(checked["log"]), out[-2000:]
