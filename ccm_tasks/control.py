"""Campaign controls and status, through the ledger, from any process or machine sharing it.

* :func:`pause`: no new Make Call; live calls are followed to terminal; pending customers and
  retries are held with their retry times. A run started while its campaign is paused ends at once
  (``paused``) without dialling.
* :func:`resume`: dialling restarts where it was (within a second, if a run is live).
* :func:`stop`: like pause, then the run ends once its live calls are terminal; a later run continues.
* :func:`status`: every campaign's state, progress, live calls, agents and the account budget in use.
* :func:`unknown_calls` / :func:`requeue_unknown`: Make Calls whose outcome is unknown (the process
  died around the POST), and putting back the customers a person confirmed were never rung.

Every change is recorded with who, why and when (the ``campaigns`` row and an event); the running
engine reads the control every ``control_seconds`` (ccm_tasks.dialer.engine). Times here are wall
time: operators act on the real clock, whatever clock a simulated campaign runs on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ccm_tasks.dialer.progress import AgentView, Progress
from ccm_tasks.ledger import Ledger
from ccm_tasks.redact import mask_phone

Action = Literal["pause", "resume", "stop"]

STATE_OF_RUN: dict[str, str] = {
    "completed": "finished", "window_closed": "window closed", "campaign_ended": "ended",
    "fatal": "failed", "no_agents": "failed", "stopped": "stopped", "paused": "paused",
    "cancelled": "cancelled", "interrupted": "interrupted", "crashed": "crashed",
}
"""A finished run's status as a campaign state in words."""

STATE_OF_PHASE: dict[str, str] = {
    "dialling": "running", "paused": "paused", "stopping": "stopping", "draining": "stopping",
    "waiting for window": "waiting for window", "backing off": "backing off",
}
"""A live run's phase as a campaign state in words."""

CONTROL_WORDS: dict[str, str] = {"pause": "pause", "run": "resume", "stop": "stop"}
"""A recorded control (``campaigns.control``) as the command that set it."""

__all__ = ["AgentView", "CampaignNotFound", "CampaignStatus", "ControlChange", "ControlRefused",
           "UnknownCall",
           "pause", "render_status", "requeue_unknown", "resume", "status", "stop", "unknown_calls"]


class CampaignNotFound(LookupError):
    """No campaign of that name in the ledger."""


class ControlRefused(Exception):
    """The control cannot be applied now; the message says why."""


@dataclass(frozen=True)
class ControlChange:
    """A control applied to a campaign."""

    campaign: str
    action: Action
    by: str
    reason: str
    at: float
    running: bool  # a live run will act on it within a second
    message: str  # one line for a person


@dataclass(frozen=True)
class CampaignStatus:
    """Where a campaign stands, as any process sharing the ledger sees it."""

    name: str
    state: str
    detail: str
    runner: str | None
    run_id: int | None
    flow_run_id: str | None
    control: str
    control_by: str | None
    control_reason: str | None
    control_at: float | None
    customers: int
    final: int
    pending: int
    live_calls: int
    outcomes: dict[str, int]
    agents: tuple[AgentView, ...]
    budget_per_minute: int | None
    budget_used_last_minute: int | None
    stuck: int
    unknown: int
    updated_at: float | None
    agent_counts: dict[str, int] = field(default_factory=dict)
    timezone: str = "Asia/Kolkata"  # the campaign's zone: how its times are shown

    @property
    def progress(self) -> float:
        """Customers with a final outcome, 0..1."""
        return self.final / self.customers if self.customers else 0.0

    def control_line(self) -> str | None:
        """The last control an operator (or a new run) recorded: what, who, when and why."""
        if self.control_by is None:
            return None
        when = "" if self.control_at is None else f" at {local_time(self.control_at, self.timezone)}"
        why = f": {self.control_reason}" if self.control_reason else ""
        action = CONTROL_WORDS.get(self.control, self.control)
        return f"last control: {action} by {self.control_by}{when}{why}"


