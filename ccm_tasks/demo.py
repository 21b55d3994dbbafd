"""``ccm call`` and ``ccm demo``: one call, and the demo campaign, on the built-in simulator unless
Exotel credentials are set (the choice is :func:`~ccm_tasks.target.target_from_settings`'s)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from ccm_tasks.exotel.errors import CCMError
from ccm_tasks.exotel.models import MakeCallRequest
from ccm_tasks.ledger import Ledger
from ccm_tasks.onecall import Change, place_and_follow
from ccm_tasks.paths import resolve_ledger
from ccm_tasks.settings import ExotelSettings, SimSettings
from ccm_tasks.target import World, target_from_settings

DEMO_CUSTOMER = "+919953123456"
DEMO_CALL_TIME_SCALE = 20.0  # one simulated call takes a few seconds
DEMO_TIME_SCALE = 200.0  # the demo campaign's simulated hours take about a minute


async def run_one_call(agent: str | None = None, customer: str | None = None,
                       virtual_number: str | None = None, record: bool = True) -> int:
    """Place and follow one call, printing each change; returns a process exit code."""
    exotel = ExotelSettings()
    if exotel.has_credentials and not (agent and customer and virtual_number):
        print("With EXOTEL_* credentials set this dials for real: give --agent, --customer "
              "and --virtual-number.")
        return 2
    ledger = Ledger(resolve_ledger())
    sim = SimSettings(time_scale=DEMO_CALL_TIME_SCALE) if SimSettings().time_scale is None else SimSettings()
    target = target_from_settings(World(behaviours={customer or DEMO_CUSTOMER: "answers"}), ledger,
                                  exotel=exotel, sim=sim)
    if target.simulator is not None:
        scenario = target.simulator.scenario
        agent = agent or scenario.all_agents()[0].user_id
        virtual_number = virtual_number or scenario.virtual_numbers[0]
        print(f"No Exotel credentials set: calls are SIMULATED ({target.description}).")
    else:
        print(f"Dialling for real through the {target.description}")
    assert agent is not None and virtual_number is not None
    source = {"user_contact_uri": agent} if agent.startswith(("+", "sip:")) else {"user_id": agent}
    request = MakeCallRequest.model_validate({
        "from": source, "to": {"customer_contact_uri": customer or DEMO_CUSTOMER},
        "virtual_number": virtual_number, "recording": record, "custom_field": "demo-call-1",
    })

    def show(change: Change) -> None:
        print(f"  +{change.at:6.1f}s  {change.what}")

    try:
        final = await place_and_follow(target.client, request, target.clock, poll_every=2.0, on_change=show)
    except CCMError as exc:
        print(f"The call could not be placed: {exc}")
        return 1
    finally:
        await target.aclose()
        ledger.close()
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
