"""The daily report: every call that ended on one date, across campaigns, against the previous day
and the same weekday a week before.

A pure function of the ledger (invariant 4). Definitions (figures: :mod:`ccm_tasks.reports.glossary`):

* The day is a calendar date in the report's zone (default Asia/Kolkata), from local midnight to the
  next local midnight.
* A call is counted on the day it **ended**: the call's ``end_time`` from the API, or ``terminal_at``
  (when we confirmed it terminal) when the API gave none. Refused Make Calls (nothing rang) are never
  counted. A Make Call whose outcome is **unknown** is counted by its ``created_at`` date, under the
  status ``unknown``. Calls still open (placed, stuck) have not ended and are not counted yet. The
  calls counted are therefore "calls placed" that ended that day, and the answer rate is calls
  answered / those calls, as in the campaign report.
* Per campaign, per agent (agent key; the name last seen), per hour of the day (the local hour the
  call was counted) and per call status: calls placed, calls answered, answer rate, talk time and
  average talk time; the same for the previous date (``*_prev``) and the same weekday a week before
  (``*_week``); the change against each (``*_change``, ``*_week_change``: the day minus the other
  day; rates in percentage points, durations in signed seconds). A key active on any of the three
  days is listed.
* These are exactly the campaign reports' Attempts rows whose ``daily_report_date`` is the day (with
  the campaign's zone equal to the report's zone), so the two reconcile.

Files: ``reports/daily/<date>.xlsx`` (Summary, By campaign, By agent, By hour, By status, Glossary),
``<date>.csv`` (the total and the four breakdowns in one long table, ``breakdown`` naming which, for
machines: codes and seconds) and ``<date>.md``. A day without calls still writes all three, saying so.
Every duration people read is h:mm:ss, changes included (``-0:02:05``: the workbook uses the 1904 date
system, see :mod:`ccm_tasks.reports.tables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, or_, select

from ccm_tasks.defaults import DAILY_TIMEZONE
from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.states import AttemptState
from ccm_tasks.paths import reports_dir
from ccm_tasks.reports.files import write_csv, write_text
from ccm_tasks.reports.glossary import (
    DAILY_COUNTING,
    DAILY_FIGURES,
    FIGURES,
    Figure,
    figure,
    glossary_table,
    outcome_label,
)
from ccm_tasks.reports.layout import Cell, Layout
from ccm_tasks.reports.tables import (
    Kind,
    Table,
    day_bounds,
    display,
    local_times,
    markdown_table,
    read_frame,
)
from ccm_tasks.reports.xlsx import CustomSheet, print_setup, write_workbook

MEASURES: dict[str, Kind] = {"calls_placed": "int", "calls_answered": "int", "answer_rate": "percent",
                             "talk_time_s": "duration", "average_talk_time_s": "duration"}
"""The daily figures, as columns (the glossary's names; ``_s``: seconds)."""

_CHANGE_KINDS: dict[Kind, Kind] = {"int": "change", "percent": "rate_change", "duration": "duration_change"}



def column(measure: str, suffix: str) -> str:
    """``calls_placed`` + ``prev`` -> ``calls_placed_prev``; ``talk_time_s`` -> ``talk_time_prev_s``."""
    if measure.endswith("_s"):
        return f"{measure[:-2]}_{suffix}_s"
    return f"{measure}_{suffix}"


MEASURE_KINDS: dict[str, Kind] = {}
for _m, _k in MEASURES.items():
    MEASURE_KINDS[_m] = _k
    MEASURE_KINDS[column(_m, "prev")] = _k
    MEASURE_KINDS[column(_m, "week")] = _k
    MEASURE_KINDS[column(_m, "change")] = _CHANGE_KINDS[_k]
    MEASURE_KINDS[column(_m, "week_change")] = _CHANGE_KINDS[_k]
MEASURE_KINDS |= {"campaign": "text", "agent": "text", "agent_name": "text", "hour": "text",
                  "call_status": "text", "status": "text", "breakdown": "text", "key": "text"}

SUMMARY_ROWS = 10
"""Campaigns and agents listed on the daily Summary (most calls first); all on their sheets."""


@dataclass(frozen=True)
class DailyReport:
    """One day's calls across campaigns, broken down four ways, beside the previous day and the same
    weekday a week before."""

    day: date
    timezone: str
    by_campaign: pd.DataFrame
    by_agent: pd.DataFrame
    by_hour: pd.DataFrame
    by_status: pd.DataFrame
    totals: pd.DataFrame  # one row: the day's totals with the same columns as the breakdowns

    @property
    def previous_day(self) -> date:
        """The day before."""
        return self.day - timedelta(days=1)

    @property
    def week_before(self) -> date:
        """The same weekday a week before."""
        return self.day - timedelta(days=7)

    @property
    def calls_placed(self) -> int:
        """Calls counted on the day."""
        return int(self.totals["calls_placed"].iloc[0])

    @property
    def empty(self) -> bool:
        """Whether no call ended on the day."""
        return self.calls_placed == 0

    @property
    def title(self) -> str:
        """``Calls on Saturday 21 November 2026 (Asia/Kolkata)``."""
        return f"Calls on {self.day:%A} {self.day.day} {self.day:%B %Y} ({self.timezone})"

    def figures(self, suffix: str = "") -> tuple[Figure, ...]:
        """The day's totals under the glossary's names (``suffix`` "prev"/"week": the other days)."""
        row = self.totals.iloc[0]
        return tuple(figure(name, _value(row[column(m, suffix) if suffix else m]))
                     for name, m in zip(DAILY_FIGURES, MEASURES, strict=True))

    def table(self, breakdown: str) -> Table:
        """One breakdown (campaign, agent, hour, status or total) as a report table, plain headers."""
        frame = {"campaign": self.by_campaign, "agent": self.by_agent, "hour": self.by_hour,
                 "status": self.by_status, "total": self.totals}[breakdown]
        name = {"campaign": "By campaign", "agent": "By agent", "hour": "By hour", "status": "By status",
                "total": "Total"}[breakdown]
        totals = None
        if breakdown != "total" and len(frame):
            totals = {**{k: "" for k in frame.columns if MEASURE_KINDS.get(k) == "text"},
                      **self.totals.iloc[0].to_dict()}
            first = str(frame.columns[0])
            totals[first] = {"campaign": "All campaigns", "agent": "All agents", "hour": "All hours",
                             "status": "All calls"}.get(first, "All")
        return Table(name, frame, MEASURE_KINDS, self.timezone, self.labels(), totals, title=self.title)

    def labels(self) -> dict[str, str]:
        """Plain headers: the figures' labels, and "vs Fri 20 Nov" for each change."""
        prev, week = f"vs {self.previous_day:%a %d %b}", f"vs {self.week_before:%a %d %b}"
        out = {"campaign": "Campaign", "agent": "Agent", "agent_name": "Name", "hour": "Hour of the day",
               "call_status": "Status code", "status": "Outcome"}
        for m in MEASURES:
            label = FIGURES[m.removesuffix("_s")].label
            out |= {m: label, column(m, "prev"): f"{label} {self.previous_day:%a %d %b}",
                    column(m, "week"): f"{label} {self.week_before:%a %d %b}",
                    column(m, "change"): prev, column(m, "week_change"): week}
        return out

    def sheet_table(self, breakdown: str) -> Table:
        """A breakdown as its sheet shows it: each figure, with its change against both days."""
        table = self.table(breakdown)
        keys = [c for c in table.frame.columns if c not in MEASURE_KINDS or MEASURE_KINDS[c] == "text"]
        shown = [*keys]
        for m in ("calls_placed", "calls_answered", "answer_rate", "talk_time_s", "average_talk_time_s"):
            # changes of the counts, rate and talk time; calls answered and the average follow from them
            with_changes = m in ("calls_placed", "answer_rate", "talk_time_s")
            shown += [m, column(m, "change"), column(m, "week_change")] if with_changes else [m]
        return table.select(shown)


def build_daily_report(ledger: Ledger, day: date, timezone: str = DAILY_TIMEZONE) -> DailyReport:
    """Compute the daily report for ``day`` in ``timezone`` from the ledger."""
    start, end = day_bounds(day, timezone)
    prev_start, _ = day_bounds(day - timedelta(days=1), timezone)
    week_start, week_end = day_bounds(day - timedelta(days=7), timezone)
    a, c = t.attempts.c, t.campaigns.c
    ended = func.coalesce(a.end_time, a.terminal_at)
    counted_at = case((a.state == AttemptState.UNKNOWN.value, a.created_at), else_=ended)

    def within(lo: float, hi: float) -> Any:
        return or_(and_(a.state == AttemptState.TERMINAL.value, ended >= lo, ended < hi),
                   and_(a.state == AttemptState.UNKNOWN.value, a.created_at >= lo, a.created_at < hi))

    query = (
        select(c.name.label("campaign"), a.agent_key.label("agent"), a.agent_name, a.state, a.call_status,
               a.total_talk_time, counted_at.label("counted_at"))
        .join(t.campaigns, t.campaigns.c.id == a.campaign_id)
        .where(or_(within(prev_start, end), within(week_start, week_end)))
    )
    with ledger.read() as conn:
        rows = read_frame(conn, query)
    rows["call_status"] = rows["call_status"].astype("object").where(rows["call_status"].notna(), "unknown")
    rows["talk"] = rows["total_talk_time"].astype("float64").fillna(0).astype("int64")
    rows["answered"] = (rows["call_status"] == "completed").astype("int64")
    for name in ("campaign", "agent", "agent_name"):
        rows[name] = rows[name].astype("object")
    at = rows["counted_at"].astype("float64")
    rows["hour"] = local_times(at, timezone).dt.hour
    today, before, week = rows[at >= start], rows[(at >= prev_start) & (at < start)], rows[at < week_end]

    def compare(keys: list[str], *, keep_empty: bool = False) -> pd.DataFrame:
        return _compare(today, before, week, keys, keep_empty=keep_empty)

    by_campaign = compare(["campaign"])
    by_agent = compare(["agent"])
    names = rows.dropna(subset=["agent_name"]).sort_values("counted_at", kind="stable") \
        .groupby("agent")["agent_name"].last()
    by_agent.insert(1, "agent_name", by_agent["agent"].map(names).astype("object"))
    by_status = compare(["call_status"])
    # completed first, unknown last, the other statuses by the day's count
    rank = by_status["call_status"].map({"completed": 0, "unknown": 2}).fillna(1)
    order = sorted(range(len(by_status)), key=lambda i: (rank.iloc[i], -by_status["calls_placed"].iloc[i],
                                                         str(by_status["call_status"].iloc[i])))
    by_status = by_status.iloc[order].reset_index(drop=True)
    by_status.insert(0, "status", by_status["call_status"].map(outcome_label).astype("object"))
    by_hour = _hours(compare(["hour"]))
    totals = compare(["total"], keep_empty=True)
    return DailyReport(day=day, timezone=timezone, by_campaign=by_campaign, by_agent=by_agent,
                       by_hour=by_hour, by_status=by_status, totals=totals.drop(columns=["total"]))


def _sums(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return rows.groupby(keys, sort=True).agg(calls_placed=("talk", "size"),
                                             calls_answered=("answered", "sum"), talk_time_s=("talk", "sum"))


def _with_rates(sums: pd.DataFrame) -> pd.DataFrame:
    calls, answered = sums["calls_placed"], sums["calls_answered"]
    return sums.assign(answer_rate=answered / calls.where(calls > 0),
                       average_talk_time_s=sums["talk_time_s"] / answered.where(answered > 0))


def _compare(today: pd.DataFrame, before: pd.DataFrame, week: pd.DataFrame, keys: list[str], *,
             keep_empty: bool = False) -> pd.DataFrame:
    frames = {"": _sums(today.assign(total="total"), keys), "prev": _sums(before.assign(total="total"), keys),
              "week": _sums(week.assign(total="total"), keys)}
    index = frames[""].index.union(frames["prev"].index).union(frames["week"].index)
    if keep_empty and not len(index):
        index = pd.Index(["total"], name=keys[0])
    out: dict[str, pd.Series] = {}
    filled = {k: _with_rates(f.reindex(index, fill_value=0).astype("int64")) for k, f in frames.items()}
    for m in MEASURES:
        now = filled[""][m]
        out[m] = now
        for suffix in ("prev", "week"):
            other = filled[suffix][m]
            out[column(m, suffix)] = other
        for suffix, change in (("prev", "change"), ("week", "week_change")):
            # No rate on one of the days: no change to speak of (NaN propagates).
            out[column(m, change)] = now - filled[suffix][m]
    frame = pd.DataFrame(out, index=index).reset_index()
    for key in keys:
        frame[key] = frame[key].astype("object")
    return frame


def _hours(frame: pd.DataFrame) -> pd.DataFrame:
    """Every hour from the first to the last with calls on any of the days (zeros between), as
    ``05:00-06:00``, so the table and chart read as a day."""
    if frame.empty:
        return frame.assign(hour=frame["hour"].astype("object"))
    hours = frame["hour"].astype("int64")
    full = pd.DataFrame({"hour": range(int(hours.min()), int(hours.max()) + 1)})
    merged = full.merge(frame.assign(hour=hours), on="hour", how="left")
    for m in MEASURES:  # an hour without calls: zero counts and talk, no rate
        if MEASURES[m] != "percent" and m != "average_talk_time_s":
            for c in (m, column(m, "prev"), column(m, "week"), column(m, "change"), column(m, "week_change")):
                merged[c] = merged[c].fillna(0).astype("int64")
    merged["hour"] = [f"{h:02d}:00-{h + 1:02d}:00" for h in merged["hour"]]
    merged["hour"] = merged["hour"].astype("object")
    return merged


# --------------------------------------------------------------------------- writing


def write_daily_report(report: DailyReport, folder: Path | None = None) -> list[Path]:
    """Write ``<date>.xlsx``, ``<date>.csv`` and ``<date>.md`` under ``reports/daily/``."""
    folder = folder or reports_dir() / "daily"
    stem = report.day.isoformat()
    xlsx_path, csv_path, md_path = folder / f"{stem}.xlsx", folder / f"{stem}.csv", folder / f"{stem}.md"
    sheets: list[Table | CustomSheet] = [
        CustomSheet("Summary", lambda ws: fill_summary(ws, report)),
        *(report.sheet_table(b) for b in ("campaign", "agent", "hour", "status")),
        glossary_table([*DAILY_FIGURES], title=report.title)]
    # 1904 dates: the change columns are signed durations, which Excel's 1900 system shows as #####.
    write_workbook(xlsx_path, sheets, date1904=True)
    write_csv(Table("Daily", _long_table(report), MEASURE_KINDS, report.timezone), csv_path)
    write_text(md_path, daily_report_markdown(report))
    return [xlsx_path, csv_path, md_path]


def _long_table(report: DailyReport) -> pd.DataFrame:
    """The total and the four breakdowns in one table (a CSV holds one table), codes for machines."""
    parts = []
    breakdowns = (("total", report.totals, None), ("campaign", report.by_campaign, "campaign"),
                  ("agent", report.by_agent, "agent"), ("hour", report.by_hour, "hour"),
                  ("status", report.by_status, "call_status"))
    for breakdown, frame, key in breakdowns:
        part = frame.drop(columns=[c for c in ("campaign", "agent", "agent_name", "hour", "call_status",
                                               "status") if c in frame.columns])
        part.insert(0, "breakdown", breakdown)
        part.insert(1, "key", frame[key].astype("object") if key else "all campaigns")
        part.insert(2, "agent_name", frame["agent_name"] if "agent_name" in frame.columns else None)
        parts.append(part.astype({"breakdown": "object", "key": "object", "agent_name": "object"}))
    return pd.concat(parts, ignore_index=True)


def headline(report: DailyReport) -> str:
    """``6 calls ended on 2026-11-21 (Asia/Kolkata) across 2 campaigns; 3 answered (50.0%).``"""
    if report.empty:
        return f"No calls ended on {report.day.isoformat()} ({report.timezone})."
    campaigns = int((report.by_campaign["calls_placed"] > 0).sum())
    answered = int(report.totals["calls_answered"].iloc[0])
    rate = display(report.totals["answer_rate"].iloc[0], "percent")
    return (f"{report.calls_placed} calls ended on {report.day.isoformat()} ({report.timezone}) across "
            f"{campaigns} campaign{'s' if campaigns != 1 else ''}; {answered} answered ({rate}).")


def comparison_rows(report: DailyReport) -> list[tuple[Figure, Any, Any, Any, Any]]:
    """Each daily figure: (the day's figure, previous day, change, week before, change)."""
    row = report.totals.iloc[0]
    return [(f, _value(row[column(m, "prev")]), _value(row[column(m, "change")]),
             _value(row[column(m, "week")]), _value(row[column(m, "week_change")]))
            for f, m in zip(report.figures(), MEASURES, strict=True)]


def fill_summary(ws: Any, report: DailyReport) -> None:
    """The daily Summary: title, the day against the previous day and last week with definitions, the
    calls by hour chart, then the campaigns and agents with most calls; one printed page."""
    from openpyxl.chart import Reference

    layout = Layout(ws, (30, 13, 13, 13, 13, 13, 80), charts_beside=False)
    layout.title(report.title, [headline(report), DAILY_COUNTING])
    prev, week = report.previous_day, report.week_before
    rows = []
    for f, before, change, last_week, week_change in comparison_rows(report):
        change_kind = _CHANGE_KINDS[f.kind]
        rows.append((Cell(f.label), Cell(f.value, f.kind), Cell(before, f.kind), Cell(change, change_kind),
                     Cell(last_week, f.kind), Cell(week_change, change_kind), Cell(f.definition)))
    layout.block(("Figure", f"{report.day:%a %d %b}", f"{prev:%a %d %b}", "Change", f"{week:%a %d %b}",
                  "Change", "What it means"), rows)
    if len(report.by_hour):
        n = len(report.by_hour) + 1
        layout.bar_chart(f"Calls by hour of the day, {report.day:%a %d %b}",
                         [Reference(range_string=f"'By hour'!$B$1:$B${n}"),
                          Reference(range_string=f"'By hour'!$E$1:$E${n}")],
                         Reference(range_string=f"'By hour'!$A$2:$A${n}"), width_cm=24.0)
    for title, frame, key in (("Campaign", report.by_campaign, "campaign"),
                              ("Agent", report.by_agent, "agent_name")):
        if frame.empty:
            continue
        top = frame.sort_values(["calls_placed", key], ascending=[False, True], kind="stable")
        top = top.head(SUMMARY_ROWS)
        heading = (f"{title} (most calls first)", "Calls placed", f"vs {prev:%a %d %b}",
                   f"vs {week:%a %d %b}", "Answer rate", "Talk time", "Average talk time")
        body = [(Cell(r[key] if isinstance(r[key], str) and r[key] else r.get("agent", "")),
                 Cell(_value(r["calls_placed"]), "int"), Cell(_value(r["calls_placed_change"]), "change"),
                 Cell(_value(r["calls_placed_week_change"]), "change"),
                 Cell(_value(r["answer_rate"]), "percent"), Cell(_value(r["talk_time_s"]), "duration"),
                 Cell(_value(r["average_talk_time_s"]), "duration"))
                for r in top.to_dict("records")]
        note = (f"{len(frame)} in all: see the By {title.lower()} sheet." if len(frame) > len(top) else None)
        layout.block(heading, body, note=note)
    print_setup(ws, title=report.title, fit_height=1, repeat_header=False)
    ws.print_area = f"A1:G{layout.last_row}"
    ws.sheet_view.showGridLines = False


def _value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def daily_report_markdown(report: DailyReport) -> str:
    """The daily report as Markdown (the artifact and the ``.md`` file)."""
    prev, week = report.previous_day, report.week_before
    lines = [f"# {report.title}", "", headline(report), "", DAILY_COUNTING, "",
             f"| figure | {report.day:%a %d %b} | {prev:%a %d %b} | change | {week:%a %d %b} | change |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for f, before, change, last_week, week_change in comparison_rows(report):
        change_kind = _CHANGE_KINDS[f.kind]
        lines.append(f"| {f.label} | {f.text} | {display(before, f.kind)} | {display(change, change_kind)} | "
                     f"{display(last_week, f.kind)} | {display(week_change, change_kind)} |")
    for breakdown in ("campaign", "agent", "hour", "status"):
        table = report.sheet_table(breakdown)
        if len(table.frame):
            lines += ["", f"## {table.name}", "", markdown_table(table)]
    return "\n".join(lines) + "\n"
