"""Outcome reports computed from the ledger, and their writers (CSV, XLSX, Markdown, mail).

Reports are pure functions of the ledger (invariant 4): rebuild them at any time. Nothing here
imports Prefect; the flows publish the Markdown and tables as artifacts and send the mail. The
figures' names and definitions have one home, :mod:`ccm_tasks.reports.glossary`.

```python
report = build_campaign_report(ledger, "demo")            # DataFrames + figures
figures = headline_figures(report)                        # (Figure(label, value, definition), ...)
paths = write_campaign_report(report)                     # reports/demo/<run date>/outcomes.{csv,xlsx}
text = campaign_report_markdown(report)                   # Summary + Agents as Markdown
daily = build_daily_report(ledger, date(2026, 11, 21))    # every campaign, calls that ended that day
paths = write_daily_report(daily)                         # reports/daily/2026-11-21.{xlsx,csv,md,png}
message = daily_report_message(daily, xlsx, chart, sender=..., to=[...])  # the mail, ready to send
```
"""

from ccm_tasks.reports.campaign import (
    CampaignReport,
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
from ccm_tasks.reports.glossary import (
    FIGURES,
    Figure,
    FigureDef,
    figures_json,
    figures_lines,
    figures_markdown,
    headline_figures,
    outcome_label,
    run_status_label,
)

__all__ = [
    "FIGURES",
    "CampaignReport",
    "DailyReport",
    "Figure",
    "FigureDef",
    "UnknownCampaign",
    "build_campaign_report",
    "build_daily_report",
    "campaign_report_markdown",
    "campaign_report_table",
    "daily_report_markdown",
    "figures_json",
    "figures_lines",
    "figures_markdown",
    "headline_figures",
    "outcome_label",
    "run_status_label",
    "write_campaign_report",
    "write_daily_report",
]
