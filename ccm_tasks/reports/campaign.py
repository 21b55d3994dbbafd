"""The campaign outcome report: one row per customer, every attempt, a summary and the agents.

A pure function of the ledger (invariant 4): ``build_campaign_report`` reads it in one transaction
and can be run again at any time, during a run or long after. Times are shown in the campaign's zone
(``campaigns.timezone``), truncated to the second.

The figures (reach rate, answer rate, talk time, busy time, utilisation...) are defined once, in
:mod:`ccm_tasks.reports.glossary`; the per-customer columns here:

* **final_status** of a customer: ``done`` -> its ``final_status``; ``calling`` -> ``stuck`` when its
  open attempt (created or placed) has ``stuck_at``, else ``in_progress``; ``pending`` with no placed,
  terminal or unknown attempt -> ``not_attempted``; ``pending`` with such attempts -> its
  ``last_status`` (a retry was still due: ``retry_pending`` is true); ``withdrawn`` -> ``withdrawn``
  (removed from the inputs, e.g. added to the do-not-call list; whatever was dialled before).
  People read it in words (:func:`~ccm_tasks.reports.glossary.outcome_label`).
* **attempts** of a customer: its calls placed (attempts that may have rung someone: placed,
  terminal or unknown; not rejected: the API refused those and nothing rang; not created: the Make
  Call is in flight).
* **agent**, **agent_name**, **last_call_sid**, **last_attempt**: from the customer's last attempt
  that was not rejected; **first_attempt**: the first such attempt. Attempt times are ``created_at``
  (written just before the Make Call).
* **talk_time_s**: the sum of ``total_talk_time`` over all the customer's attempts (null counts as 0);
  **recordings**: their recording URLs, in attempt order, joined by a space.
* **daily_report_date** (Attempts): the day, in the campaign's zone, on which the daily report counts
  the attempt: its call's ``end_time``, or ``terminal_at`` when the API gave none; ``created_at`` for
  an unknown outcome; blank for rejected and still-open attempts, which no daily report counts. The
  same time, to the hour, places a call in **By hour**.
* **Shares** of outcomes are of all customers of the campaign, withdrawn included, so they add to 100%
  and match the Outcomes row count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection, Text, select, type_coerce

from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.campaigns import CRASHED_REASON
from ccm_tasks.ledger.states import (
    MAY_HAVE_RUNG,
    UNFINISHED_CUSTOMER,
    AttemptState,
    CustomerState,
    values,
)
from ccm_tasks.paths import campaign_reports_dir
from ccm_tasks.reports.files import write_csv
from ccm_tasks.reports.glossary import (
    FIGURES,
    OUTCOME_LABELS,
    Figure,
    figure,
    figures_markdown,
    glossary_table,
    headline_figures,
    outcome_label,
    run_status_label,
)
from ccm_tasks.reports.layout import Cell, Layout, references
from ccm_tasks.reports.tables import (
    Kind,
    Table,
    display,
    local_dates,
    local_datetime,
    local_times,
    markdown_table,
    read_frame,
)
from ccm_tasks.reports.xlsx import CustomSheet, print_setup, write_workbook

RANG_STATES = values(MAY_HAVE_RUNG)
"""Attempt states that may have rung someone (calls placed)."""

OPEN_STATES = (AttemptState.CREATED.value, AttemptState.PLACED.value)
"""Attempt states whose call is not confirmed over."""

SPECIAL_STATUSES = ("unknown", "stuck", "in_progress", "not_attempted", "withdrawn")
"""Outcomes that are not call statuses, listed after them (at zero too in the statuses frame)."""

OUTCOME_COLUMNS = (
    "customer_contact_uri", "final_status", "retry_pending", "waiting_for", "next_call_after", "attempts",
    "agent", "agent_name", "last_call_sid", "first_attempt", "last_attempt", "talk_time_s", "recordings",
    "source_file", "source_sheet", "source_row",
)
OUTCOME_KINDS: dict[str, Kind] = {
    "customer_contact_uri": "phone", "final_status": "text", "outcome": "text", "retry_pending": "bool",
    "waiting_for": "text", "next_call_after": "datetime", "attempts": "int", "agent": "text",
    "agent_name": "text", "last_call_sid": "text", "first_attempt": "datetime", "last_attempt": "datetime",
    "talk_time_s": "duration",
    "recordings": "text", "source_file": "text", "source_sheet": "text", "source_row": "int",
}
ATTEMPT_KINDS: dict[str, Kind] = {
    "attempt_id": "int", "run_id": "int", "customer_contact_uri": "phone", "attempt_no": "int",
    "state": "text", "call_sid": "text", "agent": "text", "agent_name": "text", "call_status": "text",
    "agent_leg_status": "text", "customer_leg_status": "text", "created": "datetime",
    "start_time": "datetime", "end_time": "datetime", "confirmed_terminal": "datetime",
    "daily_report_date": "date", "talk_time_s": "duration", "total_duration_s": "duration",
    "wrap_up_s": "duration", "recordings": "text", "error_category": "text", "error_code": "int",
    "error_message": "text", "resolved_by": "text", "stuck": "bool",
}
AGENT_KINDS: dict[str, Kind] = {
    "agent": "text", "agent_name": "text", "calls_placed": "int", "calls_answered": "int",
    "answer_rate": "percent", "calls_refused": "int", "talk_time_s": "duration",
    "average_talk_time_s": "duration", "busy_time_s": "duration", "wrap_up_time_s": "duration",
    "time_in_runs_s": "duration", "utilisation": "percent",
}
AGENT_LABELS: dict[str, str] = {
    "agent": "Agent", "agent_name": "Name",
    **{c: FIGURES[c.removesuffix("_s")].label for c in AGENT_KINDS if c.removesuffix("_s") in FIGURES},
}
HOUR_KINDS: dict[str, Kind] = {"hour": "text", "calls_placed": "int", "calls_answered": "int",
                               "answer_rate": "percent", "talk_time_s": "duration"}
HOUR_LABELS: dict[str, str] = {"hour": "Hour of the day", **{
    c: FIGURES[c.removesuffix("_s")].label for c in HOUR_KINDS if c != "hour"}}
STATUS_KINDS: dict[str, Kind] = {"final_status": "text", "outcome": "text", "customers": "int",
                                 "share": "percent"}
RUN_KINDS: dict[str, Kind] = {"run_id": "int", "started": "datetime", "ended": "datetime",
                              "status": "text", "status_code": "text", "reason": "text"}
RUN_LABELS = {"run_id": "Run", "started": "Started", "ended": "Ended", "status": "Status",
              "status_code": "Status code", "reason": "Reason"}
CONTROL_KINDS: dict[str, Kind] = {"at": "datetime", "action": "text", "by": "text", "reason": "text",
                                  "customers": "int"}
CONTROL_LABELS = {"at": "When", "action": "Action", "by": "By", "reason": "Why", "customers": "Customers"}
CONTROL_EVENTS: dict[str, str] = {"control_pause": "paused", "control_run": "resumed",
                                  "control_stop": "stopped", "requeue_unknown": "requeued unknown outcomes"}
"""Operators' actions recorded as events (ccm_tasks.control), in words: the report's Controls table."""


class UnknownCampaign(LookupError):
    """No campaign of that name in the ledger."""


@dataclass(frozen=True)
class CampaignReport:
    """A campaign's outcome tables (DataFrames), its figures, and what they were computed from."""

    campaign: str
    campaign_id: int
    timezone: str
    run_date: date
    as_of: float
    status: str  # the campaign's status code (campaigns.status): its latest run's, or "running"
    status_reason: str | None
    outcomes: pd.DataFrame
    attempts: pd.DataFrame
    statuses: pd.DataFrame
    agents: pd.DataFrame
    hours: pd.DataFrame
    runs: pd.DataFrame
    figures: tuple[Figure, ...]
    extra_columns: tuple[str, ...]
    controls: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(CONTROL_KINDS)))
    """Operators' pauses, resumes, stops and requeues: when (wall time), who and why."""

    @property
    def page_title(self) -> str:
        """What every printed page's header says."""
        return f"{self.campaign}: call outcomes"

    def figure(self, name: str) -> Any:
        """A figure's value by its glossary name (``report.figure("reach_rate")``)."""
        for f in self.figures:
            if f.name == name:
                return f.value
        raise KeyError(name)

    @property
    def headline(self) -> tuple[Figure, ...]:
        """The headline figures (:func:`~ccm_tasks.reports.glossary.headline_figures`)."""
        return headline_figures(self)

    @property
    def agent_totals(self) -> dict[str, Any]:
        """The Agents table's totals row."""
        a = self.agents
        busy, wrap, span = (float(a[c].sum()) for c in ("busy_time_s", "wrap_up_time_s", "time_in_runs_s"))
        calls, answered = int(a["calls_placed"].sum()), int(a["calls_answered"].sum())
        talk = int(a["talk_time_s"].sum())
        return {"agent": "All agents", "agent_name": f"{len(a)} agents", "calls_placed": calls,
                "calls_answered": answered, "answer_rate": answered / calls if calls else None,
                "calls_refused": int(a["calls_refused"].sum()), "talk_time_s": talk,
                "average_talk_time_s": talk / answered if answered else None, "busy_time_s": busy,
                "wrap_up_time_s": wrap, "time_in_runs_s": span,
                "utilisation": (busy + wrap) / span if span > 0 else None}

    def outcomes_table(self) -> Table:
        """Outcomes as the CSV has it (codes, for machines; the input's extra columns are text)."""
        kinds: dict[str, Kind] = {**dict.fromkeys(self.extra_columns, "text"), **OUTCOME_KINDS}
        return Table("Outcomes", self.outcomes, kinds, self.timezone, title=self.page_title)

    def outcomes_sheet_table(self) -> Table:
        """Outcomes for the workbook: the CSV's columns and, after ``final_status``, the outcome in words."""
        frame = self.outcomes
        words = frame["final_status"].map(OUTCOME_LABELS).fillna(frame["final_status"]).astype("object")
        at = frame.columns.get_loc("final_status") + 1
        columns = {**{c: frame[c] for c in frame.columns[:at]}, "outcome": words,
                   **{c: frame[c] for c in frame.columns[at:]}}
        kinds: dict[str, Kind] = {**dict.fromkeys(self.extra_columns, "text"), **OUTCOME_KINDS}
        return Table("Outcomes", pd.DataFrame(columns, copy=False), kinds, self.timezone,
                     title=self.page_title)

    def attempts_table(self) -> Table:
        """Attempts with its column kinds (codes, for machines)."""
        return Table("Attempts", self.attempts, ATTEMPT_KINDS, self.timezone, title=self.page_title)

    def agents_table(self) -> Table:
        """Agents with plain headers and a totals row."""
        totals = self.agent_totals if len(self.agents) else None
        return Table("Agents", self.agents, AGENT_KINDS, self.timezone, AGENT_LABELS, totals,
                     title=self.page_title)

    def hours_table(self) -> Table:
        """Calls placed and answered by the hour of the day they ended, with totals."""
        h = self.hours
        calls, answered = int(h["calls_placed"].sum()), int(h["calls_answered"].sum())
        totals = {"hour": "All hours", "calls_placed": calls, "calls_answered": answered,
                  "answer_rate": answered / calls if calls else None,
                  "talk_time_s": int(h["talk_time_s"].sum())} if len(h) else None
        return Table("By hour", h, HOUR_KINDS, self.timezone, HOUR_LABELS, totals, title=self.page_title)

    def statuses_table(self) -> Table:
        """Customers per outcome with their share (codes and words)."""
        return Table("Summary", self.statuses, STATUS_KINDS, self.timezone,
                     {"final_status": "code", "outcome": "Outcome", "customers": "Customers",
                      "share": "Share"}, title=self.page_title)

    def runs_table(self) -> Table:
        """The campaign's runs, statuses in words."""
        return Table("Runs", self.runs, RUN_KINDS, self.timezone, RUN_LABELS, title=self.page_title)

    def controls_table(self) -> Table:
        """Who paused, resumed, stopped or requeued the campaign, when and why."""
        return Table("Controls", self.controls, CONTROL_KINDS, self.timezone, CONTROL_LABELS,
                     title=self.page_title)


