"""Customers waiting to be dialled: at the front (put back after a refused POST), ready, waiting
for their preferred agent (sticky, up to a deadline), or scheduled later (retries)."""

from __future__ import annotations

import heapq
import itertools
from collections import deque

from ccm_tasks.dialer.customers import CustomerEntry


class CustomerQueue:
    """The dialling order: sticky-for-this-agent, then front, then ready by time, then later."""

    def __init__(self, sticky_wait: float, sticky_agents: set[str]) -> None:
        self.sticky_wait = sticky_wait
        self.sticky_agents = set(sticky_agents)  # preferred agents that can still take calls
        self._seq = itertools.count()
        self._front: deque[CustomerEntry] = deque()
        self._ready: list[tuple[float, int, CustomerEntry]] = []
        self._sticky: dict[str, deque[CustomerEntry]] = {}
        self._later: list[tuple[float, int, CustomerEntry]] = []
        self.waiting = 0

    def add(self, entry: CustomerEntry, now: float) -> None:
        """Queue a pending customer by its ``next_at``."""
        entry.seq = next(self._seq)
        self.waiting += 1
        if entry.next_at > now:
            heapq.heappush(self._later, (entry.next_at, entry.seq, entry))
        else:
            self._make_ready(entry, now)

    def put_back_front(self, entry: CustomerEntry, now: float) -> None:
        """Back to the very front (its POST was refused, nothing rang)."""
        entry.seq = next(self._seq)
        self.waiting += 1
        if self._wants_sticky(entry) and entry.sticky_until > now:
            self._sticky.setdefault(entry.preferred_agent or "", deque()).appendleft(entry)
        else:
            self._front.appendleft(entry)

    def schedule(self, entry: CustomerEntry, at: float, now: float, front: bool = False) -> None:
        """Retry at ``at`` (``front``: at once, ahead of the others)."""
        entry.next_at = at
        entry.sticky_until = 0.0  # a later retry waits for its preferred agent again
        if front:
            self.put_back_front(entry, now)  # ... but "at once" means any agent
        else:
            self.add(entry, now)

    def drop_sticky_agent(self, agent_key: str, now: float) -> None:
        """The preferred agent can no longer take calls: its customers go to anyone."""
        self.sticky_agents.discard(agent_key)
        for entry in self._sticky.pop(agent_key, deque()):
            heapq.heappush(self._ready, (entry.next_at, entry.seq, entry))

    def promote(self, now: float) -> None:
        """Move due retries to ready, and sticky customers whose wait is over to anyone."""
        while self._later and self._later[0][0] <= now:
            _, _, entry = heapq.heappop(self._later)
            self._make_ready(entry, now)
        for waiting in self._sticky.values():
            while waiting and waiting[0].sticky_until <= now:
                entry = waiting.popleft()
                heapq.heappush(self._ready, (entry.next_at, entry.seq, entry))

    def pop_for(self, agent_key: str) -> CustomerEntry | None:
        """The next customer for this agent, or None."""
        mine = self._sticky.get(agent_key)
        if mine:
            entry = mine.popleft()
        elif self._front:
            entry = self._front.popleft()
        elif self._ready:
            entry = heapq.heappop(self._ready)[2]
        else:
            return None
        self.waiting -= 1
        return entry

    def has_ready(self) -> bool:
        """Anyone dialable now (by some agent)?"""
        return bool(self._front or self._ready or any(self._sticky.values()))

    def next_wake(self) -> float | None:
        """When the next retry falls due or a sticky wait ends."""
        times = [self._later[0][0]] if self._later else []
        times += [w[0].sticky_until for w in self._sticky.values() if w]
        return min(times) if times else None

    def _wants_sticky(self, entry: CustomerEntry) -> bool:
        return bool(entry.preferred_agent) and entry.preferred_agent in self.sticky_agents

    def _make_ready(self, entry: CustomerEntry, now: float) -> None:
        if self._wants_sticky(entry):
            if entry.sticky_until <= 0.0:
                entry.sticky_until = now + self.sticky_wait
            if entry.sticky_until > now:
                self._sticky.setdefault(entry.preferred_agent or "", deque()).append(entry)
                return
        heapq.heappush(self._ready, (entry.next_at, entry.seq, entry))
