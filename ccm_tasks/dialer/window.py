"""When calls may start: the daily calling window in its time zone, clipped by start and end times.

A call may *start* only inside an open period; calls already live when it closes are finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names as definitions write them; index = ``date.weekday()``."""


@dataclass(frozen=True)
class DialWindow:
    """Daily window [start, end) on ``days`` in ``timezone``, within [start_at, end_at)."""

    start: time = time(9, 0)
    end: time = time(21, 0)
    timezone: str = "Asia/Kolkata"
    days: tuple[str, ...] = WEEKDAYS
    start_at: float | None = None
    end_at: float | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _periods(self, t: float, days_ahead: int = 8) -> list[tuple[float, float]]:
        """Open periods (epoch seconds) from the local day of ``t`` onwards."""
        zone = self.zone
        day0 = datetime.fromtimestamp(t, tz=UTC).astimezone(zone).date()
        out = []
        for offset in range(-1, days_ahead):
            day = day0 + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            lo = datetime.combine(day, self.start, tzinfo=zone).timestamp()
            hi = datetime.combine(day, self.end, tzinfo=zone).timestamp()
            if self.start_at is not None:
                lo = max(lo, self.start_at)
            if self.end_at is not None:
                hi = min(hi, self.end_at)
            if hi > lo:
                out.append((lo, hi))
        return out

    def is_open(self, t: float) -> bool:
        """May a call start at ``t``?"""
        return self.closes_at(t) is not None

    def closes_at(self, t: float) -> float | None:
        """End of the open period containing ``t`` (None if closed at ``t``)."""
        for lo, hi in self._periods(t, 1):
            if lo <= t < hi:
                return hi
        return None

    def next_open(self, t: float) -> float | None:
        """Start of the next open period at or after ``t``; ``t`` itself if open; None if never."""
        if self.end_at is not None and t >= self.end_at:
            return None
        t0 = max(t, self.start_at) if self.start_at is not None else t
        for lo, hi in self._periods(t0):
            if t0 < hi:
                return max(lo, t0)
        return None

    def ended(self, t: float) -> bool:
        """True once the campaign's end time has passed."""
        return self.end_at is not None and t >= self.end_at

    def describe(self, t: float) -> str:
        """Human summary of the window at time t, in the campaign's time zone."""
        def local(ts: float) -> str:
            return datetime.fromtimestamp(ts, tz=self.zone).strftime("%Y-%m-%d %H:%M %Z")

        if self.ended(t):
            return f"the campaign ended at {local(self.end_at or t)}"
        closes = self.closes_at(t)
        if closes is not None:
            return f"open until {local(closes)}"
        nxt = self.next_open(t)
        return f"closed; opens {local(nxt)}" if nxt else "closed for good"
