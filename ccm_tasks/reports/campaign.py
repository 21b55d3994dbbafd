"""The campaign outcome report: one row per customer, every attempt, a summary and the agents.

A pure function of the ledger (invariant 4): ``build_campaign_report`` reads it in one transaction
and can be run again at any time, during a run or long after. Times are shown in the campaign's zone
(``campaigns.timezone``), truncated to the second.

Definitions (the same in every file and the Markdown summary):

* **final_status** of a customer: ``done`` -> its ``final_status``; ``calling`` -> ``stuck`` when its
  open attempt (created or placed) has ``stuck_at``, else ``in_progress``; ``pending`` with no placed,
  terminal or unknown attempt -> ``not_attempted``; ``pending`` with such attempts -> its
  ``last_status`` (a retry was still due: ``retry_pending`` is true); ``withdrawn`` -> ``withdrawn``
  (removed from the inputs, e.g. added to the do-not-call list; whatever was dialled before).
* **attempts** of a customer: its attempts that may have rung someone: placed, terminal or unknown
  (not rejected: the API refused those and nothing rang; not created: the Make Call is in flight).
* **agent**, **agent_name**, **last_call_sid**, **last_attempt**: from the customer's last attempt
  that was not rejected; **first_attempt**: the first such attempt. Attempt times are ``created_at``
  (written just before the Make Call).
* **talk_time_s**: the sum of ``total_talk_time`` over all the customer's attempts (null counts as 0);
  **recordings**: their recording URLs, in attempt order, joined by a space.
* **Connect rate** = completed customers / attempted customers (attempted: final_status neither
  ``not_attempted`` nor ``withdrawn``).
* **Talk time total, mean, median** (Summary): over completed calls (attempts with call_status
  ``completed``). "Talk time, all calls" is shown beside it so any talk on other calls is visible.
* **Shares** in Summary are of all customers of the campaign, withdrawn included, so they add to 100%
  and match the Outcomes row count.
* **Agents**, per agent key: attempts = its attempts not rejected (created included while in flight);
  completed = those with call_status ``completed``; rejected = Make Calls refused; connect rate =
  completed / attempts; talk time total and mean over its completed calls (so the agents add up to the
  Summary total); time busy = sum over all its attempts of (``terminal_at``, or the report's *as of*
  time while still open) - ``created_at`` (the agent is leased from before the Make Call until the call
  is confirmed terminal); utilisation = time busy / the campaign's dialling span (the first attempt's
  ``created_at`` to the last ``terminal_at``). Two refinements keep these true to the lease: an attempt
  with an unknown outcome holds its agent until its quarantine ends (``outcome_unknown`` event), not
  for ever, so it counts as busy until then (or *as of*, if earlier); and the span runs to the latest
  end of any busy time (*as of* while a call is still open), so utilisation never passes 100% (an
  agent has one call at a time, invariant 1).
* **daily_report_date** (Attempts): the day, in the campaign's zone, on which the daily report counts
  the attempt: its call's ``end_time``, or ``terminal_at`` when the API gave none; ``created_at`` for
  an unknown outcome; blank for rejected and still-open attempts, which no daily report counts.
* **as of**: the time the figures hold for: the later of the wall clock and the latest time in the
  campaign's rows (a time-scaled simulator's clock runs ahead of the wall clock).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Text, select, type_coerce

from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.paths import campaign_reports_dir
from ccm_tasks.reports.files import write_csv
from ccm_tasks.reports.tables import (
    Kind,
    Table,
    display,
    local_dates,
    local_datetime,
    local_times,
    markdown_table,
)
from ccm_tasks.reports.xlsx import CustomSheet, put, style_header_row, write_workbook

RANG_STATES = ("placed", "terminal", "unknown")
"""Attempt states that may have rung someone."""

OPEN_STATES = ("created", "placed")
"""Attempt states whose call is not confirmed over."""

SPECIAL_STATUSES = ("unknown", "stuck", "in_progress", "not_attempted", "withdrawn")
"""Statuses always listed in Summary (after the call outcomes), even at zero."""

OUTCOME_COLUMNS = (
    "customer_contact_uri", "final_status", "retry_pending", "attempts", "agent", "agent_name",
    "last_call_sid", "first_attempt", "last_attempt", "talk_time_s", "recordings", "source_file",
    "source_sheet", "source_row",
)
OUTCOME_KINDS: dict[str, Kind] = {
    "customer_contact_uri": "text", "final_status": "text", "retry_pending": "bool", "attempts": "int",
    "agent": "text", "agent_name": "text", "last_call_sid": "text", "first_attempt": "datetime",
    "last_attempt": "datetime", "talk_time_s": "duration", "recordings": "text", "source_file": "text",
    "source_sheet": "text", "source_row": "int",
}
ATTEMPT_KINDS: dict[str, Kind] = {
    "attempt_id": "int", "run_id": "int", "customer_contact_uri": "text", "attempt_no": "int",
    "state": "text", "call_sid": "text", "agent": "text", "agent_name": "text", "call_status": "text",
    "agent_leg_status": "text", "customer_leg_status": "text", "created": "datetime",
    "start_time": "datetime", "end_time": "datetime", "confirmed_terminal": "datetime",
    "daily_report_date": "date", "talk_time_s": "duration", "total_duration_s": "duration",
    "recordings": "text", "error_category": "text", "error_code": "int", "error_message": "text",
    "resolved_by": "text", "stuck": "bool",
}
AGENT_KINDS: dict[str, Kind] = {
    "agent": "text", "agent_name": "text", "attempts": "int", "completed": "int", "rejected": "int",
    "connect_rate": "percent", "talk_time_s": "duration", "mean_talk_time_s": "duration",
    "time_busy_s": "duration", "utilisation": "percent",
}
STATUS_KINDS: dict[str, Kind] = {"final_status": "text", "customers": "int", "share": "percent"}
RUN_KINDS: dict[str, Kind] = {"run_id": "int", "started": "datetime", "ended": "datetime",
                              "status": "text", "reason": "text"}


class UnknownCampaign(LookupError):
    """No campaign of that name in the ledger."""


@dataclass(frozen=True)
class Measure:
    """One figure of the Summary: its label, value and how it is shown."""

    name: str
    value: Any
    kind: Kind = "int"


@dataclass(frozen=True)
class CampaignReport:
    """A campaign's outcome tables (DataFrames) and what they were computed from."""

    campaign: str
    campaign_id: int
    timezone: str
    run_date: date
    as_of: float
    outcomes: pd.DataFrame
    attempts: pd.DataFrame
    statuses: pd.DataFrame
    agents: pd.DataFrame
    runs: pd.DataFrame
    measures: tuple[Measure, ...]
    extra_columns: tuple[str, ...]

    def measure(self, name: str) -> Any:
        """A Summary figure by name."""
        for m in self.measures:
            if m.name == name:
                return m.value
        raise KeyError(name)

    def outcomes_table(self) -> Table:
        """Outcomes with its column kinds (the input's extra columns are text)."""
        kinds: dict[str, Kind] = {**dict.fromkeys(self.extra_columns, "text"), **OUTCOME_KINDS}
        return Table("Outcomes", self.outcomes, kinds, self.timezone)

    def attempts_table(self) -> Table:
        """Attempts with its column kinds."""
        return Table("Attempts", self.attempts, ATTEMPT_KINDS, self.timezone)

    def agents_table(self) -> Table:
        """Agents with its column kinds."""
        return Table("Agents", self.agents, AGENT_KINDS, self.timezone)

    def statuses_table(self) -> Table:
        """Customers per final status with their share."""
        return Table("Summary", self.statuses, STATUS_KINDS, self.timezone)

    def runs_table(self) -> Table:
        """The campaign's runs."""
        return Table("Runs", self.runs, RUN_KINDS, self.timezone)


