"""The account's API budget: one token bucket per account, kept in the ledger (invariant 5).

Every process that dials or polls on an account draws grants from the same row, in small batches,
so N campaigns in N processes on M machines stay under the account's limit together, without a
manual split. The arithmetic is :class:`Bucket` (pure; the in-process budget uses it too):

* rate and burst are chosen so that no 60-second window holds more than ``safety`` x the limit
  (burst + 60 x rate <= safety x limit): Exotel counts requests per minute;
* Make Calls come first: while any process has Make Calls waiting (``post_waiting_until``), Get
  Call Details grants are limited to ``min_get_share`` of the rate (a second, smaller bucket), so
  following live calls never starves and never crowds out dialling;
* a 429 anywhere pauses every process until ``Retry-After`` and shrinks the rate once per overload
  episode (x0.8, floor 25%); each quiet minute gives 5% of the nominal rate back.

Time is the campaign clock when it is simulated (every process sharing a simulator shares its
clock), else the database's clock, so machines whose clocks disagree still share one bucket.
A process that dies loses at most the grants it took but had not used: a batch is at most
``burst`` requests and is used within milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sqlalchemy import Connection, bindparam, select, update

from ccm_tasks.exotel.models import RequestKind
from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.base import transaction_retry
from ccm_tasks.ledger.callbacks import CallbackStore

POST_WAIT_FLAG = 2.0
"""Seconds a process's "Make Calls waiting" flag lasts unless renewed."""

_EPS = 1e-9  # a token refilled to 0.9999999 is a token

EPISODE_SECONDS = 10.0
"""429s heard within this long of an overload episode's first belong to it: one back-off step.
A server that answers ``Retry-After: 1`` to every request of a 15-second overload would otherwise
shrink the rate at every expired pause (0.8 each, down to the 0.25 floor) and leave the dialer at a
quarter of its rate for minutes after the overload ended. A longer overload still shrinks the rate
again every 10 s."""


