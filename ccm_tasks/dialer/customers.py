"""One customer as the dialer holds it, and every transition of its state (ccm_tasks.ledger.states).

Each transition changes the entry in memory and returns the :class:`~ccm_tasks.ledger.CustomerUpdate`
the ledger writes with the event that caused it (invariant 4): the engine never builds one itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ccm_tasks.dialer.policy import Counts, Decision
from ccm_tasks.ledger import CustomerState, CustomerUpdate
from ccm_tasks.ledger.states import FINAL_UNKNOWN


@dataclass
class CustomerEntry:
    """One customer as the dialer sees it."""

    id: int
    phone: str
    preferred_agent: str | None
    counts: Counts = field(default_factory=Counts)
    state: CustomerState = CustomerState.PENDING
    last_status: str | None = None
    final_status: str | None = None
    next_at: float = 0.0
    sticky_until: float = 0.0
    seq: int = 0
    customer_key: str | None = None  # the number across campaigns (contact limits, number leases)
    zones: tuple[str, ...] | None = None  # the recipient's own time zones, when the number tells them

    @property
    def next_attempt_no(self) -> int:
        """The 1-based number of this customer's next Make Call."""
        c = self.counts
        return 1 + c.attempts + c.agent_side_retries + c.no_dial_retries

    def update(self) -> CustomerUpdate:
        """The ledger's copy of this entry as it stands."""
        c = self.counts
        return CustomerUpdate(state=self.state, final_status=self.final_status, last_status=self.last_status,
                              attempts=c.attempts, agent_side_retries=c.agent_side_retries,
                              no_dial_retries=c.no_dial_retries,
                              next_attempt_at=self.next_at if self.state == CustomerState.PENDING else None)

    def calling(self) -> None:
        """An attempt is being opened for it (the claim writes ``calling`` itself)."""
        self.state = CustomerState.CALLING

    def decided(self, decision: Decision, status: str) -> CustomerUpdate:
        """A terminal call's outcome: final, or pending again until ``decision.retry_at``."""
        self.counts, self.last_status = decision.counts, status
        if decision.final is not None:
            self.state, self.final_status = CustomerState.DONE, decision.final
        else:
            assert decision.retry_at is not None
            self.state, self.next_at = CustomerState.PENDING, decision.retry_at
        return self.update()

    def pending(self) -> CustomerUpdate:
        """Back in the queue with its counts unchanged (nothing rang, or it was never sent)."""
        self.state = CustomerState.PENDING
        return self.update()

    def final_unknown(self, *, count_attempt: bool) -> CustomerUpdate:
        """Final as ``unknown``: its Make Call may have rung; never re-dialled automatically
        (invariant 3). ``count_attempt``: that Make Call uses one of its attempts."""
        if count_attempt:
            self.counts = replace(self.counts, attempts=self.counts.attempts + 1)
        self.state, self.final_status, self.last_status = CustomerState.DONE, FINAL_UNKNOWN, FINAL_UNKNOWN
        return self.update()

    def reopen_unknown(self) -> None:
        """A terminal callback names the unknown Make Call: its real outcome replaces ``unknown``
        (the attempt it used is counted again by the decision on the real outcome)."""
        self.counts = replace(self.counts, attempts=max(0, self.counts.attempts - 1))
        self.state, self.final_status = CustomerState.CALLING, None
