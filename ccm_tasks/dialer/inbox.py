"""Status callbacks reaching the engine: in-process from the receiver, or through the ledger's inbox.

A terminal callback that leaves nothing open resolves its call without a GET; one that does (a
recording was asked for and the payload has none) makes the follower confirm it with one GET. A
terminal callback naming an ``unknown`` Make Call resolves it. One that arrives before its call is
followed (a call that ends at once can call back before its Make Call answer is processed) waits
until following starts. Every event is handled once, however many ways it arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ccm_tasks.callbacks import CallbackEvent, event_from_row
from ccm_tasks.dialer.calls import CallLifecycle
from ccm_tasks.dialer.run_state import RunState
from ccm_tasks.exotel.models import CallDetails

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class CallbackRouter:
    """Routes each recorded callback event to the call it is about."""

    def __init__(self, run: RunState, calls: CallLifecycle, spawn: Spawn) -> None:
        self.run, self.calls, self.spawn = run, calls, spawn
        self.follower = calls.follower
        self.db, self.ledger = calls.db, calls.db.ledger
        self.seen: set[int] = set()
        self.used = 0  # terminal callbacks that resolved or confirmed a call
        self._after = 0

    def deliver(self, event: CallbackEvent) -> None:
        """A recorded status callback (idempotent: each event id is handled once)."""
        if event.event_id in self.seen:
            return
        self.seen.add(event.event_id)
        self._route(event)

    def _route(self, event: CallbackEvent) -> None:
        d = event.details
        if event.event_type != "terminal":
            if d.call_sid:
                self.follower.on_answered(d.call_sid, d)
            return
        if d.call_sid and d.call_sid in self.follower.live:
            self.used += 1
            if self._nothing_open(d):
                self.follower.resolve(d.call_sid, d)
            else:
                self.follower.notify(d.call_sid)  # one GET fills in what the payload left open
        elif event.attempt_id in self.run.unknown and d.is_terminal:
            self.used += 1
            self.spawn(self.calls.resolve_unknown(event.attempt_id, d), f"resolve-{event.attempt_id}")
        else:
            self.calls.early[event.attempt_id] = lambda: self._route(event)

    def _nothing_open(self, d: CallDetails) -> bool:
        if not d.is_terminal or d.call_status is None:
            return False
        return not (self.run.cfg.recording and d.call_status == "completed" and not d.recording_urls)

    async def start(self) -> None:
        """Replay terminal callbacks that arrived while no run was following their calls, and
        start reading the inbox after the newest event."""
        campaign = self.run.ids.campaign_id
        self._after = await self.db(self.ledger.last_callback_id, campaign)
        for row in await self.db(self.ledger.pending_terminal_callbacks, campaign):
            event = event_from_row(row)
            if event is not None:
                self.deliver(event)

    async def read_inbox(self, every: float = 0.2) -> None:
        """Callbacks recorded by a receiver in another process reach us through the ledger."""
        campaign = self.run.ids.campaign_id
        while True:
            for row in await self.db(self.ledger.callback_events_since, campaign, self._after):
                self._after = max(self._after, int(row["id"]))
                if int(row["id"]) in self.seen:
                    continue  # already delivered in-process by the hub
                event = event_from_row(row)
                if event is not None:
                    self.deliver(event)
            await asyncio.sleep(every)
