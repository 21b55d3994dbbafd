"""Time for the simulator, the client and the dialer, injectable so tests can run fast.

Every component that waits or timestamps takes a :class:`Clock`. Production uses
:class:`SystemClock`. A :class:`ScaledClock` runs simulated time faster than real time (``scale``
simulated seconds per real second), so a 3-minute call can take 30 ms; the simulator and the dialer
share one scale so that rate limits, ring timeouts and back-offs all mean the same thing to both.
:class:`ManualClock` only moves when a test moves it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of (possibly simulated) time."""

    def time(self) -> float:
        """Seconds since the Unix epoch, in this clock's time."""
        ...

    def to_real(self, seconds: float) -> float:
        """Real seconds that pass while ``seconds`` pass on this clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


def now_utc(clock: Clock) -> datetime:
    """The clock's current time as an aware UTC datetime."""
    return datetime.fromtimestamp(clock.time(), tz=UTC)


class SystemClock:
    """Real time."""

    scale = 1.0

    def time(self) -> float:
        return time.time()

    def to_real(self, seconds: float) -> float:
        return seconds

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class ScaledClock:
    """Simulated time running ``scale`` times faster than real time from ``origin``."""

    def __init__(self, scale: float, origin: float | None = None) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)
        self._wall0 = time.time()
        self._perf0 = time.perf_counter()
        self.origin = self._wall0 if origin is None else float(origin)

    @classmethod
    def anchored(cls, scale: float, wall0: float, sim0: float | None = None) -> ScaledClock:
        """The clock that read ``sim0`` (default ``wall0``) at wall time ``wall0``: another process's
        clock, rebuilt here so both agree (to the precision of the two machines' wall clocks)."""
        sim0 = wall0 if sim0 is None else sim0
        return cls(scale, origin=sim0 + (time.time() - wall0) * scale)

    @property
    def spec(self) -> str:
        """``"<scale>@<wall0>@<sim0>"``: what another process needs to share this clock (CCM_SIM_CLOCK)."""
        return f"{self.scale:g}@{self._wall0:.6f}@{self.origin:.6f}"

    def time(self) -> float:
        return self.origin + (time.perf_counter() - self._perf0) * self.scale

    def to_real(self, seconds: float) -> float:
        return seconds / self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def __repr__(self) -> str:
        return f"ScaledClock(scale={self.scale:g})"


class ManualClock:
    """A clock that moves only when told to; ``sleep`` advances it instantly."""

    scale = 1.0

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += seconds

    def set(self, timestamp: float) -> None:
        """Jump to an absolute time."""
        self._now = float(timestamp)

    def to_real(self, seconds: float) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now})"
