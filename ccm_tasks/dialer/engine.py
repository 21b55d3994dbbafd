"""The dialer engine: one campaign's dispatch loop. Plain asyncio; no Prefect.

The pieces (docs/architecture.md draws them):

* :class:`~ccm_tasks.dialer.run_state.RunState`: the run's agents, queue, calls and holds;
* :class:`~ccm_tasks.dialer.calls.CallLifecycle`: one call, grant -> claim -> POST -> follow ->
  outcome -> retry decision -> release (invariants 2 and 3);
* :class:`~ccm_tasks.dialer.recovery.LeaseRecovery`: a dead run's calls and leases (invariant 1);
* :class:`~ccm_tasks.dialer.inbox.CallbackRouter`: status callbacks, in-process or via the ledger;
* :class:`~ccm_tasks.dialer.follower.CallFollower`: polling inside the API budget;
* :class:`~ccm_tasks.dialer.operators.OperatorControls`: pause, resume, stop and requeues, read
  from the ledger every ``control_seconds``;
* this module: the loop that hands customers to the longest-idle agents while the window, the
  budget and the operators allow, and ends the run when there is nothing left it can do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from typing import Any

from ccm_tasks.callbacks import CallbackEvent
from ccm_tasks.clock import Clock
from ccm_tasks.dialer.agents import AgentSlot
from ccm_tasks.dialer.budget import Gate
from ccm_tasks.dialer.calls import CallLifecycle
from ccm_tasks.dialer.config import EngineConfig
from ccm_tasks.dialer.customers import CustomerEntry
from ccm_tasks.dialer.db import LedgerThread
from ccm_tasks.dialer.follower import CallFollower, Followed
from ccm_tasks.dialer.inbox import CallbackRouter
from ccm_tasks.dialer.journal import SendJournal
from ccm_tasks.dialer.operators import OperatorControls
from ccm_tasks.dialer.progress import Progress, RequestCounts, RunResult, RunStatus
from ccm_tasks.dialer.recovery import LeaseRecovery
from ccm_tasks.dialer.run_state import AgentLike, CallTask, Logger, RunIds, RunState
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.errors import CCMError
from ccm_tasks.ledger import CustomerRow, Ledger


class CampaignEngine:
    """Dials one campaign until every customer has a final outcome or dialling must stop."""

    def __init__(self, *, config: EngineConfig, ledger: Ledger, client: CCMClient, budget: Gate,
                 clock: Clock, campaign_id: int, run_id: int | None, holder_id: str,
                 agents: Sequence[AgentLike], customers: Sequence[CustomerRow], log: Logger | None = None,
                 follower: CallFollower | None = None, journal: SendJournal | None = None,
                 budget_per_minute: int | None = None, budget_account: str | None = None) -> None:
        import logging

        self.cfg, self.ledger, self.client, self.budget, self.clock = config, ledger, client, budget, clock
        self.budget_per_minute, self.budget_account = budget_per_minute, budget_account
        self.db = LedgerThread(ledger)
        self.state = RunState(config, RunIds(campaign_id, run_id, holder_id), clock,
                              log or logging.getLogger("ccm.dialer"), agents, customers)
        self.follower = follower or CallFollower(
            client, budget, clock, on_stuck=self._on_stuck, on_fatal=self._on_fatal,
            callbacks=config.callbacks, ring_window=config.ring_window, talk_window=config.talk_window)
        self.calls = CallLifecycle(self.state, db=self.db, client=client, budget=budget,
                                   follower=self.follower, journal=journal)
        self.recovery = LeaseRecovery(self.state, self.calls, self._spawn_call)
        self.calls.on_agent_leased = self.recovery.agent_leased
        self.router = CallbackRouter(self.state, self.calls, self._spawn)
        self._tasks: set[asyncio.Task[None]] = set()
        self._chores: set[asyncio.Task[None]] = set()  # short ledger work the run waits for
        self.controls = OperatorControls(self.state, self.db, request_stop=self.request_stop,
                                         tasks=self._tasks)
        self.calls.on_campaign_held = self.controls.changed
        self._interrupted: str | None = None
        self._interrupt_status: RunStatus = "interrupted"
        self._stop_status: RunStatus = "stopped"
        self._waiting_logged: float | None = None

    # ------------------------------------------------------------------ what others read

    @property
    def campaign_id(self) -> int:
        """The campaign's id in the ledger."""
        return self.state.ids.campaign_id

    @property
    def holder_id(self) -> str:
        """This run's lease holder id."""
        return self.state.ids.holder_id

    @property
    def total(self) -> int:
        """Customers of the campaign this run knows (withdrawn ones excluded)."""
        return self.state.total

    @property
    def waiting(self) -> int:
        """Customers queued for a call."""
        return self.state.queue.waiting

    @property
    def callbacks_used(self) -> int:
        """Terminal callbacks that resolved or confirmed a call."""
        return self.router.used

    @property
    def log(self) -> Logger:
        """Where the engine logs."""
        return self.state.log

    def snapshot(self) -> Progress:
        """Progress so far (progress bars, the ledger's run row, artifacts, status pages)."""
        s, now = self.state, self.clock.time()
        phase, detail = s.phase(now)
        stats = self.client.stats
        return Progress(
            campaign=self.cfg.campaign, phase=phase, detail=detail, total=s.total, done=s.done,
            live_calls=s.live_calls, placed=s.placed, outcomes=dict(s.outcomes), agents=s.pool.counts(),
            requests=RequestCounts(post_sent=stats["post_sent"], get_sent=stats["get_sent"],
                                   rate_limited=stats["http_429"]),
            stuck=len(s.stuck), unknown=s.outcomes.get("unknown", 0), time=now,
            agent_views=s.pool.views(), budget_per_minute=self.budget_per_minute,
            budget_account=self.budget_account)

    # ------------------------------------------------------------------ what others ask

    def request_stop(self, reason: str = "stopped by operator", *, status: RunStatus = "stopped") -> None:
        """Place no new calls; finish live ones; then end the run with ``status``."""
        self._stop_status = status
        self.state.request_stop(reason)

    def interrupt(self, reason: str, *, status: RunStatus = "interrupted") -> None:
        """Stop now: the run ends at once with ``status``; calls in flight are left for the next run
        to confirm (a drain that ran out of time ends ``cancelled``, a second Ctrl-C ``interrupted``)."""
        self._interrupted = reason
        self._interrupt_status = status
        self.state.wake()

    def drain(self, reason: str, within: float, *, status: RunStatus = "cancelled") -> None:
        """Place no new calls, follow live ones for at most ``within`` real seconds, and end the run
        with ``status`` either way (SIGTERM from Prefect or a container, the loss of the process that
        started this one). Calls still live at the bound are left for the next run to confirm."""
        self.request_stop(reason, status=status)
        asyncio.get_running_loop().call_later(
            within, lambda: self.interrupt(f"{reason}; live calls left after {within:g}s for the next run "
                                           "to confirm", status=status))

    def deliver_callback(self, event: CallbackEvent) -> None:
        """A recorded status callback (from the receiver in this process). Idempotent."""
        self.router.deliver(event)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> RunResult:
        """Dial until done; returns how the run ended."""
        s = self.state
        loop = asyncio.get_running_loop()
        background = [loop.create_task(self.follower.run(), name="follower"),
                      loop.create_task(self._write_progress(), name="progress")]
        try:
            await self.controls.read(initial=True)
            background.append(loop.create_task(self.controls.watch(), name="control"))
            await self.recovery.recover()
            if self.cfg.callbacks:
                await self.router.start()
                background.append(loop.create_task(self.router.read_inbox(), name="callback-inbox"))
            while True:
                now = self.clock.time()
                s.queue.promote(now)
                for agent, was in s.pool.wake(now):
                    self._on_agent_woken(agent, was)
                if background[0].done():
                    self._follower_died(background[0])
                if not self.controls.paused_at_start and s.may_dispatch(now):
                    self._dispatch()
                result = self._end_state(now)
                if result is not None:
                    return result
                await self._wait(self._next_wake(now) - now)
        finally:
            for task in [*background, *self._tasks]:
                task.cancel()
            await asyncio.gather(*background, *self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._progress_once()
            self.db.close()

    def _dispatch(self) -> None:
        s = self.state
        now = self.clock.time()
        passed_over: list[AgentSlot] = []
        while s.placing < self.cfg.max_pending_posts and s.queue.has_ready():
            agent = s.pool.pop_longest_idle()
            if agent is None:
                break
            entry = self._next_customer_for(agent.key, now)
            if entry is None:  # only customers waiting for other (sticky) agents
                passed_over.append(agent)
                continue
            s.pool.set_calling(agent)
            entry.calling()
            call = CallTask(agent, entry)
            self._spawn_call(call, self.calls.place(call))
        for agent in passed_over:
            s.pool.set_idle(agent, agent.idle_since)

    def _next_customer_for(self, agent_key: str, now: float) -> CustomerEntry | None:
        """The next customer this agent may call now; those outside their own hours wait for them."""
        s = self.state
        while (entry := s.queue.pop_for(agent_key)) is not None:
            opens = s.recipient_opens(entry, now)
            if opens is None:
                return entry
            s.hold_for_hours(entry, opens, now)  # later, no attempt used
        return None

    def _end_state(self, now: float) -> RunResult | None:
        s = self.state
        if self._interrupted is not None:
            return self._result(self._interrupt_status, self._interrupted)
        if any(c.attempt_id not in s.stuck for c in s.calls.values()) or self._chores:
            return None  # calls being placed or followed (a stuck call does not hold the run open)
        pending, held, window = s.queue.waiting, s.held, self.cfg.window
        if pending == 0:
            return self._result("completed", "every customer has a final outcome")
        if held.fatal is not None:
            return self._result("fatal", held.fatal_reason or str(held.fatal))
        if held.stop_reason is not None:
            return self._result(self._stop_status, held.stop_reason)
        if self.controls.paused_at_start:
            return self._result("paused", f"{held.control_reason or 'the campaign is paused'}; "
                                          f"resume it to continue ({pending} left)")
        if not s.pool.usable():
            return self._result("no_agents", "no usable agent left: " + "; ".join(
                f"{k}: {v}" for k, v in s.pool.reasons("dropped").items()))
        if window.ended(now):
            return self._result("campaign_ended", f"the campaign's end time has passed; {pending} left")
        if not window.is_open(now):
            nxt = window.next_open(now)
            if s.dialled or not self.cfg.wait_for_window or nxt is None:
                return self._result("window_closed", f"the calling window is {window.describe(now)}; "
                                                     f"{pending} left")
            if self._waiting_logged != nxt:
                self._waiting_logged = nxt
                s.log.info("Outside the calling window: waiting (%s)", window.describe(now))
        return None

    def _next_wake(self, now: float) -> float:
        s = self.state
        times = [now + 30.0]
        times += [t for t in (s.queue.next_wake(), s.pool.next_wake()) if t is not None]
        if s.held.post_paused_until > now:
            times.append(s.held.post_paused_until)
        window = self.cfg.window
        closes = window.closes_at(now)
        times.append(closes if closes is not None else (window.next_open(now) or now + 30.0))
        return max(now, min(times))

    async def _wait(self, seconds: float) -> None:
        self.state.changed.clear()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the wait completes (fixed in 3.12), and a swallowed cancel hangs shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.clock.to_real(seconds) + 1e-4):
                await self.state.changed.wait()

    # ------------------------------------------------------------------ tasks

    def _spawn_call(self, call: CallTask, coro: Coroutine[Any, Any, None]) -> None:
        """Start work on one customer. It counts as in progress from now, not from when the task
        first runs: until then the customer is in neither the queue nor a live call."""
        self.state.calls[call.entry.id] = call
        task = asyncio.get_running_loop().create_task(coro, name=f"call-{call.entry.id}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._call_done(call, t))

    def _call_done(self, call: CallTask, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self.state.calls.get(call.entry.id) is call:
            del self.state.calls[call.entry.id]
        self._check(task)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Background work that holds no customer (resolving an unknown, freeing a lease)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        self._chores.add(task)
        task.add_done_callback(self._chore_done)

    def _chore_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._chores.discard(task)
        self._check(task)

    def _check(self, task: asyncio.Task[None]) -> None:
        self.state.wake()
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.state.log.error("internal error in %s: %r; no new calls will be placed", task.get_name(),
                                 exc)
            self.state.set_fatal(CCMError(f"internal error: {exc!r}"), f"internal error: {exc!r}")

    def _on_agent_woken(self, agent: AgentSlot, was: str) -> None:
        if was == "quarantined":
            # Any call an unknown Make Call might have placed is over by now: free the agent.
            self._spawn(self.db(self.ledger.release_lease, agent.key, self.holder_id), f"release-{agent.key}")
        if agent.key not in self.state.roster:
            self.state.pool.drop(agent, "no longer in the roster")  # a lease adopted from a previous run

    # ------------------------------------------------------------------ progress, errors

    async def _write_progress(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_seconds)
            try:
                await self._progress_once()
            except Exception as exc:  # a transient lock; the next beat retries
                self.state.log.warning("writing progress failed: %s", exc)

    async def _progress_once(self) -> None:
        ids = self.state.ids
        if ids.run_id is None:
            await self.db(self.ledger.heartbeat, ids.holder_id)
        else:
            await self.db(self.ledger.write_progress, ids.run_id, ids.holder_id, self.snapshot().to_json())

    def _follower_died(self, task: asyncio.Task[None]) -> None:
        """Without the follower no call can be confirmed: stop, loudly, rather than hang."""
        exc = None if task.cancelled() else task.exception()
        reason = f"internal error: call follower stopped ({exc!r})"
        self.state.log.error("%s; no new calls will be placed", reason)
        self.state.set_fatal(CCMError(reason), reason)
        raise RuntimeError(reason) from exc

    def _on_stuck(self, item: Followed) -> None:
        self.state.stuck.add(item.attempt_id)
        now = self.clock.time()
        self._spawn(self.db(self.ledger.mark_stuck, item.attempt_id, now), f"stuck-{item.attempt_id}")
        self.state.log.warning("call %s is stuck: not terminal %.0fs after it was placed; its agent stays "
                               "leased until the call is confirmed or an operator releases it",
                               item.call_sid, now - item.placed_at)

    def _on_fatal(self, exc: CCMError) -> None:
        if self.state.set_fatal(exc):
            self.state.log.error("Stopping new calls: %s", exc)

    def _result(self, status: RunStatus, reason: str) -> RunResult:
        s = self.state
        return RunResult(status=status, reason=reason, outcomes=dict(s.outcomes), pending=s.queue.waiting,
                         stuck=len(s.stuck), unknown=s.outcomes.get("unknown", 0),
                         dropped_agents=s.pool.reasons("dropped"), paused_agents=s.pool.still_unavailable())