# --------------------------------------------------------------------------- building


def _run_frame(runs: pd.DataFrame, zone: str) -> pd.DataFrame:
    """The Runs sheet: each run's local start and end, its status in words and as a code."""
    return pd.DataFrame({
        "run_id": runs["id"].astype("int64"),
        "started": local_times(runs["started_at"], zone),
        "ended": local_times(runs["ended_at"], zone),
        "status": pd.Series([run_status_label(s) for s in runs["status"].tolist()], dtype="object"),
        "status_code": runs["status"].astype("object"),
        "reason": runs["reason"].astype("object"),
    })


def build_campaign_report(ledger: Ledger, campaign: str, *, run_date: date | None = None,
                          now: float | None = None) -> CampaignReport:
    """Compute a campaign's outcome report from the ledger. Raises :class:`UnknownCampaign`.

    ``run_date`` names the report's folder (default: the latest run's start date in the campaign's
    zone); ``now`` is the *as of* time for attempts still open (default: the later of the wall clock
    and the latest time in the campaign's rows, because a time-scaled simulator's clock runs ahead).
    """
    with ledger.read() as conn:
        c = t.campaigns.c
        # Only what the report shows: the row also holds the callback URL's secret token.
        row = conn.execute(select(c.id, c.name, c.timezone, c.input_summary, c.status, c.status_reason)
                           .where(c.name == campaign)).mappings().first()
        if row is None:
            raise UnknownCampaign(f"no campaign named {campaign!r} in the ledger")
        cid = int(row["id"])
        customers = _read_customers(conn, cid)
        attempts = _read_attempts(conn, cid)
        quarantines = _read_quarantines(conn, cid)
        limit_holds = _read_limit_holds(conn, cid)
        runs = _read_runs(ledger, conn, cid)
        controls = _read_controls(conn, cid, zone=str(row["timezone"]))
    for column in ("started_at", "ended_at"):
        runs[column] = runs[column].astype("float64")
    zone = str(row["timezone"])
    latest = _latest_time(attempts, runs)
    as_of = now if now is not None else max(time.time(), latest)
    if run_date is None:
        start = runs["started_at"].max() if len(runs) else as_of
        stamp = local_datetime(float(start), zone)
        assert stamp is not None
        run_date = stamp.date()

    attempts = attempts.sort_values("id", kind="stable").reset_index(drop=True)
    attempts["talk"] = attempts["total_talk_time"].fillna(0).astype("int64")
    attempts["wrap"] = attempts["wrap_up_seconds"].fillna(0.0).clip(lower=0.0)
    urls = _json_column(attempts["recordings"].tolist())
    attempts["recordings_text"] = pd.Series([_join_urls(v) for v in urls], dtype="object")
    outcomes, extras = _outcomes(customers, attempts, zone, _Waiting(limit_holds, as_of))
    statuses = _statuses(outcomes)
    attempts["busy_until"] = _busy_until(attempts, quarantines, as_of)
    attempts["counted_at"] = _counted_at(attempts)
    agents = _agents(attempts, runs, as_of)
    run_frame = _run_frame(runs, zone)
    figures = _figures(outcomes, customers, attempts, runs, dict(row["input_summary"] or {}), zone, as_of)
    status, status_reason = _status(row["status"], row["status_reason"], runs)
    return CampaignReport(
        campaign=str(row["name"]), campaign_id=cid, timezone=zone, run_date=run_date, as_of=as_of,
        status=status, status_reason=status_reason,
        outcomes=outcomes, attempts=_attempts(attempts, customers, zone), statuses=statuses,
        agents=agents, hours=hours_frame(attempts["counted_at"], attempts["call_status"], attempts["talk"],
                                         zone),
        runs=run_frame, figures=figures, extra_columns=extras, controls=controls)


