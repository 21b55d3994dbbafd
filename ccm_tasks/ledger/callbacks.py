"""Status callbacks as the ledger keeps them: each campaign's secret token, and each event once."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update

from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.attempts import AttemptStore
from ccm_tasks.ledger.base import transaction_retry
from ccm_tasks.ledger.states import OPEN_ATTEMPT, values


class CallbackStore(AttemptStore):
    """Callback tokens and the callback inbox."""

    @transaction_retry
    def callback_token(self, campaign_id: int) -> str:
        """The campaign's secret callback path segment, created on first use."""
        with self.write() as conn:
            c = t.campaigns.c
            conn.execute(update(t.campaigns).where(c.id == campaign_id, c.callback_token.is_(None))
                         .values(callback_token=secrets.token_urlsafe(32)))
            return str(conn.execute(select(c.callback_token).where(c.id == campaign_id)).scalar_one())

    def callback_tokens(self) -> dict[str, int]:
        """Every campaign's callback token -> campaign id."""
        with self.read() as conn:
            rows = conn.execute(select(t.campaigns.c.callback_token, t.campaigns.c.id)
                                .where(t.campaigns.c.callback_token.is_not(None)))
            return {str(token): int(cid) for token, cid in rows}

    def attempt_for_callback(self, campaign_id: int, uid: str | None,
                             call_sid: str | None) -> dict[str, Any] | None:
        """The campaign's attempt a callback is about: by the uid we put in custom_field, else by
        call_sid. None if it is not one of this campaign's calls."""
        a = t.attempts.c
        query = select(t.attempts, t.customers.c.phone.label("customer_phone")).join(
            t.customers, t.customers.c.id == a.customer_id)
        with self.read() as conn:
            row = None
            if uid:
                row = conn.execute(query.where(a.uid == uid, a.campaign_id == campaign_id)).mappings().first()
            if row is None and call_sid:
                row = conn.execute(query.where(a.call_sid == call_sid, a.campaign_id == campaign_id)
                                   .order_by(a.id.desc()).limit(1)).mappings().first()
            return dict(row) if row else None

    @transaction_retry
    def record_callback(self, *, campaign_id: int, attempt_id: int, call_sid: str | None, event_type: str,
                        dedupe_key: str, payload: Mapping[str, Any], now: float) -> int | None:
        """Store a callback once; a repeated delivery (same key, even to another receiver at the same
        moment) changes nothing and returns None. The unique key decides, not a read."""
        with self.write() as conn:
            inserted = self.insert_ignore(conn, t.callback_events, {
                "campaign_id": campaign_id, "attempt_id": attempt_id, "call_sid": call_sid,
                "event_type": event_type, "dedupe_key": dedupe_key, "received_at": now,
                "payload": dict(payload)})
            if not inserted:
                return None
            return int(conn.execute(select(t.callback_events.c.id)
                                    .where(t.callback_events.c.dedupe_key == dedupe_key)).scalar_one())

    def callback_events_since(
        self, campaign_id: int, after_id: int, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Callback events of a campaign recorded after ``after_id`` (the dialer's inbox)."""
        c = t.callback_events.c
        with self.read() as conn:
            rows = conn.execute(select(t.callback_events).where(c.campaign_id == campaign_id, c.id > after_id)
                                .order_by(c.id).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def pending_terminal_callbacks(self, campaign_id: int) -> list[dict[str, Any]]:
        """Terminal callbacks recorded for attempts still open or unknown (replayed on resume)."""
        c, a = t.callback_events.c, t.attempts.c
        with self.read() as conn:
            rows = conn.execute(select(t.callback_events)
                                .join(t.attempts, a.id == c.attempt_id)
                                .where(c.campaign_id == campaign_id, c.event_type == "terminal",
                                       a.state.in_(values(OPEN_ATTEMPT)))
                                .order_by(c.id)).mappings()
            return [dict(r) for r in rows]

    def last_callback_id(self, campaign_id: int) -> int:
        """The newest callback event id of a campaign (0 if none)."""
        with self.read() as conn:
            value = conn.execute(select(func.max(t.callback_events.c.id))
                                 .where(t.callback_events.c.campaign_id == campaign_id)).scalar()
            return int(value or 0)