@dataclass(frozen=True)
class Bucket:
    """The state of one account's token bucket, and its arithmetic (pure)."""

    per_minute: int
    tokens: float
    get_tokens: float
    refilled_at: float
    factor: float = 1.0
    blocked_until: float = 0.0
    last_429_at: float = -1e18
    post_waiting_until: float = 0.0
    episode_at: float = -1e18  # when the current overload episode began (its back-off step)
    safety: float = 0.95
    min_get_share: float = 0.2
    burst_min: int = 3

    @classmethod
    def fresh(cls, per_minute: int, now: float, **kw: float | int) -> Bucket:
        """A full bucket for an account limit of ``per_minute``."""
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        probe = cls(per_minute, 0.0, 0.0, now, **kw)  # type: ignore[arg-type]
        return replace(probe, tokens=float(probe.burst), get_tokens=float(probe.get_burst))

    @property
    def usable(self) -> float:
        """Requests per minute the bucket aims at (the limit less a safety margin)."""
        return self.per_minute * self.safety

    @property
    def burst(self) -> int:
        """Most requests granted at once: ``burst_min`` (3), or half a second's worth on large
        accounts, never more than a tenth of a minute's."""
        return max(1, min(max(self.burst_min, int(self.usable / 120)), int(self.usable // 10) or 1))

    @property
    def get_burst(self) -> int:
        """Most polls granted at once while Make Calls wait."""
        return max(1, round(self.burst * self.min_get_share))

    @property
    def nominal_rate(self) -> float:
        """Tokens per second before any 429 shrank it."""
        return max(self.usable - self.burst, 1.0) / 60.0

    @property
    def rate(self) -> float:
        """Tokens per second now."""
        return self.nominal_rate * self.factor

    def refilled(self, now: float) -> Bucket:
        """The bucket at ``now``: tokens added since the last refill, some of a shrunk rate back."""
        dt = max(0.0, now - self.refilled_at)
        factor = self.factor
        if factor < 1.0 and now - self.last_429_at > 60:
            factor = min(1.0, factor + 0.05 * dt / 60)
        rate = self.nominal_rate * factor
        return replace(self, factor=factor, refilled_at=max(now, self.refilled_at),
                       tokens=min(float(self.burst), self.tokens + dt * rate),
                       get_tokens=min(float(self.get_burst),
                                      self.get_tokens + dt * rate * self.min_get_share))

    def take(self, kind: RequestKind, want: int, now: float) -> tuple[Bucket, int, float]:
        """Grant up to ``want`` requests of ``kind`` at ``now``: (new state, granted, next chance)."""
        b = self.refilled(now)
        if now < b.blocked_until:
            return b, 0, b.blocked_until
        contended = kind == "get" and now < b.post_waiting_until
        # While a Make Call waits somewhere, polls get their floor (get_tokens), and besides it only
        # what is above the one token kept for that Make Call: a process whose Make Call waits asks
        # again when a token is due and finds it, but tokens nobody asks for are not left to
        # overflow the bucket while polls queue (four processes polling 200 live calls on the
        # floor alone polled each call every ~5 minutes and left 65% of the budget unused).
        room = b.tokens if not contended else max(min(b.tokens, b.get_tokens), b.tokens - 1.0)
        granted = max(0, min(want, math.floor(room + _EPS)))
        b = replace(b, tokens=b.tokens - granted,
                    get_tokens=max(0.0, b.get_tokens - granted) if contended else b.get_tokens)
        if kind == "post" and granted < want:
            b = replace(b, post_waiting_until=now + POST_WAIT_FLAG)
        if contended:  # the floor's next token, or the bucket's second one, whichever comes first
            short = min((1.0 - b.get_tokens) / self.min_get_share, 2.0 - b.tokens)
        else:
            short = 1.0 - b.tokens
        next_at = now + max(short, 0.0) / max(b.rate, 1e-9)
        return b, granted, next_at

    def give_back(self, n: int = 1) -> Bucket:
        """Return grants that were not used (the request was refused before it was sent)."""
        return replace(self, tokens=min(float(self.burst), self.tokens + n))

    def rate_limited(self, retry_after: float | None, now: float) -> Bucket:
        """The server said 429: shrink once per episode and pause everyone for Retry-After.

        Requests already in flight when the first 429 comes back meet the same full window, so the
        429s of one episode (arriving while grants are paused by an earlier one, or within
        :data:`EPISODE_SECONDS` of its first) shrink the rate once, as TCP halves its window once
        per loss event, not once per lost packet.
        """
        b = self.refilled(now)
        new_episode = now >= b.blocked_until and now - b.episode_at >= EPISODE_SECONDS
        factor = max(0.25, b.factor * 0.8) if new_episode else b.factor
        pause = retry_after if retry_after is not None and retry_after > 0 else 1.0
        return replace(b, factor=factor, last_429_at=now, episode_at=now if new_episode else b.episode_at,
                       tokens=min(b.tokens, 0.0),
                       get_tokens=min(b.get_tokens, 0.0), blocked_until=max(b.blocked_until, now + pause))


@dataclass(frozen=True)
class Grant:
    """What the account's bucket granted one process."""

    granted: int
    next_at: float  # when asking again may succeed (the bucket's time)
    rate: float  # the bucket's rate now, requests per second
    blocked_until: float
    now: float  # the bucket's time at the grant


class BudgetStore(CallbackStore):
    """Accounts' buckets: take, give back, and hear about 429s, each in one short transaction."""

    @transaction_retry
    def take_budget(self, account: str, per_minute: int, kind: RequestKind, want: int,
                    now: float | None = None) -> Grant:
        """Take up to ``want`` grants from the account's bucket (``now``: None = the database's clock)."""
        with self.write() as conn:
            at = self.db_time(conn) if now is None else now
            locked = self._bucket(conn, account, per_minute, at)
            bucket, granted, next_at = locked.bucket.take(kind, want, at)
            self._save(conn, account, locked, bucket, used=granted, at=at)
            return Grant(granted, next_at, bucket.rate, bucket.blocked_until, at)

    @transaction_retry
    def give_back_budget(self, account: str, per_minute: int, n: int = 1, now: float | None = None) -> None:
        """Return unused grants to the account's bucket."""
        with self.write() as conn:
            at = self.db_time(conn) if now is None else now
            locked = self._bucket(conn, account, per_minute, at)
            self._save(conn, account, locked, locked.bucket.refilled(at).give_back(n), used=-n, at=at)

    @transaction_retry
    def budget_rate_limited(self, account: str, per_minute: int, retry_after: float | None,
                            now: float | None = None) -> Grant:
        """A 429 came back to this process: everyone on the account pauses and slows down."""
        with self.write() as conn:
            at = self.db_time(conn) if now is None else now
            locked = self._bucket(conn, account, per_minute, at)
            bucket = locked.bucket.rate_limited(retry_after, at)
            self._save(conn, account, locked, bucket, used=0, at=at, rate_limited=True)
            return Grant(0, bucket.blocked_until, bucket.rate, bucket.blocked_until, at)

    def budget_usage(self, account: str) -> dict[str, float | int] | None:
        """The account's limit and grants in the current and previous minute (for ``ccm status``)."""
        with self.read() as conn:
            row = conn.execute(select(t.api_budgets).where(t.api_budgets.c.account == account)
                               ).mappings().first()
        if row is None:
            return None
        return {"per_minute": int(row["per_minute"]), "this_minute": int(row["window_count"]),
                "last_minute": int(row["last_window_count"]), "rate_limited": int(row["rate_limited"]),
                "factor": float(row["factor"])}

    def _bucket(self, conn: Connection, account: str, per_minute: int, now: float) -> _Locked:
        """The account's bucket, its row locked until the transaction ends (created on first use).

        One locking read in the usual case (a grant is three statements: this, the UPDATE, the
        commit); the INSERT only when the row is missing. FOR UPDATE: two processes taking grants
        at once must not both spend the same tokens.
        """
        row = conn.execute(_LOCK_BUCKET, {"b_account": account}).mappings().first()
        if row is None:
            fresh = Bucket.fresh(per_minute, now)
            self.insert_ignore(conn, t.api_budgets, {
                "account": account, "per_minute": per_minute, "tokens": fresh.tokens,
                "get_tokens": fresh.get_tokens, "refilled_at": now, "factor": 1.0, "blocked_until": 0.0,
                "last_429_at": -1e18, "episode_at": -1e18, "post_waiting_until": 0.0,
                "window_start": now, "window_count": 0, "last_window_count": 0, "rate_limited": 0})
            row = conn.execute(_LOCK_BUCKET, {"b_account": account}).mappings().one()
        bucket = Bucket(int(row["per_minute"]), float(row["tokens"]), float(row["get_tokens"]),
                        float(row["refilled_at"]), float(row["factor"]), float(row["blocked_until"]),
                        float(row["last_429_at"]), float(row["post_waiting_until"]),
                        episode_at=-1e18 if row["episode_at"] is None else float(row["episode_at"]))
        if bucket.per_minute != per_minute:
            # The account's limit changed (a new setting): the newest process's setting wins.
            bucket = replace(bucket, per_minute=per_minute, tokens=min(bucket.tokens, bucket.burst))
        return _Locked(bucket, float(row["window_start"]), int(row["window_count"]),
                       int(row["rate_limited"]))

    def _save(self, conn: Connection, account: str, locked: _Locked, bucket: Bucket, *, used: int,
              at: float, rate_limited: bool = False) -> None:
        start, count, last = locked.window_start, locked.window_count, None
        if at - start >= 60:
            start, last, count = at, (count if at - start < 120 else 0), 0
        values = {"per_minute": bucket.per_minute, "tokens": bucket.tokens, "get_tokens": bucket.get_tokens,
                  "refilled_at": bucket.refilled_at, "factor": bucket.factor,
                  "blocked_until": bucket.blocked_until, "last_429_at": bucket.last_429_at,
                  "episode_at": bucket.episode_at,
                  "post_waiting_until": bucket.post_waiting_until, "window_start": start,
                  "window_count": max(0, count + used), "rate_limited": locked.rate_limited + rate_limited}
        if last is not None:
            values["last_window_count"] = last
        conn.execute(_UPDATE_BUCKET, {"b_account": account, **values})


@dataclass(frozen=True)
class _Locked:
    """An account's bucket as read under its row lock, with the row's per-minute counters."""

    bucket: Bucket
    window_start: float
    window_count: int
    rate_limited: int


# Built once: every grant runs them (ccm_tasks/ledger/attempts.py says why).
_LOCK_BUCKET = (select(t.api_budgets).where(t.api_budgets.c.account == bindparam("b_account"))
                .with_for_update())
_UPDATE_BUCKET = update(t.api_budgets).where(t.api_budgets.c.account == bindparam("b_account"))