def _read_runs(ledger: Ledger, conn: Connection, campaign_id: int) -> pd.DataFrame:
    """The campaign's runs, oldest first. A run still recorded ``running`` whose process is gone was
    killed: it shows as ``crashed``, ended at its last progress write (its last sign of life), as the
    next run of the campaign will record it (``CampaignStore._close_runs_of_dead``)."""
    r = t.runs.c
    rows = conn.execute(select(r.id, r.started_at, r.ended_at, r.status, r.reason, r.holder_id,
                               type_coerce(r.progress, Text).label("progress"))
                        .where(r.campaign_id == campaign_id).order_by(r.id)).mappings().all()
    out = []
    for row in rows:
        run = {k: row[k] for k in ("id", "started_at", "ended_at", "status", "reason")}
        if row["status"] == "running" and not ledger.holder_alive(row["holder_id"], conn):
            progress = _json(row["progress"])
            last = progress.get("time") if isinstance(progress, dict) else None
            run.update(status="crashed",
                       ended_at=float(last) if isinstance(last, int | float) else row["started_at"],
                       reason=CRASHED_REASON)
        out.append(run)
    return pd.DataFrame(out, columns=["id", "started_at", "ended_at", "status", "reason"])


def _status(campaign_status: str | None, reason: str | None, runs: pd.DataFrame) -> tuple[str, str | None]:
    """The campaign's status and reason; a campaign row no runner ever claimed says its latest run's."""
    if campaign_status == "running" and len(runs) and runs.iloc[-1]["status"] == "crashed":
        return "crashed", str(runs.iloc[-1]["reason"])  # its runner died; nobody has run it since
    if campaign_status and campaign_status != "new":
        return campaign_status, reason
    if not len(runs):
        return "new", reason
    latest = runs.iloc[-1]
    return str(latest["status"]), latest["reason"] if isinstance(latest["reason"], str) else None


def _read_customers(conn: Connection, campaign_id: int) -> pd.DataFrame:
    c = t.customers.c
    query = select(c.id, c.phone, c.source_file, c.source_sheet, c.source_row,
                   type_coerce(c.extra, Text).label("extra"), c.state, c.final_status, c.last_status,
                   c.next_attempt_at,
                   ).where(c.campaign_id == campaign_id).order_by(c.id)
    return read_frame(conn, query)


