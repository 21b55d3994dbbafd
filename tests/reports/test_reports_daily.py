"""The daily report: it reconciles with the campaign reports, compares with the day before and the same
weekday a week before, breaks the day down by hour, and says so when there were no calls."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from report_ledgers import LedgerBuilder, ist

from ccm_tasks.reports import (
    FIGURES,
    build_campaign_report,
    build_daily_report,
    daily_report_markdown,
    write_campaign_report,
    write_daily_report,
)
from ccm_tasks.reports.tables import day_bounds

DAY1, DAY2 = date(2026, 11, 20), date(2026, 11, 21)


def _attempt_rows(path: Path) -> list[dict[str, object]]:
    values = list(openpyxl.load_workbook(path)["Attempts"].iter_rows(values_only=True))
    header = [str(h) for h in values[0]]
    return [dict(zip(header, row, strict=True)) for row in values[1:]]


def test_daily_totals_reconcile_with_the_campaign_reports(two_campaigns: LedgerBuilder) -> None:
    ledger = two_campaigns.ledger
    sheets = {name: _attempt_rows(write_campaign_report(build_campaign_report(ledger, name))[1])
              for name in ("A", "B")}
    for day in (DAY1, DAY2):
        daily = build_daily_report(ledger, day)
        by_campaign = daily.by_campaign.set_index("campaign")
        for name, rows in sheets.items():
            midnight = datetime.combine(day, datetime.min.time())
            counted = [r for r in rows if r["daily_report_date (Asia/Kolkata)"] == midnight]
            talk = sum((r["talk_time"] for r in counted), timedelta())
            assert by_campaign.loc[name, "calls_placed"] == len(counted), (day, name)
            assert by_campaign.loc[name, "calls_answered"] == sum(
                r["call_status"] == "completed" for r in counted)
            assert by_campaign.loc[name, "talk_time_s"] == talk.total_seconds()
        # the four breakdowns add up to the same totals
        totals = daily.totals.iloc[0]
        for frame in (daily.by_campaign, daily.by_agent, daily.by_status, daily.by_hour):
            assert frame["calls_placed"].sum() == totals["calls_placed"]
            assert frame["calls_answered"].sum() == totals["calls_answered"]
            assert frame["talk_time_s"].sum() == totals["talk_time_s"]

    day2 = build_daily_report(ledger, DAY2)
    a = day2.by_campaign.set_index("campaign").loc["A"]
    # across midnight (ended day 2), retry, no end_time (terminal_at on day 2); not the stuck call
    assert (a["calls_placed"], a["calls_answered"], a["talk_time_s"]) == (3, 2, 150)
    b = day2.by_campaign.set_index("campaign").loc["B"]
    # unknown (by created_at), completed, unanswered; not the refused Make Call
    assert (b["calls_placed"], b["calls_answered"], b["talk_time_s"]) == (3, 1, 75)
    statuses = day2.by_status.set_index("call_status")["calls_placed"].to_dict()
    # agent_unanswered: only the day before, still listed at zero
    assert statuses == {"completed": 3, "customer_unanswered": 2, "agent_unanswered": 0, "unknown": 1}
    assert list(day2.by_status["call_status"]) == ["completed", "customer_unanswered", "agent_unanswered",
                                                   "unknown"]
    agents = day2.by_agent.set_index("agent")
    # a1 worked for both campaigns that day
    assert agents.loc["a1", "calls_placed"] == 2 and agents.loc["a1", "agent_name"] == "Agent a1"
    # by the local hour each call was counted: 00:00 (across midnight, no end_time), 10, 11, 12, 13
    hours = day2.by_hour.set_index("hour")["calls_placed"]
    assert hours[hours > 0].to_dict() == {"00:00-01:00": 2, "10:00-11:00": 1, "11:00-12:00": 1,
                                          "12:00-13:00": 1, "13:00-14:00": 1}
    assert list(day2.by_hour["hour"])[:2] == ["00:00-01:00", "01:00-02:00"]  # every hour in between
    assert list(day2.by_status["status"])[:2] == ["Customer answered", "Customer did not answer"]


def test_previous_day_and_change(two_campaigns: LedgerBuilder) -> None:
    day1 = build_daily_report(two_campaigns.ledger, DAY1)
    day2 = build_daily_report(two_campaigns.ledger, DAY2)
    t1, t2 = day1.totals.iloc[0], day2.totals.iloc[0]
    assert (t1["calls_placed"], t1["calls_answered"], t1["talk_time_s"]) == (5, 3, 350)
    assert (t2["calls_placed_prev"], t2["calls_answered_prev"], t2["talk_time_prev_s"]) == (5, 3, 350)
    assert (t2["calls_placed_change"], t2["calls_answered_change"], t2["talk_time_change_s"]) == (1, 0, -125)
    assert t2["answer_rate"] == pytest.approx(3 / 6)
    assert t2["answer_rate_change"] == pytest.approx(3 / 6 - 3 / 5)
    assert t2["average_talk_time_s"] == pytest.approx(225 / 3)
    assert t2["average_talk_time_change_s"] == pytest.approx(225 / 3 - 350 / 3)
    a3 = day2.by_agent.set_index("agent").loc["a3"]
    assert (a3["calls_placed"], a3["calls_placed_prev"], a3["calls_placed_change"]) == (2, 1, 1)
    gone = day2.by_status.set_index("call_status").loc["agent_unanswered"]
    assert (gone["calls_placed"], gone["calls_placed_prev"], gone["calls_placed_change"]) == (0, 1, -1)
    assert (t2["calls_placed_week"], t2["calls_placed_week_change"]) == (0, 6)  # nothing on 14 Nov
    assert pd.isna(t2["answer_rate_week_change"])  # no rate that day: no change to speak of

    paths = write_daily_report(day2)
    assert [p.name for p in paths] == ["2026-11-21.xlsx", "2026-11-21.csv", "2026-11-21.md"]
    wb = openpyxl.load_workbook(paths[0])
    assert wb.sheetnames == ["Summary", "By campaign", "By agent", "By hour", "By status", "Glossary"]
    ws = wb["Summary"]
    assert ws["A1"].value == "Calls on Saturday 21 November 2026 (Asia/Kolkata)"
    assert ws["A2"].value == ("6 calls ended on 2026-11-21 (Asia/Kolkata) across 2 campaigns; "
                              "3 answered (50.0%).")
    summary = {row[0].value: row for row in ws.iter_rows(min_row=5, max_row=10, max_col=7)}
    assert [c.value for c in ws[5]][:6] == ["Figure", "Sat 21 Nov", "Fri 20 Nov", "Change", "Sat 14 Nov",
                                            "Change"]
    calls = summary["Calls placed"]
    assert [c.value for c in calls[1:6]] == [6, 5, 1, 0, 6]  # no calls on 14 Nov
    talk = summary["Talk time"]
    # every duration h:mm:ss, the change too: a negative duration in the 1904 date system
    assert wb.epoch.year == 1904
    assert [c.value for c in talk[1:4]] == [timedelta(seconds=225), timedelta(seconds=350),
                                            timedelta(seconds=-125)]
    assert talk[1].number_format == "[h]:mm:ss" and talk[3].number_format == "+[h]:mm:ss;-[h]:mm:ss;0:00:00"
    assert calls[3].number_format == "+#,##0;-#,##0;0"
    assert talk[6].value == FIGURES["talk_time"].definition
    by_campaign = wb["By campaign"]
    assert by_campaign.freeze_panes == "A2" and by_campaign.auto_filter.ref == "A1:L3"
    assert [c.value for c in by_campaign[1]][:5] == ["Campaign", "Calls placed", "vs Fri 20 Nov",
                                                     "vs Sat 14 Nov", "Calls answered"]
    assert by_campaign["I2"].number_format == "[h]:mm:ss"  # talk time
    assert by_campaign["J3"].value == timedelta(seconds=75 - 200)  # B's talk time against 20 Nov
    assert by_campaign["A4"].value == "All campaigns" and by_campaign["B4"].value == 6
    with paths[1].open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["breakdown"] == "total" and rows[0]["calls_placed"] == "6"
    assert rows[0]["talk_time_s"] == "225" and rows[0]["talk_time_change_s"] == "-125"
    assert {r["key"] for r in rows if r["breakdown"] == "campaign"} == {"A", "B"}
    assert {r["breakdown"] for r in rows} == {"total", "campaign", "agent", "hour", "status"}
    text = paths[2].read_text()
    assert "6 calls ended on 2026-11-21 (Asia/Kolkata) across 2 campaigns; 3 answered (50.0%)." in text
    assert "| Talk time | 0:03:45 | 0:05:50 | -0:02:05 | 0:00:00 | +0:03:45 |" in text


def test_a_day_without_calls_says_so(two_campaigns: LedgerBuilder) -> None:
    report = build_daily_report(two_campaigns.ledger, date(2026, 12, 25))
    assert report.empty and report.by_campaign.empty
    paths = write_daily_report(report)
    assert all(p.exists() for p in paths)
    assert "No calls ended on 2026-12-25 (Asia/Kolkata)." in paths[2].read_text()
    assert "No calls ended on 2026-12-25" in daily_report_markdown(report)
    ws = openpyxl.load_workbook(paths[0])["Summary"]
    cells = [c.value for row in ws.iter_rows() for c in row]
    assert "No calls ended on 2026-12-25 (Asia/Kolkata)." in cells
    with paths[1].open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["breakdown"], r["calls_placed"]) for r in rows] == [("total", "0")]

    # The day after the last calls: nothing today, yesterday's calls as the comparison.
    after = build_daily_report(two_campaigns.ledger, date(2026, 11, 23))
    assert after.empty and after.totals.iloc[0]["calls_placed_prev"] == 1
    assert list(after.by_campaign["campaign"]) == ["A"]
    assert pd.isna(after.totals.iloc[0]["answer_rate"])


def test_same_weekday_last_week(two_campaigns: LedgerBuilder) -> None:
    """A week after day 2, day 2 is the comparison; the day before (27 Nov) had nothing."""
    cid = two_campaigns.ledger.upsert_campaign("A", definition_path="A.yaml", timezone="Asia/Kolkata",
                                               now=ist("2026-11-28 09:00:00"), input_summary={})
    run = two_campaigns.start_run(cid, ist("2026-11-28 09:00:00"))
    two_campaigns.call(cid, run, "+919800000007", "a1", at=ist("2026-11-28 10:00:00"), talk=40, duration=60)
    report = build_daily_report(two_campaigns.ledger, date(2026, 11, 28))
    assert report.week_before == DAY2 and report.previous_day == date(2026, 11, 27)
    totals = report.totals.iloc[0]
    week = (totals["calls_placed"], totals["calls_placed_week"], totals["calls_placed_week_change"])
    assert week == (1, 6, -5)
    assert totals["talk_time_week_s"] == 225 and totals["talk_time_week_change_s"] == 40 - 225
    assert totals["calls_placed_prev"] == 0
    assert set(report.by_campaign["campaign"]) == {"A", "B"}  # B was active a week before


def test_other_zone_and_daylight_saving(builder: LedgerBuilder) -> None:
    start, end = day_bounds(date(2026, 11, 1), "America/New_York")  # clocks go back: 25 hours
    assert end - start == 25 * 3600
    cid, run = builder.campaign("ny", ["+12125550101"], at=start, timezone="America/New_York")
    builder.call(cid, run, "+12125550101", "a1", at=end - 100, duration=60)  # ends 23:59:21 local
    assert build_daily_report(builder.ledger, date(2026, 11, 1), "America/New_York").calls_placed == 1
    assert build_daily_report(builder.ledger, date(2026, 11, 1)).calls_placed == 0  # a different day in IST
