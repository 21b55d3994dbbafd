"""When calls may start: the daily calling window in its time zone, clipped by start and end times.

A call may *start* only inside an open period; calls already live when it closes are finished.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
        if self.ended(t):
            return f"the campaign ended at {local_minute(self.end_at or t, self.zone)}"
        closes = self.closes_at(t)
        if closes is not None:
            return f"open until {local_minute(closes, self.zone)}"
        nxt = self.next_open(t)
        return f"closed; opens {local_minute(nxt, self.zone)}" if nxt else "closed for good"


def local_minute(ts: float, zone: ZoneInfo | str) -> str:
    """``ts`` as people read it in ``zone``, to the minute: "2026-12-02 19:30 IST"."""
    tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    return datetime.fromtimestamp(ts, tz=tz).strftime("%Y-%m-%d %H:%M %Z")


class CallingHours:
    """The campaign's window, and the same hours in each recipient's own time zone.

    A call to a number whose zones libphonenumber knows may start only when the campaign's window
    is open *and* the window is open in every one of the number's zones (several zones: the most
    restrictive wins); a number that does not tell its zone follows the campaign's window alone.
    For an India-only campaign in Asia/Kolkata nothing changes.
    """

    def __init__(self, campaign: DialWindow) -> None:
        self.campaign = campaign
        self._windows: dict[tuple[str, ...], tuple[DialWindow, ...]] = {}

    def windows(self, zones: tuple[str, ...] | None) -> tuple[DialWindow, ...]:
        """Every window that must be open for a number in ``zones``."""
        if not zones:
            return (self.campaign,)
        cached = self._windows.get(zones)
        if cached is None:
            local = [replace(self.campaign, timezone=z) for z in zones if not self._same_rules(z)]
            cached = self._windows[zones] = (self.campaign, *local)
        return cached

    def is_open(self, zones: tuple[str, ...] | None, t: float) -> bool:
        """May a call to a number in ``zones`` start at ``t``?"""
        return all(w.is_open(t) for w in self.windows(zones))

    def next_open(self, zones: tuple[str, ...] | None, t: float) -> float | None:
        """When a call to a number in ``zones`` may next start (``t`` if now); None if never."""
        windows = self.windows(zones)
        for _ in range(64):  # each step jumps to the latest next opening; a week of windows at most
            starts = [w.next_open(t) for w in windows]
            if any(s is None for s in starts):
                return None
            t = max(s for s in starts if s is not None)
            if all(w.is_open(t) for w in windows):
                return t
        return None

    def _same_rules(self, zone: str) -> bool:
        """A zone that keeps the campaign zone's clock all year (Asia/Calcutta is Asia/Kolkata)."""
        try:
            other = ZoneInfo(zone)
        except (KeyError, ValueError):
            return True  # an unknown name: the campaign's window alone
        ours = self.campaign.zone
        probes = [datetime(2026, m, 15, 12, tzinfo=UTC) for m in (1, 4, 7, 10)]
        return all(p.astimezone(other).utcoffset() == p.astimezone(ours).utcoffset() for p in probes)
