"""The campaign outcome report: definitions, the workbook read back, CSV, formula safety, time zones."""

from __future__ import annotations

import csv
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from report_ledgers import LedgerBuilder, epoch

from ccm_tasks.reports import (
    UnknownCampaign,
    build_campaign_report,
    build_daily_report,
    campaign_report_markdown,
    campaign_report_table,
    write_campaign_report,
)
from ccm_tasks.reports import xlsx as xlsx_module

PHONES = [f"+9199531234{i:02d}" for i in range(8)]
INJECTIONS = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"]
NOW = epoch("2026-11-21T02:00:00Z")


@pytest.fixture
def mixed(builder: LedgerBuilder) -> LedgerBuilder:
    """One campaign with every customer outcome: completed, retry due, unknown, stuck, in progress,
    not attempted, withdrawn; spreadsheet columns that try formula injection."""
    extras: list[dict[str, str | None]] = [
        {"name": INJECTIONS[i % len(INJECTIONS)], "city": f"City {i}", "agent": f"note {i}"}
        for i in range(len(PHONES))]
    extras[6]["city"] = "Pune\x07"  # a control character Excel cannot hold
    cid, run = builder.campaign("mixed", PHONES, at=epoch("2026-11-20T23:00:00Z"), extras=extras,
                                input_summary={"rows_read": 12, "valid": 8, "rejected": 2, "duplicates": 1,
                                               "suppressed": 1, "agents": 3, "agents_rejected": 0})
    b = builder
    # 0: completed at 2026-11-20T23:30Z = 05:00 IST on the 21st, with a recording.
    b.call(cid, run, PHONES[0], "a1", at=epoch("2026-11-20T23:30:00Z"), talk=125, duration=200,
           recordings=["https://rec.example/1.mp3", "https://rec.example/1b.mp3"])
    # 1: refused once (agent busy), then unanswered: a retry is due.
    b.rejected(cid, run, PHONES[1], "a2", at=epoch("2026-11-20T23:31:00Z"))
    b.call(cid, run, PHONES[1], "a2", at=epoch("2026-11-20T23:32:00Z"), status="customer_unanswered",
           talk=None, duration=40, customer_state="pending")
    # 2: unanswered, then completed on the second attempt by another agent.
    b.call(cid, run, PHONES[2], "a1", at=epoch("2026-11-20T23:35:00Z"), status="customer_unanswered",
           talk=0, duration=30, customer_state="pending")
    b.call(cid, run, PHONES[2], "a3", at=epoch("2026-11-21T00:10:00Z"), talk=300, duration=400,
           attempt_no=2, customer_attempts=2, recordings=["https://rec.example/2.mp3"])
    # 3: Make Call outcome unknown.
    b.unknown(cid, run, PHONES[3], "a2", at=epoch("2026-11-20T23:40:00Z"))
    # 4: stuck call; 5: Make Call in flight.
    b.stuck(cid, run, PHONES[4], "a3", at=epoch("2026-11-20T23:45:00Z"))
    b.in_flight(cid, run, PHONES[5], "a1", at=epoch("2026-11-21T01:00:00Z"))
    # 6: never dialled; 7: withdrawn (put on the do-not-call list).
    b.withdraw(cid, PHONES[:7], epoch("2026-11-21T01:30:00Z"))
    return builder


def _rows(path: Path, sheet: str) -> tuple[list[str], list[dict[str, Any]]]:
    ws = openpyxl.load_workbook(path)[sheet]
    values = list(ws.iter_rows(values_only=True))
    header = [str(h) for h in values[0]]
    return header, [dict(zip(header, row, strict=True)) for row in values[1:]]