def _read_attempts(conn: Connection, campaign_id: int) -> pd.DataFrame:
    a = t.attempts.c
    # JSON columns come back as text (parsed only where needed); the raw call details are left out.
    query = select(a.id, a.customer_id, a.run_id, a.attempt_no, a.state, a.call_sid, a.agent_key,
                   a.agent_name, a.created_at, a.placed_at, a.terminal_at, a.stuck_at, a.call_status,
                   a.agent_leg_status, a.customer_leg_status, a.start_time, a.end_time, a.total_talk_time,
                   a.total_duration, type_coerce(a.recordings, Text).label("recordings"),
                   a.error_category, a.error_code, a.error_message, a.resolved_by, a.wrap_up_seconds,
                   ).where(a.campaign_id == campaign_id)
    frame = read_frame(conn, query)
    for column in ("created_at", "placed_at", "terminal_at", "stuck_at", "start_time", "end_time",
                   "total_talk_time", "total_duration", "wrap_up_seconds"):
        frame[column] = frame[column].astype("float64")
    return frame


def _read_controls(conn: Connection, campaign_id: int, *, zone: str) -> pd.DataFrame:
    """The campaign's control and requeue events, oldest first (:data:`CONTROL_EVENTS`)."""
    e = t.events.c
    rows = conn.execute(select(e.at, e.kind, e.data).where(
        e.campaign_id == campaign_id, e.kind.in_(list(CONTROL_EVENTS))).order_by(e.id)).all()
    data = [_json(d) or {} for _at, _kind, d in rows]
    frame = pd.DataFrame({
        "at": local_times(pd.Series([float(at) for at, _k, _d in rows], dtype="float64"), zone),
        "action": pd.Series([CONTROL_EVENTS[k] for _a, k, _d in rows], dtype="object"),
        "by": pd.Series([d.get("by") for d in data], dtype="object"),
        "reason": pd.Series([d.get("reason") or None for d in data], dtype="object"),
        "customers": pd.Series([len(d["customer_ids"]) if "customer_ids" in d else None for d in data],
                               dtype="float64"),  # requeues only; NaN shows as blank
    })
    return frame


def _read_quarantines(conn: Connection, campaign_id: int) -> dict[int, float]:
    """Attempt id -> when its unknown outcome's quarantine released the agent."""
    e = t.events.c
    rows = conn.execute(select(e.attempt_id, type_coerce(e.data, Text))
                        .where(e.campaign_id == campaign_id, e.kind == "outcome_unknown")).all()
    out: dict[int, float] = {}
    for attempt_id, data in rows:
        value = _json(data)
        until = value.get("quarantine_until") if isinstance(value, dict) else None
        if attempt_id is not None and isinstance(until, int | float):
            out[int(attempt_id)] = float(until)
    return out


def _read_limit_holds(conn: Connection, campaign_id: int) -> dict[int, tuple[float, float]]:
    """Customer id -> (when, until) of the latest time the contact limit held it."""
    e = t.events.c
    rows = conn.execute(select(e.at, type_coerce(e.data, Text))
                        .where(e.campaign_id == campaign_id, e.kind == "contact_limit_hold")
                        .order_by(e.id)).all()
    out: dict[int, tuple[float, float]] = {}
    for at, data in rows:
        value = _json(data)
        if isinstance(value, dict) and isinstance(value.get("customer_id"), int) \
                and isinstance(value.get("until"), int | float):
            out[int(value["customer_id"])] = (float(at), float(value["until"]))
    return out


@dataclass(frozen=True)
class _Waiting:
    """What the report needs to say why a pending customer is not being called now."""

    limit_holds: Mapping[int, tuple[float, float]]
    as_of: float

    def columns(self, customers: pd.DataFrame, last_call: pd.Series, pending: npt.NDArray[np.bool_],
                zone: str) -> tuple[pd.Series, pd.Series]:
        """``waiting_for`` (``contact limit`` | ``retry interval`` | missing) and ``next_call_after``.

        A pending customer waits for the contact limit when the latest hold came after its last call
        and has not lapsed; for the retry interval when its next attempt is due later and it was
        called before; otherwise it is callable now (or at the next run, or when the window opens).
        """
        ids = customers["id"]
        held_at = ids.map({k: v[0] for k, v in self.limit_holds.items()}).astype("float64")
        held_until = ids.map({k: v[1] for k, v in self.limit_holds.items()}).astype("float64")
        next_at = customers["next_attempt_at"].astype("float64")
        later = pending & (next_at > self.as_of).to_numpy()
        by_limit = pending & (held_until > self.as_of).to_numpy() & \
            ~(last_call.astype("float64") > held_at).to_numpy()
        by_retry = later & ~by_limit & last_call.notna().to_numpy()
        reason = np.select([by_limit, by_retry], ["contact limit", "retry interval"], default="")
        after = np.where(by_limit, held_until.to_numpy(), np.where(by_retry, next_at.to_numpy(), np.nan))
        return (pd.Series(reason, dtype="object").replace("", None),
                local_times(pd.Series(after, dtype="float64"), zone))


def _busy_until(a: pd.DataFrame, quarantines: Mapping[int, float], as_of: float) -> pd.Series:
    """When each attempt stopped holding its agent (see the module docstring)."""
    until = a["terminal_at"]
    unresolved = (a["state"] == "unknown") & until.isna()
    released = a["id"].map(quarantines).astype("float64").fillna(as_of).clip(upper=as_of)
    return until.where(~unresolved, released).fillna(as_of)


def _latest_time(attempts: pd.DataFrame, runs: pd.DataFrame) -> float:
    stamps = [attempts[c].max() for c in ("created_at", "placed_at", "terminal_at", "stuck_at")]
    stamps += [runs[c].max() for c in ("started_at", "ended_at")] if len(runs) else []
    known = [float(s) for s in stamps if s is not None and s == s]
    return max(known, default=0.0)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _json_column(values: list[Any]) -> list[Any]:
    """Parse a JSON column: SQLite returns text (parsed in one C-level call for the whole column);
    drivers that parse JSON themselves (psycopg) return objects, kept as they are."""
    texts = [v for v in values if isinstance(v, str)]
    if not texts:
        return [None if isinstance(v, float) else v for v in values]
    try:
        parsed = iter(json.loads("[" + ",".join(texts) + "]"))
    except ValueError:  # one malformed value: fall back to one by one, keeping the bad text
        parsed = iter([_json(v) for v in texts])
    return [next(parsed) if isinstance(v, str) else (None if isinstance(v, float) else v) for v in values]


