"""What a run reports about itself: live progress while it dials, and how it ended.

:class:`Progress` is written to the ledger every second (``runs.progress``), so ``ccm status`` and
the console show the same figures from any machine; the progress bar and the Prefect artifacts read
it too. Everything here is a frozen value read by attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Phase = Literal["dialling", "paused", "stopping", "waiting for window", "backing off", "draining"]
"""What the engine is doing: placing calls, held by an operator, finishing live calls before it
stops, waiting for the calling window, backing off after errors, or finishing after a fatal error."""

AgentLabel = Literal["busy", "idle", "wrap-up", "cooling down", "unavailable", "held by another run",
                     "quarantined", "dropped"]

RunStatus = Literal["completed", "window_closed", "campaign_ended", "fatal", "no_agents", "stopped",
                    "paused", "cancelled", "interrupted", "crashed"]
"""How a run ended (``crashed``: recorded by a later run for one whose process died)."""


@dataclass(frozen=True)
class AgentCounts:
    """Agents by what they are doing now."""

    busy: int = 0
    idle: int = 0
    wrap_up: int = 0
    cooling_down: int = 0
    unavailable: int = 0
    elsewhere: int = 0
    quarantined: int = 0
    dropped: int = 0

    @property
    def not_taking_calls(self) -> int:
        """Agents that could take calls later but not now (everything but busy, idle, dropped)."""
        return self.wrap_up + self.cooling_down + self.unavailable + self.elsewhere + self.quarantined


@dataclass(frozen=True)
class AgentView:
    """One agent, for status pages."""

    key: str
    name: str | None
    state: AgentLabel
    reason: str | None = None
    until: float | None = None


@dataclass(frozen=True)
class RequestCounts:
    """CCM API requests this run sent (not merely granted), and 429s it heard."""

    post_sent: int = 0
    get_sent: int = 0
    rate_limited: int = 0


@dataclass(frozen=True)
class Progress:
    """A run's figures at one moment."""

    campaign: str
    phase: Phase
    detail: str
    total: int
    done: int
    live_calls: int
    placed: int  # Make Calls this run placed (the API answered 200)
    outcomes: Mapping[str, int]
    agents: AgentCounts
    requests: RequestCounts
    stuck: int
    unknown: int
    time: float  # the campaign clock
    agent_views: tuple[AgentView, ...] = field(default=())
    budget_per_minute: int | None = None
    budget_account: str | None = None  # names the account's bucket in the ledger (status pages)

    @property
    def fraction(self) -> float:
        """Customers with a final outcome, 0..1."""
        return self.done / self.total if self.total else 1.0

    def to_json(self) -> dict[str, Any]:
        """For the ledger (``runs.progress``)."""
        data = asdict(self)
        data["outcomes"] = dict(self.outcomes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Progress:
        """Back from the ledger."""
        return cls(
            campaign=str(data["campaign"]), phase=data["phase"], detail=str(data.get("detail", "")),
            total=int(data["total"]), done=int(data["done"]), live_calls=int(data["live_calls"]),
            placed=int(data.get("placed", 0)), outcomes=dict(data.get("outcomes") or {}),
            agents=AgentCounts(**data.get("agents") or {}),
            requests=RequestCounts(**data.get("requests") or {}),
            stuck=int(data.get("stuck", 0)), unknown=int(data.get("unknown", 0)), time=float(data["time"]),
            agent_views=tuple(AgentView(**v) for v in data.get("agent_views") or ()),
            budget_per_minute=data.get("budget_per_minute"), budget_account=data.get("budget_account"))

    def line(self) -> str:
        """One line: customers, live calls, agents by state, outcomes (the progress log)."""
        a = self.agents
        parts = [f"{a.busy} busy", f"{a.idle} idle"]
        for count, label in ((a.wrap_up, "wrap-up"), (a.cooling_down, "cooling down"),
                             (a.unavailable, "unavailable"), (a.elsewhere, "held by another run"),
                             (a.quarantined, "quarantined"), (a.dropped, "dropped")):
            if count:
                parts.append(f"{count} {label}")
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items(), key=lambda kv: -kv[1]))
        phase = "" if self.phase == "dialling" else f" | {self.phase}"
        return (f"{self.done}/{self.total} final | {self.live_calls} live | agents " + ", ".join(parts)
                + phase + (f" | {outcomes}" if outcomes else ""))


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    status: RunStatus
    reason: str
    outcomes: Mapping[str, int]
    pending: int
    stuck: int
    unknown: int
    dropped_agents: Mapping[str, str]
    paused_agents: Mapping[str, str] = field(default_factory=dict)  # unavailable at the end (why)

    @property
    def exit_code(self) -> int:
        """0 when the run did what it could; 1 when the campaign could not run; 130 interrupted."""
        if self.status in ("fatal", "no_agents"):
            return 1
        return 130 if self.status == "interrupted" else 0
