"""Outcome reports computed from the ledger, and their writers (CSV, XLSX, Markdown).

Reports are pure functions of the ledger (invariant 4): rebuild them at any time. Nothing here
imports Prefect; the flow publishes the Markdown and tables as artifacts.

```python
report = build_campaign_report(ledger, "demo")            # DataFrames + metadata
paths = write_campaign_report(report)                     # reports/demo/<run date>/outcomes.{csv,xlsx}
text = campaign_report_markdown(report)                   # Summary + Agents as Markdown
daily = build_daily_report(ledger, date(2026, 11, 21))    # every campaign, calls that ended that day
paths = write_daily_report(daily)                         # reports/daily/2026-11-21.{xlsx,csv,md}
```
"""

from ccm_tasks.reports.campaign import (
    CampaignReport,
    Measure,
    UnknownCampaign,
    build_campaign_report,
    campaign_report_markdown,
    campaign_report_table,
    write_campaign_report,
)
from ccm_tasks.reports.daily import (
    DailyReport,
    build_daily_report,
    daily_report_markdown,
    write_daily_report,
)

__all__ = [
    "CampaignReport",
    "DailyReport",
    "Measure",
    "UnknownCampaign",
    "build_campaign_report",
    "build_daily_report",
    "campaign_report_markdown",
    "campaign_report_table",
    "daily_report_markdown",
    "write_campaign_report",
    "write_daily_report",
]
