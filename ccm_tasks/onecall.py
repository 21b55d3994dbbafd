"""Place one call and follow it to terminal: the smallest end-to-end use of the client.

Used by ``ccm call`` (check an agent's set-up against the real API) and by the demo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ccm_tasks.clock import Clock
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.models import CallDetails, MakeCallRequest
from ccm_tasks.redact import mask_phone


@dataclass(frozen=True)
class Change:
    """One observed change in a call, at (simulated) time ``at``."""

    at: float
    what: str
    details: CallDetails


def describe_changes(before: CallDetails | None, after: CallDetails) -> list[str]:
    """Human-readable differences between two snapshots of the same call."""
    out: list[str] = []
    if before is None:
        agent = after.assigned_agent_details
        who = agent.user_id if agent else "?"
        to = mask_phone(after.customer_details.contact_uri if after.customer_details else None)
        out.append(f"placed call {after.call_sid}: agent {who} first, then customer {to}")
        before = CallDetails(call_sid=after.call_sid)
    if after.agent_leg_status != before.agent_leg_status and after.agent_leg_status:
        out.append(f"agent leg: {after.agent_leg_status}")
    if after.customer_leg_status != before.customer_leg_status and after.customer_leg_status:
        out.append(f"customer leg: {after.customer_leg_status}")
    if after.call_status != before.call_status and after.call_status:
        out.append(f"call_status: {after.call_status} (call_state still {after.call_state})"
                   if after.call_state != "terminal" else f"call_status: {after.call_status}")
    if after.call_state == "terminal" and before.call_state != "terminal":
        talk = after.total_talk_time if after.total_talk_time is not None else 0
        rec = f", {len(after.recording_urls)} recording(s)" if after.recording_urls else ""
        out.append(f"call_state: terminal - talk time {talk}s{rec}")
    return out


async def place_and_follow(
    client: CCMClient,
    request: MakeCallRequest,
    clock: Clock,
    poll_every: float = 2.0,
    on_change: Callable[[Change], None] | None = None,
    give_up_after: float = 3600.0,
) -> CallDetails:
    """Make the call, then GET its details every ``poll_every`` seconds until it is terminal."""
    started = clock.time()
    current = await client.make_call(request)
    for line in describe_changes(None, current):
        if on_change:
            on_change(Change(clock.time() - started, line, current))
    while not current.is_terminal:
        if clock.time() - started > give_up_after:
            raise TimeoutError(f"call {current.call_sid} not terminal after {give_up_after:.0f}s")
        await clock.sleep(poll_every)
        latest = await client.get_call_details(current.call_sid)
        for line in describe_changes(current, latest):
            if on_change:
                on_change(Change(clock.time() - started, line, latest))
        current = latest
    return current
