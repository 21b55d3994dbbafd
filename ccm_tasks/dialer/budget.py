"""Admission control for CCM API requests: the account's budget, seen from one process.

Waiting requests queue here by kind. Make Calls are served first (a POST keeps an agent busy; a
poll only tells us sooner), but polls get at least ``min_get_share`` of the grants while both wait,
so following live calls never starves. Where the grants come from is the subclass's business:

* :class:`ApiBudget`: a bucket in this process (tests, benchmarks, a per-campaign cap);
* :class:`AccountBudget`: the account's bucket in the ledger, shared by every process and machine
  on the account (ccm_tasks.ledger.budget has the arithmetic and its guarantees).

A 429 pauses every grant until ``Retry-After`` and shrinks the rate once per overload episode; a
request granted before the 429 came back waits for the pause too (:meth:`Budget.wait_unblocked`)
instead of being sent into it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

from ccm_tasks.clock import Clock, SystemClock
from ccm_tasks.exotel.models import RequestKind
from ccm_tasks.ledger import Bucket, Ledger

log = logging.getLogger("ccm.dialer.budget")

T = TypeVar("T")


class Gate(Protocol):
    """What the client, the engine and the follower need of a budget."""

    async def acquire(self, kind: RequestKind) -> None:
        """Wait until one request of this kind may be sent."""
        ...

    def on_rate_limited(self, retry_after: float | None) -> None:
        """The server answered 429."""
        ...

    def refund(self, kind: RequestKind) -> None:
        """A granted request was not sent."""
        ...

    @property
    def rate(self) -> float:
        """Requests per second granted now."""
        ...

    @property
    def blocked_until(self) -> float:
        """Grants are paused until then."""
        ...

    async def wait_unblocked(self) -> None:
        """Wait out a pause that began after a grant."""
        ...

    def get_rate(self) -> float:
        """Requests per second left for polling."""
        ...

    def has_spare(self) -> bool:
        """A request could be granted now without making anyone wait."""
        ...


class Budget:
    """The waiting room: queues by kind, Make Calls first, a floor for polls (a ``RequestGate``)."""

    def __init__(self, clock: Clock, *, min_get_share: float = 0.2) -> None:
        self.clock = clock
        self.min_get_share = min_get_share
        self._waiters: dict[RequestKind, deque[asyncio.Future[None]]] = {"post": deque(), "get": deque()}
        self._grants_since_get = 0
        self._granter: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._blocked_until = 0.0
        self._post_times: deque[float] = deque()
        self.granted: Counter[str] = Counter()
        self.rate_limited = 0

    # ------------------------------------------------------------------ what subclasses provide

    async def _take(self, kind: RequestKind, want: int) -> tuple[int, float]:
        """Take up to ``want`` grants of ``kind`` now: (granted, when to ask again)."""
        raise NotImplementedError

    def _give_back(self, n: int) -> None:
        """Return grants that were not used."""
        raise NotImplementedError

    def _record_rate_limited(self, retry_after: float | None) -> None:
        """Tell the bucket about a 429 (its pause and its shrink)."""
        raise NotImplementedError

    @property
    def rate(self) -> float:
        """Current grant rate, requests per second."""
        raise NotImplementedError

    def has_spare(self) -> bool:
        """A request could be granted right now without making anyone wait."""
        raise NotImplementedError

    # ------------------------------------------------------------------ RequestGate

    def _take_now(self, kind: RequestKind) -> bool:
        """Grant one request at once without waiting, if the bucket can say so synchronously."""
        return False

    async def acquire(self, kind: RequestKind) -> None:
        """Wait for permission to send one request of this kind."""
        if (self.waiting() == 0 and self.clock.time() >= self._blocked_until and self._take_now(kind)):
            self._count_grant(kind)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[kind].append(future)
        if self._granter is None or self._granter.done():
            self._granter = asyncio.get_running_loop().create_task(self._run_granter(), name="api-budget")
        self._wake.set()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.refund(kind)  # granted just as we were cancelled: give the grant back
            raise

    def on_rate_limited(self, retry_after: float | None) -> None:
        """The server said 429: everyone waits for Retry-After; the rate shrinks once per episode."""
        self.rate_limited += 1
        pause = retry_after if retry_after is not None and retry_after > 0 else 1.0
        self._blocked_until = max(self._blocked_until, self.clock.time() + pause)
        self._record_rate_limited(retry_after)
        self._wake.set()

    def refund(self, kind: RequestKind) -> None:
        """A granted request was not sent (a check refused it first): give the grant back."""
        self.granted[kind] -= 1
        if kind == "post" and self._post_times:
            self._post_times.pop()
        self._give_back(1)

    @property
    def blocked_until(self) -> float:
        """Grants are paused until then (a 429's Retry-After)."""
        return self._blocked_until

    async def wait_unblocked(self) -> None:
        """Wait out a pause that began after this request was granted."""
        while (wait := self._blocked_until - self.clock.time()) > 0:
            await self.clock.sleep(wait)

    # ------------------------------------------------------------------ estimates

    def post_rate(self, window: float = 60.0) -> float:
        """Make Call requests per second granted here over the last ``window`` seconds."""
        now = self.clock.time()
        while self._post_times and self._post_times[0] < now - window:
            self._post_times.popleft()
        return len(self._post_times) / window

    def get_rate(self) -> float:
        """What is left for polling, requests per second (never below min_get_share of the rate)."""
        return max(self.rate * self.min_get_share, self.rate - self.post_rate())

    def waiting(self) -> int:
        """Requests waiting for a grant."""
        return sum(1 for q in self._waiters.values() for f in q if not f.done())

    # ------------------------------------------------------------------ the granter

    def _order(self) -> list[RequestKind]:
        """Which kind to serve first: posts, but a poll after every ``1/share - 1`` posts."""
        for q in self._waiters.values():
            while q and q[0].done():
                q.popleft()
        posts, gets = bool(self._waiters["post"]), bool(self._waiters["get"])
        every = max(1, round(1 / self.min_get_share) - 1) if self.min_get_share > 0 else 10**9
        if posts and gets:
            return ["get", "post"] if self._grants_since_get >= every else ["post", "get"]
        return ["post"] if posts else (["get"] if gets else [])

    def _serve(self, kind: RequestKind, granted: int) -> None:
        queue = self._waiters[kind]
        while granted and queue:
            future = queue.popleft()
            if future.done():
                continue
            granted -= 1
            self._count_grant(kind)
            future.set_result(None)
        if granted:
            self._give_back(granted)  # its waiters left meanwhile

    def _count_grant(self, kind: RequestKind) -> None:
        self.granted[kind] += 1
        if kind == "post":
            self._post_times.append(self.clock.time())
            self._grants_since_get += 1
        else:
            self._grants_since_get = 0

    async def _run_granter(self) -> None:
        while True:
            order = self._order()
            if not order:
                self._wake.clear()
                return
            now = self.clock.time()
            if now < self._blocked_until:
                await self._sleep(self._blocked_until - now)
                continue
            next_at = now + 1.0
            for kind in order:
                want = sum(1 for f in self._waiters[kind] if not f.done())
                granted, again = await self._take(kind, want)
                if granted:
                    self._serve(kind, granted)
                    break
                next_at = min(next_at, again)
            else:
                await self._sleep(max(next_at - self.clock.time(), 1e-3))
                continue
            await asyncio.sleep(0)  # let the granted requests start before the next grant

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock, woken early by a new waiter or a 429."""
        self._wake.clear()
        real = self.clock.to_real(seconds)
        if real <= 0:
            await self.clock.sleep(seconds)  # a manual clock: time moves by sleeping
            return
        try:
            async with asyncio.timeout(real):
                await self._wake.wait()
        except TimeoutError:
            pass


class ApiBudget(Budget):
    """A token bucket in this process (the arithmetic of :class:`~ccm_tasks.ledger.Bucket`)."""

    def __init__(self, per_minute: int, clock: Clock, *, safety: float = 0.95, burst: int = 3,
                 min_get_share: float = 0.2) -> None:
        super().__init__(clock, min_get_share=min_get_share)
        self.per_minute = per_minute
        self.bucket = Bucket.fresh(per_minute, clock.time(), safety=safety, burst_min=burst,
                                   min_get_share=min_get_share)

    @property
    def burst(self) -> int:
        """Most requests granted at once."""
        return self.bucket.burst

    @property
    def factor(self) -> float:
        """How far 429s have shrunk the rate (1.0: not at all)."""
        return self.bucket.refilled(self.clock.time()).factor

    @property
    def rate(self) -> float:
        return self.bucket.refilled(self.clock.time()).rate

    async def _take(self, kind: RequestKind, want: int) -> tuple[int, float]:
        self.bucket, granted, next_at = self.bucket.take(kind, want, self.clock.time())
        return granted, next_at

    def _take_now(self, kind: RequestKind) -> bool:
        bucket, granted, _ = self.bucket.take(kind, 1, self.clock.time())
        if granted:
            self.bucket = bucket
        return bool(granted)

    def _give_back(self, n: int) -> None:
        self.bucket = self.bucket.refilled(self.clock.time()).give_back(n)

    def _record_rate_limited(self, retry_after: float | None) -> None:
        self.bucket = self.bucket.rate_limited(retry_after, self.clock.time())

    def has_spare(self) -> bool:
        now = self.clock.time()
        return (self.bucket.refilled(now).tokens >= 1 - 1e-9 and now >= self._blocked_until
                and self.waiting() == 0)


class AccountBudget(Budget):
    """The account's bucket in the ledger, shared by every process on the account.

    Grants are taken in batches (at most the bucket's burst) by one short ledger transaction on a
    thread of its own, so neither the event loop nor the engine's own ledger writes wait for it.
    """

    def __init__(self, ledger: Ledger, account: str, per_minute: int, clock: Clock, *,
                 min_get_share: float = 0.2) -> None:
        super().__init__(clock, min_get_share=min_get_share)
        self.ledger = ledger
        self.account = account
        self.per_minute = per_minute
        # The database's clock for real time (machines' clocks disagree); a simulator's otherwise.
        self._own_time = not isinstance(clock, SystemClock)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ccm-budget")
        self._rate = Bucket.fresh(per_minute, 0.0).rate
        self._next_at = 0.0
        self._skew = 0.0  # the bucket's clock minus ours, learnt from each grant

    def _now(self) -> float | None:
        return self.clock.time() if self._own_time else None

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def _take(self, kind: RequestKind, want: int) -> tuple[int, float]:
        grant = await self._run(lambda: self.ledger.take_budget(self.account, self.per_minute, kind,
                                                                max(1, want), self._now()))
        self._rate = grant.rate
        self._skew = grant.now - self.clock.time()
        self._blocked_until = max(self._blocked_until, grant.blocked_until - self._skew)
        self._next_at = grant.next_at - self._skew
        return grant.granted, self._next_at

    def _give_back(self, n: int) -> None:
        self._spawn(lambda: self.ledger.give_back_budget(self.account, self.per_minute, n, self._now()))

    def _record_rate_limited(self, retry_after: float | None) -> None:
        self._spawn(lambda: self.ledger.budget_rate_limited(self.account, self.per_minute, retry_after,
                                                            self._now()))

    def _spawn(self, fn: Callable[[], object]) -> None:
        def done(future: Future[object]) -> None:
            if future.exception() is not None:
                log.warning("the account budget could not be updated: %s", future.exception())

        self._thread.submit(fn).add_done_callback(done)

    @property
    def rate(self) -> float:
        return self._rate

    def has_spare(self) -> bool:
        now = self.clock.time()
        return now >= self._next_at and now >= self._blocked_until and self.waiting() == 0

    def close(self) -> None:
        """Finish pending ledger updates and stop the thread."""
        self._thread.shutdown(wait=True)


class CampaignGate:
    """A campaign's own cap (``api_budget_per_minute`` in its definition) in front of the account's
    budget: a request needs both. Everything else is the account's."""

    def __init__(self, account: Budget, cap: ApiBudget | None = None) -> None:
        self.account = account
        self.cap = cap

    async def acquire(self, kind: RequestKind) -> None:
        """Wait for the campaign's cap, then for the account."""
        if self.cap is not None:
            await self.cap.acquire(kind)
        try:
            await self.account.acquire(kind)
        except BaseException:
            if self.cap is not None:
                self.cap.refund(kind)
            raise

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429 concerns the account."""
        self.account.on_rate_limited(retry_after)

    def refund(self, kind: RequestKind) -> None:
        """Give an unused grant back to both."""
        self.account.refund(kind)
        if self.cap is not None:
            self.cap.refund(kind)

    @property
    def rate(self) -> float:
        """The lower of the two rates."""
        return min(self.account.rate, self.cap.rate) if self.cap is not None else self.account.rate

    @property
    def blocked_until(self) -> float:
        """When the account's pause ends."""
        return self.account.blocked_until

    async def wait_unblocked(self) -> None:
        """Wait out the account's pause."""
        await self.account.wait_unblocked()

    def get_rate(self) -> float:
        """What is left for polling."""
        rate = self.account.get_rate()
        return min(rate, self.cap.get_rate()) if self.cap is not None else rate

    def has_spare(self) -> bool:
        """Both have a grant to spare now."""
        return self.account.has_spare() and (self.cap is None or self.cap.has_spare())

    @property
    def granted(self) -> Counter[str]:
        """Grants to this campaign (its cap counts them) or to the process."""
        return self.cap.granted if self.cap is not None else self.account.granted

    @property
    def rate_limited(self) -> int:
        """429s heard in this process."""
        return self.account.rate_limited