@dataclass(frozen=True)
class UnknownCall:
    """A customer final as ``unknown``: its last Make Call may or may not have rung."""

    customer_key: str
    attempt_id: int
    attempt_no: int
    agent_key: str
    written_at: float  # when the attempt was written (the campaign clock)
    reason: str | None

    def line(self) -> str:
        """One line, the number masked (for terminals and logs)."""
        when = datetime.fromtimestamp(self.written_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return (f"{mask_phone(self.customer_key)}  attempt {self.attempt_no} (#{self.attempt_id}) at {when} "
                f"by agent {self.agent_key}: {self.reason or 'outcome unknown'}")


# --------------------------------------------------------------------------- controls


def pause(ledger: Ledger, name: str, *, by: str, reason: str) -> ControlChange:
    """Hold new calls (live ones finish); pending customers and retries keep their times."""
    cid, running = _campaign(ledger, name), _live_run(ledger, name) is not None
    previous = ledger.set_control(cid, "pause", by=by, reason=reason, now=time.time(), only_if=["run"])
    if previous is None:
        raise ControlRefused(_why_not(ledger, cid, name, "pause"))
    message = ("paused: no new calls; live calls are followed to the end" if running
               else "paused: a run started now will not dial until it is resumed")
    return ControlChange(name, "pause", by, reason, time.time(), running, message)


def resume(ledger: Ledger, name: str, *, by: str, reason: str) -> ControlChange:
    """Lift a pause: a live run dials again within a second; otherwise the next run dials."""
    cid, running = _campaign(ledger, name), _live_run(ledger, name) is not None
    previous = ledger.set_control(cid, "run", by=by, reason=reason, now=time.time(), only_if=["pause"])
    if previous is None:
        raise ControlRefused(_why_not(ledger, cid, name, "resume"))
    message = ("resumed: dialling restarts within a second" if running
               else "resumed: start a run (ccm run, its schedule or the console's Launch) to continue")
    return ControlChange(name, "resume", by, reason, time.time(), running, message)


def stop(ledger: Ledger, name: str, *, by: str, reason: str) -> ControlChange:
    """End the live run once its live calls are terminal; a later run continues the campaign."""
    cid = _campaign(ledger, name)
    if _live_run(ledger, name) is None:
        raise ControlRefused(f"{name} has no run in progress: nothing to stop")
    previous = ledger.set_control(cid, "stop", by=by, reason=reason, now=time.time(),
                                  only_if=["run", "pause"])
    if previous is None:
        raise ControlRefused(_why_not(ledger, cid, name, "stop"))
    return ControlChange(name, "stop", by, reason, time.time(), True,
                         "stopping: no new calls; the run ends when its live calls are over")


def _campaign(ledger: Ledger, name: str) -> int:
    cid = ledger.campaign_id(name)
    if cid is None:
        raise CampaignNotFound(f"no campaign named {name!r} in the ledger ({ledger.display_url})")
    return cid


def _why_not(ledger: Ledger, cid: int, name: str, action: Action) -> str:
    control = ledger.control(cid)
    who = f" by {control.by}" if control.by else ""
    now = {"pause": "paused", "stop": "stopping", "run": "not paused"}[control.action]
    return f"cannot {action} {name}: it is {now}{who}"


def _live_run(ledger: Ledger, name: str) -> dict[str, Any] | None:
    """The campaign's run in progress (its process alive), if any."""
    cid = ledger.campaign_id(name)
    if cid is None:
        return None
    for run in ledger.runs(cid, limit=3):
        if run["status"] == "running" and ledger.holder_alive(run["holder_id"]):
            return run
    return None


# --------------------------------------------------------------------------- status


def status(ledger: Ledger, name: str | None = None) -> list[CampaignStatus]:
    """Every campaign's status (or the one named), read from the ledger."""
    rows = ledger.campaigns()
    if name is not None:
        rows = [r for r in rows if r["name"] == name]
        if not rows:
            raise CampaignNotFound(f"no campaign named {name!r} in the ledger ({ledger.display_url})")
    holders = {str(h["holder_id"]): h for h in ledger.holders()}
    return [_status(ledger, row, holders) for row in rows]


def _status(ledger: Ledger, row: dict[str, Any], holders: dict[str, dict[str, Any]]) -> CampaignStatus:
    cid = int(row["id"])
    counts = ledger.customer_counts(cid)
    outcomes = {k.removeprefix("done:"): v for k, v in counts.items() if k.startswith("done:")}
    customers = sum(v for k, v in counts.items() if ":" not in k and k != "withdrawn")
    final = counts.get("done", 0)
    runs = ledger.runs(cid, limit=1)
    run = runs[0] if runs else None
    holder = holders.get(str(run["holder_id"])) if run else None
    live = run is not None and run["status"] == "running" and holder is not None and bool(holder["alive"])
    progress = Progress.from_json(run["progress"]) if live and run and run.get("progress") else None
    control = row.get("control") or "run"
    state, detail = _state(row, run, live, progress, control)
    usage = ledger.budget_usage(progress.budget_account) if progress and progress.budget_account else None
    return CampaignStatus(
        name=str(row["name"]), state=state, detail=detail,
        runner=f"{holder['hostname']} pid {holder['pid']}" if live and holder else None,
        run_id=int(run["id"]) if run else None, flow_run_id=run.get("flow_run_id") if run else None,
        control=control, control_by=row.get("control_by"), control_reason=row.get("control_reason"),
        control_at=row.get("control_at"), customers=customers, final=final, pending=customers - final,
        live_calls=progress.live_calls if progress else 0, outcomes=outcomes,
        agents=progress.agent_views if progress else (),
        budget_per_minute=progress.budget_per_minute if progress else None,
        budget_used_last_minute=int(usage["last_minute"]) if usage else None,
        stuck=progress.stuck if progress else 0, unknown=outcomes.get("unknown", 0),
        updated_at=run.get("progress_at") if live and run else None,
        agent_counts={k: v for k, v in progress.agents.__dict__.items() if v} if progress else {},
        timezone=str(row.get("timezone") or "Asia/Kolkata"))


def _state(row: dict[str, Any], run: dict[str, Any] | None, live: bool, progress: Progress | None,
           control: str) -> tuple[str, str]:
    who = f" by {row['control_by']}" if row.get("control_by") else ""
    why = f": {row['control_reason']}" if row.get("control_reason") else ""
    if live:
        if progress is None:
            return "running", "starting"
        return STATE_OF_PHASE.get(progress.phase, "running"), progress.detail or f"{progress.line()}"
    if run is not None and run["status"] == "running":
        return "crashed", "its process died; the next run takes over its calls and leases"
    if control == "pause":
        return "paused", f"paused{who}{why}; resume it to continue"
    if run is None:
        return "not started", "no run yet"
    return STATE_OF_RUN.get(str(run["status"]), str(run["status"])), str(run.get("reason") or "")


def render_status(statuses: Sequence[CampaignStatus]) -> str:
    """A table for a terminal: one line per campaign, then the live detail of running ones and the
    last control recorded for each (who, when, why)."""
    if not statuses:
        return "no campaign in the ledger yet"
    lines = [f"{'campaign':24} {'state':20} {'final':>13} {'live':>5}  detail"]
    for s in statuses:
        lines.append(f"{s.name[:24]:24} {s.state[:20]:20} {s.final:>6}/{s.customers:<6} {s.live_calls:>5}  "
                     f"{s.detail[:80]}")
    for s in statuses:
        control = s.control_line()
        if s.runner is None:
            if control is not None:
                lines.append(f"\n{s.name}: {control}")
            continue
        lines.append(f"\n{s.name}: running on {s.runner}; {s.pending} left")
        if s.agent_counts:
            counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in s.agent_counts.items())
            lines.append(f"  agents: {counts}")
        if s.budget_per_minute:
            used = "?" if s.budget_used_last_minute is None else str(s.budget_used_last_minute)
            lines.append(f"  account budget: {used} requests in the last minute of {s.budget_per_minute}/min")
        if control is not None:
            lines.append(f"  {control}")
        if s.stuck or s.unknown:
            lines.append(f"  stuck calls {s.stuck}, outcome unknown {s.unknown}")
    return "\n".join(lines)


