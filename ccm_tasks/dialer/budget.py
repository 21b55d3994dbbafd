"""One API budget per account, shared by every POST and GET of every campaign in the process.

A token bucket on the dialer's clock. Its rate and burst are chosen so that no 60-second window can
hold more than ``safety`` x the account limit (burst + 60 x rate <= safety x limit): Exotel counts
requests per minute, and a bucket that allowed a full burst on top of a full minute would earn 429s.

Make Call requests are served before Get Call Details requests (a POST keeps an agent busy; a poll
only tells us sooner), but polls always get at least ``min_get_share`` of the grants while both wait,
so following live calls never starves. A 429 shrinks the rate (x0.8, floor 25%; once per episode, not
once per request that was already in flight) and pauses grants for ``Retry-After``; every quiet minute
gives back 5% of the nominal rate.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Literal

from ccm_tasks.clock import Clock

Kind = Literal["post", "get"]
_EPS = 1e-9  # a token refilled to 0.9999999 is a token


class ApiBudget:
    """Admission control for CCM API requests (implements the client's ``RequestGate``)."""

    def __init__(self, per_minute: int, clock: Clock, *, safety: float = 0.95, burst: int = 3,
                 min_get_share: float = 0.2) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.per_minute = per_minute
        self.clock = clock
        usable = per_minute * safety
        self.burst = max(1, min(burst, int(usable // 10) or 1))
        self.nominal_rate = max(usable - self.burst, 1.0) / 60.0  # tokens per second
        self.factor = 1.0
        self.min_get_share = min_get_share
        self._tokens = float(self.burst)
        self._last = clock.time()
        self._blocked_until = 0.0
        self._last_429 = -1e18
        self._waiters: dict[Kind, deque[asyncio.Future[None]]] = {"post": deque(), "get": deque()}
        self._grants_since_get = 0
        self._granter: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.granted: Counter[str] = Counter()
        self.rate_limited = 0
        self._post_times: deque[float] = deque()

    # ------------------------------------------------------------------ RequestGate

    async def acquire(self, kind: Kind) -> None:
        """Wait for permission to send one request of this kind."""
        self._refill()
        if (self._tokens >= 1 - _EPS and self.clock.time() >= self._blocked_until
                and not self._waiters["post"] and (kind == "post" or not self._waiters["get"])):
            self._grant(kind)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[kind].append(future)
        self._ensure_granter()
        self._wake.set()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._tokens += 1  # granted just as we were cancelled: give the token back
            raise

    def on_rate_limited(self, retry_after: float | None) -> None:
        """The server said 429: our idea of the budget was too generous.

        Requests already in flight when the first 429 comes back meet the same full window, so the
        429s of one episode (those arriving while grants are paused by an earlier one) shrink the
        rate once, as TCP halves its window once per loss event, not once per lost packet.
        """
        now = self.clock.time()
        self.rate_limited += 1
        if now >= self._blocked_until:
            self.factor = max(0.25, self.factor * 0.8)
        self._last_429 = now
        self._blocked_until = max(self._blocked_until, now + (retry_after if retry_after else 1.0))
        self._tokens = min(self._tokens, 0.0)

    # ------------------------------------------------------------------ estimates

    @property
    def rate(self) -> float:
        """Current grant rate, requests per second."""
        return self.nominal_rate * self.factor

    def post_rate(self, window: float = 60.0) -> float:
        """Make Call requests per second granted over the last ``window`` seconds."""
        now = self.clock.time()
        while self._post_times and self._post_times[0] < now - window:
            self._post_times.popleft()
        return len(self._post_times) / window

    def get_rate(self) -> float:
        """What is left for polling, requests per second (never below min_get_share of the rate)."""
        return max(self.rate * self.min_get_share, self.rate - self.post_rate())

    def has_spare(self) -> bool:
        """A request could be granted right now without making anyone wait."""
        self._refill()
        return (self._tokens >= 1 - _EPS and self.clock.time() >= self._blocked_until
                and not any(not f.done() for q in self._waiters.values() for f in q))

    # ------------------------------------------------------------------ internals

    def _refill(self) -> None:
        now = self.clock.time()
        if self.factor < 1.0 and now - self._last_429 > 60:
            self.factor = min(1.0, self.factor + 0.05 * (now - self._last) / 60)
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    def _grant(self, kind: Kind) -> None:
        self._tokens -= 1
        self.granted[kind] += 1
        if kind == "post":
            self._post_times.append(self.clock.time())
            self._grants_since_get += 1
        else:
            self._grants_since_get = 0

    def _next_waiter(self) -> tuple[Kind, asyncio.Future[None]] | None:
        for q in self._waiters.values():
            while q and q[0].done():
                q.popleft()
        posts, gets = self._waiters["post"], self._waiters["get"]
        every = max(1, round(1 / self.min_get_share) - 1) if self.min_get_share > 0 else 10**9
        if gets and (not posts or self._grants_since_get >= every):
            return "get", gets.popleft()
        if posts:
            return "post", posts.popleft()
        return None

    def _ensure_granter(self) -> None:
        if self._granter is None or self._granter.done():
            self._granter = asyncio.get_running_loop().create_task(self._run_granter(),
                                                                   name="api-budget")

    async def _run_granter(self) -> None:
        while True:
            self._refill()
            if not any(self._waiters.values()):
                self._wake.clear()
                return
            now = self.clock.time()
            if now < self._blocked_until:
                await self.clock.sleep(self._blocked_until - now)
                continue
            if self._tokens < 1 - _EPS:
                await self.clock.sleep(max((1 - self._tokens) / self.rate, 1e-3))
                continue
            nxt = self._next_waiter()
            if nxt is None:
                continue
            kind, future = nxt
            self._grant(kind)
            future.set_result(None)
            await asyncio.sleep(0)  # let the granted request start before the next grant
