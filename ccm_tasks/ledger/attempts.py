"""Agent and number leases, and attempts: the lock of invariant 1 and the record of invariant 2.

* An agent is leased in ``agent_leases`` before its Make Call and released only when the call is
  confirmed terminal (or, after a wrap-up, when ``available_at`` has passed). A lease whose holder
  is dead can be taken over only after the old call is confirmed terminal, or, when the old call's
  sid was never learned, after a quarantine long enough for any such call to have ended.
* A number is leased in ``number_leases`` in the same transaction, so two campaigns never ring one
  person at once, and a contact limit across campaigns is checked there too.
* The campaign's control (ccm_tasks.control) is read in the same transaction, under a share lock
  of the campaign's row: once a pause or stop is committed no attempt of the campaign can be written,
  whenever the running engine next reads its controls.
* An attempt row is written before its Make Call; its ``uid`` travels in ``custom_field``.

Every race is decided by the database: the leases' primary keys (``INSERT ... ON CONFLICT DO
NOTHING``) and compare-and-delete statements whose row count decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.base import pk, transaction_retry
from ccm_tasks.ledger.campaigns import UPDATE_CUSTOMER, CustomerUpdate, set_customer
from ccm_tasks.ledger.limits import ContactLimit, ContactLimitStore
from ccm_tasks.ledger.states import OPEN_ATTEMPT, AttemptState, CustomerState, values

Refusal = Literal["agent_leased", "number_busy", "contact_limit", "campaign_held"]
"""Why a claim wrote nothing: the agent is leased, the number is on another live call, the number
reached its contact limit, or an operator paused or stopped the campaign."""


@dataclass(frozen=True)
class Claim:
    """The result of trying to lease an agent (and the number) and open an attempt, atomically."""

    ok: bool
    attempt_id: int | None = None
    attempt_uid: str | None = None
    refusal: Refusal | None = None
    # agent_leased: who holds the agent and what we know of its call.
    holder_id: str | None = None
    holder_alive: bool = True
    old_attempt_id: int | None = None
    old_call_sid: str | None = None
    quarantine_until: float | None = None
    available_at: float | None = None
    # contact_limit: when the oldest counted call leaves the window.
    retry_at: float | None = None


@dataclass(frozen=True)
class OpenAttempt:
    """An attempt that is not finished: to be followed again or resolved."""

    id: int
    uid: str
    campaign_id: int
    customer_id: int
    agent_key: str
    holder_id: str
    state: str
    call_sid: str | None
    created_at: float
    placed_at: float | None
    stuck_at: float | None


# Every dialled call runs the statements below (claim, placed, terminal). Building a Core statement
# and its cache key costs several times the CPU SQLite takes to run it, so these are built once; the
# SET clause of an UPDATE and the columns of an INSERT are the execute's parameters that name columns,
# and the ``b_`` parameters bind the WHERE (docs/benchmarks.md (c)).
_A, _L, _N = t.attempts.c, t.agent_leases.c, t.number_leases.c
_ATTEMPT_BY_UID = select(_A.id).where(_A.uid == bindparam("b_uid"))
_CONTROL_SHARED = (select(t.campaigns.c.control).where(t.campaigns.c.id == bindparam("b_campaign"))
                   .with_for_update(read=True))
_LEASE_OF_AGENT = select(t.agent_leases).where(_L.agent_key == bindparam("b_agent"))
_INSERT_ATTEMPT = insert(t.attempts)
_UPDATE_AGENT_LEASE = update(t.agent_leases).where(_L.agent_key == bindparam("b_agent"))
_UPDATE_ATTEMPT = update(t.attempts).where(_A.id == bindparam("b_id"))
_UPDATE_CALL_LEASE = update(t.agent_leases).where(_L.agent_key == bindparam("b_agent"),
                                                  _L.attempt_id == bindparam("b_attempt"))
_DELETE_CALL_LEASE = delete(t.agent_leases).where(_L.agent_key == bindparam("b_agent"),
                                                  _L.attempt_id == bindparam("b_attempt"))
_CLOSE_ATTEMPT = update(t.attempts).where(_A.id == bindparam("b_id"), _A.state.in_(values(OPEN_ATTEMPT)))
_FREE_NUMBER = delete(t.number_leases).where(_N.attempt_id == bindparam("b_attempt"))


class _Refused(Exception):
    """Raised inside a claim to roll it back with a reason."""

    def __init__(self, claim: Claim) -> None:
        super().__init__(claim.refusal)
        self.claim = claim


class AttemptStore(ContactLimitStore):
    """Leases, attempts and their transitions."""

    def claim(self, *, agent_key: str, agent_name: str | None, holder_id: str, campaign_id: int,
              run_id: int | None, customer_id: int, attempt_no: int, now: float, uid: str | None = None,
              customer_key: str | None = None, limit: ContactLimit | None = None,
              clock: Callable[[], float] | None = None) -> Claim:
        """Lease the agent (and the number) and write the attempt, in one transaction, just before
        its POST. Idempotent by ``uid`` (made here if not given): a retry after a lost commit
        acknowledgement finds its own attempt. Durable against power loss: a Make Call never leaves
        without its attempt on disk.

        ``clock``, when given, is read once the transaction holds the write lock and replaces
        ``now``: the attempt's time (what contact limits count) is then when it was written, not when
        the caller asked, which can be a lock wait earlier when other processes write.
        """
        return self._claim(agent_key=agent_key, agent_name=agent_name, holder_id=holder_id,
                           campaign_id=campaign_id, run_id=run_id, customer_id=customer_id,
                           attempt_no=attempt_no, now=now, uid=uid or uuid.uuid4().hex,
                           customer_key=customer_key, limit=limit, clock=clock)

    @transaction_retry
    def _claim(self, *, agent_key: str, agent_name: str | None, holder_id: str, campaign_id: int,
               run_id: int | None, customer_id: int, attempt_no: int, now: float, uid: str,
               customer_key: str | None, limit: ContactLimit | None,
               clock: Callable[[], float] | None) -> Claim:
        try:
            with self.write(durable=True) as conn:
                if clock is not None:
                    now = clock()
                mine = conn.execute(_ATTEMPT_BY_UID, {"b_uid": uid}).scalar()
                if mine is not None:
                    return Claim(ok=True, attempt_id=int(mine), attempt_uid=uid)
                self._check_control(conn, campaign_id)
                self._lease_agent(conn, agent_key, holder_id, campaign_id, now)
                if customer_key is not None:
                    if limit is not None:
                        self._check_limit(conn, customer_key, limit, now)
                attempt_id = pk(conn.execute(_INSERT_ATTEMPT, {
                    "uid": uid, "campaign_id": campaign_id, "customer_id": customer_id, "run_id": run_id,
                    "holder_id": holder_id, "agent_key": agent_key, "agent_name": agent_name,
                    "attempt_no": attempt_no, "state": str(AttemptState.CREATED), "created_at": now}))
                conn.execute(_UPDATE_AGENT_LEASE, {"b_agent": agent_key, "attempt_id": attempt_id})
                if customer_key is not None:
                    self._lease_number(conn, customer_key, attempt_id, campaign_id, now)
                conn.execute(UPDATE_CUSTOMER, {"b_id": customer_id, "state": str(CustomerState.CALLING),
                                               "updated_at": now})
        except _Refused as refused:
            return refused.claim
        return Claim(ok=True, attempt_id=int(attempt_id), attempt_uid=uid)

    def _check_control(self, conn: Connection, campaign_id: int) -> None:
        """Refuse the claim while operators hold the campaign. The share lock orders it against
        ``set_control`` (which locks the row for update): on PostgreSQL a pause committed after this
        read waits for this claim, and a claim after it sees it; SQLite serialises writes anyway."""
        control = conn.execute(_CONTROL_SHARED, {"b_campaign": campaign_id}).scalar()
        if control in ("pause", "stop"):
            raise _Refused(Claim(ok=False, refusal="campaign_held"))

    def _lease_agent(self, conn: Connection, agent_key: str, holder_id: str, campaign_id: int,
                     now: float) -> None:
        lease = conn.execute(_LEASE_OF_AGENT, {"b_agent": agent_key}).mappings().first()
        if lease is not None and lease["available_at"] is not None and lease["available_at"] <= now:
            # The call is over and the agent's wrap-up has passed: free for anyone (compare-and-delete).
            conn.execute(delete(t.agent_leases).where(
                t.agent_leases.c.agent_key == agent_key, t.agent_leases.c.holder_id == lease["holder_id"],
                t.agent_leases.c.available_at == lease["available_at"]))
        if self.insert_ignore(conn, t.agent_leases, {"agent_key": agent_key, "holder_id": holder_id,
                                                     "campaign_id": campaign_id, "acquired_at": now}):
            return
        lease = conn.execute(_LEASE_OF_AGENT, {"b_agent": agent_key}).mappings().first()
        if lease is None:  # released between our insert and this read: let the caller try again
            raise _Refused(Claim(ok=False, refusal="agent_leased", holder_id=None, holder_alive=True))
        old = str(lease["holder_id"])
        raise _Refused(Claim(
            ok=False, refusal="agent_leased", holder_id=old,
            holder_alive=old == holder_id or self.holder_alive(old, conn),
            old_attempt_id=lease["attempt_id"], old_call_sid=lease["call_sid"],
            quarantine_until=lease["quarantine_until"], available_at=lease["available_at"]))

    def _lease_number(self, conn: Connection, customer_key: str, attempt_id: int, campaign_id: int,
                      now: float) -> None:
        row = {"customer_key": customer_key, "attempt_id": attempt_id, "campaign_id": campaign_id,
               "acquired_at": now}
        if self.insert_ignore(conn, t.number_leases, row):
            return
        held = conn.execute(select(t.number_leases.c.attempt_id)
                            .where(t.number_leases.c.customer_key == customer_key)).scalar()
        live = held is not None and conn.execute(select(func.count()).select_from(t.agent_leases).where(
            t.agent_leases.c.attempt_id == held, t.agent_leases.c.available_at.is_(None))).scalar()
        if live:
            raise _Refused(Claim(ok=False, refusal="number_busy"))
        # Stale: no agent is on that attempt any more. Replace it (compare-and-delete decides).
        gone = conn.execute(delete(t.number_leases).where(t.number_leases.c.customer_key == customer_key,
                                                          t.number_leases.c.attempt_id == held)).rowcount
        if not gone or not self.insert_ignore(conn, t.number_leases, row):
            raise _Refused(Claim(ok=False, refusal="number_busy"))

    def _check_limit(self, conn: Connection, customer_key: str, limit: ContactLimit, now: float) -> None:
        retry_at = self.limit_reached(conn, customer_key, limit, now)
        if retry_at is not None:
            raise _Refused(Claim(ok=False, refusal="contact_limit", retry_at=retry_at))

    # ------------------------------------------------------------------ transitions

    @transaction_retry
    def mark_placed(self, attempt_id: int, *, agent_key: str, call_sid: str, details: Mapping[str, Any],
                    now: float) -> None:
        """The API accepted the call: remember its sid (the lease now points at the call)."""
        with self.write() as conn:
            conn.execute(_UPDATE_ATTEMPT, {"b_id": attempt_id, "state": str(AttemptState.PLACED),
                                           "call_sid": call_sid, "placed_at": now, "details": dict(details)})
            conn.execute(_UPDATE_CALL_LEASE, {"b_agent": agent_key, "b_attempt": attempt_id,
                                              "call_sid": call_sid})

    @transaction_retry
    def mark_rejected(self, attempt_id: int, *, agent_key: str, holder_id: str, customer_id: int | None,
                      customer: CustomerUpdate | None, category: str, code: int | None, message: str,
                      now: float) -> None:
        """The API refused the POST, or it was provably never sent (nothing rang): close the attempt
        and free the agent and the number."""
        with self.write() as conn:
            conn.execute(update(t.attempts).where(t.attempts.c.id == attempt_id).values(
                state=str(AttemptState.REJECTED), terminal_at=now, error_category=category,
                error_code=code, error_message=message[:2000]))
            set_customer(conn, customer_id, customer, now)
            conn.execute(delete(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key,
                                                      t.agent_leases.c.holder_id == holder_id))
            conn.execute(delete(t.number_leases).where(t.number_leases.c.attempt_id == attempt_id))
            _attempt_event(conn, attempt_id, now, f"post_{category}", agent_key=agent_key,
                           data={"code": code, "message": message[:500]})

    @transaction_retry
    def mark_unknown(self, attempt_id: int, *, agent_key: str, customer_id: int | None,
                     customer: CustomerUpdate | None, message: str, quarantine_until: float,
                     now: float) -> None:
        """The POST's outcome is unknown: never re-dial it; hold the agent until a call would be over."""
        with self.write() as conn:
            conn.execute(update(t.attempts).where(t.attempts.c.id == attempt_id).values(
                state=str(AttemptState.UNKNOWN), error_category="outcome_unknown",
                error_message=message[:2000]))
            set_customer(conn, customer_id, customer, now)
            conn.execute(update(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key,
                                                      t.agent_leases.c.attempt_id == attempt_id)
                         .values(quarantine_until=quarantine_until))
            _attempt_event(conn, attempt_id, now, "outcome_unknown", agent_key=agent_key,
                           data={"message": message[:500], "quarantine_until": quarantine_until})

    @transaction_retry
    def complete_attempt(self, attempt_id: int, *, details: Mapping[str, Any], summary: Mapping[str, Any],
                         customer_id: int | None, customer: CustomerUpdate | None, agent_key: str,
                         release: bool, now: float, resolved_by: str = "poll",
                         wrap_up_seconds: float = 0.0) -> bool:
        """Record a terminal call, the customer's next state, and free the agent (at once, or after
        its wrap-up), atomically. Idempotent: an attempt already terminal is left alone (False)."""
        with self.write() as conn:
            done = conn.execute(_CLOSE_ATTEMPT, {
                "b_id": attempt_id, "state": str(AttemptState.TERMINAL), "terminal_at": now,
                "details": dict(details), "resolved_by": resolved_by,
                "wrap_up_seconds": wrap_up_seconds or None, **summary})
            if not done.rowcount:
                return False
            set_customer(conn, customer_id, customer, now)
            conn.execute(_FREE_NUMBER, {"b_attempt": attempt_id})
            if release:
                lease = {"b_agent": agent_key, "b_attempt": attempt_id}
                if wrap_up_seconds > 0:
                    conn.execute(_UPDATE_CALL_LEASE, {**lease, "available_at": now + wrap_up_seconds,
                                                      "quarantine_until": None})
                else:
                    conn.execute(_DELETE_CALL_LEASE, lease)
            return True

    @transaction_retry
    def mark_stuck(self, attempt_id: int, now: float) -> None:
        """Flag a call that should long have ended; its agent stays leased."""
        with self.write() as conn:
            conn.execute(update(t.attempts)
                         .where(t.attempts.c.id == attempt_id, t.attempts.c.stuck_at.is_(None))
                         .values(stuck_at=now))
            _attempt_event(conn, attempt_id, now, "call_stuck")

    @transaction_retry
    def release_lease(self, agent_key: str, holder_id: str) -> None:
        """Free an agent we hold (after a quarantine or a wrap-up ends), and its number."""
        with self.write() as conn:
            lease = (t.agent_leases.c.agent_key == agent_key) & (t.agent_leases.c.holder_id == holder_id)
            attempt = conn.execute(select(t.agent_leases.c.attempt_id).where(lease)).scalar()
            conn.execute(delete(t.agent_leases).where(lease))
            if attempt is not None:
                conn.execute(delete(t.number_leases).where(t.number_leases.c.attempt_id == attempt))

    @transaction_retry
    def take_over_lease(self, agent_key: str, *, from_holder: str, holder_id: str, now: float) -> bool:
        """Remove a dead holder's lease once its call is confirmed over (compare-and-delete)."""
        with self.write() as conn:
            if self.holder_alive(from_holder, conn):
                return False
            deleted = conn.execute(delete(t.agent_leases).where(
                t.agent_leases.c.agent_key == agent_key, t.agent_leases.c.holder_id == from_holder))
            if deleted.rowcount:
                conn.execute(insert(t.events).values(at=now, kind="lease_taken_over", agent_key=agent_key,
                                                     data={"from": from_holder, "by": holder_id}))
            return bool(deleted.rowcount)

    @transaction_retry
    def adopt_lease(self, agent_key: str, *, from_holder: str, holder_id: str) -> bool:
        """Move a dead holder's lease (and its open attempt) to us, to keep following its call."""
        with self.write() as conn:
            if self.holder_alive(from_holder, conn):
                return False
            moved = conn.execute(update(t.agent_leases).where(
                t.agent_leases.c.agent_key == agent_key, t.agent_leases.c.holder_id == from_holder
            ).values(holder_id=holder_id))
            return bool(moved.rowcount)

    @transaction_retry
    def force_release(self, agent_key: str, now: float, reason: str) -> bool:
        """Operator action: free an agent whatever holds it (a stuck call confirmed by hand)."""
        with self.write() as conn:
            lease = conn.execute(_LEASE_OF_AGENT, {"b_agent": agent_key}).mappings().first()
            if lease is None:
                return False
            conn.execute(delete(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key))
            if lease["attempt_id"] is not None:
                conn.execute(delete(t.number_leases)
                             .where(t.number_leases.c.attempt_id == lease["attempt_id"]))
            conn.execute(insert(t.events).values(
                campaign_id=lease["campaign_id"], attempt_id=lease["attempt_id"], at=now,
                kind="lease_released_by_operator", agent_key=agent_key, data={"reason": reason}))
            return True

    @transaction_retry
    def requeue_unknown(self, campaign_id: int, *, keys: set[str] | None, by: str, reason: str,
                        now: float) -> list[str]:
        """Customers final as ``unknown`` that a person confirmed were never rung go back to the
        queue; the unknown attempt is closed as not rung (it no longer counts or quarantines)."""
        c, a = t.customers.c, t.attempts.c
        with self.write() as conn:
            query = select(c.id, c.customer_key, c.attempts).where(
                c.campaign_id == campaign_id, c.state == str(CustomerState.DONE), c.final_status == "unknown"
            ).with_for_update()
            rows = [r for r in conn.execute(query).all() if keys is None or r.customer_key in keys]
            for row in rows:
                conn.execute(update(t.customers).where(c.id == row.id).values(
                    state=str(CustomerState.PENDING), final_status=None, attempts=max(0, row.attempts - 1),
                    next_attempt_at=None, updated_at=now))
                unknown = [int(i) for i in conn.execute(select(a.id).where(
                    a.customer_id == row.id, a.state == str(AttemptState.UNKNOWN))).scalars()]
                for attempt_id in unknown:
                    conn.execute(update(t.attempts).where(a.id == attempt_id).values(
                        state=str(AttemptState.REJECTED), error_category="confirmed_not_rung",
                        error_message=f"confirmed never rung by {by}: {reason}"[:2000], terminal_at=now))
                    conn.execute(delete(t.agent_leases).where(t.agent_leases.c.attempt_id == attempt_id))
                    conn.execute(delete(t.number_leases).where(t.number_leases.c.attempt_id == attempt_id))
            if rows:
                conn.execute(insert(t.events).values(
                    campaign_id=campaign_id, at=now, kind="requeue_unknown",
                    data={"by": by, "reason": reason, "customer_ids": [int(r.id) for r in rows]}))
            return [str(r.customer_key) for r in rows]

    def unknown_customers(self, campaign_id: int) -> list[dict[str, Any]]:
        """Customers final as ``unknown`` with their last unknown attempt (for a person to judge)."""
        c, a = t.customers.c, t.attempts.c
        other = t.attempts.alias("unknown_attempts")  # the subquery's own attempts, not the joined row
        latest = (select(func.max(other.c.id))
                  .where(other.c.customer_id == c.id, other.c.state == str(AttemptState.UNKNOWN))
                  .correlate(t.customers).scalar_subquery())
        with self.read() as conn:
            rows = conn.execute(select(c.customer_key, a.id.label("attempt_id"), a.attempt_no, a.agent_key,
                                       a.created_at, a.error_message)
                                .select_from(t.customers.join(t.attempts, a.id == latest))
                                .where(c.campaign_id == campaign_id, c.state == str(CustomerState.DONE),
                                       c.final_status == "unknown").order_by(a.created_at)).mappings()
            return [dict(r) for r in rows]

    def requeued_since(self, campaign_id: int, after_event: int) -> tuple[int, list[int]]:
        """Customer ids requeued (by :meth:`requeue_unknown`) after event ``after_event``, and the
        newest such event's id (a live run picks them up)."""
        e = t.events.c
        with self.read() as conn:
            rows = conn.execute(select(e.id, e.data).where(e.campaign_id == campaign_id, e.id > after_event,
                                                           e.kind == "requeue_unknown").order_by(e.id)).all()
        ids = [int(i) for _, data in rows for i in (data or {}).get("customer_ids", [])]
        return (int(rows[-1][0]) if rows else after_event), ids

    def last_event_id(self, campaign_id: int) -> int:
        """The newest event id of a campaign (0 if none)."""
        with self.read() as conn:
            value = conn.execute(select(func.max(t.events.c.id)).where(t.events.c.campaign_id == campaign_id)
                                 ).scalar()
            return int(value or 0)

    # ------------------------------------------------------------------ reads

    def leases(self) -> list[dict[str, Any]]:
        """Every current agent lease, with whether its holder is alive."""
        with self.read() as conn:
            rows = [dict(r) for r in conn.execute(select(t.agent_leases)).mappings()]
            for r in rows:
                r["holder_alive"] = self.holder_alive(r["holder_id"], conn)
            return rows

    def open_attempts(self, campaign_id: int) -> list[OpenAttempt]:
        """Attempts of a campaign not yet resolved: created, placed or unknown."""
        a = t.attempts.c
        with self.read() as conn:
            result = conn.execute(select(
                a.id, a.uid, a.campaign_id, a.customer_id, a.agent_key, a.holder_id, a.state, a.call_sid,
                a.created_at, a.placed_at, a.stuck_at,
            ).where(a.campaign_id == campaign_id, a.state.in_(values(OPEN_ATTEMPT))).order_by(a.id))
            return [OpenAttempt(*row) for row in result]

    def attempt_by_uid(self, uid: str) -> dict[str, Any] | None:
        """An attempt by the uid carried in custom_field."""
        with self.read() as conn:
            row = conn.execute(select(t.attempts).where(t.attempts.c.uid == uid)).mappings().first()
            return dict(row) if row else None

    def last_attempt(self, customer_id: int) -> dict[str, Any] | None:
        """A customer's most recent attempt."""
        with self.read() as conn:
            row = conn.execute(select(t.attempts).where(t.attempts.c.customer_id == customer_id)
                               .order_by(t.attempts.c.id.desc()).limit(1)).mappings().first()
            return dict(row) if row else None

    def attempt(self, attempt_id: int) -> dict[str, Any] | None:
        """An attempt by id."""
        with self.read() as conn:
            row = conn.execute(select(t.attempts).where(t.attempts.c.id == attempt_id)).mappings().first()
            return dict(row) if row else None


def _attempt_event(conn: Connection, attempt_id: int, now: float, kind: str, *,
                   agent_key: str | None = None, data: Mapping[str, Any] | None = None) -> None:
    """Append an event about an attempt to the audit trail, under the attempt's campaign."""
    conn.execute(insert(t.events).values(
        campaign_id=select(t.attempts.c.campaign_id).where(t.attempts.c.id == attempt_id).scalar_subquery(),
        attempt_id=attempt_id, at=now, kind=kind, agent_key=agent_key, data=dict(data) if data else None))
