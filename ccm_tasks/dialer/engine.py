"""The dialer engine: one campaign's customers, agents and calls. Plain asyncio; no Prefect.

Per call::

    claim (one ledger transaction: lease the agent, write the attempt, customer -> calling)
    -> Make Call with the attempt's uid in custom_field (through the account's API budget)
    -> record the call_sid -> follow to terminal (polls; callbacks wake it)
    -> one transaction: the outcome, the customer's next state, the agent's lease released

Acting on a refused Make Call, by error category: agent busy -> that agent cools down and the
customer goes back to the front; agent unavailable -> agent paused and re-tried later; agent
invalid -> agent dropped from this run; campaign fatal -> no new calls, live calls are followed to
terminal, the run ends non-zero (resumable after the fix); retry later -> back off. An outcome
unknown is never re-POSTed: the attempt is marked unknown, the customer is not dialled again
automatically, and the agent stays leased until any such call must have ended.

Re-running a campaign resumes it: placed calls of a dead run are followed again; attempts written
but never answered (the process died around the POST) are marked unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ccm_tasks.clock import Clock
from ccm_tasks.dialer.agents import AgentPool, AgentSlot
from ccm_tasks.dialer.budget import ApiBudget
from ccm_tasks.dialer.follower import CallFollower, Followed
from ccm_tasks.dialer.policy import AGENT_SIDE, Counts, Decision, Policy, decide
from ccm_tasks.dialer.queue import CustomerEntry, CustomerQueue
from ccm_tasks.dialer.window import DialWindow
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.errors import CCMError, OutcomeUnknownError
from ccm_tasks.exotel.models import CallDetails, MakeCallRequest, StatusCallback
from ccm_tasks.ledger import CustomerRow, CustomerUpdate, Ledger
from ccm_tasks.redact import mask_phone

DEFAULT_RING_TIMEOUT = 60.0
DEFAULT_MAX_CALL = 3600.0


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
class EngineConfig:
    """How one campaign dials (built from its definition by ``config_from_definition``)."""

    campaign: str
    virtual_number: str
    policy: Policy = field(default_factory=Policy)
    window: DialWindow = field(default_factory=DialWindow)
    recording: bool = False
    recording_channels: str | None = None
    wait_audio_url: str | None = None
    max_time_limit: int | None = None
    attempt_time_out: int | None = None
    status_callbacks: tuple[StatusCallback, ...] = ()
    sticky_wait: float = 120.0
    agent_cooldown: float = 60.0
    agent_recheck: float = 300.0
    stuck_grace: float = 600.0
    lease_retry: float = 15.0
    max_pending_posts: int = 8
    wait_for_window: bool = True
    heartbeat_seconds: float = 5.0  # real seconds
    talk_window: float = 300.0  # with callbacks: a live conversation is checked this often

    @property
    def callbacks(self) -> bool:
        """Status callbacks are requested (polling becomes the safety net)."""
        return bool(self.status_callbacks)

    @property
    def ring_window(self) -> float:
        """With callbacks: how long a phase may go without news before a safety poll."""
        return float(self.attempt_time_out or DEFAULT_RING_TIMEOUT) + 30.0

    @property
    def max_call_seconds(self) -> float:
        """The longest a call we place can last: talk limit plus both legs ringing."""
        ring = float(self.attempt_time_out or DEFAULT_RING_TIMEOUT)
        return float(self.max_time_limit or DEFAULT_MAX_CALL) + 2 * ring

    @property
    def stuck_after(self) -> float:
        """A call not terminal this long after it was placed is reported stuck."""
        return self.max_call_seconds + self.stuck_grace

    @property
    def unknown_quarantine(self) -> float:
        """How long an agent stays leased after a Make Call whose outcome is unknown."""
        return self.max_call_seconds + self.stuck_grace


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    status: str  # completed | window_closed | campaign_ended | fatal | no_agents | stopped
    reason: str
    outcomes: dict[str, int]
    pending: int
    stuck: int
    unknown: int
    dropped_agents: dict[str, str]

    @property
    def exit_code(self) -> int:
        """0 when the run did what it could; non-zero when the campaign could not run."""
        return 1 if self.status in ("fatal", "no_agents") else 0


class CampaignEngine:
    """Dials one campaign until every customer has a final outcome or dialling must stop."""

    def __init__(self, *, config: EngineConfig, ledger: Ledger, client: CCMClient, budget: ApiBudget,
                 clock: Clock, campaign_id: int, run_id: int | None, holder_id: str,
                 agents: Sequence[AgentLike], customers: Sequence[CustomerRow],
                 log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
                 follower: CallFollower | None = None) -> None:
        self.cfg = config
        self.ledger = ledger
        self.client = client
        self.budget = budget
        self.clock = clock
        self.campaign_id = campaign_id
        self.run_id = run_id
        self.holder_id = holder_id
        self.log = log or logging.getLogger("ccm.dialer")
        now = clock.time()
        self.pool = AgentPool([AgentSlot(a.agent_key, a.user_id, a.contact_uri, a.name) for a in agents], now)
        self.roster = set(self.pool.agents)
        self.queue = CustomerQueue(config.sticky_wait, set(self.roster))
        self.entries: dict[int, CustomerEntry] = {}
        self.outcomes: Counter[str] = Counter()
        self.total = 0
        for row in customers:
            if row.state == "withdrawn":
                continue
            self.total += 1
            entry = CustomerEntry(row.id, row.phone, row.preferred_agent,
                                  Counts(row.attempts, row.agent_side_retries, row.no_dial_retries),
                                  state=row.state, last_status=row.last_status,
                                  final_status=row.final_status, next_at=row.next_attempt_at or 0.0)
            self.entries[row.id] = entry
            if row.state == "done":
                self.outcomes[row.final_status or "unknown"] += 1
            elif row.state == "pending":
                self.queue.add(entry, now)
        self.follower = follower or CallFollower(
            client, budget, clock, on_stuck=self._on_stuck, on_fatal=self._on_fatal,
            callbacks=config.callbacks, ring_window=config.ring_window, talk_window=config.talk_window)
        self.fatal: CCMError | None = None
        self.fatal_reason: str | None = None
        self.stop_reason: str | None = None
        self.post_paused_until = 0.0
        self._post_failures = 0
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._live_calls = 0
        self._posting = 0
        self._active = 0  # customers in a call task, counted when the task is spawned
        self._dialled_this_run = False
        self._waiting_logged: float | None = None
        self.stuck_attempts: set[int] = set()
        # Attempts whose Make Call outcome is unknown, until a terminal callback resolves them.
        self._unknown: dict[int, tuple[AgentSlot, CustomerEntry | None]] = {}
        self._callbacks_seen: set[int] = set()
        # Terminal callbacks that arrived before we started following their call (a call that
        # ends at once can call back before its Make Call answer is processed).
        self._early: dict[int, Any] = {}
        self._inbox_after = 0
        self.callbacks_used = 0
        self.placed = 0

    # ------------------------------------------------------------------ public

    def request_stop(self, reason: str = "stopped by operator") -> None:
        """Place no new calls; finish live ones; then end the run."""
        self.stop_reason = reason
        self._changed.set()

    def deliver_callback(self, event: Any) -> None:
        """A recorded status callback (a ``ccm_tasks.callbacks.CallbackEvent``). Idempotent."""
        if event.event_id in self._callbacks_seen:
            return
        self._callbacks_seen.add(event.event_id)
        d: CallDetails = event.details
        if event.event_type != "terminal":
            if d.call_sid:
                self.follower.on_answered(d.call_sid, d)
            return
        if d.call_sid and d.call_sid in self.follower.live:
            self.callbacks_used += 1
            if self._nothing_open(d):
                self.follower.resolve(d.call_sid, d)
            else:
                self.follower.notify(d.call_sid)  # one GET fills in what the payload left open
        elif event.attempt_id in self._unknown and d.is_terminal:
            self.callbacks_used += 1
            self._resolve_unknown(event.attempt_id, d)
        else:
            self._early[event.attempt_id] = event

    def _nothing_open(self, d: CallDetails) -> bool:
        if not d.is_terminal or d.call_status is None:
            return False
        return not (self.cfg.recording and d.call_status == "completed" and not d.recording_urls)

    def _resolve_unknown(self, attempt_id: int, d: CallDetails) -> None:
        """A Make Call whose answer was lost turns out to have placed this call: record the real
        outcome, apply the retry policy to it, and free the agent now that the call is over."""
        agent, entry = self._unknown.pop(attempt_id)
        now = self.clock.time()
        update = None
        if entry is not None and d.call_status:
            if entry.final_status == "unknown":
                self.outcomes["unknown"] -= 1
                # The unknown attempt was counted; decide() counts the real outcome instead.
                entry.counts = replace(entry.counts, attempts=max(0, entry.counts.attempts - 1))
                entry.state, entry.final_status = "calling", None
            decision = decide(d.call_status, entry.counts, self.cfg.policy, now)
            update = self._apply(entry, decision, d.call_status, now)
        self.ledger.complete_attempt(
            attempt_id, details=d.model_dump(mode="json"), summary=attempt_summary(d),
            customer_id=entry.id if entry else None, customer=update, agent_key=agent.key, release=True,
            now=now, resolved_by="callback")
        self.log.info("the unknown Make Call of attempt %d is resolved by its callback: %s", attempt_id,
                      d.call_status)
        if agent.state == "quarantined":
            self.pool.set_idle(agent, now)
        self._changed.set()

    async def _read_inbox(self) -> None:
        """Callbacks recorded by a receiver in another process reach us through the ledger."""
        from ccm_tasks.callbacks import event_from_row

        while True:
            for row in self.ledger.callback_events_since(self.campaign_id, self._inbox_after):
                self._inbox_after = max(self._inbox_after, int(row["id"]))
                if int(row["id"]) in self._callbacks_seen:
                    continue  # already delivered in-process by the hub
                event = event_from_row(row)
                if event is not None:
                    self.deliver_callback(event)
            await asyncio.sleep(0.2)

    def snapshot(self) -> dict[str, Any]:
        """Progress so far (for progress bars, logs and artifacts)."""
        agents = self.pool.counts()
        done = sum(self.outcomes.values())
        return {
            "campaign": self.cfg.campaign,
            "total": self.total,
            "done": done,
            "live_calls": self._live_calls,
            "placed": self.placed,
            "outcomes": dict(self.outcomes),
            "agents": {"busy": agents["calling"], "idle": agents["idle"],
                       "paused": agents["paused"] + agents["cooldown"] + agents["elsewhere"]
                       + agents["quarantined"], "dropped": agents["dropped"]},
            "requests": {"post": self.budget.granted["post"], "get": self.budget.granted["get"],
                         "rate_limited": self.budget.rate_limited},
            "stuck": len(self.stuck_attempts),
            "time": self.clock.time(),
        }

    async def run(self) -> RunResult:
        """Dial until done; returns how the run ended."""
        loop = asyncio.get_running_loop()
        follower_task = loop.create_task(self.follower.run(), name="follower")
        heartbeat_task = loop.create_task(self._heartbeat(), name="heartbeat")
        inbox_task = None
        try:
            self._recover()
            if self.cfg.callbacks:
                self._inbox_after = self.ledger.last_callback_id(self.campaign_id)
                self._replay_callbacks()
                inbox_task = loop.create_task(self._read_inbox(), name="callback-inbox")
            while True:
                now = self.clock.time()
                self.queue.promote(now)
                for agent, was in self.pool.wake(now):
                    self._on_agent_woken(agent, was)
                if follower_task.done():
                    self._follower_died(follower_task)
                if self._may_dial(now):
                    self._dispatch(now)
                result = self._end_state(now)
                if result is not None:
                    return result
                await self._wait(self._next_wake(now) - now)
        finally:
            follower_task.cancel()
            heartbeat_task.cancel()
            extra = [inbox_task] if inbox_task is not None else []
            for task in [*self._tasks, *extra]:
                task.cancel()
            await asyncio.gather(follower_task, heartbeat_task, *extra, *self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ loop pieces

    def _may_dial(self, now: float) -> bool:
        if self.fatal is not None or self.stop_reason is not None or not self.pool.usable():
            return False
        if not self.cfg.window.is_open(now) or now < self.post_paused_until:
            return False
        return self._posting < self.cfg.max_pending_posts

    def _may_still_dial(self) -> str | None:
        """Checked at the last moment before a Make Call leaves (after its budget wait)."""
        now = self.clock.time()
        if not self.cfg.window.is_open(now):
            return f"the calling window is {self.cfg.window.describe(now)}"
        if self.fatal is not None or self.stop_reason is not None:
            return "dialling has stopped"
        return None

    def _dispatch(self, now: float) -> None:
        if not self.queue.has_ready():
            return
        passed_over: list[AgentSlot] = []
        while self._posting < self.cfg.max_pending_posts and self.queue.has_ready():
            agent = self.pool.pop_longest_idle()
            if agent is None:
                break
            entry = self.queue.pop_for(agent.key)
            if entry is None:  # only customers waiting for other (sticky) agents
                passed_over.append(agent)
                continue
            self.pool.set_calling(agent)
            entry.state = "calling"
            self._posting += 1  # released by _call once its Make Call is answered
            self._spawn(self._call(agent, entry), f"call-{entry.id}")
        for agent in passed_over:
            self.pool.set_idle(agent, agent.idle_since)

    def _end_state(self, now: float) -> RunResult | None:
        if self._active > len(self.stuck_attempts):
            return None  # calls being placed or followed (a stuck call does not hold the run open)
        pending = self.queue.waiting
        if pending == 0:
            return self._result("completed", "every customer has a final outcome")
        if self.fatal is not None:
            return self._result("fatal", self.fatal_reason or str(self.fatal))
        if self.stop_reason is not None:
            return self._result("stopped", self.stop_reason)
        if not self.pool.usable():
            return self._result("no_agents", "no usable agent left: " + "; ".join(
                f"{a.key}: {a.reason}" for a in self.pool.agents.values() if a.state == "dropped"))
        window = self.cfg.window
        if window.ended(now):
            return self._result("campaign_ended", f"the campaign's end time has passed; {pending} left")
        if not window.is_open(now):
            nxt = window.next_open(now)
            if self._dialled_this_run or not self.cfg.wait_for_window or nxt is None:
                return self._result("window_closed",
                                    f"the calling window is {window.describe(now)}; {pending} left")
            if self._waiting_logged != nxt:
                self._waiting_logged = nxt
                self.log.info("Outside the calling window: waiting (%s)", window.describe(now))
        return None

    def _next_wake(self, now: float) -> float:
        times = [now + 30.0]
        for t in (self.queue.next_wake(), self.pool.next_wake()):
            if t is not None:
                times.append(t)
        if self.post_paused_until > now:
            times.append(self.post_paused_until)
        window = self.cfg.window
        closes = window.closes_at(now)
        times.append(closes if closes is not None else (window.next_open(now) or now + 30.0))
        return max(now, min(times))

    async def _wait(self, seconds: float) -> None:
        self._changed.clear()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the wait completes (fixed in 3.12), and a swallowed cancel hangs shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.clock.to_real(seconds) + 1e-4):
                await self._changed.wait()

    def _spawn(self, coro: Any, name: str) -> None:
        """Start work on one customer. It counts as active from now, not from when the task first
        runs: until then the customer is in neither the queue nor a live call."""
        self._active += 1
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._active -= 1
        self._changed.set()
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.log.error("internal error in %s: %r; no new calls will be placed", task.get_name(), exc)
            self._set_fatal(CCMError(f"internal error: {exc!r}"), f"internal error: {exc!r}")

    def _on_agent_woken(self, agent: AgentSlot, was: str) -> None:
        if was == "quarantined":
            # Any call an unknown Make Call might have placed is over by now: free the agent.
            self.ledger.release_lease(agent.key, self.holder_id)
        if agent.key not in self.roster:
            self.pool.drop(agent, "no longer in the roster")  # a lease adopted from a previous run

    # ------------------------------------------------------------------ one call

    async def _call(self, agent: AgentSlot, entry: CustomerEntry) -> None:
        """One customer on one agent; ``_posting`` was incremented by the dispatcher."""
        posting = True
        try:
            now = self.clock.time()
            claim = self.ledger.claim(
                agent_key=agent.key, agent_name=agent.name, holder_id=self.holder_id,
                campaign_id=self.campaign_id, run_id=self.run_id, customer_id=entry.id,
                attempt_no=1 + entry.counts.attempts + entry.counts.agent_side_retries
                + entry.counts.no_dial_retries, now=now)
            if not claim.ok:
                self._posting -= 1
                posting = False
                await self._agent_held_elsewhere(agent, entry, claim)
                return
            assert claim.attempt_id is not None and claim.attempt_uid is not None
            attempt_id = claim.attempt_id
            try:
                placed = await self.client.make_call(self._request(agent, entry, claim.attempt_uid),
                                                     guard=self._may_still_dial)
            except OutcomeUnknownError as exc:
                self._outcome_unknown(agent, entry, attempt_id, str(exc))
                return
            except CCMError as exc:
                self._refused(agent, entry, attempt_id, exc)
                return
            finally:
                self._posting -= 1
                posting = False
            self._post_failures = 0
            self._dialled_this_run = True
            self.placed += 1
            agent.calls += 1
            now = self.clock.time()
            self.ledger.mark_placed(attempt_id, agent_key=agent.key, call_sid=placed.call_sid,
                                    details=placed.model_dump(mode="json"), now=now)
            self.log.debug("placed %s: agent %s -> customer %s", placed.call_sid, agent.key,
                           mask_phone(entry.phone))
            await self._follow(agent, entry, attempt_id, placed.call_sid, placed_at=now, last=placed)
        finally:
            if posting:
                self._posting -= 1

    async def _follow(self, agent: AgentSlot, entry: CustomerEntry, attempt_id: int, call_sid: str,
                      placed_at: float, last: CallDetails | None = None) -> None:
        self._live_calls += 1
        try:
            following = self.follower.follow(call_sid, attempt_id, placed_at=placed_at,
                                             stuck_after=placed_at + self.cfg.stuck_after, last=last)
            early = self._early.pop(attempt_id, None)
            if early is not None:
                self._callbacks_seen.discard(early.event_id)
                self.deliver_callback(early)
            details = await following
        finally:
            self._live_calls -= 1
        self.stuck_attempts.discard(attempt_id)
        via = "callback" if call_sid in self.follower.resolved_by_callback else "poll"
        self.follower.resolved_by_callback.discard(call_sid)
        self._finish(agent, entry, attempt_id, details, resolved_by=via)

    def _finish(self, agent: AgentSlot, entry: CustomerEntry, attempt_id: int, details: CallDetails,
                resolved_by: str = "poll") -> None:
        now = self.clock.time()
        self._early.pop(attempt_id, None)  # its callback came after a poll had confirmed it
        status = details.call_status
        decision = (decide(status, entry.counts, self.cfg.policy, now) if status
                    else Decision(entry.counts, final="unknown"))
        update = self._apply(entry, decision, status or "unknown", now)
        self.ledger.complete_attempt(
            attempt_id, details=details.model_dump(mode="json"), summary=attempt_summary(details),
            customer_id=entry.id, customer=update, agent_key=agent.key, release=True, now=now,
            resolved_by=resolved_by)
        if decision.agent_cooldown and status in AGENT_SIDE:
            self.pool.set_timed(agent, "cooldown", now + self.cfg.agent_cooldown, status)
        else:
            self.pool.set_idle(agent, now)
        self._changed.set()

    def _apply(self, entry: CustomerEntry, decision: Decision, status: str, now: float) -> CustomerUpdate:
        """Move a customer per the decision (in memory) and return its ledger update."""
        entry.counts = decision.counts
        entry.last_status = status
        if decision.final is not None:
            entry.state, entry.final_status = "done", decision.final
            self.outcomes[decision.final] += 1
        else:
            entry.state = "pending"
            assert decision.retry_at is not None
            self.queue.schedule(entry, decision.retry_at, now, front=decision.front)
        return CustomerUpdate(state=entry.state, final_status=entry.final_status, last_status=status,
                              attempts=entry.counts.attempts,
                              agent_side_retries=entry.counts.agent_side_retries,
                              no_dial_retries=entry.counts.no_dial_retries,
                              next_attempt_at=None if decision.final else decision.retry_at)

    def _pending_update(self, entry: CustomerEntry) -> CustomerUpdate:
        return CustomerUpdate(state="pending", final_status=None, last_status=entry.last_status,
                              attempts=entry.counts.attempts,
                              agent_side_retries=entry.counts.agent_side_retries,
                              no_dial_retries=entry.counts.no_dial_retries, next_attempt_at=entry.next_at)

    def _unknown_update(self, entry: CustomerEntry, *, count_attempt: bool) -> CustomerUpdate:
        """The customer is final as ``unknown`` (invariant 3: never re-dialled automatically)."""
        if count_attempt:
            entry.counts = replace(entry.counts, attempts=entry.counts.attempts + 1)
        entry.state, entry.final_status, entry.last_status = "done", "unknown", "unknown"
        self.outcomes["unknown"] += 1
        return CustomerUpdate(state="done", final_status="unknown", last_status="unknown",
                              attempts=entry.counts.attempts,
                              agent_side_retries=entry.counts.agent_side_retries,
                              no_dial_retries=entry.counts.no_dial_retries, next_attempt_at=None)

    def _refused(self, agent: AgentSlot, entry: CustomerEntry, attempt_id: int, exc: CCMError) -> None:
        """The API refused the Make Call: nothing rang. Act on the error's category."""
        now = self.clock.time()
        entry.state = "pending"
        self.ledger.mark_rejected(attempt_id, agent_key=agent.key, holder_id=self.holder_id,
                                  customer_id=entry.id, customer=self._pending_update(entry),
                                  category=exc.category, code=getattr(exc, "code", None),
                                  message=str(exc), now=now)
        self.queue.put_back_front(entry, now)
        category = exc.category
        if category == "not_sent":  # the window closed (or dialling stopped) while it waited
            self.pool.set_idle(agent, agent.idle_since)
        elif category == "agent_busy":
            self.log.info("agent %s is on another call (10706): cooling down %.0fs", agent.key,
                          self.cfg.agent_cooldown)
            self.pool.set_timed(agent, "cooldown", now + self.cfg.agent_cooldown, "busy (10706)")
        elif category == "agent_unavailable":
            self.log.warning("agent %s unavailable (%s): paused, re-checked in %.0fs", agent.key, exc,
                             self.cfg.agent_recheck)
            self.pool.set_timed(agent, "paused", now + self.cfg.agent_recheck, str(exc))
        elif category == "agent_invalid":
            self.log.warning("agent %s dropped from this campaign: %s", agent.key, exc)
            self.pool.drop(agent, str(exc))
            self.queue.drop_sticky_agent(agent.key, now)
            self.ledger.add_event("agent_dropped", now, campaign_id=self.campaign_id, agent_key=agent.key,
                                  data={"reason": str(exc)})
        elif category in ("campaign_fatal", "invalid_request"):
            self.pool.set_idle(agent, agent.idle_since)
            if self._set_fatal(exc):
                self.log.error("Stopping new calls: %s. Live calls will be followed to the end; "
                               "fix the cause and run again to resume.", exc)
                self.ledger.add_event("campaign_fatal", now, campaign_id=self.campaign_id,
                                      data={"error": str(exc)})
        else:  # retry later: 5xx, 429, connection trouble, anything unexpected
            self._post_failures += 1
            pause = min(60.0, 2.0 ** min(self._post_failures, 6))
            self.post_paused_until = max(self.post_paused_until, now + pause)
            self.log.warning("Make Call failed (%s); pausing new calls %.0fs", exc, pause)
            self.pool.set_idle(agent, agent.idle_since)
        self._changed.set()

    def _outcome_unknown(self, agent: AgentSlot, entry: CustomerEntry, attempt_id: int, message: str) -> None:
        """Invariant 3: never re-POST. The customer is not dialled again automatically; the agent
        stays leased until any call we might have placed must be over."""
        now = self.clock.time()
        until = now + self.cfg.unknown_quarantine
        update = self._unknown_update(entry, count_attempt=True)
        self.ledger.mark_unknown(attempt_id, agent_key=agent.key, customer_id=entry.id, customer=update,
                                 message=message, quarantine_until=until, now=now)
        self.log.warning("Make Call outcome unknown for customer %s (agent %s): not retried; agent held "
                         "until %s", mask_phone(entry.phone), agent.key, _fmt(until))
        self.pool.set_timed(agent, "quarantined", until, "outcome unknown")
        self._unknown[attempt_id] = (agent, entry)
        self._dialled_this_run = True
        self._changed.set()

    async def _agent_held_elsewhere(self, agent: AgentSlot, entry: CustomerEntry, claim: Any) -> None:
        """Someone else holds this agent's lease. If that holder is dead, confirm its call is over
        (GET) before taking the lease over; never guess."""
        now = self.clock.time()
        entry.state = "pending"
        self.queue.put_back_front(entry, now)
        if claim.holder_alive:
            self.pool.set_timed(agent, "elsewhere", now + self.cfg.lease_retry, "leased by another run")
            self._changed.set()
            return
        retry_at = now + self.cfg.lease_retry
        if claim.quarantine_until is not None and claim.quarantine_until > now:
            retry_at = claim.quarantine_until
        elif claim.old_call_sid:
            try:
                details = await self.client.get_call_details(claim.old_call_sid)
            except CCMError as exc:
                self.log.warning("cannot confirm agent %s's previous call %s: %s", agent.key,
                                 claim.old_call_sid, exc)
                details = None
            if details is not None and details.is_terminal:
                if claim.old_attempt_id is not None:
                    self.ledger.complete_attempt(
                        claim.old_attempt_id, details=details.model_dump(mode="json"),
                        summary=attempt_summary(details), customer_id=None, customer=None,
                        agent_key=agent.key, release=False, now=now, resolved_by="takeover")
                if self.ledger.take_over_lease(agent.key, from_holder=str(claim.holder_id),
                                               holder_id=self.holder_id, now=now):
                    self.log.info("took over agent %s after confirming call %s is over", agent.key,
                                  claim.old_call_sid)
                    retry_at = now
        elif claim.old_attempt_id is not None:
            # The dead holder wrote an attempt but never learned its call: the call may exist.
            attempt = self.ledger.attempt(claim.old_attempt_id)
            created = float(attempt["created_at"]) if attempt else now
            until = created + self.cfg.unknown_quarantine
            if until > now:
                if attempt and attempt["state"] == "created":
                    self.ledger.mark_unknown(claim.old_attempt_id, agent_key=agent.key, customer_id=None,
                                             customer=None, message="its process died around Make Call",
                                             quarantine_until=until, now=now)
                retry_at = until
            elif self.ledger.take_over_lease(agent.key, from_holder=str(claim.holder_id),
                                             holder_id=self.holder_id, now=now):
                retry_at = now
        elif self.ledger.take_over_lease(agent.key, from_holder=str(claim.holder_id),
                                         holder_id=self.holder_id, now=now):
            retry_at = now
        if retry_at <= now:
            self.pool.set_idle(agent, agent.idle_since)
        else:
            self.pool.set_timed(agent, "elsewhere", retry_at, "previous call not confirmed over")
        self._changed.set()

    def _request(self, agent: AgentSlot, entry: CustomerEntry, uid: str) -> MakeCallRequest:
        cfg = self.cfg
        src = {"user_id": agent.user_id} if agent.user_id else {"user_contact_uri": agent.contact_uri}
        return MakeCallRequest.model_validate({
            "from": src,
            "to": {"customer_contact_uri": entry.phone},
            "virtual_number": cfg.virtual_number,
            "recording": cfg.recording or None,
            "recording_channels": cfg.recording_channels if cfg.recording else None,
            "wait_audio_url": cfg.wait_audio_url,
            "max_time_limit": cfg.max_time_limit,
            "attempt_time_out": cfg.attempt_time_out,
            "custom_field": uid,
            "status_callback": [cb.model_dump() for cb in cfg.status_callbacks] or None,
        })

    # ------------------------------------------------------------------ recovery, stuck, fatal

    def _recover(self) -> None:
        """Resume a campaign whose previous run died: follow its placed calls, mark the rest."""
        now = self.clock.time()
        resumed: set[int] = set()
        for attempt in self.ledger.open_attempts(self.campaign_id):
            if attempt.holder_id == self.holder_id:
                continue
            if self.ledger.holder_alive(attempt.holder_id):
                self.log.warning("attempt %d is held by a live process; leaving it alone", attempt.id)
                continue
            entry = self.entries.get(attempt.customer_id)
            agent = self.pool.get(attempt.agent_key)
            if agent is None:  # not in today's roster: follow its call, then drop it
                agent = AgentSlot(attempt.agent_key, None, None, None)
                self.pool.agents[agent.key] = agent
            self.ledger.adopt_lease(attempt.agent_key, from_holder=attempt.holder_id,
                                    holder_id=self.holder_id)
            if attempt.state == "placed" and attempt.call_sid and entry is not None:
                self.log.info("resuming: following call %s placed by a previous run", attempt.call_sid)
                self.pool.set_calling(agent)
                entry.state = "calling"
                resumed.add(entry.id)
                self._spawn(self._follow(agent, entry, attempt.id, attempt.call_sid,
                                         placed_at=attempt.placed_at or attempt.created_at),
                            f"resume-{attempt.id}")
                continue
            until = attempt.created_at + self.cfg.unknown_quarantine
            if attempt.state == "created":
                self.log.warning("resuming: attempt %d was written but its Make Call never answered "
                                 "(the process died around the POST): marked unknown, not re-dialled",
                                 attempt.id)
                update = None if entry is None else self._unknown_update(entry, count_attempt=True)
                self.ledger.mark_unknown(attempt.id, agent_key=attempt.agent_key,
                                         customer_id=entry.id if entry else None, customer=update,
                                         message="the process died around Make Call",
                                         quarantine_until=until, now=now)
            if attempt.state in ("created", "unknown"):
                self._unknown[attempt.id] = (agent, entry)
            if until > now:
                self.pool.set_timed(agent, "quarantined", until, "outcome unknown")
            else:
                self.ledger.release_lease(attempt.agent_key, self.holder_id)
        # A customer left "calling" with no open attempt: its attempt was finished by another
        # run (a lease takeover records the outcome but not our policy decision). Decide now.
        for entry in self.entries.values():
            if entry.state != "calling" or entry.id in resumed:
                continue
            last = self.ledger.last_attempt(entry.id)
            if last is not None and last["state"] == "terminal" and last["call_status"]:
                self._apply_recovered(entry, str(last["call_status"]), now)
            elif last is not None and last["state"] == "unknown":
                self.ledger.update_customer(entry.id, self._unknown_update(entry, count_attempt=False), now)
            else:
                entry.state = "pending"
                self.queue.add(entry, now)
                self.ledger.update_customer(entry.id, self._pending_update(entry), now)

    def _apply_recovered(self, entry: CustomerEntry, status: str, now: float) -> None:
        decision = decide(status, entry.counts, self.cfg.policy, now)
        self.ledger.update_customer(entry.id, self._apply(entry, decision, status, now), now)

    def _replay_callbacks(self) -> None:
        """Terminal callbacks that arrived while no run was following their calls."""
        from ccm_tasks.callbacks import event_from_row

        for row in self.ledger.pending_terminal_callbacks(self.campaign_id):
            event = event_from_row(row)
            if event is not None:
                self.deliver_callback(event)

    def _follower_died(self, task: asyncio.Task[None]) -> None:
        """Without the follower no call can be confirmed: stop, loudly, rather than hang."""
        exc = None if task.cancelled() else task.exception()
        reason = f"internal error: call follower stopped ({exc!r})"
        self.log.error("%s; no new calls will be placed", reason)
        self._set_fatal(CCMError(reason), reason)
        raise RuntimeError(reason) from exc

    def _on_stuck(self, item: Followed) -> None:
        self.stuck_attempts.add(item.attempt_id)
        now = self.clock.time()
        self.ledger.mark_stuck(item.attempt_id, now)
        self.log.warning("call %s is stuck: not terminal %.0fs after it was placed; its agent stays "
                         "leased until the call is confirmed or an operator releases it",
                         item.call_sid, now - item.placed_at)
        self._changed.set()

    def _on_fatal(self, exc: CCMError) -> None:
        if self._set_fatal(exc):
            self.log.error("Stopping new calls: %s", exc)
        self._changed.set()

    def _set_fatal(self, exc: CCMError, reason: str | None = None) -> bool:
        """Record why dialling must stop; True the first time (later errors keep the first reason)."""
        if self.fatal is not None:
            return False
        self.fatal = exc
        self.fatal_reason = reason or f"{type(exc).__name__}: {exc}"
        return True

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_seconds)
            try:
                self.ledger.heartbeat(self.holder_id)
            except Exception as exc:  # pragma: no cover - a transient lock; the next beat retries
                self.log.warning("heartbeat failed: %s", exc)

    # ------------------------------------------------------------------ result

    def _result(self, status: str, reason: str) -> RunResult:
        dropped = {a.key: a.reason or "" for a in self.pool.agents.values() if a.state == "dropped"}
        return RunResult(status=status, reason=reason, outcomes=dict(self.outcomes),
                         pending=self.queue.waiting, stuck=len(self.stuck_attempts),
                         unknown=self.outcomes.get("unknown", 0), dropped_agents=dropped)


