"""What happens to a customer after each outcome: the retry policy as a pure function.

- ``completed`` is final.
- ``customer_unanswered`` uses one customer attempt; retried after the interval (linear or
  exponential) while attempts remain and the status is in ``retry_on``.
- ``agent_unanswered``, ``agent_canceled``, ``agent_no_dial``: the customer goes back to the front of
  the queue for another agent without using a customer attempt, at most ``max_agent_side_retries``
  times; after that, retried like a customer outcome if listed in ``retry_on``, else final.
- ``customer_no_dial`` (the platform never dialled the customer): retried after the interval, at most
  ``customer_no_dial_max_retries`` times (default once), without using a customer attempt.
- An unknown outcome (Make Call sent, answer lost) is never retried automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

AGENT_SIDE = frozenset({"agent_unanswered", "agent_canceled", "agent_no_dial"})


@dataclass(frozen=True)
class Policy:
    """The campaign's retry rules (from the definition's ``retry`` block)."""

    max_attempts: int = 3
    interval_seconds: float = 1800.0
    backoff: str = "linear"
    retry_on: frozenset[str] = frozenset({"customer_unanswered", "customer_no_dial"})
    customer_no_dial_max_retries: int = 1
    max_agent_side_retries: int = 3

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 = second attempt)."""
        if self.backoff == "exponential":
            return self.interval_seconds * 2.0 ** (retry_number - 1)
        return self.interval_seconds

    def max_dials(self) -> int:
        """The most times one customer can be dialled under this policy."""
        return self.max_attempts + self.max_agent_side_retries + self.customer_no_dial_max_retries


@dataclass(frozen=True)
class Counts:
    """A customer's retry counters."""

    attempts: int = 0
    agent_side_retries: int = 0
    no_dial_retries: int = 0


@dataclass(frozen=True)
class Decision:
    """What to do next: ``final`` status, or retry at ``retry_at`` (``front``: at once, first)."""

    counts: Counts
    final: str | None = None
    retry_at: float | None = None
    front: bool = False
    agent_cooldown: bool = False


def decide(status: str, counts: Counts, policy: Policy, now: float) -> Decision:
    """The decision after a terminal call with ``call_status`` = ``status``."""
    if status == "completed":
        return Decision(replace(counts, attempts=counts.attempts + 1), final="completed")
    if status in AGENT_SIDE:
        if counts.agent_side_retries < policy.max_agent_side_retries:
            return Decision(replace(counts, agent_side_retries=counts.agent_side_retries + 1),
                            retry_at=now, front=True, agent_cooldown=True)
        return _counted(status, counts, policy, now, agent_cooldown=True)
    if status == "customer_no_dial":
        allowed = policy.customer_no_dial_max_retries
        if "customer_no_dial" in policy.retry_on and counts.no_dial_retries < allowed:
            return Decision(replace(counts, no_dial_retries=counts.no_dial_retries + 1),
                            retry_at=now + policy.delay(1))
        return Decision(counts, final=status)
    return _counted(status, counts, policy, now)


def _counted(status: str, counts: Counts, policy: Policy, now: float,
             agent_cooldown: bool = False) -> Decision:
    used = replace(counts, attempts=counts.attempts + 1)
    if status in policy.retry_on and used.attempts < policy.max_attempts:
        return Decision(used, retry_at=now + policy.delay(used.attempts), agent_cooldown=agent_cooldown)
    return Decision(used, final=status, agent_cooldown=agent_cooldown)
