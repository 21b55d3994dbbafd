"""Deployments: each scheduled campaign and the daily report, served by ``ccm serve``.

A campaign definition with ``schedule: {cron, timezone}`` becomes the deployment
``run-campaign/campaign-<name>``; the daily report is ``daily-report/daily-report`` (default
21:30 Asia/Kolkata). The deployments ``prefect.yaml`` declares for workers are named ``pool-...``,
so the two never share a name (a deployment registered under another's name replaces it).
Every deployment allows one run at a time and cancels a new one that collides (a campaign still
running when its next slot comes does not start a second run of itself); the ledger's
one-runner-per-campaign lock backs this up across servers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from ccm_tasks.defaults import DAILY_CRON, DAILY_TIMEZONE
from ccm_tasks.inputs import DefinitionError, load_definition
from flows.campaign import run_campaign
from flows.daily import daily_report

log = logging.getLogger("ccm.serve")


DAILY_DEPLOYMENT = "daily-report"
POOL_PREFIX = "pool-"
"""How the names of prefect.yaml's deployments start (and those here never do)."""


def campaign_deployment_name(campaign: str) -> str:
    """The name ``ccm serve`` gives a campaign's deployment."""
    return f"campaign-{campaign}"


ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


async def campaign_deployments(campaigns_dir: Path, ledger: str | None = None) -> list[RunnerDeployment]:
    """A deployment for every valid definition under ``campaigns_dir`` that has a schedule."""
    out = []
    for path in sorted(campaigns_dir.rglob("*.y*ml")):  # noqa: ASYNC240 - a handful of small files
        try:
            definition = load_definition(path)
        except DefinitionError:
            continue  # not a campaign definition (scenarios, rosters in YAML) or not a valid one
        if definition.schedule is None:
            continue
        out.append(await run_campaign.ato_deployment(
            name=campaign_deployment_name(definition.name),
            schedule=Cron(definition.schedule.cron, timezone=definition.schedule.timezone),
            parameters={"definition": str(path.resolve()), "ledger": ledger},
            concurrency_limit=ONE_AT_A_TIME,
            description=definition.description or f"Campaign {definition.name}",
            tags=["ccm", "campaign"]))
    return out


async def daily_deployment(cron: str = DAILY_CRON, timezone: str = DAILY_TIMEZONE,
                           ledger: str | None = None) -> RunnerDeployment:
    """The daily call-outcome report."""
    return await daily_report.ato_deployment(
        name=DAILY_DEPLOYMENT, schedule=Cron(cron, timezone=timezone),
        parameters={"timezone": timezone, "ledger": ledger}, concurrency_limit=ONE_AT_A_TIME,
        description="Every call that ended today, across campaigns", tags=["ccm", "report"])


async def all_deployments(campaigns_dir: Path, ledger: str | None = None, *, daily: bool = True,
                          daily_cron: str = DAILY_CRON,
                          daily_timezone: str = DAILY_TIMEZONE) -> list[RunnerDeployment]:
    """Every deployment ``ccm serve`` serves."""
    deployments = await campaign_deployments(campaigns_dir, ledger)
    if daily:
        deployments.append(await daily_deployment(daily_cron, daily_timezone, ledger))
    return deployments
