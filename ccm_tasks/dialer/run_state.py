"""What one run of a campaign holds in memory, shared by the engine's pieces.

Every change here is written to the ledger with the event that caused it (invariant 4); this is
the run's working copy: the agents, the queue, the calls in progress, and why dialling may be held.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ccm_tasks.clock import Clock
from ccm_tasks.dialer.agents import AgentPool, AgentSlot
from ccm_tasks.dialer.config import EngineConfig
from ccm_tasks.dialer.customers import CustomerEntry
from ccm_tasks.dialer.policy import Counts, Decision
from ccm_tasks.dialer.progress import Phase
from ccm_tasks.dialer.queue import CustomerQueue
from ccm_tasks.dialer.window import CallingHours
from ccm_tasks.exotel.errors import CCMError
from ccm_tasks.inputs.phones import time_zones
from ccm_tasks.ledger import CustomerRow, CustomerState, CustomerUpdate

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

CallPhase = Literal["granting", "sending", "live"]


class AgentLike(Protocol):
    """What the engine needs of a roster entry."""

    @property
    def agent_key(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def contact_uri(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...


@dataclass(frozen=True)
class RunIds:
    """Who this run is in the ledger."""

    campaign_id: int
    run_id: int | None
    holder_id: str


@dataclass
class CallTask:
    """One customer on one agent, from dispatch until the agent is released."""

    agent: AgentSlot
    entry: CustomerEntry
    phase: CallPhase = "granting"
    attempt_id: int | None = None


@dataclass
class Held:
    """Why new calls are held, besides the window: an operator, a fatal error, errors backing off."""

    control: Literal["run", "pause", "stop"] = "run"
    control_reason: str | None = None
    stop_reason: str | None = None
    fatal: CCMError | None = None
    fatal_reason: str | None = None
    post_paused_until: float = 0.0
    post_failures: int = 0


class RunState:
    """The run's agents, customers, calls in progress and holds; the pieces share one instance."""

    def __init__(self, cfg: EngineConfig, ids: RunIds, clock: Clock, log: Logger,
                 agents: Sequence[AgentLike], customers: Sequence[CustomerRow]) -> None:
        self.cfg, self.ids, self.clock, self.log = cfg, ids, clock, log
        now = clock.time()
        self.pool = AgentPool([AgentSlot(a.agent_key, a.user_id, a.contact_uri, a.name) for a in agents], now)
        self.roster = set(self.pool.agents)
        self.queue = CustomerQueue(cfg.sticky_wait, set(self.roster))
        self.hours = CallingHours(cfg.window)
        self.entries: dict[int, CustomerEntry] = {}
        self.outcomes: Counter[str] = Counter()
        for row in customers:
            if row.state == CustomerState.WITHDRAWN:
                continue
            entry = CustomerEntry(row.id, row.phone, row.preferred_agent,
                                  Counts(row.attempts, row.agent_side_retries, row.no_dial_retries),
                                  state=CustomerState(row.state), last_status=row.last_status,
                                  final_status=row.final_status, next_at=row.next_attempt_at or 0.0,
                                  customer_key=row.customer_key, zones=self._zones(row.phone))
            self.entries[row.id] = entry
            if entry.state == CustomerState.DONE:
                self.outcomes[row.final_status or "unknown"] += 1
            elif entry.state == CustomerState.PENDING:
                self.queue.add(entry, now)
        self.total = len(self.entries)
        self.calls: dict[int, CallTask] = {}  # by customer id
        # Attempts whose Make Call outcome is unknown, until a terminal callback resolves them.
        self.unknown: dict[int, tuple[AgentSlot, CustomerEntry | None]] = {}
        self.stuck: set[int] = set()
        self.held = Held()
        self.dialled = False  # a Make Call of this run was answered (or may have been)
        self.placed = 0
        self.changed = asyncio.Event()

    def _zones(self, phone: str) -> tuple[str, ...] | None:
        """The recipient's zones when they differ from the campaign's (else None: nothing to check)."""
        zones = time_zones(phone)
        if zones is None or len(self.hours.windows(zones)) == 1:
            return None
        return zones

    def recipient_opens(self, entry: CustomerEntry, now: float) -> float | None:
        """None if the recipient may be called now; else when their own calling hours open."""
        if entry.zones is None or self.hours.is_open(entry.zones, now):
            return None
        return self.hours.next_open(entry.zones, now) or now + 86400.0

    def hold_for_hours(self, entry: CustomerEntry, until: float, now: float) -> None:
        """Outside the recipient's own hours: back in the queue until they open (no attempt used)."""
        entry.pending()
        self.queue.schedule(entry, until, now)

    # ------------------------------------------------------------------ derived counts

    @property
    def live_calls(self) -> int:
        """Calls placed and being followed to terminal."""
        return sum(1 for c in self.calls.values() if c.phase == "live")

    @property
    def placing(self) -> int:
        """Calls dispatched whose Make Call has not been answered yet (waiting for a grant, or sent)."""
        return sum(1 for c in self.calls.values() if c.phase != "live")

    @property
    def done(self) -> int:
        """Customers with a final outcome."""
        return sum(self.outcomes.values())

    # ------------------------------------------------------------------ holds

    def wake(self) -> None:
        """Something changed: the dispatch loop looks again."""
        self.changed.set()

    def set_fatal(self, exc: CCMError, reason: str | None = None) -> bool:
        """Record why dialling must stop; True the first time (later errors keep the first reason)."""
        if self.held.fatal is not None:
            return False
        self.held.fatal = exc
        hint = f"; {exc.hint}" if exc.hint else ""
        self.held.fatal_reason = reason or f"{type(exc).__name__}: {exc}{hint}"
        self.wake()
        return True

    def request_stop(self, reason: str) -> None:
        """Place no new calls; finish live ones; then end the run."""
        if self.held.stop_reason is None:
            self.held.stop_reason = reason
        self.wake()

    def refusal(self, now: float) -> str | None:
        """Why a Make Call must not leave now (checked just before its attempt is written)."""
        if not self.cfg.window.is_open(now):
            return f"the calling window is {self.cfg.window.describe(now)}"
        h = self.held
        if h.fatal is not None or h.stop_reason is not None:
            return "dialling has stopped"
        if h.control == "pause":
            return "the campaign is paused"
        return None

    def may_dispatch(self, now: float) -> bool:
        """Whether the loop may hand out new calls now."""
        if self.refusal(now) is not None or now < self.held.post_paused_until or not self.pool.usable():
            return False
        return self.placing < self.cfg.max_pending_posts

    def phase(self, now: float) -> tuple[Phase, str]:
        """What the engine is doing, and why, in words."""
        h = self.held
        if h.fatal is not None:
            return "draining", h.fatal_reason or str(h.fatal)
        if h.stop_reason is not None:
            return "stopping", h.stop_reason
        if h.control == "pause":
            return "paused", h.control_reason or "paused by an operator"
        if not self.cfg.window.is_open(now):
            return "waiting for window", f"the calling window is {self.cfg.window.describe(now)}"
        if now < h.post_paused_until:
            return "backing off", f"new calls resume in {h.post_paused_until - now:.0f}s after errors"
        return "dialling", ""

    # ------------------------------------------------------------------ customer transitions

    def outcome(self, entry: CustomerEntry, decision: Decision, status: str, now: float) -> CustomerUpdate:
        """Apply a decision: final (counted) or pending again at its retry time (queued)."""
        update = entry.decided(decision, status)
        if decision.final is not None:
            self.outcomes[decision.final] += 1
        else:
            assert decision.retry_at is not None
            self.queue.schedule(entry, decision.retry_at, now, front=decision.front)
        return update

    def final_unknown(self, entry: CustomerEntry, *, count_attempt: bool) -> CustomerUpdate:
        """The customer is final as ``unknown`` (invariant 3: never re-dialled automatically)."""
        update = entry.final_unknown(count_attempt=count_attempt)
        self.outcomes["unknown"] += 1
        return update

    def reopen_unknown(self, entry: CustomerEntry) -> None:
        """Its unknown Make Call turned out to have a real outcome, about to be decided."""
        if entry.final_status == "unknown":
            self.outcomes["unknown"] -= 1
            entry.reopen_unknown()

    def back_to_front(self, entry: CustomerEntry, now: float) -> CustomerUpdate:
        """Nothing rang (refused, never sent, or the agent was taken): first in line again."""
        update = entry.pending()
        self.queue.put_back_front(entry, now)
        return update