# --------------------------------------------------------------------------- building


def build_campaign_report(ledger: Ledger, campaign: str, *, run_date: date | None = None,
                          now: float | None = None) -> CampaignReport:
    """Compute a campaign's outcome report from the ledger. Raises :class:`UnknownCampaign`.

    ``run_date`` names the report's folder (default: the latest run's start date in the campaign's
    zone); ``now`` is the *as of* time for attempts still open (default: see the module docstring).
    """
    with ledger.read() as conn:
        c = t.campaigns.c
        # Only what the report shows: the row also holds the callback URL's secret token.
        row = conn.execute(select(c.id, c.name, c.timezone, c.input_summary).where(c.name == campaign)
                           ).mappings().first()
        if row is None:
            raise UnknownCampaign(f"no campaign named {campaign!r} in the ledger")
        cid = int(row["id"])
        customers = _read_customers(conn, cid)
        attempts = _read_attempts(conn, cid)
        quarantines = _read_quarantines(conn, cid)
        runs = pd.read_sql(select(t.runs.c.id, t.runs.c.started_at, t.runs.c.ended_at, t.runs.c.status,
                                  t.runs.c.reason).where(t.runs.c.campaign_id == cid)
                           .order_by(t.runs.c.id), conn)
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
    urls = _json_column(attempts["recordings"].tolist())
    attempts["recordings_text"] = pd.Series([_join_urls(v) for v in urls], dtype="object")
    outcomes, extras = _outcomes(customers, attempts, zone)
    statuses = _statuses(outcomes)
    attempts["busy_until"] = _busy_until(attempts, quarantines, as_of)
    agents = _agents(attempts)
    run_frame = pd.DataFrame({
        "run_id": runs["id"].astype("int64"),
        "started": local_times(runs["started_at"], zone),
        "ended": local_times(runs["ended_at"], zone),
        "status": runs["status"].astype("object"),
        "reason": runs["reason"].astype("object"),
    })
    measures = _measures(outcomes, attempts, runs, dict(row["input_summary"] or {}), zone, as_of)
    return CampaignReport(
        campaign=str(row["name"]), campaign_id=cid, timezone=zone, run_date=run_date, as_of=as_of,
        outcomes=outcomes, attempts=_attempts(attempts, customers, zone), statuses=statuses,
        agents=agents, runs=run_frame, measures=measures, extra_columns=extras)


