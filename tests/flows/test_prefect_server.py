"""Against a real ``prefect server start`` (not the test harness, which has no scheduler): the server's
scheduler creates the runs of a campaign scheduled a minute ahead and of the daily report, ``ccm serve``
starts them, and they complete. This is the proof of the SQLAlchemy pin in pyproject.toml: with
SQLAlchemy 2.1 prefect 3.8.8's scheduler fails every minute and no scheduled run is ever created."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, write_campaign
from tests.flows.prefect_server import (
    NEVER,
    PrefectServer,
    all_agents,
    ccm_serve,
    cron_at,
    deployment_exists,
    deployment_runs,
    eventually,
    live_calls,
    minute_ahead,
    prefect_cli,
    read_run,
    slow_calls,
    start_deployment_run,
    tail,
)

AGENTS = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 5)]


async def test_the_servers_scheduler_starts_a_campaign_and_the_daily_report(
        real_prefect: PrefectServer, make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> None:
    sim = make_simulator()
    at = minute_ahead(margin=15)
    cron = cron_at(at)
    write_campaign(tmp_path / "campaigns" / "sched", "sched", agents=AGENTS,
                   numbers=[f"+9199{i:08d}" for i in range(20)], schedule={"cron": cron, "timezone": "UTC"})
    ledger = tmp_path / "ledger.sqlite"
    env = real_prefect.client_env(ccm_env(sim, ledger, tmp_path / "reports"))
    log = tmp_path / "serve.log"
    started = time.monotonic()
    daily_at = ("--daily-cron", cron, "--daily-timezone", "UTC")
    with ccm_serve(tmp_path / "campaigns", env, log, *daily_at) as serve:

        async def finished(name: str) -> object | None:
            assert serve.poll() is None, tail(log)
            runs = [r for r in await deployment_runs(real_prefect.url, name) if r.auto_scheduled]
            if runs and runs[0].state.is_final():
                return runs[0]
            return None

        wait = (at - datetime.now(UTC)).total_seconds() + 90
        campaign = await eventually(lambda: finished("run-campaign/campaign-sched"), wait,
                                    what=f"the scheduled campaign run\n{tail(log)}")
        daily = await eventually(lambda: finished("daily-report/daily-report"), 60,
                                 what=f"the scheduled daily report\n{tail(log)}")
    for run in (campaign, daily):
        assert run.state.is_completed(), (run.state, tail(log))  # type: ignore[attr-defined]
        assert run.expected_start_time == at  # type: ignore[attr-defined]
        assert run.created_by is None or run.created_by.type == "SCHEDULE"  # type: ignore[attr-defined]
    late = (campaign.start_time - at).total_seconds()  # type: ignore[attr-defined]
    print(f"scheduled {at:%H:%M:%S}; campaign started {late:.1f}s late, whole test "
          f"{time.monotonic() - started:.0f}s")
    book = Ledger(ledger)
    try:
        assert book.count("customers", state="done") == 20
    finally:
        book.close()
    assert (tmp_path / "reports" / "daily" / f"{at.date()}.xlsx").exists(), tail(log)


async def test_prefect_cancel_drains_live_calls_and_ends_the_run_cancelled(
        real_prefect: PrefectServer, make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> None:
    sim = slow_calls(make_simulator, 6)
    write_campaign(tmp_path / "campaigns" / "c", "cancelme", agents=all_agents(6),
                   numbers=[f"+9199{i:08d}" for i in range(60)], schedule=NEVER)
    ledger = tmp_path / "ledger.sqlite"
    env = real_prefect.client_env(ccm_env(sim, ledger, tmp_path / "reports"))
    log = tmp_path / "serve.log"
    with ccm_serve(tmp_path / "campaigns", env, log, "--no-daily") as serve:
        await eventually(lambda: deployment_exists(real_prefect.url, "run-campaign/campaign-cancelme"), 60,
                         what=f"the deployment\n{tail(log)}")
        flow_run = await start_deployment_run(real_prefect.url, "run-campaign/campaign-cancelme")

        async def dialling() -> bool | None:
            assert serve.poll() is None, tail(log)
            state = (await read_run(real_prefect.url, flow_run.id)).state
            assert not state.is_final(), (state, tail(log))
            return True if live_calls(sim) >= 4 else None

        await eventually(dialling, 90, every=0.2, what=f"live calls\n{tail(log)}")
        asked = time.monotonic()
        asked_sim = sim.clock.time()
        await prefect_cli(env, "flow-run", "cancel", str(flow_run.id))

        async def ended() -> Any:
            run = await read_run(real_prefect.url, flow_run.id)
            return run if run.state.is_final() else None

        final = await eventually(ended, 60, every=0.2, what=f"the cancelled run's end\n{tail(log)}")
        took = time.monotonic() - asked
        ended_sim = sim.clock.time()
    calls = sim.dial_log()
    print(f"cancel -> {final.state.type.value} in {took:.1f}s; {len(calls)} calls; message "
          f"{final.state.message!r}")
    assert final.state.is_cancelled(), (final.state, tail(log))
    assert "SIGTERM" in (final.state.message or ""), final.state.message
    assert took < 30, f"{took:.1f}s from cancel to the run's end"
    # The runner sends SIGTERM within a second or two of the request; nothing is dialled after that.
    assert [r for r in calls if r["created"] > asked_sim + 3 * 30] == []
    assert all(r["terminal"] <= ended_sim for r in calls), "a call left live"
    book = Ledger(ledger)
    try:
        assert book.count("attempts", state="placed") == book.count("attempts", state="created") == 0
        assert [lease for lease in book.leases() if lease["available_at"] is None] == []
        (row,) = book.runs(book.campaign_id("cancelme") or 0)
        assert row["status"] == "cancelled", row
    finally:
        book.close()


async def test_the_heartbeat_automation_is_created_once_and_left_alone_when_unchanged(
        real_prefect: PrefectServer) -> None:
    """A restarted ``ccm serve`` must not replace the automation's trigger: that would forget the
    heartbeats of the very run whose crash it restarted after (tests/flows/test_prefect_kills.py)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.automations import ZOMBIE_AUTOMATION, apply_automations

    with temporary_settings({PREFECT_API_URL: real_prefect.url}):
        first = await apply_automations(75)
        again = await apply_automations(75)
        async with get_client() as client:
            (before,) = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
        changed = await apply_automations(80)
        async with get_client() as client:
            (after,) = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
        await apply_automations(45)  # what the kill tests use
    assert first.startswith(("created", "updated")) and again.startswith("kept"), (first, again)
    assert changed.startswith("updated") and after.id == before.id
    assert after.trigger.within.total_seconds() == 80  # type: ignore[union-attr]