def _join_urls(urls: Any) -> str | None:
    if not urls:
        return None
    if isinstance(urls, list):
        return " ".join(str(u) for u in urls if u) or None
    return str(urls)


def _extras(raw: list[Any]) -> dict[str, list[str | None]]:
    """The input spreadsheet's extra columns, in their original order (first seen first)."""
    parsed = _json_column(raw)
    order: dict[str, None] = {}
    for extra in parsed:
        if isinstance(extra, dict):
            order.update(dict.fromkeys(extra))
    columns: dict[str, list[str | None]] = {}
    for key in order:
        values = [e.get(key) if isinstance(e, dict) else None for e in parsed]
        columns[key] = [v if v is None or isinstance(v, str) else str(v) for v in values]
    return columns


def _extra_name(key: str, taken: set[str]) -> str:
    # An input column named like one of ours ("agent", "attempts") keeps its data under a clear name.
    name = key if key.strip() else "(blank header)"
    while name in taken:
        name = f"{name} (input)"
    taken.add(name)
    return name


def _by_customer(values: pd.Series, customer_ids: pd.Series, ids: pd.Series) -> pd.Series:
    """Map a per-attempt column (already one row per customer) onto the customers."""
    return ids.map(pd.Series(values.to_numpy(), index=customer_ids.to_numpy()))


def _outcomes(customers: pd.DataFrame, a: pd.DataFrame, zone: str,
              waiting: _Waiting) -> tuple[pd.DataFrame, tuple[str, ...]]:
    ids = customers["id"]
    rang = a["state"].isin(RANG_STATES)
    not_rejected = a[a["state"] != AttemptState.REJECTED]
    first = not_rejected.drop_duplicates("customer_id", keep="first")
    last = not_rejected.drop_duplicates("customer_id", keep="last")
    last_rang = a[rang].drop_duplicates("customer_id", keep="last")
    n_rang = ids.map(rang.groupby(a["customer_id"]).sum()).fillna(0).astype("int64")
    talk = ids.map(a.groupby("customer_id")["talk"].sum()).fillna(0).astype("int64")
    by_customer: dict[int, list[str]] = {}
    for customer_id, text in zip(a["customer_id"].tolist(), a["recordings_text"].tolist(), strict=True):
        if text:
            by_customer.setdefault(customer_id, []).append(text)
    urls = ids.map({k: " ".join(v) for k, v in by_customer.items()})
    stuck_ids = set(a.loc[a["state"].isin(OPEN_STATES) & a["stuck_at"].notna(), "customer_id"].tolist())

    state = customers["state"].astype("object").to_numpy()
    final_status = customers["final_status"].astype("object")
    last_status = customers["last_status"].astype("object")
    # A pending customer should have last_status; if a recovery path left it empty, the last call says.
    retry_status = last_status.where(last_status.notna(), _by_customer(
        last_rang["call_status"], last_rang["customer_id"], ids)).fillna("unknown")
    done_status = final_status.where(final_status.notna(), last_status).fillna("unknown")
    is_stuck = ids.isin(stuck_ids).to_numpy()
    never = (n_rang == 0).to_numpy()
    done, calling, pending = (state == CustomerState.DONE, state == CustomerState.CALLING,
                              state == CustomerState.PENDING)
    status = np.select(
        [done, calling & is_stuck, calling, state == CustomerState.WITHDRAWN, pending & never, pending],
        [done_status.to_numpy(), "stuck", "in_progress", "withdrawn", "not_attempted",
         retry_status.to_numpy()],
        default=state)

    waiting_for, next_call_after = waiting.columns(
        customers, _by_customer(last["created_at"], last["customer_id"], ids), pending, zone)
    columns: dict[str, Any] = {}
    taken = set(OUTCOME_COLUMNS)
    extras: list[str] = []
    for key, texts in _extras(customers["extra"].tolist()).items():
        name = _extra_name(key, taken)
        extras.append(name)
        columns[name] = pd.Series(texts, dtype="object")
    columns.update({
        "customer_contact_uri": customers["phone"].astype("object"),
        "final_status": pd.Series(status, dtype="object"),
        "retry_pending": pd.Series(pending & ~never, dtype="bool"),
        "waiting_for": waiting_for,
        "next_call_after": next_call_after,
        "attempts": n_rang,
        "agent": _by_customer(last["agent_key"], last["customer_id"], ids).astype("object"),
        "agent_name": _by_customer(last["agent_name"], last["customer_id"], ids).astype("object"),
        "last_call_sid": _by_customer(last["call_sid"], last["customer_id"], ids).astype("object"),
        "first_attempt": local_times(_by_customer(first["created_at"], first["customer_id"], ids), zone),
        "last_attempt": local_times(_by_customer(last["created_at"], last["customer_id"], ids), zone),
        "talk_time_s": talk,
        "recordings": urls.astype("object"),
        "source_file": customers["source_file"].astype("object"),
        "source_sheet": customers["source_sheet"].astype("object"),
        "source_row": customers["source_row"].astype("Int64"),
    })
    frame = pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in columns.items()})
    return frame, tuple(extras)


def _statuses(outcomes: pd.DataFrame) -> pd.DataFrame:
    counts = outcomes["final_status"].value_counts()
    calls = sorted((s for s in counts.index if s not in SPECIAL_STATUSES and s != "completed"),
                   key=lambda s: (-int(counts[s]), str(s)))
    order = ["completed", *calls, *SPECIAL_STATUSES]
    total = len(outcomes)
    numbers = [int(counts.get(s, 0)) for s in order]
    return pd.DataFrame({
        "final_status": pd.Series(order, dtype="object"),
        "outcome": pd.Series([outcome_label(s) for s in order], dtype="object"),
        "customers": pd.Series(numbers, dtype="int64"),
        "share": pd.Series([v / total if total else np.nan for v in numbers], dtype="float64"),
    })


def _counted_at(a: pd.DataFrame) -> pd.Series:
    """When the daily report counts each attempt (NaN: never): a terminal call when it ended (the
    API's end_time, else when we confirmed it), an unknown outcome when its Make Call was sent."""
    ended = a["end_time"].fillna(a["terminal_at"])
    return ended.where(a["state"] == AttemptState.TERMINAL,
                       a["created_at"].where(a["state"] == AttemptState.UNKNOWN))


