"""``kill -9`` of what runs deployed campaigns, against a real Prefect server and real processes.

* ``ccm serve`` killed alone: the flow's process notices its parent is gone, places no new call,
  drains the live ones and ends the run ``Cancelled`` by itself: nothing keeps dialling.
* ``ccm serve`` killed together with the flow's process (a machine lost): the run stays ``Running``
  and holds the deployment's one slot (a new run is cancelled as a collision) until the heartbeat
  automation (flows/automations.py) marks it ``Crashed``; then the campaign's next run goes ahead and
  confirms the calls the dead one left.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, write_campaign
from tests.dialer.harness import check_dial_log
from tests.flows.prefect_server import (
    NEVER,
    PrefectServer,
    all_agents,
    ccm_serve,
    deployment_exists,
    eventually,
    live_calls,
    pid_gone,
    read_run,
    runner_pid,
    slow_calls,
    start_deployment_run,
    tail,
)

ZOMBIE_AFTER = "45"  # seconds without a heartbeat (they come every 30 s) before a run is Crashed


async def _dialling(api: str, sim: SimulatorServer, name: str, log: Path, calls: int = 4) -> Any:
    """Wait for the deployment, start a run of it, and wait until ``calls`` calls are live."""
    await eventually(lambda: deployment_exists(api, name), 60, what=f"the deployment\n{tail(log)}")
    flow_run = await start_deployment_run(api, name)

    async def dialling() -> bool | None:
        state = (await read_run(api, flow_run.id)).state
        assert not state.is_final(), (state, tail(log))
        return True if live_calls(sim) >= calls else None

    await eventually(dialling, 90, every=0.2, what=f"live calls\n{tail(log)}")
    return flow_run


async def _final(api: str, run_id: Any, within: float, log: Path) -> Any:
    async def ended() -> Any:
        run = await read_run(api, run_id)
        return run if run.state.is_final() else None

    return await eventually(ended, within, every=0.5, what=f"the end of run {run_id}\n{tail(log)}")


def _settled(ledger: Path) -> None:
    """No call left open and no agent left leased in the ledger."""
    book = Ledger(ledger)
    try:
        assert book.count("attempts", state="placed") == book.count("attempts", state="created") == 0
        assert [lease for lease in book.leases() if lease["available_at"] is None] == []
    finally:
        book.close()


async def test_a_killed_serve_leaves_no_child_dialling(
        real_prefect: PrefectServer, make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> None:
    sim = slow_calls(make_simulator, 6)
    write_campaign(tmp_path / "campaigns" / "k", "orphan", agents=all_agents(6),
                   numbers=[f"+9199{i:08d}" for i in range(60)], schedule=NEVER)
    ledger = tmp_path / "ledger.sqlite"
    env = real_prefect.client_env(ccm_env(sim, ledger, tmp_path / "reports"))
    log = tmp_path / "serve.log"
    with ccm_serve(tmp_path / "campaigns", env, log, "--no-daily", "--zombie-after", ZOMBIE_AFTER) as serve:
        flow_run = await _dialling(real_prefect.url, sim, "run-campaign/campaign-orphan", log)
        child = runner_pid(ledger, "orphan")
        killed, killed_sim = time.monotonic(), sim.clock.time()
        os.kill(serve.pid, signal.SIGKILL)
        final = await _final(real_prefect.url, flow_run.id, 40, log)
        await eventually(lambda: _async(pid_gone(child) or None), 15, what="the flow's process to exit")
        took, ended_sim = time.monotonic() - killed, sim.clock.time()
    calls = sim.dial_log()
    print(f"serve killed -> flow process drained and ended {final.state.type.value} in {took:.1f}s")
    assert final.state.is_cancelled(), final.state
    assert "gone" in (final.state.message or ""), final.state.message
    assert [r for r in calls if r["created"] > killed_sim + 2 * 30] == [], "dialled after its parent died"
    assert all(r["terminal"] <= ended_sim for r in calls), "a call left live"
    _settled(ledger)


@pytest.mark.slow
async def test_a_run_killed_with_its_serve_is_crashed_by_the_heartbeat_automation_and_the_next_run_goes_ahead(
        real_prefect: PrefectServer, make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> None:
    sim = slow_calls(make_simulator, 6)
    write_campaign(tmp_path / "campaigns" / "z", "zombie", agents=all_agents(6),
                   numbers=[f"+9199{i:08d}" for i in range(30)], schedule=NEVER)
    ledger = tmp_path / "ledger.sqlite"
    env = real_prefect.client_env(ccm_env(sim, ledger, tmp_path / "reports"))
    name, args = "run-campaign/campaign-zombie", ("--no-daily", "--zombie-after", ZOMBIE_AFTER)
    log = tmp_path / "serve.log"
    with ccm_serve(tmp_path / "campaigns", env, log, *args) as serve:
        dead = await _dialling(real_prefect.url, sim, name, log)
        child = runner_pid(ledger, "zombie")
        os.kill(serve.pid, signal.SIGKILL)
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
    assert (await read_run(real_prefect.url, dead.id)).state.is_running()
    with ccm_serve(tmp_path / "campaigns", env, tmp_path / "serve2.log", *args):
        # While the dead run holds the deployment's slot, a new run is turned away.
        blocked = await start_deployment_run(real_prefect.url, name)
        turned_away = await _final(real_prefect.url, blocked.id, 60, tmp_path / "serve2.log")
        assert turned_away.state.is_cancelled() and "concurrency" in (turned_away.state.message or "")
        crashed = await _final(real_prefect.url, dead.id, 120, tmp_path / "serve2.log")
        detected = time.monotonic() - killed
        assert crashed.state.is_crashed() and "heartbeat" in (crashed.state.message or ""), crashed.state
        after = await start_deployment_run(real_prefect.url, name)
        final = await _final(real_prefect.url, after.id, 90, tmp_path / "serve2.log")
    print(f"killed run marked Crashed {detected:.0f}s after the kill; next run: {final.state.message}")
    assert final.state.is_completed(), (final.state, tail(tmp_path / "serve2.log"))
    report = check_dial_log(sim.dial_log(), max_dials=3)
    assert report["overlaps"] == [] and report["too_many"] == {}
    sent = [r["custom_field"] for r in sim.dial_log()]
    assert len(sent) == len(set(sent)), "an attempt was POSTed twice"
    _settled(ledger)
    book = Ledger(ledger)
    try:
        statuses = [r["status"] for r in book.runs(book.campaign_id("zombie") or 0)]
        assert sorted(statuses) == ["completed", "crashed"], statuses
        assert book.count("customers", state="done") == 30
    finally:
        book.close()


async def _async(value: bool | None) -> bool | None:
    return value
