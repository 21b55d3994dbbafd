"""What operators ask of a running campaign, read from the ledger: pause, resume and stop
(``ccm_tasks.control``, from any process or machine), and customers put back in the queue
(``ccm requeue``).

The engine reads them every ``control_seconds``, and at once when a claim is refused because the
campaign is held (until then every claim would be refused the same way, and nothing dialled). A
pause holds new calls (live ones are followed to the end); a stop also ends the run once live
calls are over; a campaign paused when the run starts ends the run at once, as ``paused``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ccm_tasks.dialer.db import LedgerThread
from ccm_tasks.dialer.run_state import RunState


class OperatorControls:
    """The run's view of its campaign's controls, kept in step with the ledger."""

    def __init__(self, state: RunState, db: LedgerThread, *, request_stop: Callable[[str], None],
                 tasks: set[asyncio.Task[None]]) -> None:
        self.state, self.db, self.request_stop = state, db, request_stop
        self._tasks = tasks  # the engine's: a read in flight is cancelled with the run
        self.paused_at_start = False
        self._reading: asyncio.Task[None] | None = None
        self._requeue_seen: int | None = None  # the newest requeue event this run has acted on

    async def read(self, initial: bool = False) -> None:
        """Read the controls and requeues now, and act on what changed."""
        s, ledger = self.state, self.db.ledger
        control = await self.db(ledger.control, s.ids.campaign_id)
        held = s.held
        who = f" by {control.by}" if control.by else ""
        why = f": {control.reason}" if control.reason else ""
        if control.action == "pause" and held.control != "pause":
            held.control, held.control_reason = "pause", f"paused{who}{why}"
            self.paused_at_start = initial
            s.log.info("Campaign paused%s%s: no new calls; live calls are followed to the end", who, why)
        elif control.action == "run" and held.control == "pause":
            held.control, held.control_reason = "run", None
            s.log.info("Campaign resumed%s%s", who, why)
        elif control.action == "stop" and held.stop_reason is None and not initial:
            self.request_stop(f"stopped{who}{why}")
            s.log.info("Campaign stopped%s%s: no new calls; the run ends when live calls are over", who, why)
        await self._pick_up_requeued(initial)
        s.wake()

    def changed(self) -> None:
        """A claim found the campaign paused or stopped in the ledger: read the controls now, not
        at the next tick."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().create_task(self._read_quietly(), name="control-now")
            self._tasks.add(self._reading)
            self._reading.add_done_callback(self._tasks.discard)

    async def watch(self) -> None:
        """Read the controls every ``control_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self.state.cfg.control_seconds)
            await self._read_quietly()

    async def _read_quietly(self) -> None:
        try:
            await self.read()
        except Exception as exc:  # a transient ledger problem: the next read retries
            self.state.log.warning("reading the campaign's controls failed: %s", exc)

    async def _pick_up_requeued(self, initial: bool) -> None:
        """Customers a person put back in the queue (``ccm requeue``) while this run is live."""
        s, ledger = self.state, self.db.ledger
        if initial or self._requeue_seen is None:
            self._requeue_seen = await self.db(ledger.last_event_id, s.ids.campaign_id)
            return
        self._requeue_seen, ids = await self.db(ledger.requeued_since, s.ids.campaign_id, self._requeue_seen)
        now = s.clock.time()
        for customer_id in ids:
            entry = s.entries.get(customer_id)
            if entry is not None and entry.state == "done" and entry.final_status == "unknown":
                s.outcomes["unknown"] -= 1
                entry.reopen_unknown()
                entry.pending()
                entry.next_at = 0.0
                s.queue.add(entry, now)
                s.log.info("customer %d requeued by an operator", customer_id)
