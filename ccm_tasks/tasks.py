"""Thin Prefect task wrappers around the library (no business logic here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Failed

from ccm_tasks.errors import CampaignCannotRun
from ccm_tasks.reports.daily import DailyReport
from ccm_tasks.runner import CampaignRun, prepare_run
from ccm_tasks.settings import SmtpSettings


@task(name="prepare-campaign", cache_policy=NO_CACHE, retries=0)
async def prepare_campaign(definition: str | Path, ledger: str | None = None, wait_for_window: bool = True,
                           flow_run_id: str | None = None) -> CampaignRun | State[Any]:
    """Validate the inputs, take the campaign's runner lock, and set up the engine.

    A campaign that cannot run is a Failed state with the reason, not a traceback.
    """
    try:
        return await prepare_run(definition, ledger=ledger, wait_for_window=wait_for_window,
                                 flow_run_id=flow_run_id or None)
    except CampaignCannotRun as exc:
        return Failed(message=str(exc))


@dataclass(frozen=True)
class DailyReportFiles:
    """A daily report as written: the report, its Markdown, and the files' paths."""

    report: DailyReport
    markdown: str
    paths: list[str]


@task(name="daily-report", cache_policy=NO_CACHE)
def write_daily_report_task(day: str, timezone: str, ledger: str | None = None) -> DailyReportFiles:
    """Build and write the daily report; returns it with its Markdown and the paths written."""
    from datetime import date

    from ccm_tasks.ledger import Ledger
    from ccm_tasks.paths import resolve_ledger
    from ccm_tasks.reports import build_daily_report, daily_report_markdown, write_daily_report

    book = Ledger(resolve_ledger(ledger))
    try:
        report = build_daily_report(book, date.fromisoformat(day), timezone)
        paths = [str(p) for p in write_daily_report(report)]
        return DailyReportFiles(report, daily_report_markdown(report), paths)
    finally:
        book.close()


@task(name="mail-daily-report", cache_policy=NO_CACHE)
def mail_daily_report_task(files: DailyReportFiles, settings: SmtpSettings, to: list[str]) -> int:
    """Mail the written report (figures and chart in the body, the workbook attached); returns the
    number of recipients. Raises MailNotSent, so the caller's retries apply."""
    from ccm_tasks.reports.mail import daily_report_message, send_message

    workbook = next(Path(p) for p in files.paths if p.endswith(".xlsx"))
    message = daily_report_message(files.report, workbook, sender=str(settings.sender), to=to)
    send_message(message, settings)
    return len(to)