def hours_frame(counted_at: pd.Series, call_status: pd.Series, talk: pd.Series, zone: str) -> pd.DataFrame:
    """Calls placed and answered by local hour of the day they were counted (see :func:`_counted_at`),
    every hour from the first to the last with calls (zeros between), so a chart reads as a day."""
    counted = counted_at.notna()
    hour = local_times(counted_at[counted], zone).dt.hour
    frame = pd.DataFrame({"hour": hour.to_numpy(),
                          "answered": (call_status[counted] == "completed").to_numpy(dtype="int64"),
                          "talk": talk[counted].to_numpy(dtype="int64")})
    grouped = frame.groupby("hour").agg(calls=("answered", "size"), answered=("answered", "sum"),
                                        talk=("talk", "sum"))
    if grouped.empty:
        hours = pd.Index([], dtype="int64")
    else:
        hours = pd.Index(range(int(grouped.index.min()), int(grouped.index.max()) + 1), dtype="int64")
    grouped = grouped.reindex(hours, fill_value=0)
    calls = grouped["calls"].astype("int64")
    return pd.DataFrame({
        "hour": pd.Series([f"{h:02d}:00-{h + 1:02d}:00" for h in hours], dtype="object"),
        "calls_placed": calls.to_numpy(),
        "calls_answered": grouped["answered"].astype("int64").to_numpy(),
        "answer_rate": (grouped["answered"] / calls.where(calls > 0)).to_numpy(dtype="float64"),
        "talk_time_s": grouped["talk"].astype("int64").to_numpy(),
    })


def _run_periods(a: pd.DataFrame, runs: pd.DataFrame, as_of: float) -> pd.Series:
    """How long each run lasted (run id -> seconds): started to ended; a run still going to *as of*;
    one that ended without recording it (crashed, interrupted) to its last attempt's end (busy, then
    wrap-up). Attempts without a run (older ledgers) form one period of their own, id -1."""
    run_ids = a["run_id"].fillna(-1).astype("int64")
    last_end = (a["busy_until"] + a["wrap"]).groupby(run_ids).max()
    first_start = a["created_at"].groupby(run_ids).min()
    ids = runs["id"].astype("int64")
    started = pd.Series(runs["started_at"].to_numpy(), index=ids)
    ended = pd.Series(runs["ended_at"].to_numpy(), index=ids)
    running = pd.Series((runs["status"] == "running").to_numpy(), index=ids)
    fallback = last_end.reindex(ids).fillna(started)
    end = ended.where(ended.notna(), fallback.where(~running, as_of))
    periods = (end - started).clip(lower=0.0)
    if -1 in last_end.index:
        periods.loc[-1] = max(0.0, float(last_end.loc[-1] - first_start.loc[-1]))
    return periods


def _agents(a: pd.DataFrame, runs: pd.DataFrame, as_of: float) -> pd.DataFrame:
    if a.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if AGENT_KINDS[c] == "text" else "float64")
                             for c in AGENT_KINDS})
    key = a["agent_key"]
    completed = a["call_status"] == "completed"
    placed = a["state"].isin(RANG_STATES)
    busy = (a["busy_until"] - a["created_at"]).clip(lower=0)
    grouped = pd.DataFrame({
        "agent_name": a["agent_name"],
        "calls_placed": placed.astype("int64"),
        "calls_answered": (completed & placed).astype("int64"),
        "calls_refused": (a["state"] == AttemptState.REJECTED).astype("int64"),
        "talk_time_s": a["talk"].where(placed, 0),
        "busy_time_s": busy,
        "wrap_up_time_s": a["wrap"],
    }).groupby(key, sort=True).agg({"agent_name": "last", "calls_placed": "sum", "calls_answered": "sum",
                                    "calls_refused": "sum", "talk_time_s": "sum", "busy_time_s": "sum",
                                    "wrap_up_time_s": "sum"})
    periods = _run_periods(a, runs, as_of)
    pairs = pd.DataFrame({"agent": key, "run": a["run_id"].fillna(-1).astype("int64")}).drop_duplicates()
    in_runs = pairs["run"].map(periods).fillna(0.0).groupby(pairs["agent"]).sum().reindex(grouped.index)
    calls, answered = grouped["calls_placed"], grouped["calls_answered"]
    worked = grouped["busy_time_s"] + grouped["wrap_up_time_s"]
    out = pd.DataFrame({
        "agent": grouped.index.astype("object"),
        "agent_name": grouped["agent_name"].astype("object").to_numpy(),
        "calls_placed": calls.to_numpy(),
        "calls_answered": answered.to_numpy(),
        "answer_rate": (answered / calls.where(calls > 0)).to_numpy(dtype="float64"),
        "calls_refused": grouped["calls_refused"].to_numpy(),
        "talk_time_s": grouped["talk_time_s"].astype("int64").to_numpy(),
        "average_talk_time_s": (grouped["talk_time_s"] / answered.where(answered > 0))
        .to_numpy(dtype="float64"),
        "busy_time_s": grouped["busy_time_s"].round(3).to_numpy(),
        "wrap_up_time_s": grouped["wrap_up_time_s"].round(3).to_numpy(),
        "time_in_runs_s": in_runs.round(3).to_numpy(),
        "utilisation": (worked / in_runs.where(in_runs > 0)).to_numpy(dtype="float64"),
    })
    return out.reset_index(drop=True)


