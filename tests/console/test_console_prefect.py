"""With a Prefect server: a launch is a flow run of the campaign's deployment (no child process),
and a schedule set in the console lands on that deployment."""

from __future__ import annotations

import asyncio
import re
from uuid import UUID

import pytest

from tests.console.conftest import Console, csrf


def test_launch_and_schedule_through_the_deployment(prefect_server: None, console: Console,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from flows.campaign import run_campaign

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    client = console.client("operator")
    # A campaign the console made (its own definition file), then served as a deployment.
    token = csrf(client.get("/campaigns/new").text)
    demo = console.home / "campaigns" / "demo"
    made = client.post("/campaigns/new", data={"csrf_token": token, "name": "viaprefect",
                                               "virtual_number": "+918045680000", "roster": "0"},
                       files=[("customers", ("customers.csv", (demo / "customers.csv").read_bytes()))])
    assert made.status_code == 303, made.text
    definition = console.home / "campaigns" / "viaprefect" / "viaprefect.yaml"

    async def deploy() -> UUID:
        deployment = await run_campaign.ato_deployment(name="campaign-viaprefect",
                                                       parameters={"definition": str(definition)})
        return await deployment.apply()

    deployment_id = asyncio.run(deploy())
    launched = client.post("/campaigns/viaprefect/launch", data={"csrf_token": token, "when": "now"})
    assert launched.status_code == 200, launched.text
    match = re.search(r"Prefect flow run ([0-9a-f-]{36}) of deployment run-campaign/campaign-viaprefect",
                      launched.text)
    assert match, launched.text
    assert console.app.state.console.launcher.children() == []  # Prefect runs it, not the console

    scheduled = client.post("/campaigns/viaprefect/launch", data={
        "csrf_token": token, "when": "schedule", "cron": "15 9 * * 1-5", "cron_timezone": "Asia/Singapore"})
    assert scheduled.status_code == 200 and "on deployment run-campaign/campaign-viaprefect" in scheduled.text
    assert "cron: 15 9 * * 1-5" in definition.read_text()

    async def check() -> None:
        async with get_client() as prefect:
            flow_run = await prefect.read_flow_run(UUID(match.group(1)))
            assert flow_run.deployment_id == deployment_id
            assert "console" in flow_run.tags
            (schedule,) = await prefect.read_deployment_schedules(deployment_id)
            assert (schedule.schedule.cron, schedule.schedule.timezone) == ("15 9 * * 1-5", "Asia/Singapore")  # type: ignore[union-attr]

    asyncio.run(check())


def test_without_a_server_the_schedule_is_saved_and_the_page_says_what_it_needs(console: Console) -> None:
    client = console.client("operator")
    token = csrf(client.get("/campaigns/new").text)
    demo = console.home / "campaigns" / "demo"
    client.post("/campaigns/new", data={"csrf_token": token, "name": "later",
                                        "virtual_number": "+918045680000", "roster": "0"},
                files=[("customers", ("customers.csv", (demo / "customers.csv").read_bytes()))])
    bad = client.post("/campaigns/later/launch", data={"csrf_token": token, "when": "schedule",
                                                       "cron": "61 * * * *"})
    assert bad.status_code == 400 and "outside 0-59" in bad.text
    page = client.post("/campaigns/later/launch", data={
        "csrf_token": token, "when": "schedule", "cron": "0 10 * * 1-5", "cron_timezone": "Asia/Kolkata"})
    assert page.status_code == 200 and "Schedules need a Prefect server" in page.text
    assert "ccm serve" in page.text
    assert "cron: 0 10 * * 1-5" in (console.home / "campaigns" / "later" / "later.yaml").read_text()
    # Hand-written definitions are not rewritten by the console.
    refused = client.post("/campaigns/demo/launch", data={"csrf_token": token, "when": "schedule",
                                                          "cron": "0 10 * * *"})
    assert refused.status_code == 400 and "edit demo.yaml by hand" in refused.text
