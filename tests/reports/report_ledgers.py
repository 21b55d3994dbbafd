"""Real SQLite ledgers for report tests, built through the Ledger API with exact times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update

from ccm_tasks.ledger import CustomerUpdate, Ledger
from ccm_tasks.ledger import schema as t

IST = ZoneInfo("Asia/Kolkata")


def ist(text: str) -> float:
    """A local Asia/Kolkata time as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=IST).timestamp()


def epoch(text: str) -> float:
    """An ISO time with zone (``2026-11-20T23:30:00Z``) as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


class LedgerBuilder:
    """Campaigns, customers and calls written with the same Ledger calls the dialer makes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ledger = Ledger(path)
        self.holder = self.ledger.register_holder("report tests")
        self.customer_ids: dict[tuple[int, str], int] = {}

    def campaign(self, name: str, phones: Sequence[str], *, at: float, timezone: str = "Asia/Kolkata",
                 extras: Sequence[Mapping[str, str | None]] | None = None,
                 input_summary: Mapping[str, int] | None = None) -> tuple[int, int]:
        """A campaign with its customers and one run started at ``at``; returns (campaign id, run id)."""
        cid = self.ledger.upsert_campaign(name, definition_path=f"{name}.yaml", timezone=timezone, now=at,
                                          input_summary=input_summary or {})
        rows = [{"customer_key": p, "phone": p, "source_file": f"{name}.xlsx", "source_sheet": "Sheet1",
                 "source_row": i + 2, "extra": dict(extras[i]) if extras else {}}
                for i, p in enumerate(phones)]
        self.ledger.sync_customers(cid, rows, at)
        for row in self.ledger.customer_rows(cid):
            self.customer_ids[(cid, row.customer_key)] = row.id
        run_id = self.ledger.start_run(cid, self.holder, at)
        return cid, run_id

    def _claim(self, cid: int, run_id: int, phone: str, agent: str, at: float,
               attempt_no: int, agent_name: str | None = None) -> tuple[int, int]:
        customer_id = self.customer_ids[(cid, phone)]
        claim = self.ledger.claim(agent_key=agent, agent_name=agent_name or f"Agent {agent}",
                                  holder_id=self.holder,
                                  campaign_id=cid, run_id=run_id, customer_id=customer_id,
                                  attempt_no=attempt_no, now=at)
        assert claim.ok and claim.attempt_id is not None, claim
        return claim.attempt_id, customer_id

    def call(self, cid: int, run_id: int, phone: str, agent: str, *, at: float, status: str = "completed",
             talk: int | None = 60, duration: int = 90, end_time: bool = True,
             recordings: list[str] | None = None, customer_state: str = "done", attempt_no: int = 1,
             customer_attempts: int = 1, confirm_delay: float = 5.0, agent_name: str | None = None) -> int:
        """A call created at ``at`` that ends ``duration`` s after it starts (at + 1); the customer
        moves to ``customer_state``."""
        attempt_id, customer_id = self._claim(cid, run_id, phone, agent, at, attempt_no, agent_name)
        self.ledger.mark_placed(attempt_id, agent_key=agent, call_sid=f"CA{attempt_id:06d}", details={},
                                now=at + 1)
        summary: dict[str, Any] = {
            "call_status": status, "agent_leg_status": "completed",
            "customer_leg_status": "completed" if status == "completed" else "no-answer",
            "start_time": at + 1, "end_time": at + 1 + duration if end_time else None,
            "total_talk_time": talk, "total_duration": duration, "recordings": recordings}
        done = customer_state == "done"
        update = CustomerUpdate(state=customer_state, final_status=status if done else None,
                                last_status=status, attempts=customer_attempts, agent_side_retries=0,
                                no_dial_retries=0, next_attempt_at=None if done else at + 1800)
        self.ledger.complete_attempt(attempt_id, details={"call_status": status}, summary=summary,
                                     customer_id=customer_id, customer=update, agent_key=agent, release=True,
                                     now=at + 1 + duration + confirm_delay)
        return attempt_id

    def rejected(self, cid: int, run_id: int, phone: str, agent: str, *, at: float,
                 attempt_no: int = 1, agent_name: str | None = None) -> int:
        """A Make Call the API refused (nothing rang); the customer stays pending."""
        attempt_id, customer_id = self._claim(cid, run_id, phone, agent, at, attempt_no, agent_name)
        update = CustomerUpdate(state="pending", final_status=None, last_status=None, attempts=0,
                                agent_side_retries=0, no_dial_retries=0, next_attempt_at=at)
        self.ledger.mark_rejected(attempt_id, agent_key=agent, holder_id=self.holder, customer_id=customer_id,
                                  customer=update, category="agent_busy", code=10706,
                                  message="agent is on another call", now=at + 0.5)
        return attempt_id

    def unknown(self, cid: int, run_id: int, phone: str, agent: str, *, at: float) -> int:
        """A Make Call whose outcome is unknown; the agent's quarantine is then over."""
        attempt_id, customer_id = self._claim(cid, run_id, phone, agent, at, 1)
        update = CustomerUpdate(state="done", final_status="unknown", last_status="unknown", attempts=1,
                                agent_side_retries=0, no_dial_retries=0, next_attempt_at=None)
        self.ledger.mark_unknown(attempt_id, agent_key=agent, customer_id=customer_id, customer=update,
                                 message="read timeout", quarantine_until=at + 600, now=at + 30)
        self.ledger.release_lease(agent, self.holder)
        return attempt_id

    def stuck(self, cid: int, run_id: int, phone: str, agent: str, *, at: float) -> int:
        """A placed call reported stuck (its agent stays leased)."""
        attempt_id, _ = self._claim(cid, run_id, phone, agent, at, 1)
        self.ledger.mark_placed(attempt_id, agent_key=agent, call_sid=f"CA{attempt_id:06d}", details={},
                                now=at + 1)
        self.ledger.mark_stuck(attempt_id, at + 3600)
        return attempt_id

    def in_flight(self, cid: int, run_id: int, phone: str, agent: str, *, at: float) -> int:
        """An attempt written, its Make Call not yet answered."""
        attempt_id, _ = self._claim(cid, run_id, phone, agent, at, 1)
        return attempt_id

    def withdraw(self, cid: int, keep: Sequence[str], at: float) -> None:
        """Re-sync with only ``keep``: pending customers not in it are withdrawn."""
        self.ledger.sync_customers(cid, [{"customer_key": p, "phone": p} for p in keep], at)

    def finish_run(self, run_id: int, at: float, status: str = "completed",
                   reason: str = "all customers final") -> None:
        """Close a run."""
        self.ledger.finish_run(run_id, status, reason, {}, at)

    def start_run(self, cid: int, at: float) -> int:
        """Another run of a campaign."""
        return self.ledger.start_run(cid, self.holder, at)

    def mark_run(self, run_id: int, status: str) -> None:
        """Set a run's status without an end time (a killed run, noticed later as ``interrupted``)."""
        with self.ledger.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(status=status))

    def wrap_up(self, attempt_id: int, seconds: float) -> None:
        """The after-call work the dialler gave the agent after this attempt (``wrap_up_seconds``,
        written by the engine, which the Ledger API here does not do yet)."""
        with self.ledger.write() as conn:
            conn.execute(update(t.attempts).where(t.attempts.c.id == attempt_id)
                         .values(wrap_up_seconds=seconds))


