"""Follows live calls to ``call_state == "terminal"`` with Get Call Details, inside the API budget.

Every live call has a due time in one heap. The poll interval adapts to what the budget leaves for
polling: ``max(min_interval, live_calls / get_rate)``, so few calls are polled often and many calls
less often, and the token bucket in :class:`~ccm_tasks.dialer.budget.ApiBudget` enforces the cap
whatever the heap asks for. A call whose ``call_status`` is already set (hung up, post-processing)
is due again sooner, because it is about to turn terminal. An external signal (a status callback)
makes a call due at once.

Polling is work-conserving: when the budget has a spare request and no Make Call is waiting, the
call polled longest ago is polled early (never sooner than ``min_interval`` after its last poll),
so the budget left over by dialling is spent on live calls rather than lost.

With status callbacks on (``callbacks=True``) polling becomes the safety net: no early polls, and a
call is polled only when the callback its phase promises is overdue (the agent should have
answered or given up within ``ring_window``; a conversation is checked every ``talk_window``).
A terminal callback that leaves nothing open resolves the call without a GET; one that does (a
recording expected but missing) is confirmed by one GET.

A call still not terminal after its ``stuck_after`` time is reported once through ``on_stuck``;
it keeps being polled (slowly) until confirmed, and its agent stays leased.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ccm_tasks.clock import Clock
from ccm_tasks.dialer.budget import Gate
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.errors import CampaignFatalError, CCMError, RateLimitError
from ccm_tasks.exotel.models import CallDetails

log = logging.getLogger("ccm.dialer.follower")


@dataclass
class Followed:
    """A live call being followed."""

    call_sid: str
    attempt_id: int
    placed_at: float
    stuck_after: float
    future: asyncio.Future[CallDetails]
    last: CallDetails | None = None
    stuck: bool = False
    last_poll: float = 0.0
    seq: int = field(default=0)


class CallFollower:
    """Polls live calls until terminal; resolves each call's future with its terminal details."""

    def __init__(self, client: CCMClient, budget: Gate, clock: Clock, *,
                 min_interval: float = 2.0, fast_interval: float = 1.0, max_in_flight: int = 32,
                 min_real_interval: float = 0.05, callbacks: bool = False,
                 ring_window: float = 90.0, talk_window: float = 300.0,
                 on_stuck: Callable[[Followed], None] | None = None,
                 on_fatal: Callable[[CCMError], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.budget = budget
        self.clock = clock
        # Against a time-scaled simulator the budget in simulated seconds can exceed what the CPU
        # can serve; a floor in real seconds keeps polling from spinning.
        scale = float(getattr(clock, "scale", 1.0))
        self.min_interval = max(min_interval, min_real_interval * scale)
        self.fast_interval = max(fast_interval, min_real_interval * scale)
        self.callbacks = callbacks
        self.ring_window = ring_window
        self.talk_window = talk_window
        self.resolved_by_callback: set[str] = set()
        self.on_stuck = on_stuck
        self.on_fatal = on_fatal
        self.live: dict[str, Followed] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = rng or random.Random()

    # ------------------------------------------------------------------ API

    def follow(self, call_sid: str, attempt_id: int, *, placed_at: float, stuck_after: float,
               last: CallDetails | None = None, confirm_now: bool = False) -> asyncio.Future[CallDetails]:
        """Start following a call; the future resolves with its terminal details.

        ``confirm_now``: poll it at once (a call adopted from a dead run, whose callbacks are lost).
        """
        if call_sid in self.live:
            return self.live[call_sid].future
        future: asyncio.Future[CallDetails] = asyncio.get_running_loop().create_future()
        item = Followed(call_sid, attempt_id, placed_at, stuck_after, future, last=last,
                        last_poll=self.clock.time())
        self.live[call_sid] = item
        if last is not None and last.is_terminal:
            self._resolve(item, last)
        elif confirm_now:
            self._schedule(item, self.clock.time())
        elif self.callbacks:
            self._schedule(item, self.clock.time() + self.ring_window)
        else:
            self._schedule(item, self.clock.time() + self.interval(first=True))
        return future

    def on_answered(self, call_sid: str, details: CallDetails) -> None:
        """An ``answered`` callback: push the safety poll out to what this phase can take."""
        item = self.live.get(call_sid)
        if item is None or item.future.done() or not self.callbacks:
            return
        item.last = details
        window = self.talk_window if details.customer_leg_status == "in-progress" else self.ring_window
        self._schedule(item, self.clock.time() + window)

    def notify(self, call_sid: str) -> bool:
        """Something says this call may have ended (a callback): poll it now. False if not live."""
        item = self.live.get(call_sid)
        if item is None or item.future.done():
            return False
        self._schedule(item, self.clock.time())
        return True

    def resolve(self, call_sid: str, details: CallDetails) -> bool:
        """Terminal details from a callback: finish following without another GET."""
        item = self.live.get(call_sid)
        if item is None or item.future.done() or not details.is_terminal:
            return False
        self.resolved_by_callback.add(call_sid)
        self._resolve(item, details)
        return True

    def resolved_how(self, call_sid: str) -> str:
        """How a finished call was confirmed: ``callback`` or ``poll`` (asked once per call)."""
        if call_sid in self.resolved_by_callback:
            self.resolved_by_callback.discard(call_sid)
            return "callback"
        return "poll"

    def interval(self, first: bool = False) -> float:
        """The poll interval the budget allows now, in seconds."""
        live = max(1, len(self.live))
        base = max(self.min_interval, live / max(self.budget.get_rate(), 1e-6))
        return base * (0.8 + 0.4 * self._rng.random())  # jitter: don't poll in lockstep

    async def run(self) -> None:
        """Poll due calls forever (cancel to stop)."""
        try:
            while True:
                now = self.clock.time()
                while self._heap and self._heap[0][0] <= now:
                    _due, seq, sid = heapq.heappop(self._heap)
                    item = self.live.get(sid)
                    if item is None or item.seq != seq or item.future.done():
                        continue
                    await self._start_poll(item)
                    now = self.clock.time()
                early = None if self.callbacks else self._pull_forward(now)
                if early is not None:
                    await self._start_poll(early)
                    continue
                self._wake.clear()
                timeout = (self._heap[0][0] - now) if self._heap else 3600.0
                if self._heap and len(self._tasks) < 2:
                    # Look again for spare budget about when the next token arrives.
                    timeout = min(timeout, 1.0 / max(self.budget.rate, 1e-6))
                real_timeout = self.clock.to_real(max(timeout, 0.0)) + 1e-4
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation
                # that stops this loop (fixed in 3.12), and the run's shutdown would wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(real_timeout):
                        await self._wake.wait()
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ internals

    async def _start_poll(self, item: Followed) -> None:
        await self._slots.acquire()
        item.last_poll = self.clock.time()
        task = asyncio.get_running_loop().create_task(self._poll(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pull_forward(self, now: float) -> Followed | None:
        """The call to poll early with spare budget: the heap's top (the earliest due, which is about
        the longest unpolled), if at most one poll is in flight and a token is spare now."""
        if len(self._tasks) >= 2 or not self._heap or not self.budget.has_spare():
            return None
        while self._heap:
            _due, seq, sid = self._heap[0]
            item = self.live.get(sid)
            if item is None or item.seq != seq or item.future.done():
                heapq.heappop(self._heap)
                continue
            if now - item.last_poll < self.min_interval:
                return None
            heapq.heappop(self._heap)
            return item
        return None

    def _schedule(self, item: Followed, due: float) -> None:
        item.seq = next(self._seq)
        heapq.heappush(self._heap, (due, item.seq, item.call_sid))
        self._wake.set()

    def _resolve(self, item: Followed, details: CallDetails) -> None:
        self.live.pop(item.call_sid, None)
        if not item.future.done():
            item.future.set_result(details)

    async def _poll(self, item: Followed) -> None:
        try:
            details = await self.client.get_call_details(item.call_sid)
        except CampaignFatalError as exc:
            if self.on_fatal:
                self.on_fatal(exc)
            self._after_poll(item, None, backoff=max(30.0, self.interval()))
            return
        except RateLimitError as exc:
            # The budget is paused for the server's Retry-After: ask again the moment it reopens
            # (the budget queues the GET), not a whole poll interval after, or an agent whose call
            # ended during an overload sits idle for that long.
            log.warning("polling call %s failed: %s", item.call_sid, exc)
            reopens = max(0.0, self.budget.blocked_until - self.clock.time())
            self._after_poll(item, None, backoff=reopens + self.fast_interval * self._rng.random())
            return
        except CCMError as exc:
            log.warning("polling call %s failed: %s", item.call_sid, exc)
            self._after_poll(item, None, backoff=self.interval())
            return
        finally:
            self._slots.release()
        item.last = details
        if details.is_terminal:
            self._resolve(item, details)
            return
        self._after_poll(item, details)

    def _after_poll(self, item: Followed, details: CallDetails | None, backoff: float | None = None) -> None:
        if item.future.done():
            return
        now = self.clock.time()
        if not item.stuck and now >= item.stuck_after:
            item.stuck = True
            if self.on_stuck:
                self.on_stuck(item)
        if backoff is not None:
            nxt = backoff
        elif details is not None and details.call_status is not None:
            # Hung up, post-processing: terminal within seconds.
            nxt = max(self.fast_interval, self.interval() / 4)
        elif self.callbacks:
            talking = details is not None and details.customer_leg_status == "in-progress"
            nxt = self.talk_window if talking else self.ring_window
        else:
            nxt = self.interval()
        if item.stuck:
            nxt = max(nxt, 60.0)
        self._schedule(item, now + nxt)
