"""Reports: the campaign report and the daily report, as pages and as CSV/XLSX downloads.

The figures come from :mod:`ccm_tasks.reports` (pure functions of the ledger); the page shows them
through one partial (``_figures.html``) so the shared vocabulary of rates can replace it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from ccm_tasks.console.charts import bar_chart
from ccm_tasks.console.definitions import NAME_RE, NoSuchDefinition
from ccm_tasks.console.deps import (
    ConsoleState,
    Manager,
    State,
    render,
)
from ccm_tasks.defaults import DAILY_TIMEZONE
from ccm_tasks.reports import (
    CampaignReport,
    UnknownCampaign,
    build_campaign_report,
    build_daily_report,
    write_campaign_report,
    write_daily_report,
)
from ccm_tasks.reports.tables import Table, display

router = APIRouter()

AGENT_ROWS = 50


def _report(state: ConsoleState, name: str) -> CampaignReport:
    if not NAME_RE.match(name):
        raise NoSuchDefinition(name)
    try:
        return build_campaign_report(state.ledger, name)
    except UnknownCampaign as exc:
        raise NoSuchDefinition(str(exc)) from None


@dataclass(frozen=True)
class ShownTable:
    """A report table as the page shows it: headers and display strings, numbers marked."""

    name: str
    headers: list[str]
    numeric: list[bool]
    rows: list[list[str]]
    total_rows: int


def shown(table: Table, limit: int | None = None) -> ShownTable:
    """Format a report table with the reports' own display rules (durations, rates, times)."""
    columns = list(table.frame.columns)
    kinds = [table.kind(c) for c in columns]
    frame = table.frame if limit is None else table.frame.head(limit)
    rows = [[display(v, k) for v, k in zip(row, kinds, strict=True)]
            for row in frame[columns].itertuples(index=False, name=None)]
    return ShownTable(table.name, [table.header(c) for c in columns], [k != "text" for k in kinds], rows,
                      len(table.frame))


@router.get("/campaigns/{name}/report")
def campaign_report_page(request: Request, name: str, user: Manager,
                         state: State) -> Response:
    """Key figures, outcomes chart, agents and runs of one campaign; links to the files."""
    report = _report(state, name)
    # Outcomes in words, only those that occurred; figures named as everywhere (reports.glossary).
    statuses = [(str(r["outcome"]), int(r["customers"])) for r in report.statuses.to_dict("records")
                if r["customers"]]
    headline = {f.name for f in report.headline}
    figures = [(f.label, f.text) for f in (*report.headline,
                                          *(f for f in report.figures if f.name not in headline))]
    return render(request, "report.html", {
        "name": name, "report": report, "figures": figures,
        "chart": bar_chart(statuses, title=f"Customers by outcome, campaign {name}"),
        "tables": [shown(report.agents_table(), AGENT_ROWS), shown(report.runs_table()),
                   *([shown(report.controls_table())] if len(report.controls) else [])]}, user=user)


@router.get("/campaigns/{name}/report/outcomes.{kind}")
def campaign_report_file(name: str, kind: str, user: Manager,
                         state: State) -> Response:
    """The report's ``outcomes.csv`` or ``outcomes.xlsx``, rebuilt from the ledger now."""
    if kind not in ("csv", "xlsx"):
        raise NoSuchDefinition(kind)
    report = _report(state, name)
    paths = {p.suffix.lstrip("."): p for p in write_campaign_report(report)}
    return _download(paths[kind], f"{name}-outcomes-{report.run_date.isoformat()}.{kind}")


def _day(value: str | None, timezone: str) -> tuple[date, str]:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo(DAILY_TIMEZONE), DAILY_TIMEZONE
    try:
        return (date.fromisoformat(value) if value else datetime.now(zone).date()), timezone
    except ValueError:
        return datetime.now(zone).date(), timezone


@router.get("/reports/daily")
def daily_report_page(request: Request, user: Manager, state: State, day: str | None = None,
                      timezone: str = DAILY_TIMEZONE) -> Response:
    """Every call that ended on one day, across campaigns."""
    when, zone = _day(day, timezone)
    report = build_daily_report(state.ledger, when, zone)
    status_table = report.table("status")
    by_status = [(str(r["status"]), int(r["calls_placed"])) for r in status_table.frame.to_dict("records")]
    return render(request, "daily.html", {
        "day": when, "timezone": zone, "report": report,
        "tables": [shown(report.sheet_table(k), AGENT_ROWS)
                   for k in ("total", "campaign", "agent", "status")],
        "chart": bar_chart(by_status, title=f"Calls by status, {when.isoformat()}") if by_status else None},
        user=user)


@router.get("/reports/daily/{day}.{kind}")
def daily_report_file(day: str, kind: str, user: Manager, state: State,
                      timezone: str = DAILY_TIMEZONE) -> Response:
    """The daily report's workbook or CSV."""
    if kind not in ("csv", "xlsx"):
        raise NoSuchDefinition(kind)
    when, zone = _day(day, timezone)
    written = write_daily_report(build_daily_report(state.ledger, when, zone))
    paths = {p.suffix.lstrip("."): p for p in written}
    return _download(paths[kind], f"daily-{when.isoformat()}.{kind}")


def _download(path: Path, filename: str) -> Response:
    media = ("text/csv" if path.suffix == ".csv"
             else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return FileResponse(path, media_type=media, filename=filename)
