"""The ``daily_report`` flow: every call that ended on one date, across campaigns, written to files,
published as artifacts and mailed. Wiring only.

The files are written first and never wait for the mail. Mail goes to ``mail_to`` or, when it is not
given, ``CCM_SMTP_TO``; nobody to mail means no mail (said in the log). The SMTP settings come from
the environment (``CCM_SMTP_*``, :class:`~ccm_tasks.settings.SmtpSettings`) or, where a Prefect
server keeps them, from a Secret block named by ``smtp_block`` whose value is a JSON object with the
same fields (``{"host": ..., "password": ...}``; given fields override the environment). A failed send
is retried ``CCM_SMTP_RETRIES`` times, ``CCM_SMTP_RETRY_DELAY`` seconds apart; if it still fails the
flow run fails, saying the files were written and the mail was not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from ccm_tasks.defaults import DAILY_TIMEZONE
from ccm_tasks.reports.daily import comparison_rows
from ccm_tasks.settings import SmtpSettings
from ccm_tasks.tasks import mail_daily_report_task, write_daily_report_task


@flow(name="daily-report", persist_result=False, log_prints=False)
async def daily_report(date: str | None = None, timezone: str = DAILY_TIMEZONE, ledger: str | None = None,
                       mail_to: list[str] | None = None, smtp_block: str | None = None) -> State[Any]:
    """Write reports/daily/<date>.{xlsx,csv,md} (default: today in ``timezone``) and mail them."""
    logger = get_run_logger()
    day = date or datetime.now(ZoneInfo(timezone)).date().isoformat()
    files = write_daily_report_task(day, timezone, ledger)  # a sync task: runs to completion
    listing = "\n".join(f"- `{p}`" for p in files.paths)
    await acreate_markdown_artifact(f"{files.markdown}\n\nFiles:\n{listing}\n", key="daily-report",
                                    description=f"Daily call outcomes {day} ({timezone})")
    await acreate_table_artifact(_figures_table(files), key="daily-report-figures",
                                 description=f"Daily figures {day} against the day before and last week")
    logger.info("Daily report for %s written: %s", day, ", ".join(files.paths))
    result: dict[str, Any] = {"date": day, "timezone": timezone, "files": files.paths, "mailed_to": 0}

    settings = await _smtp_settings(smtp_block)
    to = list(mail_to) if mail_to else list(settings.to)
    if not to:
        logger.info("Daily report not mailed: no recipients (set CCM_SMTP_TO or the mail_to parameter)")
        return Completed(message="report written; no recipients to mail", data=result)
    mail = mail_daily_report_task.with_options(retries=settings.retries,
                                               retry_delay_seconds=settings.retry_delay)
    state = mail(files, settings, to, return_state=True)
    if not state.is_completed():
        message = (f"report files written ({', '.join(files.paths)}), but the mail to {len(to)} "
                   f"recipient(s) was not sent after {settings.retries + 1} tries: {state.message}")
        logger.error("%s", message)
        return Failed(message=message, data=result)
    result["mailed_to"] = len(to)
    logger.info("Daily report for %s mailed to %d recipient(s)", day, len(to))
    return Completed(message=f"report written and mailed to {len(to)} recipient(s)", data=result)


def _figures_table(files: Any) -> list[dict[str, Any]]:
    """The day's figures beside the previous day and last week (a table artifact)."""
    report = files.report
    return [{"figure": f.label, str(report.day): f.text, str(report.previous_day): _text(before, f.kind),
             str(report.week_before): _text(week, f.kind), "definition": f.definition}
            for f, before, _, week, _ in comparison_rows(report)]


def _text(value: Any, kind: Any) -> str:
    from ccm_tasks.reports.tables import display

    return display(value, kind) or "-"


async def _smtp_settings(block: str | None) -> SmtpSettings:
    """The environment's settings, overridden by the named Prefect Secret block's fields."""
    if block is None:
        return SmtpSettings()
    from prefect.blocks.system import Secret

    secret = await Secret.aload(block)
    value: object = secret.get()  # type: ignore[attr-defined]  # Prefect's stubs hide Secret.get
    if not isinstance(value, dict):
        raise ValueError(f"the Secret block {block!r} must hold a JSON object of CCM_SMTP_* fields")
    return SmtpSettings(**value)