def _attempts(a: pd.DataFrame, customers: pd.DataFrame, zone: str) -> pd.DataFrame:
    phone = pd.Series(customers["phone"].astype("object").to_numpy(), index=customers["id"].to_numpy())
    return pd.DataFrame({
        "attempt_id": a["id"].astype("int64"),
        "run_id": a["run_id"].astype("Int64"),
        "customer_contact_uri": a["customer_id"].map(phone).astype("object"),
        "attempt_no": a["attempt_no"].astype("int64"),
        "state": a["state"].astype("object"),
        "call_sid": a["call_sid"].astype("object"),
        "agent": a["agent_key"].astype("object"),
        "agent_name": a["agent_name"].astype("object"),
        "call_status": a["call_status"].astype("object"),
        "agent_leg_status": a["agent_leg_status"].astype("object"),
        "customer_leg_status": a["customer_leg_status"].astype("object"),
        "created": local_times(a["created_at"], zone),
        "start_time": local_times(a["start_time"], zone),
        "end_time": local_times(a["end_time"], zone),
        "confirmed_terminal": local_times(a["terminal_at"], zone),
        "daily_report_date": local_dates(a["counted_at"], zone),
        "talk_time_s": a["talk"],
        "total_duration_s": a["total_duration"].astype("Int64"),
        "wrap_up_s": a["wrap_up_seconds"],
        "recordings": a["recordings_text"].astype("object"),
        "error_category": a["error_category"].astype("object"),
        "error_code": a["error_code"].astype("Int64"),
        "error_message": a["error_message"].astype("object"),
        "resolved_by": a["resolved_by"].astype("object"),
        "stuck": a["stuck_at"].notna(),
    })


def _figures(outcomes: pd.DataFrame, customers: pd.DataFrame, a: pd.DataFrame, runs: pd.DataFrame,
             inputs: Mapping[str, Any], zone: str, as_of: float) -> tuple[Figure, ...]:
    """Every Summary figure, in the Summary's order (names and definitions: the glossary)."""
    final = outcomes["final_status"]
    attempted = int((~final.isin(("not_attempted", "withdrawn"))).sum())
    placed = a["state"].isin(RANG_STATES)
    answered = placed & (a["call_status"] == "completed")
    reached = int(a.loc[answered, "customer_id"].nunique())
    n_placed, n_answered = int(placed.sum()), int(answered.sum())
    talk = int(a.loc[placed, "talk"].sum())
    answered_talk = a.loc[answered, "talk"]
    state = customers["state"]

    def when(epoch: Any) -> Any:
        return local_datetime(None if epoch is None or epoch != epoch else float(epoch), zone)

    def count(name: str) -> int | None:
        value = inputs.get(name)
        return int(value) if isinstance(value, int | float) else None

    def ratio(num: float, den: float) -> float | None:
        return num / den if den else None

    by_name: dict[str, Any] = {
        "customers": len(outcomes),
        "customers_attempted": attempted,
        "customers_reached": reached,
        "reach_rate": ratio(reached, attempted),
        "calls_placed": n_placed,
        "calls_answered": n_answered,
        "answer_rate": ratio(n_answered, n_placed),
        "talk_time": talk,
        "average_talk_time": ratio(talk, n_answered),
        "attempts_per_customer": ratio(n_placed, attempted),
        "still_to_call": int(state.isin(values(UNFINISHED_CUSTOMER)).sum()),
        "retries_due": int(outcomes["retry_pending"].sum()),
        "held_by_contact_limit": int((outcomes["waiting_for"] == "contact limit").sum()),
        "customers_withdrawn": int((state == CustomerState.WITHDRAWN).sum()),
        "calls_refused": int((a["state"] == AttemptState.REJECTED).sum()),
        "calls_unknown": int((a["state"] == AttemptState.UNKNOWN).sum()),
        "calls_stuck": int((a["state"].isin(OPEN_STATES) & a["stuck_at"].notna()).sum()),
        "median_talk_time": float(answered_talk.median()) if len(answered_talk) else None,
        "rows_read": count("rows_read"),
        "rows_valid": count("valid"),
        "rows_rejected": count("rejected"),
        "rows_duplicate": count("duplicates"),
        "rows_suppressed": count("suppressed"),
        "agents": count("agents"),
        "agents_rejected": count("agents_rejected"),
        "runs": len(runs),
        "first_call": when(a["created_at"].min() if len(a) else None),
        "last_call_over": when(a["terminal_at"].max() if len(a) else None),
        "as_of": when(as_of),
    }
    return tuple(figure(name, value) for name, value in by_name.items())


# --------------------------------------------------------------------------- writing


def default_folder(report: CampaignReport) -> Path:
    """``reports/<campaign>/<run date>/``."""
    return campaign_reports_dir(report.campaign, report.run_date)


def workbook_sheets(report: CampaignReport) -> list[Table | CustomSheet]:
    """The workbook's sheets in order: Summary (for managers), Agents, By hour, Outcomes, Attempts
    (codes, for machines), Runs, Controls (who paused, resumed, stopped or requeued), Glossary."""
    return [CustomSheet("Summary", lambda ws: fill_summary(ws, report)), report.agents_table(),
            report.hours_table(), report.outcomes_sheet_table(), report.attempts_table(),
            report.runs_table(), report.controls_table(), glossary_table(title=report.page_title)]


def write_campaign_report(report: CampaignReport, folder: Path | None = None) -> list[Path]:
    """Write ``outcomes.csv`` and ``outcomes.xlsx``; returns the paths written."""
    folder = folder or default_folder(report)
    csv_path, xlsx_path = folder / "outcomes.csv", folder / "outcomes.xlsx"
    write_csv(report.outcomes_table(), csv_path)
    write_workbook(xlsx_path, workbook_sheets(report))
    return [csv_path, xlsx_path]


SUMMARY_AGENTS = 10
"""Agents named on the Summary (most talk time first); all of them are on the Agents sheet."""

SUMMARY_RUNS = 5
"""Runs listed on the Summary (latest first); all of them are on the Runs sheet."""


def period_line(report: CampaignReport) -> str:
    """``Period: ... to ... (zone) · Status: ...``: the title's second line, on every surface."""
    first, last = report.figure("first_call"), report.figure("last_call_over")
    if first is None:
        period = "no call yet"
    else:
        end = last if last is not None and report.figure("calls_stuck") == 0 else report.figure("as_of")
        period = f"{display(first, 'datetime')} to {display(end, 'datetime')}"
    status = run_status_label(report.status)
    reason = (report.status_reason or "").strip()
    if reason and reason.lower() not in status.lower():
        status = f"{status} ({reason})"
    return f"Period: {period} ({report.timezone}). Status: {status}."


