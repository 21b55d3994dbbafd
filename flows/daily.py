"""The ``daily_report`` flow: every call that ended on one date, across campaigns. Wiring only."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from ccm_tasks.tasks import write_daily_report_task


@flow(name="daily-report", persist_result=False, log_prints=False)
async def daily_report(date: str | None = None, timezone: str = "Asia/Kolkata",
                       ledger: str | None = None) -> dict[str, Any]:
    """Write reports/daily/<date>.{xlsx,csv,md} (default: today in ``timezone``)."""
    day = date or datetime.now(ZoneInfo(timezone)).date().isoformat()
    markdown, paths = write_daily_report_task(day, timezone, ledger)  # a sync task: runs to completion
    listing = "\n".join(f"- `{p}`" for p in paths)
    await acreate_markdown_artifact(f"{markdown}\n\nFiles:\n{listing}\n", key="daily-report",
                                    description=f"Daily call outcomes {day} ({timezone})")
    get_run_logger().info("Daily report for %s written: %s", day, ", ".join(paths))
    return {"date": day, "timezone": timezone, "files": paths}
