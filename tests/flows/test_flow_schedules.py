"""Deployments against a real (temporary) Prefect server: names, cron and time zone as configured,
one run at a time; and the daily report flow run once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.dialer.campaign_files import write_campaign

AGENTS = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 4)]


async def test_deployments_carry_the_definitions_schedules(prefect_server: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.schedules import campaign_deployments, daily_deployment

    numbers = [f"+9199{i:08d}" for i in range(5)]
    write_campaign(tmp_path / "a", "morning", agents=AGENTS, numbers=numbers,
                   schedule={"cron": "0 10 * * 1-5", "timezone": "Asia/Kolkata"})
    write_campaign(tmp_path / "b", "unscheduled", agents=AGENTS, numbers=numbers)
    write_campaign(tmp_path / "c", "evening", agents=AGENTS, numbers=numbers,
                   schedule={"cron": "30 17 * * *", "timezone": "Asia/Singapore"})
    (tmp_path / "notes.yaml").write_text("just: some yaml\n")  # not a definition: skipped
    deployments = [*await campaign_deployments(tmp_path), await daily_deployment()]
    assert sorted(d.name for d in deployments) == ["campaign-evening", "campaign-morning", "daily-report"]
    for d in deployments:
        await d.apply()
    async with get_client() as client:
        expected = {
            "run-campaign/campaign-morning": ("0 10 * * 1-5", "Asia/Kolkata"),
            "run-campaign/campaign-evening": ("30 17 * * *", "Asia/Singapore"),
            "daily-report/daily-report": ("30 21 * * *", "Asia/Kolkata"),
        }
        for name, (cron, zone) in expected.items():
            dep = await client.read_deployment_by_name(name)
            (schedule,) = dep.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, zone)  # type: ignore[union-attr]
            # A campaign still running when its next slot comes does not start a second run.
            assert dep.global_concurrency_limit is not None and dep.global_concurrency_limit.limit == 1
            assert dep.concurrency_options is not None
            assert dep.concurrency_options.collision_strategy == "CANCEL_NEW"
        morning = await client.read_deployment_by_name("run-campaign/campaign-morning")
        assert morning.parameters["definition"].endswith("morning.yaml")


async def test_daily_report_flow(prefect_server: None, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.daily import daily_report

    monkeypatch.setenv("CCM_HOME", str(tmp_path))
    from ccm_tasks.ledger import Ledger

    ledger = tmp_path / "ledger.sqlite"
    Ledger(ledger).close()
    state = await daily_report(date="2026-11-20", ledger=str(ledger), return_state=True)
    assert state.is_completed(), state.message
    result = await state.result()  # type: ignore[misc]
    files = [Path(p) for p in result["files"]]
    assert {p.suffix for p in files} == {".xlsx", ".csv", ".md"}
    assert all(p.exists() for p in files)
    assert "no calls" in next(p for p in files if p.suffix == ".md").read_text().lower()
    assert load_workbook(next(p for p in files if p.suffix == ".xlsx")).sheetnames
    assert result["date"] == date(2026, 11, 20).isoformat()


def test_prefect_yaml_and_ccm_serve_never_share_a_deployment_name() -> None:
    """A deployment registered under another's name replaces it: the daily report served by
    ``ccm serve`` and the one the workers run must be two deployments."""
    import yaml

    from flows.schedules import DAILY_DEPLOYMENT, POOL_PREFIX, campaign_deployment_name

    declared = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())["deployments"]
    names = [d["name"] for d in declared]
    assert len(names) == len(set(names)) and all(n.startswith(POOL_PREFIX) for n in names), names
    served = [DAILY_DEPLOYMENT, *(campaign_deployment_name(n) for n in ("demo", "pool-x", "daily-report"))]
    assert not any(n.startswith(POOL_PREFIX) for n in served), served
