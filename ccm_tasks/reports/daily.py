"""The daily report: every call that ended on one date, across campaigns, against the day before.

A pure function of the ledger (invariant 4). Definitions:

* The day is a calendar date in the report's zone (default Asia/Kolkata), from local midnight to the
  next local midnight.
* An attempt is counted on the day its call **ended**: the call's ``end_time`` from the API, or
  ``terminal_at`` (when we confirmed it terminal) when the API gave none. Rejected attempts (the API
  refused the Make Call; nothing rang) are never counted. An attempt whose Make Call outcome is
  **unknown** is counted by its ``created_at`` date, under the status ``unknown``. Attempts still open
  (created, placed, stuck) have not ended and are not counted yet.
* Per campaign, per agent (agent key; the name last seen) and per call status: attempts, completed
  (call_status ``completed``), talk time (sum of ``total_talk_time``, null as 0), connect rate =
  completed / attempts (per call, unlike the campaign report's per-customer rate), the same four for
  the previous date, and the change (day minus previous day; the rate's change in percentage points).
  A campaign, agent or status active on either day is listed.
* These are exactly the campaign reports' Attempts rows whose ``daily_report_date`` is the day (with
  the campaign's zone equal to the report's zone), so the two reconcile.

Files: ``reports/daily/<date>.xlsx`` (Summary, By campaign, By agent, By status), ``<date>.csv`` (the
three breakdowns and the total in one long table, ``breakdown`` naming which) and ``<date>.md``. A day
without calls still writes all three, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, or_, select

from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.paths import reports_dir
from ccm_tasks.reports.files import write_csv, write_text
from ccm_tasks.reports.tables import Kind, Table, day_bounds, display, markdown_table
from ccm_tasks.reports.xlsx import CustomSheet, put, style_header_row, write_workbook

MEASURE_KINDS: dict[str, Kind] = {
    "attempts": "int", "completed": "int", "talk_time_s": "duration", "connect_rate": "percent",
    "attempts_prev": "int", "completed_prev": "int", "talk_time_prev_s": "duration",
    "connect_rate_prev": "percent", "attempts_change": "change", "completed_change": "change",
    "talk_time_change_s": "change", "connect_rate_change": "rate_change",
}


@dataclass(frozen=True)
class DailyReport:
    """One day's calls across campaigns, broken down three ways, with the previous day beside it."""

    day: date
    timezone: str
    by_campaign: pd.DataFrame
    by_agent: pd.DataFrame
    by_status: pd.DataFrame
    totals: pd.DataFrame  # one row: the day's totals with the same columns as the breakdowns

    @property
    def attempts(self) -> int:
        """Calls counted on the day."""
        return int(self.totals["attempts"].iloc[0])

    @property
    def empty(self) -> bool:
        """Whether no call ended on the day."""
        return self.attempts == 0

    def table(self, breakdown: str) -> Table:
        """One breakdown (campaign, agent, status or total) as a report table."""
        frame = {"campaign": self.by_campaign, "agent": self.by_agent, "status": self.by_status,
                 "total": self.totals}[breakdown]
        name = {"campaign": "By campaign", "agent": "By agent", "status": "By status",
                "total": "Total"}[breakdown]
        return Table(name, frame, MEASURE_KINDS, self.timezone)