def two_campaigns(builder: LedgerBuilder) -> LedgerBuilder:
    """Campaigns A and B over 20 and 21 November (IST), sharing agent a1, with every edge the daily
    report has: a call across midnight, one without end_time, an unknown outcome, a refused Make Call
    and a stuck call."""
    b = builder
    phones_a = [f"+9198000000{i:02d}" for i in range(8)]
    phones_b = [f"+9197000000{i:02d}" for i in range(6)]
    a, run_a = b.campaign("A", phones_a, at=ist("2026-11-20 09:00:00"))
    b_, run_b = b.campaign("B", phones_b, at=ist("2026-11-20 09:00:00"))
    # Day 1
    b.call(a, run_a, phones_a[0], "a1", at=ist("2026-11-20 10:00:00"), talk=100, duration=150)
    b.call(a, run_a, phones_a[1], "a2", at=ist("2026-11-20 11:00:00"), talk=50, duration=80)
    b.call(a, run_a, phones_a[2], "a2", at=ist("2026-11-20 12:00:00"), status="customer_unanswered", talk=0,
           duration=30, customer_state="pending")
    b.call(b_, run_b, phones_b[0], "a1", at=ist("2026-11-20 13:00:00"), talk=200, duration=260)
    b.call(b_, run_b, phones_b[1], "a3", at=ist("2026-11-20 14:00:00"), status="agent_unanswered", talk=None,
           duration=20)
    # Created on day 1 at 23:58, ended on day 2 at 00:00:31: counted on day 2.
    b.call(a, run_a, phones_a[3], "a3", at=ist("2026-11-20 23:58:00"), talk=120, duration=150)
    # Day 2
    b.call(a, run_a, phones_a[2], "a1", at=ist("2026-11-21 10:00:00"), talk=30, duration=45, attempt_no=2,
           customer_attempts=2)
    # No end_time from the API: counted when we confirmed it terminal (00:10 on day 2 + 60 s).
    b.call(a, run_a, phones_a[4], "a2", at=ist("2026-11-21 00:10:00"), status="customer_unanswered", talk=0,
           duration=20, end_time=False, confirm_delay=39)
    b.rejected(b_, run_b, phones_b[2], "a1", at=ist("2026-11-21 11:00:00"))
    b.unknown(b_, run_b, phones_b[2], "a2", at=ist("2026-11-21 11:05:00"))
    b.call(b_, run_b, phones_b[3], "a3", at=ist("2026-11-21 12:00:00"), talk=75, duration=100)
    b.call(b_, run_b, phones_b[4], "a1", at=ist("2026-11-21 13:00:00"), status="customer_unanswered",
           talk=0, duration=30, customer_state="pending")
    b.stuck(a, run_a, phones_a[5], "a4", at=ist("2026-11-21 14:00:00"))
    # Day 3: must not leak into day 2.
    b.call(a, run_a, phones_a[6], "a1", at=ist("2026-11-22 10:00:00"), talk=10, duration=20)
    return b
