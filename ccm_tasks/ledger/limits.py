"""Contact limits across campaigns: which Make Calls count, and when a number may be rung again.

A number is called at most ``max_calls`` times in any rolling ``window_seconds`` across every
campaign in the ledger. What counts is every Make Call that may have rung the customer's phone:
placed, unknown or live attempts, and terminal ones but for refusals and agent-side outcomes
(the customer's leg never started). The claim checks it inside its transaction
(``AttemptStore._check_limit``); ``ccm validate`` previews it (``numbers_at_limit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select

from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.campaigns import CampaignStore
from ccm_tasks.ledger.states import AttemptState

NOT_RINGING_STATUSES = ("agent_unanswered", "agent_canceled", "agent_no_dial", "customer_no_dial")
"""Terminal call statuses in which the customer's phone never rang (not counted by contact limits)."""


@dataclass(frozen=True)
class ContactLimit:
    """At most ``max_calls`` Make Calls that may have rung one number in any ``window_seconds``."""

    max_calls: int
    window_seconds: float


def _rang(a: Any) -> ColumnElement[bool]:
    """Attempts whose Make Call may have rung the customer: placed, unknown or live, and terminal
    ones but for refusals and agent-side outcomes (they never reached the customer)."""
    return or_(a.state.in_((AttemptState.CREATED, AttemptState.PLACED, AttemptState.UNKNOWN)),
               (a.state == AttemptState.TERMINAL)
               & or_(a.call_status.is_(None), a.call_status.not_in(NOT_RINGING_STATUSES)))


class ContactLimitStore(CampaignStore):
    """Counting the calls to a number, across campaigns."""

    def limit_reached(self, conn: Connection, customer_key: str, limit: ContactLimit,
                      now: float) -> float | None:
        """None if the number may be called at ``now``; else when its oldest counted call leaves
        the window and it may be rung again."""
        counted = self.calls_to_number(conn, customer_key, now - limit.window_seconds)
        if len(counted) < limit.max_calls:
            return None
        return sorted(counted)[len(counted) - limit.max_calls] + limit.window_seconds

    def numbers_at_limit(self, limit: ContactLimit, now: float) -> dict[str, float]:
        """Every number the contact limit holds at ``now`` (across campaigns), with the time its
        oldest counted call leaves the window and it may be rung again (``ccm validate``)."""
        a, c = t.attempts.c, t.customers.c
        times: dict[str, list[float]] = {}
        with self.read() as conn:
            rows = conn.execute(select(c.customer_key, a.created_at).join(t.customers, c.id == a.customer_id)
                                .where(a.created_at >= now - limit.window_seconds, _rang(a)))
            for key, created in rows:
                times.setdefault(key, []).append(float(created))
        return {key: sorted(ts)[len(ts) - limit.max_calls] + limit.window_seconds
                for key, ts in times.items() if len(ts) >= limit.max_calls}

    def calls_to_number(self, conn: Connection, customer_key: str, since: float) -> list[float]:
        """When each Make Call that may have rung this number since ``since`` was written, across
        every campaign."""
        a, c = t.attempts.c, t.customers.c
        rows = conn.execute(select(a.created_at).join(t.customers, c.id == a.customer_id)
                            .where(c.customer_key == customer_key, a.created_at >= since, _rang(a)))
        return [float(v) for v in rows.scalars()]
