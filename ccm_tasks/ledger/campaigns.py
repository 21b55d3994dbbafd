"""Campaigns, their runs, operators' controls, live progress, customers and the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.base import pk, transaction_retry
from ccm_tasks.ledger.holders import HolderStore
from ccm_tasks.ledger.states import CustomerState

ControlValue = str  # "run" | "pause" | "stop" (ccm_tasks.control)


CRASHED_REASON = "the run's process died (killed or crashed); it ended at its last heartbeat"
"""Why a run is recorded ``crashed`` (by the campaign's next run, or shown so by the reports)."""


@dataclass(frozen=True)
class CustomerUpdate:
    """A customer's state after a decision, written together with the attempt that caused it."""

    state: CustomerState
    final_status: str | None
    last_status: str | None
    attempts: int
    agent_side_retries: int
    no_dial_retries: int
    next_attempt_at: float | None

    def values(self, now: float) -> dict[str, Any]:
        """Column values for an UPDATE."""
        return {"state": str(self.state), "final_status": self.final_status,
                "last_status": self.last_status, "attempts": self.attempts,
                "agent_side_retries": self.agent_side_retries, "no_dial_retries": self.no_dial_retries,
                "next_attempt_at": self.next_attempt_at, "updated_at": now}


@dataclass(frozen=True)
class CustomerRow:
    """A customer's durable state, as the dialer loads it."""

    id: int
    customer_key: str
    phone: str
    preferred_agent: str | None
    state: str
    final_status: str | None
    last_status: str | None
    attempts: int
    agent_side_retries: int
    no_dial_retries: int
    next_attempt_at: float | None


@dataclass(frozen=True)
class Control:
    """What operators last asked of a campaign."""

    action: ControlValue
    by: str | None
    reason: str | None
    at: float | None


UPDATE_CUSTOMER = update(t.customers).where(t.customers.c.id == bindparam("b_id"))
"""One customer's row; the SET clause is the execute's parameters that name columns. Built once,
like the other statements every dialled call runs (ccm_tasks/ledger/attempts.py)."""


def set_customer(conn: Connection, customer_id: int | None, customer: CustomerUpdate | None,
                 now: float) -> None:
    """Write a customer's new state, if there is one (inside the caller's transaction)."""
    if customer is not None and customer_id is not None:
        conn.execute(UPDATE_CUSTOMER, {"b_id": customer_id, **customer.values(now)})


class CampaignStore(HolderStore):
    """Campaign rows, the one-runner lock, runs, controls, progress, customers and events."""

    @transaction_retry
    def upsert_campaign(self, name: str, *, definition_path: str, timezone: str, now: float,
                        input_summary: Mapping[str, Any] | None = None) -> int:
        """The campaign's id, creating its row on first use (two creators at once: one row)."""
        values = {"definition_path": definition_path, "timezone": timezone, "updated_at": now,
                  "input_summary": dict(input_summary or {})}
        with self.write() as conn:
            self.insert_ignore(conn, t.campaigns,
                               {"name": name, "created_at": now, "status": "new", **values})
            conn.execute(update(t.campaigns).where(t.campaigns.c.name == name).values(**values))
            return int(conn.execute(select(t.campaigns.c.id).where(t.campaigns.c.name == name)).scalar_one())

    def campaign_id(self, name: str) -> int | None:
        """The id of a campaign by name, if it exists."""
        with self.read() as conn:
            cid = conn.execute(select(t.campaigns.c.id).where(t.campaigns.c.name == name)).scalar()
            return int(cid) if cid is not None else None

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign row (for status pages), by name."""
        with self.read() as conn:
            rows = conn.execute(select(t.campaigns).order_by(t.campaigns.c.name)).mappings()
            return [dict(r) for r in rows]

    @transaction_retry
    def claim_campaign(self, campaign_id: int, holder_id: str, now: float) -> str | None:
        """Become the campaign's only runner. Returns None on success, else the live runner's id.

        A compare-and-set: the UPDATE names the runner it replaces, so of two processes that both
        saw a dead (or no) runner, the database lets exactly one through.
        """
        with self.write() as conn:
            current = conn.execute(select(t.campaigns.c.runner_holder)
                                   .where(t.campaigns.c.id == campaign_id)).scalar()
            if current and current != holder_id and self.holder_alive(current, conn):
                return str(current)
            c = t.campaigns.c
            same = c.runner_holder.is_(None) if current is None else c.runner_holder == current
            won = conn.execute(update(t.campaigns).where(c.id == campaign_id, same)
                               .values(runner_holder=holder_id, status="running", status_reason=None,
                                       updated_at=now)).rowcount
            if not won:
                winner = conn.execute(select(c.runner_holder).where(c.id == campaign_id)).scalar()
                return str(winner or "another process")
            self._close_runs_of_dead(conn, campaign_id)
            return None

    def _close_runs_of_dead(self, conn: Connection, campaign_id: int) -> None:
        """Runs still 'running' whose holder is dead were killed: record them as crashed."""
        r = t.runs.c
        for run in conn.execute(select(r.id, r.holder_id, r.started_at, r.progress)
                                .where(r.campaign_id == campaign_id, r.status == "running")).all():
            if not self.holder_alive(run.holder_id, conn):
                # Its last figures carry the campaign clock's time: its last sign of life.
                last = (run.progress or {}).get("time") if isinstance(run.progress, dict) else None
                conn.execute(update(t.runs).where(r.id == run.id, r.status == "running").values(
                    status="crashed", ended_at=float(last) if last is not None else run.started_at,
                    reason=CRASHED_REASON))

    @transaction_retry
    def release_campaign(self, campaign_id: int, holder_id: str, status: str, reason: str | None,
                         now: float) -> None:
        """Stop being the campaign's runner, recording how the run ended."""
        with self.write() as conn:
            conn.execute(update(t.campaigns)
                         .where(t.campaigns.c.id == campaign_id, t.campaigns.c.runner_holder == holder_id)
                         .values(runner_holder=None, status=status, status_reason=reason, updated_at=now))

    @transaction_retry
    def start_run(self, campaign_id: int, holder_id: str, now: float, *,
                  flow_run_id: str | None = None) -> int:
        """Open a run record."""
        with self.write() as conn:
            return pk(conn.execute(insert(t.runs).values(
                campaign_id=campaign_id, holder_id=holder_id, started_at=now, status="running",
                progress_at=self.now_expr(), flow_run_id=flow_run_id)))

    @transaction_retry
    def set_flow_run(self, run_id: int, flow_run_id: str) -> None:
        """Link a run to the Prefect flow run that tracks it."""
        with self.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(flow_run_id=flow_run_id))

    @transaction_retry
    def finish_run(self, run_id: int, status: str, reason: str | None, summary: Mapping[str, Any],
                   now: float) -> None:
        """Close a run record with its summary."""
        with self.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(
                ended_at=now, status=status, reason=reason,
                summary=json.loads(json.dumps(summary, default=str))))

    @transaction_retry
    def write_progress(self, run_id: int, holder_id: str, progress: Mapping[str, Any]) -> None:
        """The engine's latest figures (read by ``ccm status`` and the console) and a heartbeat."""
        with self.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(
                progress=json.loads(json.dumps(progress, default=str)), progress_at=self.now_expr()))
            conn.execute(update(t.holders).where(t.holders.c.holder_id == holder_id)
                         .values(heartbeat_at=self.now_expr()))

    def run(self, run_id: int) -> dict[str, Any] | None:
        """One run's row (its status, live progress and, once ended, its summary)."""
        with self.read() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).mappings().first()
            return dict(row) if row else None

    def runs(self, campaign_id: int, limit: int = 20) -> list[dict[str, Any]]:
        """A campaign's most recent runs, newest first."""
        with self.read() as conn:
            rows = conn.execute(select(t.runs).where(t.runs.c.campaign_id == campaign_id)
                                .order_by(t.runs.c.id.desc()).limit(limit)).mappings()
            return [dict(r) for r in rows]

    # ------------------------------------------------------------------ controls

    @transaction_retry
    def set_control(self, campaign_id: int, action: ControlValue, *, by: str, reason: str,
                    now: float, only_if: Iterable[ControlValue | None] | None = None) -> Control | None:
        """Record an operator's request (and an event); returns the previous control, or None if
        ``only_if`` was given and the current control was not one of those (nothing changed)."""
        c = t.campaigns.c
        with self.write() as conn:
            row = conn.execute(select(c.control, c.control_by, c.control_reason, c.control_at)
                               .where(c.id == campaign_id).with_for_update()).first()
            if row is None:
                return None
            previous = Control(row.control or "run", row.control_by, row.control_reason, row.control_at)
            allowed = None if only_if is None else {a or "run" for a in only_if}
            if allowed is not None and previous.action not in allowed:
                return None
            conn.execute(update(t.campaigns).where(c.id == campaign_id).values(
                control=action, control_by=by[:200], control_reason=reason, control_at=now))
            conn.execute(insert(t.events).values(
                campaign_id=campaign_id, at=now, kind=f"control_{action}",
                data={"by": by, "reason": reason, "was": previous.action}))
            return previous

    def control(self, campaign_id: int) -> Control:
        """What operators last asked of the campaign (``run`` when nothing was asked)."""
        c = t.campaigns.c
        with self.read() as conn:
            row = conn.execute(select(c.control, c.control_by, c.control_reason, c.control_at)
                               .where(c.id == campaign_id)).first()
        if row is None:
            return Control("run", None, None, None)
        return Control(row.control or "run", row.control_by, row.control_reason, row.control_at)

    # ------------------------------------------------------------------ customers

    def sync_customers(
        self, campaign_id: int, rows: Iterable[Mapping[str, Any]], now: float, *, chunk: int = 5000
    ) -> dict[str, int]:
        """Insert customers not yet known; withdraw pending ones no longer in the inputs; restore
        withdrawn ones that are back. Known customers keep their state (attempts, retries).

        Written in transactions of ``chunk`` rows: a million new customers must not hold the write
        lock for seconds while other processes wait to claim agents. Each chunk is idempotent, so a
        crash half-way is repaired by the next sync.
        """
        rows = list(rows)
        keys = {r["customer_key"] for r in rows}
        with self.read() as conn:
            existing: dict[str, str] = dict(conn.execute(  # type: ignore[arg-type]
                select(t.customers.c.customer_key, t.customers.c.state)
                .where(t.customers.c.campaign_id == campaign_id)).all())
        optional = ("preferred_agent", "source_file", "source_sheet", "source_row", "extra")
        new = [{**dict.fromkeys(optional), **r, "campaign_id": campaign_id,
                "state": str(CustomerState.PENDING), "attempts": 0, "agent_side_retries": 0,
                "no_dial_retries": 0, "updated_at": now}
               for r in rows if r["customer_key"] not in existing]
        for start in range(0, len(new), chunk):
            self._insert_customers(new[start:start + chunk])
        gone = [k for k, state in existing.items() if k not in keys and state == CustomerState.PENDING]
        back = [k for k, state in existing.items() if k in keys and state == CustomerState.WITHDRAWN]
        withdrawn = sum(self._move_customers(campaign_id, gone[i:i + 500], CustomerState.PENDING,
                                             CustomerState.WITHDRAWN, now) for i in range(0, len(gone), 500))
        restored = sum(self._move_customers(campaign_id, back[i:i + 500], CustomerState.WITHDRAWN,
                                            CustomerState.PENDING, now) for i in range(0, len(back), 500))
        return {"inserted": len(new), "withdrawn": withdrawn, "restored": restored,
                "kept": len(existing) - withdrawn}

    @transaction_retry
    def _insert_customers(self, rows: list[dict[str, Any]]) -> None:
        """Insert new customers; one another syncer inserted meanwhile is skipped (the key decides)."""
        dialect = sqlite if self.is_sqlite else postgresql
        with self.write() as conn:
            conn.execute(dialect.insert(t.customers).on_conflict_do_nothing(), rows)

    @transaction_retry
    def _move_customers(self, campaign_id: int, keys: list[str], from_state: CustomerState,
                        to_state: CustomerState, now: float) -> int:
        with self.write() as conn:
            c = t.customers.c
            return int(conn.execute(update(t.customers).where(
                c.campaign_id == campaign_id, c.customer_key.in_(keys), c.state == str(from_state)
            ).values(state=str(to_state), updated_at=now)).rowcount)

    def customer_rows(self, campaign_id: int) -> list[CustomerRow]:
        """Every customer of a campaign with its durable state."""
        c = t.customers.c
        with self.read() as conn:
            result = conn.execute(select(
                c.id, c.customer_key, c.phone, c.preferred_agent, c.state, c.final_status,
                c.last_status, c.attempts, c.agent_side_retries, c.no_dial_retries, c.next_attempt_at,
            ).where(c.campaign_id == campaign_id).order_by(c.id))
            return [CustomerRow(*row) for row in result]

    def customer_counts(self, campaign_id: int) -> dict[str, int]:
        """Customers by state, and the done ones by final status (``done:<status>``)."""
        c = t.customers.c
        with self.read() as conn:
            out: dict[str, int] = {}
            for state, final, n in conn.execute(
                    select(c.state, c.final_status, func.count()).where(c.campaign_id == campaign_id)
                    .group_by(c.state, c.final_status)).all():
                out[state] = out.get(state, 0) + int(n)
                if state == CustomerState.DONE:
                    out[f"done:{final or 'unknown'}"] = int(n)
            return out

    @transaction_retry
    def update_customer(self, customer_id: int, customer: CustomerUpdate, now: float) -> None:
        """Write a customer's state (recovery paths; normal paths update it with the attempt)."""
        with self.write() as conn:
            set_customer(conn, customer_id, customer, now)

    # ------------------------------------------------------------------ audit trail

    @transaction_retry
    def add_event(self, kind: str, now: float, *, campaign_id: int | None = None,
                  attempt_id: int | None = None, agent_key: str | None = None,
                  data: Mapping[str, Any] | None = None) -> None:
        """Append to the audit trail."""
        with self.write() as conn:
            conn.execute(insert(t.events).values(campaign_id=campaign_id, attempt_id=attempt_id, at=now,
                                                 kind=kind, agent_key=agent_key,
                                                 data=dict(data) if data else None))

    def events(self, campaign_id: int, kinds: Iterable[str] | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
        """A campaign's most recent events (of some kinds), newest first."""
        e = t.events.c
        query = select(t.events).where(e.campaign_id == campaign_id)
        if kinds is not None:
            names = list(kinds)
            query = query.where(e.kind.in_(names))
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query.order_by(e.id.desc()).limit(limit)).mappings()]
