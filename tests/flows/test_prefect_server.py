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
from tests.support import Receiver

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


async def test_prefect_deploy_stores_no_machines_folder(real_prefect: PrefectServer, tmp_path: Path) -> None:
    """``prefect deploy --all`` from one machine: the deployments say *which variable* names the
    worker's folder, never the deploying machine's folders (Prefect resolves ``{{ $VAR }}`` in
    prefect.yaml at deploy time)."""
    import json

    from prefect.client.orchestration import PrefectClient

    repo = Path(__file__).parents[2]
    env = real_prefect.client_env(home=tmp_path / "deployer")
    env.update({"CCM_HOME": "/deploying/machine/home", "CCM_WORKDIR": "/deploying/machine/checkout"})
    await prefect_cli(env, "work-pool", "create", "ccm-pool", "--type", "process", "--overwrite")
    await prefect_cli(env, "--no-prompt", "deploy", "--all", cwd=repo)
    async with PrefectClient(api=real_prefect.url) as client:
        deployments = {d.name: d for d in await client.read_deployments()}
    for name in ("pool-daily-report", "pool-campaign-demo"):
        d = deployments[name]
        assert d.pull_steps == [{"flows.steps.working_directory_from_env": {"variable": "CCM_WORKDIR"}}]
        assert d.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
        stored = json.dumps(d.model_dump(mode="json"))
        assert "/deploying/machine" not in stored and str(repo) not in stored, stored


def notify_operations(webhook_url: str) -> Any:
    """The example automation of docs/operating.md ("Events"), verbatim but for the webhook's URL."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    hook = CustomWebhookNotificationBlock(name="ops", url=webhook_url,
                                          json_data={"text": "{{subject}}: {{body}}"})
    block_id = hook.save("ccm-ops", overwrite=True)
    return Automation(
        name="ccm: tell operations when a campaign cannot go on",
        trigger=EventTrigger(expect={"ccm.campaign.fatal"}, match={"prefect.resource.id": "ccm.campaign.*"},
                             posture=Posture.Reactive, threshold=1),
        actions=[SendNotification(
            block_document_id=block_id, subject="Campaign {{ event.resource.name }} stopped",
            body="{{ event.payload.status }}: {{ event.payload.reason }} "
                 "({{ event.payload.pending }} customers left)")],
    ).create()


async def test_a_fatal_campaign_reaches_operations_through_the_documented_automation(
        real_prefect: PrefectServer, make_simulator: Callable[..., SimulatorServer], receiver: Receiver,
        tmp_path: Path) -> None:
    import asyncio

    from prefect.settings import PREFECT_API_URL, temporary_settings

    sim = make_simulator()
    write_campaign(tmp_path / "campaigns" / "f", "wrongnumber", agents=AGENTS, schedule=NEVER,
                   numbers=[f"+9199{i:08d}" for i in range(5)], virtual_number="+914444444444")
    with temporary_settings({PREFECT_API_URL: real_prefect.url}):
        automation = await asyncio.to_thread(notify_operations, f"{receiver.url}/ops")
    env = real_prefect.client_env(ccm_env(sim, tmp_path / "ledger.sqlite", tmp_path / "reports"))
    log = tmp_path / "serve.log"
    try:
        with ccm_serve(tmp_path / "campaigns", env, log, "--no-daily", "--no-automations"):
            await eventually(lambda: deployment_exists(real_prefect.url, "run-campaign/campaign-wrongnumber"),
                             60, what=f"the deployment\n{tail(log)}")
            flow_run = await start_deployment_run(real_prefect.url, "run-campaign/campaign-wrongnumber")

            async def ended() -> Any:
                run = await read_run(real_prefect.url, flow_run.id)
                return run if run.state.is_final() else None

            final = await eventually(ended, 60, what=f"the run's end\n{tail(log)}")
            asked = time.monotonic()
            (note,) = await eventually(lambda: _async(receiver.bodies() or None), 30,
                                       what="the notification")
    finally:
        with temporary_settings({PREFECT_API_URL: real_prefect.url}):
            await automation.adelete()
    print(f"notified {time.monotonic() - asked:.1f}s after the run ended: {note['text']}")
    assert final.state.is_failed(), final.state
    assert note["text"].startswith("Campaign wrongnumber stopped: fatal: "), note
    assert "5 customers left" in note["text"]
    events = await _events(real_prefect.url, "ccm.campaign.")
    kinds = {e["event"] for e in events if e["resource"]["prefect.resource.name"] == "wrongnumber"}
    assert kinds == {"ccm.campaign.started", "ccm.campaign.fatal"}, kinds


async def _events(api: str, prefix: str) -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        response = await client.post("/events/filter", json={
            "filter": {"event": {"prefix": [prefix]}, "occurred": {"since": "2000-01-01T00:00:00Z"}},
            "limit": 50})
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events


async def _async(value: Any) -> Any:
    return value
