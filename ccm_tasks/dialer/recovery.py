"""Lease recovery: what a run does about leases and attempts left by processes that died.

At start (:meth:`LeaseRecovery.recover`), the campaign's unresolved attempts of dead holders are
taken over: a placed call is confirmed by a GET at once (its callbacks went to the dead process's
receiver and are lost) and followed to terminal; an attempt written but never answered is judged by
the dead holder's send journal: provably never sent -> rejected, the customer back in the queue;
maybe sent -> unknown, its agent quarantined (invariant 3).

While dialling (:meth:`LeaseRecovery.agent_leased`), an agent leased by someone else is waited for
while its holder lives; a dead holder's lease is taken over only once its call is confirmed over,
or, if its call was never learned, once any such call must have ended. Never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from ccm_tasks.dialer.agents import AgentSlot
from ccm_tasks.dialer.calls import CallLifecycle, attempt_summary
from ccm_tasks.dialer.customers import CustomerEntry
from ccm_tasks.dialer.journal import SendJournal
from ccm_tasks.dialer.policy import decide
from ccm_tasks.dialer.run_state import CallTask, RunState
from ccm_tasks.exotel.errors import CCMError
from ccm_tasks.ledger import AttemptState, Claim, CustomerState, OpenAttempt

SpawnCall = Callable[[CallTask, Coroutine[Any, Any, None]], None]


@dataclass(frozen=True)
class Takeover:
    """What to do about an agent another holder leases."""

    action: Literal["wait", "confirm_call", "judge_attempt", "take"]
    retry_at: float


def takeover_decision(claim: Claim, now: float, lease_retry: float) -> Takeover:
    """The rule for a lease held by someone else (pure)."""
    if claim.available_at is not None and claim.available_at > now:
        return Takeover("wait", claim.available_at)  # its call is over; the agent is wrapping up
    if claim.holder_alive:
        return Takeover("wait", now + lease_retry)
    if claim.quarantine_until is not None and claim.quarantine_until > now:
        return Takeover("wait", claim.quarantine_until)
    if claim.available_at is not None:
        return Takeover("take", now)  # the call is over: only the wrap-up was left
    if claim.old_call_sid:
        return Takeover("confirm_call", now)
    if claim.old_attempt_id is not None:
        return Takeover("judge_attempt", now)
    return Takeover("take", now)


class LeaseRecovery:
    """Adopts a dead run's calls at start, and decides about agents leased elsewhere."""

    def __init__(self, run: RunState, calls: CallLifecycle, spawn: SpawnCall) -> None:
        self.run, self.calls, self.spawn = run, calls, spawn
        self.db, self.ledger = calls.db, calls.db.ledger

    # ------------------------------------------------------------------ at start

    async def recover(self) -> None:
        """Resume a campaign whose previous run died: follow its placed calls, judge the rest."""
        run = self.run
        resumed: set[int] = set()
        for attempt in await self.db(self.ledger.open_attempts, run.ids.campaign_id):
            if attempt.holder_id == run.ids.holder_id:
                continue
            if await self.db(self.ledger.holder_alive, attempt.holder_id):
                run.log.warning("attempt %d is held by a live process; leaving it alone", attempt.id)
                continue
            entry = run.entries.get(attempt.customer_id)
            agent = run.pool.get(attempt.agent_key)
            if agent is None:  # not in today's roster: follow its call, then drop it
                agent = AgentSlot(attempt.agent_key, None, None, None)
                run.pool.agents[agent.key] = agent
            await self.db(self.ledger.adopt_lease, attempt.agent_key, from_holder=attempt.holder_id,
                          holder_id=run.ids.holder_id)
            if attempt.state == AttemptState.PLACED and attempt.call_sid and entry is not None:
                run.log.info("resuming: confirming call %s placed by a previous run", attempt.call_sid)
                resumed.add(entry.id)
                self._adopt_call(attempt, agent, entry)
            else:
                await self._adopt_unresolved(attempt, agent, entry)
        await self._decide_orphans(resumed)

    def _adopt_call(self, attempt: OpenAttempt, agent: AgentSlot, entry: CustomerEntry) -> None:
        run = self.run
        run.pool.set_calling(agent)
        entry.calling()
        call = CallTask(agent, entry, phase="live", attempt_id=attempt.id)
        assert attempt.call_sid is not None
        # Its callbacks went to the dead process's receiver: confirm by GET now, don't wait for them.
        self.spawn(call, self.calls.follow(call, attempt.call_sid,
                                           placed_at=attempt.placed_at or attempt.created_at,
                                           confirm_now=True))

    async def _adopt_unresolved(self, attempt: OpenAttempt, agent: AgentSlot,
                                entry: CustomerEntry | None) -> None:
        run, now = self.run, self.run.clock.time()
        until = attempt.created_at + run.cfg.unknown_quarantine
        if attempt.state == AttemptState.CREATED:
            if not await self._may_have_been_sent(attempt):
                run.log.info("resuming: attempt %d was written but its Make Call provably never left "
                             "(its run died first): the customer goes back in the queue", attempt.id)
                await self._never_sent(attempt, agent, entry, now)
                return
            run.log.warning("resuming: attempt %d's Make Call may have reached the server before its "
                            "run died: marked unknown, not re-dialled", attempt.id)
            update = None if entry is None else run.final_unknown(entry, count_attempt=True)
            await self.db(self.ledger.mark_unknown, attempt.id, agent_key=attempt.agent_key,
                          customer_id=entry.id if entry else None, customer=update,
                          message="the process died during its Make Call", quarantine_until=until, now=now)
        run.unknown[attempt.id] = (agent, entry)
        if until > now:
            run.pool.set_timed(agent, "quarantined", until, "outcome unknown")
        else:
            await self.db(self.ledger.release_lease, attempt.agent_key, run.ids.holder_id)

    async def _may_have_been_sent(self, attempt: OpenAttempt) -> bool:
        """False only when the dead holder's trusted send journal proves the POST never started."""
        path = await self.db(self.ledger.dead_holder_journal, attempt.holder_id)
        if path is None:
            return True
        return attempt.id in SendJournal.read(path)

    async def _never_sent(self, attempt: OpenAttempt, agent: AgentSlot, entry: CustomerEntry | None,
                          now: float) -> None:
        update = entry.pending() if entry is not None else None
        if entry is not None:
            self.run.queue.add(entry, now)
        await self.db(self.ledger.mark_rejected, attempt.id, agent_key=attempt.agent_key,
                      holder_id=self.run.ids.holder_id, customer_id=entry.id if entry else None,
                      customer=update, category="not_sent", code=None,
                      message="its run died before the Make Call was sent (send journal)", now=now)

    async def _decide_orphans(self, resumed: set[int]) -> None:
        """A customer left "calling" with no open attempt: its attempt was finished by another
        run (a lease takeover records the outcome but not our policy decision). Decide now."""
        run, now = self.run, self.run.clock.time()
        for entry in run.entries.values():
            if entry.state != CustomerState.CALLING or entry.id in resumed or entry.id in run.calls:
                continue
            last = await self.db(self.ledger.last_attempt, entry.id)
            if last is not None and last["state"] == AttemptState.TERMINAL and last["call_status"]:
                decision = decide(str(last["call_status"]), entry.counts, run.cfg.policy, now)
                update = run.outcome(entry, decision, str(last["call_status"]), now)
            elif last is not None and last["state"] == AttemptState.UNKNOWN:
                update = run.final_unknown(entry, count_attempt=False)
            else:
                update = entry.pending()
                run.queue.add(entry, now)
            await self.db(self.ledger.update_customer, entry.id, update, now)

    # ------------------------------------------------------------------ while dialling

    async def agent_leased(self, call: CallTask, claim: Claim) -> None:
        """Someone else holds this agent's lease: wait, or take it over once provably free."""
        run, agent, entry = self.run, call.agent, call.entry
        now = run.clock.time()
        run.back_to_front(entry, now)
        decision = takeover_decision(claim, now, run.cfg.lease_retry)
        retry_at = decision.retry_at
        if decision.action == "confirm_call":
            retry_at = await self._confirm_then_take(agent, claim, now)
        elif decision.action == "judge_attempt":
            retry_at = await self._judge_then_take(agent, claim, now)
        elif decision.action == "take":
            retry_at = now if await self._take(agent, claim, now) else now + run.cfg.lease_retry
        if retry_at <= now:
            run.pool.set_idle(agent, agent.idle_since)
        else:
            why = "leased by another run" if claim.holder_alive else "previous call not confirmed over"
            run.pool.set_timed(agent, "elsewhere", retry_at, why)
        run.wake()

    async def _confirm_then_take(self, agent: AgentSlot, claim: Claim, now: float) -> float:
        assert claim.old_call_sid is not None
        try:
            details = await self.calls.client.get_call_details(claim.old_call_sid)
        except CCMError as exc:
            self.run.log.warning("cannot confirm agent %s's previous call %s: %s", agent.key,
                                 claim.old_call_sid, exc)
            return now + self.run.cfg.lease_retry
        if not details.is_terminal:
            return now + self.run.cfg.lease_retry
        if claim.old_attempt_id is not None:
            await self.db(self.ledger.complete_attempt, claim.old_attempt_id,
                          details=details.model_dump(mode="json"), summary=attempt_summary(details),
                          customer_id=None, customer=None, agent_key=agent.key, release=False, now=now,
                          resolved_by="takeover")
        if await self._take(agent, claim, now):
            self.run.log.info("took over agent %s after confirming call %s is over", agent.key,
                              claim.old_call_sid)
            return now
        return now + self.run.cfg.lease_retry

    async def _judge_then_take(self, agent: AgentSlot, claim: Claim, now: float) -> float:
        """The dead holder wrote an attempt but never learned its call: the call may exist."""
        assert claim.old_attempt_id is not None
        attempt = await self.db(self.ledger.attempt, claim.old_attempt_id)
        if attempt is not None and attempt["state"] == AttemptState.CREATED:
            path = await self.db(self.ledger.dead_holder_journal, str(claim.holder_id))
            if path is not None and claim.old_attempt_id not in SendJournal.read(path):
                # Provably never sent: another run's customer goes back to its queue when it resumes.
                await self.db(self.ledger.mark_rejected, claim.old_attempt_id, agent_key=agent.key,
                              holder_id=str(claim.holder_id), customer_id=None, customer=None,
                              category="not_sent", code=None,
                              message="its run died before the Make Call was sent (send journal)", now=now)
                return now
        created = float(attempt["created_at"]) if attempt else now
        until = created + self.run.cfg.unknown_quarantine
        if until > now:
            if attempt and attempt["state"] == AttemptState.CREATED:
                await self.db(self.ledger.mark_unknown, claim.old_attempt_id, agent_key=agent.key,
                              customer_id=None, customer=None, message="its process died during Make Call",
                              quarantine_until=until, now=now)
            return until
        return now if await self._take(agent, claim, now) else now + self.run.cfg.lease_retry

    async def _take(self, agent: AgentSlot, claim: Claim, now: float) -> bool:
        return await self.db(self.ledger.take_over_lease, agent.key, from_holder=str(claim.holder_id),
                             holder_id=self.run.ids.holder_id, now=now)