def local_time(ts: float, zone: str) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS <zone abbreviation>`` in ``zone``."""
    from zoneinfo import ZoneInfo

    try:
        tz = ZoneInfo(zone)
    except (KeyError, ValueError):
        tz = ZoneInfo("UTC")
    return datetime.fromtimestamp(ts, tz=tz).strftime("%Y-%m-%d %H:%M:%S %Z")


# --------------------------------------------------------------------------- unknown outcomes


def unknown_calls(ledger: Ledger, name: str) -> list[UnknownCall]:
    """Customers final as ``unknown``, with the attempt, time and agent of the Make Call at issue."""
    cid = _campaign(ledger, name)
    return [UnknownCall(r["customer_key"], int(r["attempt_id"]), int(r["attempt_no"]), str(r["agent_key"]),
                        float(r["created_at"]), r["error_message"])
            for r in ledger.unknown_customers(cid)]


def requeue_unknown(ledger: Ledger, name: str, *, by: str, reason: str,
                    numbers: Iterable[str] | None = None) -> list[str]:
    """Put back in the queue the unknown customers a person confirmed were never rung (all of them,
    or those ``numbers``); their unknown attempt is not counted. Returns the numbers requeued.
    A live run picks them up within a second; nothing is ever requeued automatically."""
    cid = _campaign(ledger, name)
    wanted = {n.strip() for n in numbers} if numbers is not None else None
    return ledger.requeue_unknown(cid, keys=wanted, by=by, reason=reason, now=time.time())
