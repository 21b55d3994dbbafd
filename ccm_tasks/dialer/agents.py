"""The campaign's agents and what each may do now; the longest-idle agent is offered work first."""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from ccm_tasks.dialer.progress import AgentCounts, AgentLabel, AgentView

AgentState = Literal["idle", "calling", "wrap_up", "cooldown", "paused", "dropped", "elsewhere",
                     "quarantined"]
"""idle: free; calling: leased for a call by this run; wrap_up: after-call work; cooldown: resting
after an agent-side outcome or a 10706; paused: unavailable (device off...), re-checked later;
elsewhere: leased by another run; quarantined: a Make Call of ours with an unknown outcome may still
be live; dropped: invalid, never offered work again in this run."""

TIMED: frozenset[str] = frozenset({"wrap_up", "cooldown", "paused", "elsewhere", "quarantined"})

LABELS: dict[str, AgentLabel] = {
    "idle": "idle", "calling": "busy", "wrap_up": "wrap-up", "cooldown": "cooling down",
    "paused": "unavailable", "elsewhere": "held by another run", "quarantined": "quarantined",
    "dropped": "dropped"}
"""How each state reads on status pages and progress lines."""


@dataclass
class AgentSlot:
    """One agent as the dialer sees it."""

    key: str
    user_id: str | None
    contact_uri: str | None
    name: str | None
    state: AgentState = "idle"
    idle_since: float = 0.0
    until: float = 0.0
    reason: str | None = None
    # Why the API last refused it as unavailable (device off...), until a call of its is placed.
    unavailable: str | None = None
    calls: int = 0
    seq: int = field(default=0)


class AgentPool:
    """Agents by state, with the idle ones in a heap ordered by how long they have been idle."""

    def __init__(self, agents: list[AgentSlot], now: float) -> None:
        self.agents = {a.key: a for a in agents}
        self._seq = itertools.count()
        self._idle: list[tuple[float, int, str]] = []
        self._timed: list[tuple[float, int, str]] = []
        for i, agent in enumerate(agents):
            # Roster order breaks ties: the first agent listed is the "longest idle" at start.
            self.set_idle(agent, now - len(agents) + i)

    def get(self, key: str) -> AgentSlot | None:
        """An agent by key."""
        return self.agents.get(key)

    def set_idle(self, agent: AgentSlot, idle_since: float) -> None:
        """Free for work since ``idle_since``."""
        agent.state, agent.idle_since, agent.reason = "idle", idle_since, None
        agent.seq = next(self._seq)
        heapq.heappush(self._idle, (idle_since, agent.seq, agent.key))

    def set_calling(self, agent: AgentSlot) -> None:
        """Leased for a call by this run."""
        agent.state = "calling"
        agent.seq = next(self._seq)

    def set_timed(self, agent: AgentSlot, state: AgentState, until: float, reason: str | None = None) -> None:
        """Unavailable until ``until`` (cooldown, paused, elsewhere, quarantined)."""
        assert state in TIMED
        agent.state, agent.until, agent.reason = state, until, reason
        agent.seq = next(self._seq)
        heapq.heappush(self._timed, (until, agent.seq, agent.key))

    def drop(self, agent: AgentSlot, reason: str) -> None:
        """Never offer this agent work again in this run."""
        agent.state, agent.reason = "dropped", reason
        agent.seq = next(self._seq)

    def wake(self, now: float) -> list[tuple[AgentSlot, AgentState]]:
        """Move agents whose timed state has ended back to idle; returns them with that state."""
        woken = []
        while self._timed and self._timed[0][0] <= now:
            _until, seq, key = heapq.heappop(self._timed)
            agent = self.agents[key]
            if agent.seq == seq and agent.state in TIMED:
                woken.append((agent, agent.state))
                # Keep its place in line: idle since it last finished a call, or since now.
                self.set_idle(agent, min(agent.idle_since, now) if agent.state == "elsewhere" else now)
        return woken

    def pop_longest_idle(self) -> AgentSlot | None:
        """The longest-idle agent, removed from the idle heap (caller sets its next state)."""
        while self._idle:
            _since, seq, key = heapq.heappop(self._idle)
            agent = self.agents[key]
            if agent.seq == seq and agent.state == "idle":
                return agent
        return None

    def next_wake(self) -> float | None:
        """When the next timed state ends."""
        while self._timed:
            until, seq, key = self._timed[0]
            agent = self.agents[key]
            if agent.seq == seq and agent.state in TIMED:
                return until
            heapq.heappop(self._timed)
        return None

    def usable(self) -> bool:
        """Whether any agent can still take calls in this run."""
        return any(a.state != "dropped" for a in self.agents.values())

    def counts(self) -> AgentCounts:
        """Agents per state."""
        n = Counter(a.state for a in self.agents.values())
        return AgentCounts(busy=n["calling"], idle=n["idle"], wrap_up=n["wrap_up"],
                           cooling_down=n["cooldown"],
                           unavailable=n["paused"], elsewhere=n["elsewhere"], quarantined=n["quarantined"],
                           dropped=n["dropped"])

    def views(self) -> tuple[AgentView, ...]:
        """Every agent with its state in words (for status pages)."""
        return tuple(AgentView(a.key, a.name, LABELS[a.state], a.reason,
                               a.until if a.state in TIMED else None) for a in self.agents.values())

    def still_unavailable(self) -> dict[str, str]:
        """Agents whose latest Make Call was refused as unavailable and who placed none since (even
        between re-checks, when they are briefly idle), with the API's reason: for the summary."""
        return {a.key: a.unavailable for a in self.agents.values()
                if a.unavailable is not None and a.state != "dropped"}

    def reasons(self, state: AgentState) -> dict[str, str]:
        """Agents in ``state`` with why (e.g. the dropped and the unavailable, for the summary)."""
        return {a.key: a.reason or "" for a in self.agents.values() if a.state == state}
