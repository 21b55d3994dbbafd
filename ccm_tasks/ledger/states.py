"""The customer and attempt state machines: every module that means a state imports it from here.

Customer (one row per number per campaign)::

    pending --claim--> calling --outcome, retry--> pending
                       calling --outcome, final--> done        (final_status says which)
                       calling --Make Call refused--> pending  (nothing rang; no attempt used)
    pending --no longer in the inputs--> withdrawn --back in the inputs--> pending
    done(unknown) --a person confirms it never rang (ccm requeue)--> pending

Attempt (one row per Make Call we decided to send)::

    created --POST answered 200--> placed --confirmed terminal--> terminal
    created --POST refused, or provably never sent--> rejected
    created --POST sent, answer lost (or the process died during it)--> unknown
    unknown --terminal callback names it--> terminal

``created`` is written after the API budget granted the request and every check that can refuse
it has passed, so "written but maybe sent" lasts only as long as the POST itself (invariant 2).
"""

from __future__ import annotations

from enum import StrEnum


class CustomerState(StrEnum):
    """Where a customer stands in its campaign."""

    PENDING = "pending"  # may be dialled: now, or at next_attempt_at
    CALLING = "calling"  # an attempt is open (its agent is leased)
    DONE = "done"  # final_status is set; never dialled again automatically
    WITHDRAWN = "withdrawn"  # no longer in the inputs (e.g. now on the do-not-call list)


class AttemptState(StrEnum):
    """Where one Make Call stands."""

    CREATED = "created"  # written, its POST is being sent now (the lease is held)
    PLACED = "placed"  # the API answered 200: call_sid known, the call is followed to terminal
    TERMINAL = "terminal"  # confirmed terminal (call_state == "terminal"); call_status is final
    REJECTED = "rejected"  # the API refused it, or it was provably never sent: nothing rang
    UNKNOWN = "unknown"  # sent, answer lost: the call may exist; never re-sent (invariant 3)


UNFINISHED_CUSTOMER: frozenset[CustomerState] = frozenset({CustomerState.PENDING, CustomerState.CALLING})
"""Customers a run still has work for."""

OPEN_ATTEMPT: frozenset[AttemptState] = frozenset(
    {AttemptState.CREATED, AttemptState.PLACED, AttemptState.UNKNOWN})
"""Attempts not yet resolved: each may still hold its agent's lease and may still be a live call."""

LIVE_ATTEMPT: frozenset[AttemptState] = frozenset({AttemptState.CREATED, AttemptState.PLACED})
"""Attempts whose call is (or is about to be) live and followed by a run."""

MAY_HAVE_RUNG: frozenset[AttemptState] = frozenset(
    {AttemptState.PLACED, AttemptState.TERMINAL, AttemptState.UNKNOWN})
"""Make Calls that may have rung someone: these count against contact limits and in reports."""

FINAL_UNKNOWN = "unknown"
"""The ``final_status`` of a customer whose last Make Call's outcome is unknown."""


def values(states: frozenset[CustomerState] | frozenset[AttemptState]) -> tuple[str, ...]:
    """The states as plain strings, sorted (for SQL ``IN`` clauses and stable output)."""
    return tuple(sorted(s.value for s in states))