def fill_summary(ws: Any, report: CampaignReport) -> None:
    """The Summary sheet: title, headline figures with definitions, outcomes in words, the agents
    with most talk time, more figures, the latest runs; three charts beside them; one printed page."""
    layout = Layout(ws, (34, 20, 76))
    as_of = display(report.figure("as_of"), "datetime")
    layout.title(f"{report.campaign}: call outcomes",
                 [period_line(report),
                  f"Figures as of {as_of} ({report.timezone}). Every figure is defined on the Glossary "
                  "sheet; outcome codes for machines are in outcomes.csv and the Attempts sheet."])
    layout.block(("Headline figure", "Value", "What it means"),
                 [(Cell(f.label), Cell(f.value, f.kind), Cell(f.definition)) for f in report.headline])
    _summary_outcomes(ws, layout, report)
    _summary_agents(ws, layout, report)
    shown = {f.name for f in report.headline}
    layout.block(("More figures", "Value", "What it means"),
                 [(Cell(f.label), Cell(f.value, f.kind), Cell(f.definition))
                  for f in report.figures if f.name not in shown and f.name != "as_of"])
    _summary_runs(layout, report)
    print_setup(ws, title=report.page_title, fit_height=1, repeat_header=False)
    ws.print_area = f"A1:{layout.print_right}{layout.last_row}"
    ws.sheet_view.showGridLines = False


def _summary_outcomes(ws: Any, layout: Layout, report: CampaignReport) -> None:
    """Outcomes in words with their chart (non-zero only), and the calls-by-hour chart."""
    from openpyxl.chart import Reference

    statuses = report.statuses[report.statuses["customers"] > 0]
    total = len(report.outcomes)
    first, last = layout.block(
        ("Outcome", "Customers", "Share of all customers"),
        [(Cell(o), Cell(int(n), "int"), Cell(float(sh), "percent"))
         for o, n, sh in statuses[["outcome", "customers", "share"]].itertuples(index=False, name=None)],
        total=(Cell("All customers"), Cell(total, "int"), Cell(1.0 if total else None, "percent")))
    if len(statuses):
        layout.bar_chart("Customers by outcome", [references(ws, 2, first, last)],
                         references(ws, 1, first, last, with_title=False), horizontal=True)
    hours = report.hours
    if len(hours):
        n = len(hours) + 1
        layout.bar_chart("Calls by hour of the day",
                         [Reference(range_string=f"'By hour'!$B$1:$B${n}"),
                          Reference(range_string=f"'By hour'!$C$1:$C${n}")],
                         Reference(range_string=f"'By hour'!$A$2:$A${n}"))


def _summary_agents(ws: Any, layout: Layout, report: CampaignReport) -> None:
    """The agents with most talk time, and their chart."""
    agents = report.agents.sort_values(["talk_time_s", "agent"], ascending=[False, True], kind="stable")
    top = agents.head(SUMMARY_AGENTS)
    if not len(top):
        return
    rows = []
    for r in top.itertuples(index=False):
        detail = (f"{int(r.calls_placed):,d} calls placed, {display(r.answer_rate, 'percent') or '-'} "
                  f"answered, {display(r.utilisation, 'percent') or '-'} utilisation")
        rows.append((Cell(r.agent_name if isinstance(r.agent_name, str) and r.agent_name else r.agent),
                     Cell(int(r.talk_time_s), "duration"), Cell(detail)))
    more = f"{len(agents)} agents in all: see the Agents sheet." if len(agents) > len(top) else None
    first, last = layout.block((f"Agents, most talk time first (top {len(top)})", "Talk time",
                                "Calls placed, answer rate, utilisation"), rows, note=more)
    layout.bar_chart("Talk time per agent", [references(ws, 2, first, last)],
                     references(ws, 1, first, last, with_title=False), horizontal=True,
                     number_format="[h]:mm")


def _summary_runs(layout: Layout, report: CampaignReport) -> None:
    """The latest runs, newest first."""
    runs = report.runs.tail(SUMMARY_RUNS).iloc[::-1]
    if not len(runs):
        return
    rows = []
    for r in runs.itertuples(index=False):
        ran = (r.ended - r.started).total_seconds() if not pd.isna(r.ended) else None
        status = str(r.status) + (f": {r.reason}" if isinstance(r.reason, str) and r.reason else "")
        rows.append((Cell(r.started, "datetime"), Cell(ran, "duration"), Cell(status)))
    more = (f"{len(report.runs)} runs in all: see the Runs sheet." if len(report.runs) > len(runs)
            else None)
    layout.block((f"Latest runs: started ({report.timezone})", "Ran for", "Status"), rows, note=more)


# --------------------------------------------------------------------------- Markdown and artifacts


def campaign_report_markdown(report: CampaignReport, *, agent_rows: int = 50) -> str:
    """The Summary as Markdown (a Prefect artifact): title, headline figures, outcomes, agents."""
    lines = [f"# Campaign `{report.campaign}`: call outcomes", "", period_line(report), "",
             f"Figures as of {display(report.figure('as_of'), 'datetime')} ({report.timezone}).", "",
             figures_markdown(report.headline), "", "## Outcomes", "",
             "| outcome | customers | share |", "| --- | ---: | ---: |"]
    for o, n, sh in report.statuses[["outcome", "customers", "share"]].itertuples(index=False, name=None):
        if n:
            lines.append(f"| {o} | {int(n):,d} | {display(sh, 'percent')} |")
    lines += ["", "## Agents", ""]
    lines.append(markdown_table(report.agents_table(), limit=agent_rows) if len(report.agents)
                 else "No agent was dialled.")
    shown = {f.name for f in report.headline}
    lines += ["", "## More figures", "",
              figures_markdown(f for f in report.figures if f.name not in shown and f.name != "as_of")]
    if len(report.controls):
        lines += ["", "## Controls", "", markdown_table(report.controls_table())]
    return "\n".join(lines) + "\n"


def campaign_report_table(report: CampaignReport) -> list[dict[str, Any]]:
    """Customers per outcome as a list of dicts (for a Prefect table artifact): the outcome in words,
    its code, customers and share in percent."""
    return [{"outcome": str(o), "final_status": str(s), "customers": int(c),
             "share_pct": None if sh != sh else round(float(sh) * 100, 1)}
            for s, o, c, sh in report.statuses[["final_status", "outcome", "customers", "share"]]
            .itertuples(index=False, name=None)]