def build_daily_report(ledger: Ledger, day: date, timezone: str = "Asia/Kolkata") -> DailyReport:
    """Compute the daily report for ``day`` in ``timezone`` from the ledger."""
    previous = day - timedelta(days=1)
    prev_start, _ = day_bounds(previous, timezone)
    start, end = day_bounds(day, timezone)
    a, c = t.attempts.c, t.campaigns.c
    counted_at = case((a.state == "unknown", a.created_at), else_=func.coalesce(a.end_time, a.terminal_at))
    query = (
        select(c.name.label("campaign"), a.agent_key.label("agent"), a.agent_name, a.state, a.call_status,
               a.total_talk_time, counted_at.label("counted_at"))
        .join(t.campaigns, t.campaigns.c.id == a.campaign_id)
        .where(or_(and_(a.state == "terminal", func.coalesce(a.end_time, a.terminal_at) >= prev_start,
                        func.coalesce(a.end_time, a.terminal_at) < end),
                   and_(a.state == "unknown", a.created_at >= prev_start, a.created_at < end)))
    )
    with ledger.read() as conn:
        rows = pd.read_sql(query, conn)
    rows["call_status"] = rows["call_status"].astype("object").where(rows["call_status"].notna(), "unknown")
    rows["talk"] = rows["total_talk_time"].astype("float64").fillna(0).astype("int64")
    rows["completed"] = (rows["call_status"] == "completed").astype("int64")
    rows["campaign"] = rows["campaign"].astype("object")
    rows["agent"] = rows["agent"].astype("object")
    rows["agent_name"] = rows["agent_name"].astype("object")
    at = rows["counted_at"].astype("float64")
    today, before = rows[at >= start], rows[at < start]

    by_campaign = _compare(today, before, ["campaign"])
    by_agent = _compare(today, before, ["agent"])
    names = pd.concat([before, today]).dropna(subset=["agent_name"]).groupby("agent")["agent_name"].last()
    by_agent.insert(1, "agent_name", by_agent["agent"].map(names).astype("object"))
    by_status = _compare(today, before, ["call_status"])
    # completed first, unknown last, the other statuses by the day's count
    rank = by_status["call_status"].map({"completed": 0, "unknown": 2}).fillna(1)
    order = sorted(range(len(by_status)), key=lambda i: (rank.iloc[i], -by_status["attempts"].iloc[i],
                                                         str(by_status["call_status"].iloc[i])))
    by_status = by_status.iloc[order].reset_index(drop=True)
    totals = _compare(today.assign(total="total"), before.assign(total="total"), ["total"], keep_empty=True)
    return DailyReport(day=day, timezone=timezone, by_campaign=by_campaign, by_agent=by_agent,
                       by_status=by_status, totals=totals.drop(columns=["total"]))


