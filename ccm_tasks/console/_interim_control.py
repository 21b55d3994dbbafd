"""A stand-in for ``ccm_tasks.control`` (issue 14) until it lands on this branch.

Same names and shapes as the interface agreed for ``ccm_tasks/control.py``; :mod:`.controls` uses
the real module as soon as it exists, and this file goes then. ``status`` reads what the ledger
already records (customers, open attempts, the runner lock); pause, resume and stop refuse, because
only the real module has an engine that obeys them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select

from ccm_tasks.ledger import LIVE_ATTEMPT, CustomerState, Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.states import values


class CampaignNotFound(LookupError):
    """No campaign of that name in the ledger."""


class ControlRefused(Exception):
    """The control cannot be applied; the message says why."""


@dataclass(frozen=True)
class ControlChange:
    """A control applied to a campaign."""

    campaign: str
    action: Literal["pause", "resume", "stop"]
    by: str
    reason: str
    at: float
    running: bool
    message: str


@dataclass(frozen=True)
class AgentView:
    """One agent as a live run sees it."""

    key: str
    name: str | None
    state: str
    reason: str | None
    until: float | None


@dataclass(frozen=True)
class CampaignStatus:
    """Where a campaign stands, from any process sharing the ledger."""

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

    @property
    def progress(self) -> float:
        """Share of customers with a final outcome, 0..1."""
        return self.final / self.customers if self.customers else 0.0


_NOT_YET = ("pause, resume and stop need the campaign controls of issue 14 (ccm_tasks/control.py), "
            "which are not on this build yet")


def pause(ledger: Ledger, name: str, *, by: str, reason: str) -> ControlChange:
    """Refuses: the engine of this build cannot be paused."""
    raise ControlRefused(_NOT_YET)


def resume(ledger: Ledger, name: str, *, by: str, reason: str) -> ControlChange:
    """Refuses: the engine of this build cannot be paused, so nothing to resume."""
    raise ControlRefused(_NOT_YET)


def stop(ledger: Ledger, name: str, *, by: str, reason: str) -> ControlChange:
    """Refuses: the engine of this build reads no stop request from the ledger."""
    raise ControlRefused(_NOT_YET)


def status(ledger: Ledger, name: str | None = None) -> list[CampaignStatus]:
    """Every campaign's status (or the one named), from the ledger's rows."""
    query = select(t.campaigns).order_by(t.campaigns.c.name)
    if name is not None:
        query = query.where(t.campaigns.c.name == name)
    out: list[CampaignStatus] = []
    with ledger.read() as conn:
        rows = conn.execute(query).mappings().all()
        if name is not None and not rows:
            raise CampaignNotFound(f"no campaign named {name!r} in the ledger")
        for row in rows:
            cid = row["id"]
            states: dict[str, int] = {str(k): int(v) for k, v in conn.execute(
                select(t.customers.c.state, func.count()).where(t.customers.c.campaign_id == cid)
                .group_by(t.customers.c.state)).all()}
            outcomes = {str(k): int(v) for k, v in conn.execute(
                select(t.customers.c.final_status, func.count())
                .where(t.customers.c.campaign_id == cid, t.customers.c.state == CustomerState.DONE)
                .group_by(t.customers.c.final_status)).all()}
            live = int(conn.execute(select(func.count()).select_from(t.attempts).where(
                t.attempts.c.campaign_id == cid,
                t.attempts.c.state.in_(values(LIVE_ATTEMPT)))).scalar() or 0)
            stuck = int(conn.execute(select(func.count()).select_from(t.attempts).where(
                t.attempts.c.campaign_id == cid, t.attempts.c.state.in_(values(LIVE_ATTEMPT)),
                t.attempts.c.stuck_at.is_not(None))).scalar() or 0)
            unknown = int(conn.execute(select(func.count()).select_from(t.attempts).where(
                t.attempts.c.campaign_id == cid, t.attempts.c.state == "unknown")).scalar() or 0)
            run = conn.execute(select(t.runs).where(t.runs.c.campaign_id == cid)
                               .order_by(t.runs.c.id.desc()).limit(1)).mappings().first()
            holder = row["runner_holder"]
            alive = ledger.holder_alive(holder, conn) if holder else False
            where = None
            if alive:
                h = conn.execute(select(t.holders).where(t.holders.c.holder_id == holder)).mappings().one()
                where = f"{'this host' if h['hostname'] == socket.gethostname() else h['hostname']} " \
                        f"pid {h['pid']}"
            customers = sum(states.values())
            final = int(states.get(CustomerState.DONE, 0))
            withdrawn = int(states.get(CustomerState.WITHDRAWN, 0))
            state, detail = _state(str(row["status"]), row["status_reason"], alive, bool(holder))
            out.append(CampaignStatus(
                name=str(row["name"]), state=state, detail=detail, runner=where,
                run_id=int(run["id"]) if run is not None else None,
                flow_run_id=run["flow_run_id"] if run is not None else None,
                control=str(row["control"] or "run"), control_by=row["control_by"],
                control_reason=row["control_reason"], control_at=row["control_at"],
                customers=customers - withdrawn, final=final,
                pending=customers - withdrawn - final, live_calls=live, outcomes=outcomes, agents=(),
                budget_per_minute=None, budget_used_last_minute=None, stuck=stuck, unknown=unknown,
                # The campaign row's times are on the run's clock (a time-scaled simulator's runs
                # ahead of the wall clock); only the real module's live figures carry wall time.
                updated_at=None))
    return out


def _state(status: str, reason: str | None, alive: bool, held: bool) -> tuple[str, str]:
    if alive:
        return "running", "a run is dialling this campaign"
    if held or status == "running":
        return "crashed", "its last run stopped without recording how it ended; launch it again to resume"
    if status == "new":
        return "not started", "no run yet"
    return status, reason or ""