def _csv(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_outcomes_follow_the_definitions(mixed: LedgerBuilder) -> None:
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    out = report.outcomes.set_index("customer_contact_uri")
    assert list(out["final_status"]) == ["completed", "customer_unanswered", "completed", "unknown", "stuck",
                                         "in_progress", "not_attempted", "withdrawn"]
    assert list(out["retry_pending"]) == [False, True, False, False, False, False, False, False]
    # attempts that may have rung: not the refused one, not the one in flight
    assert list(out["attempts"]) == [1, 1, 2, 1, 1, 0, 0, 0]
    assert out.loc[PHONES[2], "agent"] == "a3" and out.loc[PHONES[2], "agent_name"] == "Agent a3"
    assert out.loc[PHONES[2], "first_attempt"] == pd.Timestamp("2026-11-21 05:05:00")
    assert out.loc[PHONES[2], "last_attempt"] == pd.Timestamp("2026-11-21 05:40:00")
    assert out.loc[PHONES[1], "first_attempt"] == pd.Timestamp("2026-11-21 05:02:00")  # not the refused one
    assert list(out["talk_time_s"]) == [125, 0, 300, 0, 0, 0, 0, 0]
    assert out.loc[PHONES[0], "recordings"] == "https://rec.example/1.mp3 https://rec.example/1b.mp3"
    assert pd.isna(out.loc[PHONES[3], "last_call_sid"])  # unknown outcome: no call sid
    assert out.loc[PHONES[0], "source_row"] == 2 and out.loc[PHONES[0], "source_sheet"] == "Sheet1"
    # the input's extra columns first, in their order; one named like ours is renamed
    assert list(report.outcomes.columns[:3]) == ["name", "city", "agent (input)"]
    assert report.extra_columns == ("name", "city", "agent (input)")
    assert report.measure("connect rate (completed / attempted customers)") == pytest.approx(2 / 6)
    assert report.measure("customers with a retry still due") == 1
    assert report.measure("talk time, completed calls") == 425
    assert report.measure("median talk time, completed calls") == pytest.approx(212.5)
    assert report.measure("rejected input rows") == 2 and report.measure("suppressed (do-not-call)") == 1
    assert report.run_date == date(2026, 11, 21)  # the run started 04:30 IST on the 21st


def test_agents_follow_the_definitions(mixed: LedgerBuilder) -> None:
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    agents = report.agents.set_index("agent")
    assert agents["attempts"].to_dict() == {"a1": 3, "a2": 2, "a3": 2}  # in-flight counts, refused not
    assert agents["rejected"].to_dict() == {"a1": 0, "a2": 1, "a3": 0}
    assert agents["completed"].to_dict() == {"a1": 1, "a2": 0, "a3": 1}
    assert agents.loc["a1", "connect_rate"] == pytest.approx(1 / 3)
    assert agents["talk_time_s"].to_dict() == {"a1": 125, "a2": 0, "a3": 300}
    # a1: 206 s + 36 s terminal calls, the in-flight one from 01:00Z to NOW (3600 s)
    assert agents.loc["a1", "time_busy_s"] == pytest.approx(206 + 36 + 3600)
    # a2: refused 0.5 s + 46 s + unknown outcome held until its 600 s quarantine ended
    assert agents.loc["a2", "time_busy_s"] == pytest.approx(0.5 + 46 + 600)
    span = NOW - epoch("2026-11-20T23:30:00Z")  # calls still open: the span runs to "as of"
    assert agents.loc["a1", "utilisation"] == pytest.approx((206 + 36 + 3600) / span)
    assert (agents["utilisation"] <= 1).all()


def test_workbook_round_trip_matches_the_ledger(mixed: LedgerBuilder) -> None:
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    csv_path, xlsx_path = write_campaign_report(report)
    assert xlsx_path == Path(xlsx_path.parent.parent.parent / "mixed" / "2026-11-21" / "outcomes.xlsx")
    wb = openpyxl.load_workbook(xlsx_path)
    assert wb.sheetnames == ["Outcomes", "Summary", "Agents", "Attempts"]

    header, outcomes = _rows(xlsx_path, "Outcomes")
    assert header == ["name", "city", "agent (input)", "customer_contact_uri", "final_status",
                      "retry_pending", "attempts", "agent", "agent_name", "last_call_sid",
                      "first_attempt (Asia/Kolkata)", "last_attempt (Asia/Kolkata)", "talk_time",
                      "recordings", "source_file", "source_sheet", "source_row"]
    assert len(outcomes) == mixed.ledger.count("customers")
    with mixed.ledger.read() as conn:
        ledger_talk = conn.exec_driver_sql("SELECT SUM(COALESCE(total_talk_time, 0)) FROM attempts").scalar()
    assert sum((r["talk_time"] for r in outcomes), timedelta()) == timedelta(seconds=ledger_talk)
    assert outcomes[6]["city"] == "Pune"  # the control character was dropped, the rest kept

    _, attempts = _rows(xlsx_path, "Attempts")
    assert len(attempts) == mixed.ledger.count("attempts")
    refused_count = mixed.ledger.count("attempts", state="rejected")
    assert [r["state"] for r in attempts].count("rejected") == refused_count
    assert sum((r["talk_time"] for r in attempts), timedelta()) == timedelta(seconds=ledger_talk)
    refused = next(r for r in attempts if r["state"] == "rejected")
    assert (refused["error_category"], refused["error_code"]) == ("agent_busy", 10706)
    assert [r["attempt_id"] for r in attempts if r["stuck"]] == [
        int(report.attempts.loc[report.attempts["stuck"], "attempt_id"].iloc[0])]

    summary = wb["Summary"]
    counts = {}
    for status, customers, share in summary.iter_rows(min_row=2, max_row=8, max_col=3, values_only=True):
        counts[status] = (customers, share)
    assert counts == {"completed": (2, 0.25), "customer_unanswered": (1, 0.125), "unknown": (1, 0.125),
                      "stuck": (1, 0.125), "in_progress": (1, 0.125), "not_attempted": (1, 0.125),
                      "withdrawn": (1, 0.125)}
    measures = {row[0]: row[1] for row in summary.iter_rows(min_row=10, max_col=2, values_only=True)
                if row[0]}
    assert measures["talk time, completed calls"] == timedelta(seconds=425)
    assert measures["duplicate input rows"] == 1
    assert measures["runs"] == 1
    with zipfile.ZipFile(xlsx_path) as package:  # openpyxl does not load charts back; the part is there
        chart = package.read("xl/charts/chart1.xml").decode()
    assert "barChart" in chart and "Summary" in chart

    header, agents = _rows(xlsx_path, "Agents")
    assert header[:6] == ["agent", "agent_name", "attempts", "completed", "connect_rate", "rejected"]
    assert {r["agent"]: r["attempts"] for r in agents} == {"a1": 3, "a2": 2, "a3": 2}
    assert sum((r["talk_time"] for r in agents), timedelta()) == measures["talk time, completed calls"]

    rows = _csv(csv_path)
    assert len(rows) == len(outcomes)
    assert list(rows[0])[:3] == ["name", "city", "agent (input)"]
    assert "talk_time_s" in rows[0] and "first_attempt (Asia/Kolkata)" in rows[0]
    assert sum(int(r["talk_time_s"]) for r in rows) == ledger_talk
    assert [r["retry_pending"] for r in rows][:2] == ["FALSE", "TRUE"]


def test_formatting_header_frozen_filtered_durations_dates(mixed: LedgerBuilder) -> None:
    _, xlsx_path = write_campaign_report(build_campaign_report(mixed.ledger, "mixed", now=NOW))
    wb = openpyxl.load_workbook(xlsx_path)
    expected_filter = {"Outcomes": "A1:Q9", "Summary": "A1:C8", "Agents": "A1:J4", "Attempts": "A1:X9"}
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2", ws.title
        assert ws.auto_filter.ref == expected_filter[ws.title]
        assert all(cell.font.bold for cell in ws[1] if cell.value is not None), ws.title
    outcomes = wb["Outcomes"]
    talk, first = outcomes["M2"], outcomes["K2"]
    assert talk.value == timedelta(seconds=125) and talk.number_format == "[h]:mm:ss"
    assert first.value == datetime(2026, 11, 21, 5, 0) and first.number_format == "yyyy-mm-dd hh:mm:ss"
    assert outcomes.column_dimensions["K"].width >= 20  # a time fits
    agents = wb["Agents"]
    for col in "GHI":  # talk time, mean talk time, time busy
        assert agents[f"{col}2"].number_format == "[h]:mm:ss"
        assert isinstance(agents[f"{col}2"].value, timedelta)
    assert agents["E2"].number_format == "0.0%"
    assert wb["Attempts"]["P2"].number_format == "yyyy-mm-dd"  # daily_report_date


def test_formula_injection_is_neutralised_in_csv_and_xlsx(mixed: LedgerBuilder) -> None:
    csv_path, xlsx_path = write_campaign_report(build_campaign_report(mixed.ledger, "mixed", now=NOW))
    rows = _csv(csv_path)
    for i, payload in enumerate(INJECTIONS):
        assert rows[i]["name"] == "'" + payload  # CR survives inside a quoted CSV field
    assert rows[0]["customer_contact_uri"] == "'" + PHONES[0]  # Excel would make it 9.19953E+11
    assert rows[0]["city"] == "City 0"

    ws = openpyxl.load_workbook(xlsx_path)["Outcomes"]
    for i, payload in enumerate(INJECTIONS):
        cell = ws.cell(row=i + 2, column=1)
        assert cell.data_type != "f" and cell.data_type == "s"
        assert cell.value == payload  # shown as typed, no visible quote
        assert cell.quotePrefix  # and editing it in Excel keeps it text
    phone = ws["D2"]
    assert (phone.value, phone.data_type, phone.quotePrefix) == (PHONES[0], "s", True)
    assert not ws["B2"].quotePrefix  # ordinary text untouched
    for sheet in openpyxl.load_workbook(xlsx_path).worksheets:
        assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_times_are_in_the_campaign_zone(builder: LedgerBuilder) -> None:
    cid, run = builder.campaign("india", ["+919900000001"], at=epoch("2026-11-20T23:00:00Z"))
    builder.call(cid, run, "+919900000001", "a1", at=epoch("2026-11-20T23:30:00Z"), duration=60)
    ny, ny_run = builder.campaign("newyork", ["+12125550100"], at=epoch("2026-11-20T23:00:00Z"),
                                  timezone="America/New_York")
    builder.call(ny, ny_run, "+12125550100", "a2", at=epoch("2026-11-20T23:30:00Z"), duration=60)

    india = build_campaign_report(builder.ledger, "india")
    assert india.outcomes.loc[0, "first_attempt"] == pd.Timestamp("2026-11-21 05:00:00")
    assert india.attempts.loc[0, "daily_report_date"] == pd.Timestamp("2026-11-21")
    _, xlsx_path = write_campaign_report(india)
    assert xlsx_path.parent.name == "2026-11-21"
    assert openpyxl.load_workbook(xlsx_path)["Outcomes"]["H2"].value == datetime(2026, 11, 21, 5, 0)

    newyork = build_campaign_report(builder.ledger, "newyork")
    assert newyork.outcomes.loc[0, "first_attempt"] == pd.Timestamp("2026-11-20 18:30:00")
    assert newyork.run_date == date(2026, 11, 20)
    assert "first_attempt (America/New_York)" in newyork.outcomes_table().header("first_attempt")

    # The call ended 05:01:01 IST on the 21st: the daily report of the 21st counts it, not the 20th's.
    assert build_daily_report(builder.ledger, date(2026, 11, 21)).by_campaign.set_index("campaign").loc[
        "india", "attempts"] == 1
    assert "india" not in set(build_daily_report(builder.ledger, date(2026, 11, 20)).by_campaign["campaign"])


def test_times_truncate_to_the_second(builder: LedgerBuilder) -> None:
    cid, run = builder.campaign("late", ["+919900000002"], at=epoch("2026-11-21T18:00:00Z"))
    # Created 23:59:59.7 IST on the 21st: shown 23:59:59 (never rounded into the next day).
    builder.in_flight(cid, run, "+919900000002", "a1", at=epoch("2026-11-21T18:29:59Z") + 0.7)
    report = build_campaign_report(builder.ledger, "late")
    assert report.outcomes.loc[0, "first_attempt"] == pd.Timestamp("2026-11-21 23:59:59")


def test_markdown_and_artifact_table(mixed: LedgerBuilder) -> None:
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    text = campaign_report_markdown(report)
    assert "| completed | 2 | 25.0% |" in text
    assert "| withdrawn | 1 | 12.5% |" in text
    assert "## Agents" in text and "| a1 | Agent a1 | 3 | 1 | 33.3% | 0 | 0:02:05 |" in text
    assert "| talk time, completed calls | 0:07:05 |" in text
    table = campaign_report_table(report)
    assert table[0] == {"final_status": "completed", "customers": 2, "share_pct": 25.0}
    assert [r["final_status"] for r in table][-5:] == ["unknown", "stuck", "in_progress", "not_attempted",
                                                       "withdrawn"]


def test_rebuilding_gives_the_same_report(mixed: LedgerBuilder) -> None:
    first = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    second = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    for name in ("outcomes", "attempts", "statuses", "agents", "runs"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert first.measures == second.measures


def test_unknown_campaign(builder: LedgerBuilder) -> None:
    with pytest.raises(UnknownCampaign, match="no campaign named 'nope'"):
        build_campaign_report(builder.ledger, "nope")


def test_empty_campaign_writes_headers_only(builder: LedgerBuilder) -> None:
    builder.campaign("empty", ["+919900000003"], at=epoch("2026-11-21T03:00:00Z"))
    report = build_campaign_report(builder.ledger, "empty")
    assert report.agents.empty and report.attempts.empty
    csv_path, xlsx_path = write_campaign_report(report)
    assert _csv(csv_path)[0]["final_status"] == "not_attempted"
    wb = openpyxl.load_workbook(xlsx_path)
    assert wb["Attempts"].max_row == 1 and wb["Agents"].max_row == 1
    assert "No agent was dialled." in campaign_report_markdown(report)


def test_a_table_longer_than_a_sheet_continues_on_the_next(mixed: LedgerBuilder,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx_module, "EXCEL_MAX_ROWS", 4)  # 3 data rows per sheet
    _, xlsx_path = write_campaign_report(build_campaign_report(mixed.ledger, "mixed", now=NOW))
    wb = openpyxl.load_workbook(xlsx_path)
    parts = ["Outcomes", "Outcomes (2)", "Outcomes (3)"]
    assert [n for n in wb.sheetnames if n.startswith("Outcomes")] == parts
    phones = [wb[n].cell(row=r, column=4).value for n in parts for r in range(2, wb[n].max_row + 1)]
    assert phones == PHONES
    assert wb["Outcomes (3)"].auto_filter.ref == "A1:Q3" and wb["Outcomes (3)"].freeze_panes == "A2"