def _read_customers(conn: Connection, campaign_id: int) -> pd.DataFrame:
    c = t.customers.c
    query = select(c.id, c.phone, c.source_file, c.source_sheet, c.source_row,
                   type_coerce(c.extra, Text).label("extra"), c.state, c.final_status, c.last_status,
                   ).where(c.campaign_id == campaign_id).order_by(c.id)
    return pd.read_sql(query, conn)


def _read_attempts(conn: Connection, campaign_id: int) -> pd.DataFrame:
    a = t.attempts.c
    # JSON columns come back as text (parsed only where needed); the raw call details are left out.
    query = select(a.id, a.customer_id, a.run_id, a.attempt_no, a.state, a.call_sid, a.agent_key,
                   a.agent_name, a.created_at, a.placed_at, a.terminal_at, a.stuck_at, a.call_status,
                   a.agent_leg_status, a.customer_leg_status, a.start_time, a.end_time, a.total_talk_time,
                   a.total_duration, type_coerce(a.recordings, Text).label("recordings"),
                   a.error_category, a.error_code, a.error_message, a.resolved_by,
                   ).where(a.campaign_id == campaign_id)
    frame = pd.read_sql(query, conn)
    for column in ("created_at", "placed_at", "terminal_at", "stuck_at", "start_time", "end_time",
                   "total_talk_time", "total_duration"):
        frame[column] = frame[column].astype("float64")
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


def _outcomes(customers: pd.DataFrame, a: pd.DataFrame, zone: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    ids = customers["id"]
    rang = a["state"].isin(RANG_STATES)
    not_rejected = a[a["state"] != "rejected"]
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
    status = np.select(
        [state == "done", (state == "calling") & is_stuck, state == "calling", state == "withdrawn",
         (state == "pending") & never, state == "pending"],
        [done_status.to_numpy(), "stuck", "in_progress", "withdrawn", "not_attempted",
         retry_status.to_numpy()],
        default=state)

    columns: dict[str, Any] = {}
    taken = set(OUTCOME_COLUMNS)
    extras: list[str] = []
    for key, values in _extras(customers["extra"].tolist()).items():
        name = _extra_name(key, taken)
        extras.append(name)
        columns[name] = pd.Series(values, dtype="object")
    columns.update({
        "customer_contact_uri": customers["phone"].astype("object"),
        "final_status": pd.Series(status, dtype="object"),
        "retry_pending": pd.Series((state == "pending") & ~never, dtype="bool"),
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
    values = [int(counts.get(s, 0)) for s in order]
    return pd.DataFrame({
        "final_status": pd.Series(order, dtype="object"),
        "customers": pd.Series(values, dtype="int64"),
        "share": pd.Series([v / total if total else np.nan for v in values], dtype="float64"),
    })


def _agents(a: pd.DataFrame) -> pd.DataFrame:
    if a.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if AGENT_KINDS[c] == "text" else "float64")
                             for c in AGENT_KINDS})
    key = a["agent_key"]
    completed = a["call_status"] == "completed"
    busy = (a["busy_until"] - a["created_at"]).clip(lower=0)
    span = float(a["busy_until"].max() - a["created_at"].min())
    grouped = pd.DataFrame({
        "agent_name": a["agent_name"],
        "attempts": (a["state"] != "rejected").astype("int64"),
        "completed": completed.astype("int64"),
        "rejected": (a["state"] == "rejected").astype("int64"),
        "talk_time_s": a["talk"].where(completed, 0),
        "time_busy_s": busy,
    }).groupby(key, sort=True).agg({"agent_name": "last", "attempts": "sum", "completed": "sum",
                                    "rejected": "sum", "talk_time_s": "sum", "time_busy_s": "sum"})
    attempts = grouped["attempts"]
    out = pd.DataFrame({
        "agent": grouped.index.astype("object"),
        "agent_name": grouped["agent_name"].astype("object").to_numpy(),
        "attempts": attempts.to_numpy(),
        "completed": grouped["completed"].to_numpy(),
        "connect_rate": (grouped["completed"] / attempts.where(attempts > 0)).to_numpy(),
        "rejected": grouped["rejected"].to_numpy(),
        "talk_time_s": grouped["talk_time_s"].astype("int64").to_numpy(),
        "mean_talk_time_s": (grouped["talk_time_s"] / grouped["completed"].where(grouped["completed"] > 0))
        .to_numpy(),
        "time_busy_s": grouped["time_busy_s"].round(3).to_numpy(),
        "utilisation": (grouped["time_busy_s"] / span).to_numpy() if span > 0 else np.nan,
    })
    return out.reset_index(drop=True)


