"""One call's lifecycle: grant -> checks -> claim -> POST -> follow -> outcome -> retry -> release.

Invariant 2 lives in :meth:`CallLifecycle.place`: the API budget's grant is taken and every check
that can refuse the call is passed *before* the attempt is written, and the POST leaves right after
the write, so "written but maybe sent" lasts only as long as the POST (and the send journal makes
even a crash in that window exact, see ccm_tasks.dialer.journal). Invariant 3 lives in
:meth:`CallLifecycle.outcome_unknown`: a POST whose answer was lost is never sent again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from ccm_tasks.dialer.budget import Gate
from ccm_tasks.dialer.config import EngineConfig
from ccm_tasks.dialer.db import LedgerThread
from ccm_tasks.dialer.follower import CallFollower
from ccm_tasks.dialer.journal import SendJournal
from ccm_tasks.dialer.policy import AGENT_SIDE, Decision, decide
from ccm_tasks.dialer.run_state import CallTask, RunState
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.errors import CCMError, OutcomeUnknownError, RateLimitError
from ccm_tasks.exotel.models import CallDetails, MakeCallRequest
from ccm_tasks.ledger import Claim
from ccm_tasks.redact import mask_phone

OnClaimRefused = Callable[[CallTask, Claim], Coroutine[Any, Any, None]]


class CallLifecycle:
    """Places one customer's call on one agent and sees it to its outcome."""

    def __init__(self, run: RunState, *, db: LedgerThread, client: CCMClient, budget: Gate,
                 follower: CallFollower, journal: SendJournal | None) -> None:
        self.run, self.db, self.client, self.budget = run, db, client, budget
        self.follower, self.journal = follower, journal
        self.on_agent_leased: OnClaimRefused | None = None  # lease recovery decides (recovery.py)
        self.on_campaign_held: Callable[[], None] | None = None  # the engine reads its controls now
        self.early: dict[int, Callable[[], None]] = {}  # callbacks that came before we followed

    @property
    def cfg(self) -> EngineConfig:
        """The campaign's configuration."""
        return self.run.cfg

    # ------------------------------------------------------------------ placing

    async def place(self, call: CallTask) -> None:
        """The whole lifecycle of one dispatched call (the dispatcher set the agent calling)."""
        run, ledger = self.run, self.db.ledger
        await self.budget.acquire("post")
        try:
            await self.budget.wait_unblocked()  # a 429 that came back after our grant: wait it out
        except BaseException:
            self.budget.refund("post")
            raise
        now = run.clock.time()
        why = run.refusal(now)
        if why is not None:  # the window closed, or dialling was paused or stopped, while we waited
            self.budget.refund("post")
            run.back_to_front(call.entry, now)
            run.pool.set_idle(call.agent, call.agent.idle_since)
            return
        opens = run.recipient_opens(call.entry, now)
        if opens is not None:  # the recipient's own hours closed while we waited
            self.budget.refund("post")
            run.hold_for_hours(call.entry, opens, now)
            run.pool.set_idle(call.agent, call.agent.idle_since)
            return
        entry, agent = call.entry, call.agent
        claim = await self._claim(call, now)
        if claim is None:
            return
        if not claim.ok:
            self.budget.refund("post")
            await self._claim_refused(call, claim)
            return
        assert claim.attempt_id is not None and claim.attempt_uid is not None
        attempt_id = call.attempt_id = claim.attempt_id
        call.phase = "sending"
        journal = self.journal
        hook = (lambda: journal.started(attempt_id)) if journal is not None else None
        try:
            placed = await self.client.make_call(self.request(call, claim.attempt_uid), admitted=True,
                                                 on_send=hook)
        except OutcomeUnknownError as exc:
            await self.outcome_unknown(call, str(exc))
            return
        except CCMError as exc:
            await self.refused(call, exc)
            return
        except asyncio.CancelledError:
            # The run is being torn down mid-POST: it may have reached the server.
            await asyncio.shield(self.outcome_unknown(call, "the run stopped while its Make Call was sent"))
            raise
        run.held.post_failures = 0
        run.dialled = True
        run.placed += 1
        agent.calls += 1
        placed_at = run.clock.time()
        await self.db.settled(ledger.mark_placed, attempt_id, agent_key=agent.key, call_sid=placed.call_sid,
                              details=placed.model_dump(mode="json"), now=placed_at)
        run.log.debug("placed %s: agent %s -> customer %s", placed.call_sid, agent.key,
                      mask_phone(entry.phone))
        await self.follow(call, placed.call_sid, placed_at=placed_at, last=placed)

    async def _claim(self, call: CallTask, now: float) -> Claim | None:
        """Write the attempt (and lease agent and number). If the run is torn down during the write,
        a claim that went through is closed as never sent (it provably was not) and None returned."""
        run, entry = self.run, call.entry
        future = asyncio.ensure_future(self.db(
            self.db.ledger.claim, agent_key=call.agent.key, agent_name=call.agent.name,
            holder_id=run.ids.holder_id, campaign_id=run.ids.campaign_id, run_id=run.ids.run_id,
            customer_id=entry.id, attempt_no=entry.next_attempt_no, now=now, uid=uuid.uuid4().hex,
            customer_key=entry.customer_key, limit=self.cfg.contact_limit, clock=run.clock.time))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            claim = None if future.cancelled() or future.exception() else future.result()
            if claim is not None and claim.ok and claim.attempt_id is not None:
                call.attempt_id = claim.attempt_id
                await asyncio.shield(self._not_sent(call, "the run stopped before its Make Call was sent"))
            raise

    async def _claim_refused(self, call: CallTask, claim: Claim) -> None:
        run, entry, agent = self.run, call.entry, call.agent
        now = run.clock.time()
        if claim.refusal == "agent_leased" and self.on_agent_leased is not None:
            await self.on_agent_leased(call, claim)
            return
        run.pool.set_idle(agent, agent.idle_since)
        if claim.refusal == "campaign_held":
            # Paused or stopped in the ledger before this run's next read of its controls: nothing
            # was written; first in line again, and the controls are read at once.
            run.back_to_front(entry, now)
            if self.on_campaign_held is not None:
                self.on_campaign_held()
            return
        if claim.refusal == "number_busy":
            # Another campaign is on a call with this person: try again a little later.
            entry.pending()
            run.queue.schedule(entry, now + self.cfg.lease_retry, now)
            return
        until = claim.retry_at or now + 3600.0
        entry.pending()
        run.queue.schedule(entry, until, now)
        entry.next_at = until
        await self.db(self.db.ledger.update_customer, entry.id, entry.update(), now)
        await self.db(self.db.ledger.add_event, "contact_limit_hold", now, campaign_id=run.ids.campaign_id,
                      data={"customer_id": entry.id, "until": until})
        run.wake()

    def request(self, call: CallTask, uid: str) -> MakeCallRequest:
        """The Make Call request: agent first, then the customer; the attempt's uid in custom_field."""
        cfg, agent = self.cfg, call.agent
        src = {"user_id": agent.user_id} if agent.user_id else {"user_contact_uri": agent.contact_uri}
        return MakeCallRequest.model_validate({
            "from": src,
            "to": {"customer_contact_uri": call.entry.phone},
            "virtual_number": cfg.virtual_number,
            "recording": cfg.recording or None,
            "recording_channels": cfg.recording_channels if cfg.recording else None,
            "wait_audio_url": cfg.wait_audio_url,
            "max_time_limit": cfg.max_time_limit,
            "attempt_time_out": cfg.attempt_time_out,
            "custom_field": uid,
            "status_callback": [cb.model_dump() for cb in cfg.status_callbacks] or None,
        })

    # ------------------------------------------------------------------ following and the outcome

    async def follow(self, call: CallTask, call_sid: str, *, placed_at: float,
                     last: CallDetails | None = None, confirm_now: bool = False) -> None:
        """Follow a placed call to terminal, then record its outcome and release the agent."""
        assert call.attempt_id is not None
        attempt_id = call.attempt_id
        call.phase = "live"
        call.agent.unavailable = None  # it took a call: available after all
        following = self.follower.follow(call_sid, attempt_id, placed_at=placed_at,
                                         stuck_after=placed_at + self.cfg.stuck_after, last=last,
                                         confirm_now=confirm_now)
        early = self.early.pop(attempt_id, None)
        if early is not None:
            early()
        details = await following
        self.run.stuck.discard(attempt_id)
        await self.finish(call, details, resolved_by=self.follower.resolved_how(call_sid))

    async def finish(self, call: CallTask, details: CallDetails, resolved_by: str = "poll") -> None:
        """A terminal call: decide the customer's next step, write it with the outcome, free the agent
        (after its wrap-up if it answered)."""
        run, entry, agent = self.run, call.entry, call.agent
        assert call.attempt_id is not None
        now = run.clock.time()
        self.early.pop(call.attempt_id, None)  # its callback came after a poll had confirmed it
        status = details.call_status
        decision = (decide(status, entry.counts, self.cfg.policy, now) if status
                    else Decision(entry.counts, final="unknown"))
        update = run.outcome(entry, decision, status or "unknown", now)
        cooldown = decision.agent_cooldown and status in AGENT_SIDE
        # Every call the agent answered earns its wrap-up, a cancelled one too (agent_canceled: the
        # agent picked up, then hung up): the lease holds it in the ledger, so no campaign calls them
        # sooner; an agent-side cool-down, in this run only, rests them at least as long.
        wrap_up = self.cfg.wrap_up if details.agent_leg_status == "completed" else 0.0
        await self.db.settled(
            self.db.ledger.complete_attempt, call.attempt_id, details=details.model_dump(mode="json"),
            summary=attempt_summary(details), customer_id=entry.id, customer=update, agent_key=agent.key,
            release=True, now=now, resolved_by=resolved_by, wrap_up_seconds=wrap_up)
        if cooldown:
            run.pool.set_timed(agent, "cooldown", now + max(self.cfg.agent_cooldown, wrap_up), status)
        elif wrap_up > 0:
            run.pool.set_timed(agent, "wrap_up", now + wrap_up, "after-call work")
        else:
            run.pool.set_idle(agent, now)
        run.wake()

    # ------------------------------------------------------------------ when the POST did not place a call

    async def refused(self, call: CallTask, exc: CCMError) -> None:
        """The API refused the Make Call, or it was never sent: nothing rang. Act on the category."""
        run, entry, agent = self.run, call.entry, call.agent
        cfg, now = self.cfg, run.clock.time()
        assert call.attempt_id is not None
        update = run.back_to_front(entry, now)
        await self.db.settled(self.db.ledger.mark_rejected, call.attempt_id, agent_key=agent.key,
                              holder_id=run.ids.holder_id, customer_id=entry.id, customer=update,
                              category=exc.category, code=getattr(exc, "code", None), message=str(exc),
                              now=now)
        category = exc.category
        if category == "agent_busy":
            run.log.info("agent %s is on another call (10706): cooling down %.0fs", agent.key,
                         cfg.agent_cooldown)
            run.pool.set_timed(agent, "cooldown", now + cfg.agent_cooldown, "busy (10706)")
        elif category == "agent_unavailable":
            run.log.warning("agent %s unavailable (%s): paused, re-checked in %.0fs", agent.key, exc,
                            cfg.agent_recheck)
            run.pool.set_timed(agent, "paused", now + cfg.agent_recheck, str(exc))
            agent.unavailable = str(exc)
        elif category == "agent_invalid":
            run.log.warning("agent %s dropped from this campaign: %s", agent.key, exc)
            run.pool.drop(agent, str(exc))
            run.queue.drop_sticky_agent(agent.key, now)
            await self.db(self.db.ledger.add_event, "agent_dropped", now, campaign_id=run.ids.campaign_id,
                          agent_key=agent.key, data={"reason": str(exc)})
        elif category in ("campaign_fatal", "invalid_request"):
            run.pool.set_idle(agent, agent.idle_since)
            if run.set_fatal(exc):
                run.log.error("Stopping new calls: %s. Live calls will be followed to the end; "
                              "fix the cause and run again to resume.", exc)
                await self.db(self.db.ledger.add_event, "campaign_fatal", now,
                              campaign_id=run.ids.campaign_id, data={"error": str(exc)})
        else:
            run.pool.set_idle(agent, agent.idle_since)
            if category != "not_sent":
                self._back_off(exc, now)
        run.wake()

    def _back_off(self, exc: CCMError, now: float) -> None:
        """Retry later (5xx, 429, connection trouble after the client's retries). A 429 holds new
        calls exactly for its Retry-After (the budget pauses everyone); other errors back off
        exponentially, one step per episode, not per failed request of it."""
        held = self.run.held
        if isinstance(exc, RateLimitError):
            held.post_paused_until = max(held.post_paused_until, self.budget.blocked_until)
            self.run.log.warning("Make Call answered 429; new calls wait until the budget's pause ends")
            return
        if now >= held.post_paused_until:
            held.post_failures += 1
            pause = min(60.0, 2.0 ** min(held.post_failures, 6))
            held.post_paused_until = now + pause
            self.run.log.warning("Make Call failed (%s); pausing new calls %.0fs", exc, pause)

    async def _not_sent(self, call: CallTask, why: str) -> None:
        """The attempt was written but its POST was provably never started."""
        from ccm_tasks.exotel.errors import RequestNotSentError

        await self.refused(call, RequestNotSentError(why))

    async def outcome_unknown(self, call: CallTask, message: str) -> None:
        """Invariant 3: never re-POST. The customer is not dialled again automatically; the agent
        stays leased until any call we might have placed must be over."""
        run, entry, agent = self.run, call.entry, call.agent
        assert call.attempt_id is not None
        now = run.clock.time()
        until = now + self.cfg.unknown_quarantine
        update = run.final_unknown(entry, count_attempt=True)
        await self.db.settled(self.db.ledger.mark_unknown, call.attempt_id, agent_key=agent.key,
                              customer_id=entry.id, customer=update, message=message,
                              quarantine_until=until, now=now)
        run.log.warning("Make Call outcome unknown for customer %s (agent %s): not retried; agent held "
                        "until %s", mask_phone(entry.phone), agent.key, _fmt(until))
        run.pool.set_timed(agent, "quarantined", until, "outcome unknown")
        run.unknown[call.attempt_id] = (agent, entry)
        run.dialled = True
        run.wake()

    async def resolve_unknown(self, attempt_id: int, details: CallDetails) -> None:
        """A Make Call whose answer was lost turns out to have placed this call: record the real
        outcome, apply the retry policy to it, and free the agent now that the call is over."""
        run = self.run
        agent, entry = run.unknown.pop(attempt_id)
        now = run.clock.time()
        update = None
        if entry is not None and details.call_status:
            run.reopen_unknown(entry)
            decision = decide(details.call_status, entry.counts, self.cfg.policy, now)
            update = run.outcome(entry, decision, details.call_status, now)
        await self.db.settled(
            self.db.ledger.complete_attempt, attempt_id, details=details.model_dump(mode="json"),
            summary=attempt_summary(details), customer_id=entry.id if entry else None, customer=update,
            agent_key=agent.key, release=True, now=now, resolved_by="callback")
        run.log.info("the unknown Make Call of attempt %d is resolved by its callback: %s", attempt_id,
                     details.call_status)
        if agent.state == "quarantined":
            run.pool.set_idle(agent, now)
        run.wake()


def attempt_summary(details: CallDetails) -> dict[str, Any]:
    """The attempt columns taken from terminal call details."""
    def ts(value: Any) -> float | None:
        return value.timestamp() if value is not None else None

    return {
        "call_status": details.call_status,
        "agent_leg_status": details.agent_leg_status,
        "customer_leg_status": details.customer_leg_status,
        "start_time": ts(details.start_time),
        "end_time": ts(details.end_time),
        "total_talk_time": details.total_talk_time,
        "total_duration": details.total_duration,
        "recordings": details.recording_urls or None,
    }


def _fmt(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
