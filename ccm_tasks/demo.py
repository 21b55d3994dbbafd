"""The demo: one call through the client, against the built-in simulator unless credentials are set."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from ccm_tasks.clock import Clock, SystemClock
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.errors import CCMError
from ccm_tasks.exotel.models import MakeCallRequest
from ccm_tasks.onecall import Change, place_and_follow
from ccm_tasks.settings import ExotelSettings
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer

DEMO_CUSTOMER = "+919953123456"
DEMO_TIME_SCALE = 200.0  # the demo campaign's simulated hours take about a minute


async def run_one_call(agent: str | None = None, customer: str | None = None,
                       virtual_number: str | None = None, record: bool = True) -> int:
    """Place and follow one call, printing each change; returns a process exit code."""
    settings = ExotelSettings()
    server: SimulatorServer | None = None
    clock: Clock = SystemClock()
    if settings.has_credentials:
        if not (agent and customer and virtual_number):
            print("With EXOTEL_* credentials set this dials for real: give --agent, --customer "
                  "and --virtual-number.")
            return 2
        client = CCMClient.from_settings(settings)
        print(f"Dialling for real through {settings.resolved_base_url}")
    else:
        scenario = Scenario.builtin("default").model_copy(update={"time_scale": 20.0})
        scenario.numbers[customer or DEMO_CUSTOMER] = "answers"
        server = SimulatorServer(scenario).start()
        clock = server.clock
        client = CCMClient(**server.client_settings(), clock=clock)
        agent = agent or scenario.all_agents()[0].user_id
        virtual_number = virtual_number or scenario.virtual_numbers[0]
        print(f"No Exotel credentials set: calls are SIMULATED (built-in simulator at "
              f"{server.base_url}, {scenario.time_scale:g}x speed).")
    assert agent is not None and virtual_number is not None
    target = {"user_contact_uri": agent} if agent.startswith(("+", "sip:")) else {"user_id": agent}
    request = MakeCallRequest.model_validate({
        "from": target, "to": {"customer_contact_uri": customer or DEMO_CUSTOMER},
        "virtual_number": virtual_number, "recording": record, "custom_field": "demo-call-1",
    })

    def show(change: Change) -> None:
        print(f"  +{change.at:6.1f}s  {change.what}")

    try:
        async with client:
            final = await place_and_follow(client, request, clock, poll_every=2.0, on_change=show)
    except CCMError as exc:
        print(f"The call could not be placed: {exc}")
        return 1
    finally:
        if server is not None:
            server.stop()
    started = final.start_time.isoformat() if isinstance(final.start_time, datetime) else "?"
    print(f"Done: {final.call_status}, talk time {final.total_talk_time or 0}s, started {started}, "
          f"{final.total_duration or 0}s in all.")
    return 0


async def run_demo_campaign(definition: str | Path, use_prefect: bool = True) -> int:
    """The demo campaign on the built-in simulator, from a fresh ledger every time."""
    from ccm_tasks.launch import run_command
    from ccm_tasks.paths import ccm_home

    for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID", "EXOTEL_BASE_URL"):
        if os.environ.pop(name, None):
            print(f"(the demo ignores {name}: it always runs on the simulator)")
    os.environ.setdefault("CCM_SIM_TIME_SCALE", str(DEMO_TIME_SCALE))
    ledger = ccm_home() / "var" / "demo-ledger.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - three tiny files, before any work
    return await run_command(definition, ledger=str(ledger), use_prefect=use_prefect)