def _attempts(a: pd.DataFrame, customers: pd.DataFrame, zone: str) -> pd.DataFrame:
    phone = pd.Series(customers["phone"].astype("object").to_numpy(), index=customers["id"].to_numpy())
    ended = a["end_time"].fillna(a["terminal_at"])
    counted = ended.where(a["state"] == "terminal", a["created_at"].where(a["state"] == "unknown"))
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
        "daily_report_date": local_dates(counted, zone),
        "talk_time_s": a["talk"],
        "total_duration_s": a["total_duration"].astype("Int64"),
        "recordings": a["recordings_text"].astype("object"),
        "error_category": a["error_category"].astype("object"),
        "error_code": a["error_code"].astype("Int64"),
        "error_message": a["error_message"].astype("object"),
        "resolved_by": a["resolved_by"].astype("object"),
        "stuck": a["stuck_at"].notna(),
    })


def _measures(outcomes: pd.DataFrame, a: pd.DataFrame, runs: pd.DataFrame, inputs: Mapping[str, Any],
              zone: str, as_of: float) -> tuple[Measure, ...]:
    final = outcomes["final_status"]
    attempted = int((~final.isin(("not_attempted", "withdrawn"))).sum())
    completed_customers = int((final == "completed").sum())
    completed_calls = a.loc[a["call_status"] == "completed", "talk"]
    span_start = a["created_at"].min() if len(a) else np.nan
    span_end = a["terminal_at"].max() if len(a) else np.nan

    def when(epoch: Any) -> Any:
        return local_datetime(None if epoch is None else float(epoch), zone)

    def count(name: str) -> int | None:
        value = inputs.get(name)
        return int(value) if isinstance(value, int | float) else None

    latest = runs.iloc[-1] if len(runs) else None
    return (
        Measure("customers", len(outcomes)),
        Measure("attempted customers", attempted),
        Measure("completed customers", completed_customers),
        Measure("connect rate (completed / attempted customers)",
                completed_customers / attempted if attempted else None, "percent"),
        Measure("customers with a retry still due", int(outcomes["retry_pending"].sum())),
        Measure("withdrawn customers (removed from the inputs)", int((final == "withdrawn").sum())),
        Measure("calls that may have rung (placed, terminal, unknown)",
                int(a["state"].isin(RANG_STATES).sum())),
        Measure("Make Calls refused by the API (nothing rang)", int((a["state"] == "rejected").sum())),
        Measure("calls with an unknown outcome", int((a["state"] == "unknown").sum())),
        Measure("calls stuck now", int((a["state"].isin(OPEN_STATES) & a["stuck_at"].notna()).sum())),
        Measure("completed calls", len(completed_calls)),
        Measure("talk time, completed calls", int(completed_calls.sum()), "duration"),
        Measure("mean talk time, completed calls",
                float(completed_calls.mean()) if len(completed_calls) else None, "duration"),
        Measure("median talk time, completed calls",
                float(completed_calls.median()) if len(completed_calls) else None, "duration"),
        Measure("talk time, all calls", int(a["talk"].sum()), "duration"),
        Measure("input rows read", count("rows_read")),
        Measure("valid input rows", count("valid")),
        Measure("rejected input rows", count("rejected")),
        Measure("duplicate input rows", count("duplicates")),
        Measure("suppressed (do-not-call)", count("suppressed")),
        Measure("agents in the roster", count("agents")),
        Measure("agents rejected from the roster", count("agents_rejected")),
        Measure("runs", len(runs)),
        Measure("latest run started", when(latest["started_at"]) if latest is not None else None,
                "datetime"),
        Measure("latest run ended", when(latest["ended_at"]) if latest is not None else None, "datetime"),
        Measure("latest run status", str(latest["status"]) if latest is not None else None, "text"),
        Measure("first call created", when(span_start), "datetime"),
        Measure("last call confirmed over", when(span_end), "datetime"),
        Measure("figures as of", when(as_of), "datetime"),
    )


