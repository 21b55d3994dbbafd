"""Against a real ``prefect server start`` (not the test harness, which has no scheduler): the server's
scheduler creates the runs of a campaign scheduled a minute ahead and of the daily report, ``ccm serve``
starts them, and they complete. This is the proof of the SQLAlchemy pin in pyproject.toml: with
SQLAlchemy 2.1 prefect 3.8.8's scheduler fails every minute and no scheduled run is ever created."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, write_campaign
from tests.flows.prefect_server import (
    PrefectServer,
    ccm_serve,
    cron_at,
    deployment_runs,
    eventually,
    minute_ahead,
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
