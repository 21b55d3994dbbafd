"""Prefect automations the deployments rely on, applied by ``ccm serve`` and ``ccm automations``.

A flow run whose process was killed together with the process that started it (``kill -9`` of a
machine's worker and its children, a machine lost) stays ``Running`` on the server forever, and with
it the deployment's one concurrency slot: every later run of that campaign would be cancelled as a
collision. Flow runs send heartbeat events (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds apart;
``ccm serve`` sets :data:`HEARTBEAT_SECONDS`, a worker needs it in its environment), and the
automation here marks a run of ours ``Crashed`` when no event about it arrives for ``after_seconds``;
a crashed run gives its slot back, and the next run of the campaign confirms the calls it left.
Only runs tagged ``ccm`` (our deployments) are watched. docs/operating.md has the whole story.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from ccm_tasks.defaults import HEARTBEAT_SECONDS, ZOMBIE_AFTER_SECONDS

ZOMBIE_AUTOMATION = "ccm: crash campaign runs that stopped sending heartbeats"


def zombie_automation(after_seconds: float = ZOMBIE_AFTER_SECONDS) -> AutomationCore:
    """After each heartbeat of a ``ccm``-tagged flow run, expect another event about that run (a
    heartbeat or a state change) within ``after_seconds``; otherwise mark the run ``Crashed``."""
    if after_seconds < HEARTBEAT_SECONDS + 10:
        raise ValueError(f"after_seconds must exceed the heartbeat interval ({HEARTBEAT_SECONDS}s) "
                         "with room to spare (at least 10 s more)")
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=(f"A campaign or report run that sent no heartbeat for {after_seconds:g}s lost its "
                     "process: mark it Crashed so its deployment's concurrency slot is freed."),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification({"prefect.resource.id": "prefect.tag.ccm"}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_seconds),
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"no heartbeat for {after_seconds:g}s: the run's process is gone (killed, or its "
                    "machine lost); the campaign's next run confirms the calls it left")],
    )


async def apply_automations(after_seconds: float = ZOMBIE_AFTER_SECONDS) -> str:
    """Create the automations on the Prefect server ``PREFECT_API_URL`` names, or update them if they
    differ; returns what was done, in words. An unchanged automation is left alone: updating one
    replaces its trigger, and with it the heartbeats it has seen, so a ``ccm serve`` restarted after
    a crash would otherwise blind it to the very run that crashed."""
    wanted = zombie_automation(after_seconds)
    what = f"automation {ZOMBIE_AUTOMATION!r} ({after_seconds:g}s without a heartbeat)"
    async with get_client() as client:
        existing = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
        if not existing:
            await client.create_automation(wanted)
            return f"created {what}"
        first, *extra = existing
        for duplicate in extra:
            await client.delete_automation(duplicate.id)
        if _essence(first) == _essence(wanted):
            return f"kept {what}"
        await client.update_automation(first.id, wanted)
        return f"updated {what}"


def _essence(automation: AutomationCore) -> dict[str, object]:
    """What an automation does, without the ids the server gives it."""
    return {"name": automation.name, "description": automation.description, "enabled": automation.enabled,
            "trigger": automation.trigger.model_dump(mode="json", exclude={"id"}),
            "actions": [a.model_dump(mode="json") for a in automation.actions]}