# --------------------------------------------------------------------------- writing


def default_folder(report: CampaignReport) -> Path:
    """``reports/<campaign>/<run date>/``."""
    return campaign_reports_dir(report.campaign, report.run_date)


def write_campaign_report(report: CampaignReport, folder: Path | None = None) -> list[Path]:
    """Write ``outcomes.csv`` and ``outcomes.xlsx``; returns the paths written."""
    folder = folder or default_folder(report)
    csv_path, xlsx_path = folder / "outcomes.csv", folder / "outcomes.xlsx"
    outcomes = report.outcomes_table()
    write_csv(outcomes, csv_path)
    write_workbook(xlsx_path, [outcomes, CustomSheet("Summary", lambda ws: _fill_summary(ws, report)),
                               report.agents_table(), report.attempts_table()])
    return [csv_path, xlsx_path]


def _fill_summary(ws: Any, report: CampaignReport) -> None:
    from openpyxl.chart import BarChart, Reference

    statuses = report.statuses_table()
    n = len(report.statuses)
    for col, name in enumerate(statuses.frame.columns, start=1):
        put(ws, 1, col, statuses.header(str(name)))
    for r, row in enumerate(statuses.frame.itertuples(index=False, name=None), start=2):
        for col, (name, value) in enumerate(zip(statuses.frame.columns, row, strict=True), start=1):
            put(ws, r, col, value, statuses.kind(str(name)))
    style_header_row(ws, 1, 3)
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:C{n + 1}"

    r = n + 3
    put(ws, r, 1, "measure")
    put(ws, r, 2, "value")
    style_header_row(ws, r, 2)
    for m in report.measures:
        r += 1
        label = f"{m.name} ({report.timezone})" if m.kind == "datetime" else m.name
        put(ws, r, 1, label)
        put(ws, r, 2, m.value, m.kind)

    r += 2
    runs = report.runs_table()
    for col, name in enumerate(runs.frame.columns, start=1):
        put(ws, r, col, runs.header(str(name)))
    style_header_row(ws, r, len(runs.frame.columns))
    for row in runs.frame.itertuples(index=False, name=None):
        r += 1
        for col, (name, value) in enumerate(zip(runs.frame.columns, row, strict=True), start=1):
            put(ws, r, col, value, runs.kind(str(name)))

    for letter, width in zip("ABCDE", (52, 22, 22, 12, 40), strict=True):
        ws.column_dimensions[letter].width = width

    chart = BarChart()
    chart.type = "bar"  # horizontal: status names stay readable
    chart.title = f"Customers by final status ({report.campaign})"
    chart.y_axis.title = "customers"
    chart.legend = None
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=n + 1), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=n + 1))
    chart.height, chart.width = 9.0, 16.0
    ws.add_chart(chart, "G2")


# --------------------------------------------------------------------------- Markdown and artifacts


def campaign_report_markdown(report: CampaignReport, *, agent_rows: int = 50) -> str:
    """The Summary and Agents tables as Markdown (for a Prefect artifact)."""
    as_of = display(local_datetime(report.as_of, report.timezone), "datetime")
    lines = [f"# Campaign `{report.campaign}`: outcomes", "",
             f"As of {as_of} ({report.timezone}).", "",
             markdown_table(report.statuses_table()), "",
             "| measure | value |", "| --- | ---: |"]
    for m in report.measures:
        label = f"{m.name} ({report.timezone})" if m.kind == "datetime" else m.name
        lines.append(f"| {label} | {display(m.value, m.kind)} |")
    lines += ["", "## Agents", ""]
    lines.append(markdown_table(report.agents_table(), limit=agent_rows) if len(report.agents)
                 else "No agent was dialled.")
    return "\n".join(lines) + "\n"


def campaign_report_table(report: CampaignReport) -> list[dict[str, Any]]:
    """Customers per final status as a list of dicts (for a Prefect table artifact)."""
    return [{"final_status": str(s), "customers": int(c),
             "share_pct": None if sh != sh else round(float(sh) * 100, 1)}
            for s, c, sh in report.statuses.itertuples(index=False, name=None)]