def attempt_summary(details: CallDetails) -> dict[str, Any]:
    """The attempt columns taken from terminal call details."""
    def ts(value: datetime | None) -> float | None:
        return value.timestamp() if value is not None else None

    return {
        "call_status": details.call_status,
        "agent_leg_status": details.agent_leg_status,
        "customer_leg_status": details.customer_leg_status,
        "start_time": ts(details.start_time),
        "end_time": ts(details.end_time),
        "total_talk_time": details.total_talk_time,
        "total_duration": details.total_duration,
        "recordings": details.recording_urls or None,
    }


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def config_from_definition(definition: Any, *, status_callbacks: Sequence[StatusCallback] = (),
                           wait_for_window: bool = True) -> EngineConfig:
    """An :class:`EngineConfig` from a validated campaign definition."""
    d = definition
    window = DialWindow(start=d.window.start, end=d.window.end, timezone=d.window.timezone,
                        days=tuple(d.window.days),
                        start_at=d.start_at.timestamp() if d.start_at else None,
                        end_at=d.end_at.timestamp() if d.end_at else None)
    policy = Policy(max_attempts=d.retry.max_attempts, interval_seconds=d.retry.interval_minutes * 60,
                    backoff=d.retry.backoff, retry_on=frozenset(d.retry.retry_on),
                    customer_no_dial_max_retries=d.retry.customer_no_dial_max_retries,
                    max_agent_side_retries=d.retry.max_agent_side_retries)
    return EngineConfig(
        campaign=d.name, virtual_number=d.virtual_number, policy=policy, window=window,
        recording=d.call.recording, recording_channels=d.call.recording_channels,
        wait_audio_url=d.call.wait_audio_url, max_time_limit=d.call.max_time_limit,
        attempt_time_out=d.call.attempt_time_out, status_callbacks=tuple(status_callbacks),
        sticky_wait=d.dialer.sticky_wait_seconds, agent_cooldown=d.dialer.agent_cooldown_seconds,
        agent_recheck=d.dialer.agent_recheck_seconds, stuck_grace=d.dialer.stuck_grace_seconds,
        wait_for_window=wait_for_window)