def _sums(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return rows.groupby(keys, sort=True).agg(attempts=("talk", "size"), completed=("completed", "sum"),
                                             talk_time_s=("talk", "sum"))


def _compare(today: pd.DataFrame, before: pd.DataFrame, keys: list[str], *, keep_empty: bool = False
             ) -> pd.DataFrame:
    now, prev = _sums(today, keys), _sums(before, keys)
    both = now.merge(prev, how="outer", left_index=True, right_index=True, suffixes=("", "_prev"))
    both = both.fillna(0).astype("int64")
    if keep_empty and both.empty:
        both = pd.DataFrame({c: [0] for c in ("attempts", "completed", "talk_time_s", "attempts_prev",
                                              "completed_prev", "talk_time_s_prev")},
                            index=pd.Index(["total"], name=keys[0]))
    rate = both["completed"] / both["attempts"].where(both["attempts"] > 0)
    rate_prev = both["completed_prev"] / both["attempts_prev"].where(both["attempts_prev"] > 0)
    out = pd.DataFrame({
        "attempts": both["attempts"], "completed": both["completed"], "talk_time_s": both["talk_time_s"],
        "connect_rate": rate,
        "attempts_prev": both["attempts_prev"], "completed_prev": both["completed_prev"],
        "talk_time_prev_s": both["talk_time_s_prev"], "connect_rate_prev": rate_prev,
        "attempts_change": both["attempts"] - both["attempts_prev"],
        "completed_change": both["completed"] - both["completed_prev"],
        "talk_time_change_s": both["talk_time_s"] - both["talk_time_s_prev"],
        # No rate on one of the days: no change to speak of.
        "connect_rate_change": rate - rate_prev,
    }, index=both.index)
    out = out.reset_index()
    for key in keys:
        out[key] = out[key].astype("object")
    return out


# --------------------------------------------------------------------------- writing


def write_daily_report(report: DailyReport, folder: Path | None = None) -> list[Path]:
    """Write ``<date>.xlsx``, ``<date>.csv`` and ``<date>.md`` under ``reports/daily/``."""
    folder = folder or reports_dir() / "daily"
    stem = report.day.isoformat()
    xlsx_path, csv_path, md_path = folder / f"{stem}.xlsx", folder / f"{stem}.csv", folder / f"{stem}.md"
    write_workbook(xlsx_path, [CustomSheet("Summary", lambda ws: _fill_summary(ws, report)),
                               report.table("campaign"), report.table("agent"), report.table("status")])
    write_csv(Table("Daily", _long_table(report), MEASURE_KINDS, report.timezone), csv_path)
    write_text(md_path, daily_report_markdown(report))
    return [xlsx_path, csv_path, md_path]


def _long_table(report: DailyReport) -> pd.DataFrame:
    """The total and the three breakdowns in one table (a CSV holds one table)."""
    parts = []
    breakdowns = (("total", report.totals, None), ("campaign", report.by_campaign, "campaign"),
                  ("agent", report.by_agent, "agent"), ("status", report.by_status, "call_status"))
    for breakdown, frame, key in breakdowns:
        part = frame.drop(columns=[c for c in ("campaign", "agent", "agent_name", "call_status")
                                   if c in frame.columns])
        part.insert(0, "breakdown", breakdown)
        part.insert(1, "key", frame[key].astype("object") if key else "all campaigns")
        part.insert(2, "agent_name", frame["agent_name"] if "agent_name" in frame.columns else None)
        parts.append(part.astype({"breakdown": "object", "key": "object", "agent_name": "object"}))
    return pd.concat(parts, ignore_index=True)


_SUMMARY_ROWS: list[tuple[str, str, str, str, Kind, Kind]] = [
    ("calls", "attempts", "attempts_prev", "attempts_change", "int", "change"),
    ("completed", "completed", "completed_prev", "completed_change", "int", "change"),
    ("connect rate", "connect_rate", "connect_rate_prev", "connect_rate_change", "percent", "rate_change"),
    ("talk time", "talk_time_s", "talk_time_prev_s", "talk_time_change_s", "duration", "change"),
]


def _headline(report: DailyReport) -> str:
    if report.empty:
        return f"No calls ended on {report.day.isoformat()} ({report.timezone})."
    campaigns = int((report.by_campaign["attempts"] > 0).sum())
    return (f"{report.attempts} calls ended on {report.day.isoformat()} ({report.timezone}) across "
            f"{campaigns} campaign{'s' if campaigns != 1 else ''}.")


def _fill_summary(ws: Any, report: DailyReport) -> None:
    previous = (report.day - timedelta(days=1)).isoformat()
    put(ws, 1, 1, "measure")
    put(ws, 1, 2, report.day.isoformat())
    put(ws, 1, 3, previous)
    put(ws, 1, 4, "change")
    style_header_row(ws, 1, 4)
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:D{len(_SUMMARY_ROWS) + 1}"
    totals = report.totals.iloc[0]
    for r, (label, now, prev, change, kind, change_kind) in enumerate(_SUMMARY_ROWS, start=2):
        put(ws, r, 1, f"{label} (change in seconds)" if kind == "duration" else label)
        put(ws, r, 2, _value(totals[now]), kind)
        put(ws, r, 3, _value(totals[prev]), kind)
        # A negative duration shows as ##### in Excel: the talk time change is in signed seconds.
        put(ws, r, 4, _value(totals[change]), change_kind)
    r = len(_SUMMARY_ROWS) + 3
    put(ws, r, 1, _headline(report))
    put(ws, r + 1, 1, f"Calls are counted on the day they ended, in {report.timezone}; unknown outcomes "
                      "on the day the Make Call was sent; refused Make Calls are not counted.")
    for letter, width in zip("ABCD", (28, 14, 14, 12), strict=True):
        ws.column_dimensions[letter].width = width


def _value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def daily_report_markdown(report: DailyReport) -> str:
    """The daily report as Markdown."""
    previous = (report.day - timedelta(days=1)).isoformat()
    lines = [f"# Calls on {report.day.isoformat()} ({report.timezone})", "", _headline(report), "",
             f"| | {report.day.isoformat()} | {previous} | change |", "| --- | ---: | ---: | ---: |"]
    totals = report.totals.iloc[0]
    for label, now, prev, change, kind, change_kind in _SUMMARY_ROWS:
        if kind == "duration":
            delta = display(totals[change], "duration")
            delta = delta if delta.startswith("-") or not delta else "+" + delta
        else:
            delta = display(totals[change], change_kind)
        lines.append(f"| {label} | {display(totals[now], kind)} | {display(totals[prev], kind)} | {delta} |")
    if not report.empty or len(report.by_campaign):
        for title, key in (("By campaign", "campaign"), ("By agent", "agent"), ("By status", "status")):
            table = report.table(key)
            columns = [c for c in table.frame.columns
                       if not c.endswith("_prev") and c != "talk_time_prev_s"]
            lines += ["", f"## {title}", "", markdown_table(table, columns)]
    return "\n".join(lines) + "\n"
