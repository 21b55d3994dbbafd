"""The campaign outcome report: definitions, the workbook read back, CSV, formula safety, time zones,
the manager's Summary and the figure vocabulary."""

from __future__ import annotations

import csv
import re
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from report_ledgers import LedgerBuilder, epoch
from sqlalchemy import update

from ccm_tasks.ledger import schema as t
from ccm_tasks.reports import (
    FIGURES,
    UnknownCampaign,
    build_campaign_report,
    build_daily_report,
    campaign_report_markdown,
    campaign_report_table,
    figures_json,
    headline_figures,
    write_campaign_report,
)
from ccm_tasks.reports import xlsx as xlsx_module
from ccm_tasks.reports.glossary import HEADLINE, OUTCOME_LABELS, run_status_label

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
    first = b.call(cid, run, PHONES[0], "a1", at=epoch("2026-11-20T23:30:00Z"), talk=125, duration=200,
                   recordings=["https://rec.example/1.mp3", "https://rec.example/1b.mp3"])
    b.wrap_up(first, 30)  # after-call work the dialler gave a1
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


def _summary_blocks(ws: Any) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """The Summary's blocks read back: heading text -> {first cell: (the other cells)}."""
    blocks: dict[str, dict[Any, tuple[Any, ...]]] = {}
    current: dict[Any, tuple[Any, ...]] | None = None
    for row in ws.iter_rows(min_row=1, max_col=3):
        a = row[0].value
        if a is None:
            current = None
        elif row[0].font.bold and row[0].fill.fgColor.rgb not in (None, "00000000"):
            current = blocks.setdefault(str(a), {})
        elif current is not None:
            current[a] = tuple(c.value for c in row[1:])
    return blocks


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
    # reach rate (per customer): reached 0 and 2 / attempted 0-5 (not 6 never dialled, not 7 withdrawn)
    assert report.figure("customers_attempted") == 6 and report.figure("customers_reached") == 2
    assert report.figure("reach_rate") == pytest.approx(2 / 6)
    # answer rate (per call): 2 completed / 6 placed (not the refused one, not the one in flight)
    assert report.figure("calls_placed") == 6 and report.figure("calls_answered") == 2
    assert report.figure("answer_rate") == pytest.approx(2 / 6)
    assert report.figure("attempts_per_customer") == pytest.approx(6 / 6)
    assert report.figure("still_to_call") == 4  # retry due, stuck, in flight, never dialled
    assert report.figure("retries_due") == 1
    assert report.figure("talk_time") == 425
    assert report.figure("average_talk_time") == pytest.approx(212.5)
    assert report.figure("median_talk_time") == pytest.approx(212.5)
    assert report.figure("rows_rejected") == 2 and report.figure("rows_suppressed") == 1
    assert report.run_date == date(2026, 11, 21)  # the run started 04:30 IST on the 21st


def test_the_report_says_why_a_pending_customer_waits(builder: LedgerBuilder) -> None:
    """Held by the contact limit (a refused claim: the engine records the hold and its end), waiting
    for the retry interval, or callable now; a hold that lapsed or came before a later call is over."""
    phones = PHONES[:5]
    cid, run = builder.campaign("waits", phones, at=epoch("2026-11-20T23:00:00Z"))
    b, ledger = builder, builder.ledger
    ids = [b.customer_ids[(cid, p)] for p in phones]
    soon, later = epoch("2026-11-21T03:00:00Z"), epoch("2026-11-21T09:00:00Z")
    # 0: called once (unanswered), then held by the limit until `later`.
    b.call(cid, run, phones[0], "a1", at=epoch("2026-11-20T23:30:00Z"), status="customer_unanswered",
           talk=0, duration=30, customer_state="pending")
    ledger.add_event("contact_limit_hold", epoch("2026-11-21T00:00:00Z"), campaign_id=cid,
                     data={"customer_id": ids[0], "until": later})
    # 1: never called here, held (another campaign called the number) until `soon`.
    ledger.add_event("contact_limit_hold", epoch("2026-11-21T00:10:00Z"), campaign_id=cid,
                     data={"customer_id": ids[1], "until": soon})
    # 2: unanswered, its retry due at `soon`.
    b.call(cid, run, phones[2], "a2", at=epoch("2026-11-20T23:40:00Z"), status="customer_unanswered",
           talk=0, duration=30, customer_state="pending")
    # 3: held once, but called after the hold (it lapsed): only its retry is waited for.
    ledger.add_event("contact_limit_hold", epoch("2026-11-20T23:10:00Z"), campaign_id=cid,
                     data={"customer_id": ids[3], "until": epoch("2026-11-20T23:20:00Z")})
    b.call(cid, run, phones[3], "a3", at=epoch("2026-11-20T23:50:00Z"), status="customer_unanswered",
           talk=0, duration=30, customer_state="pending")
    # 4: never called, nothing held: callable now.
    with ledger.write() as conn:  # as the engine leaves them: the hold's end, or the retry's time
        for i, until in ((0, later), (1, soon), (2, soon), (3, soon)):
            conn.execute(update(t.customers).where(t.customers.c.id == ids[i]).values(next_attempt_at=until))
    report = build_campaign_report(ledger, "waits", now=NOW)
    out = report.outcomes.set_index("customer_contact_uri")
    assert list(out["waiting_for"].fillna("")) == ["contact limit", "contact limit", "retry interval",
                                                   "retry interval", ""]
    assert list(out["next_call_after"].astype("object").where(out["next_call_after"].notna(), None)) == [
        pd.Timestamp("2026-11-21 14:30:00"), pd.Timestamp("2026-11-21 08:30:00"),
        pd.Timestamp("2026-11-21 08:30:00"), pd.Timestamp("2026-11-21 08:30:00"), None]
    assert report.figure("held_by_contact_limit") == 2
    assert figures_json(report.figures)["held_by_contact_limit"]["value"] == 2
    # After `soon`, customer 1's hold has lapsed (and 2's and 3's retries are due): only 0 still waits.
    late = build_campaign_report(ledger, "waits", now=epoch("2026-11-21T04:00:00Z"))
    assert list(late.outcomes["waiting_for"].fillna("")) == ["contact limit", "", "", "", ""]


def test_agents_follow_the_definitions(mixed: LedgerBuilder) -> None:
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    agents = report.agents.set_index("agent")
    # calls placed, as everywhere: neither the refused Make Call nor the one still in flight
    assert agents["calls_placed"].to_dict() == {"a1": 2, "a2": 2, "a3": 2}
    assert agents["calls_refused"].to_dict() == {"a1": 0, "a2": 1, "a3": 0}
    assert agents["calls_answered"].to_dict() == {"a1": 1, "a2": 0, "a3": 1}
    assert agents.loc["a1", "answer_rate"] == pytest.approx(1 / 2)
    assert agents["talk_time_s"].to_dict() == {"a1": 125, "a2": 0, "a3": 300}
    assert agents.loc["a3", "average_talk_time_s"] == pytest.approx(300)
    # a1: 206 s + 36 s terminal calls, the in-flight one from 01:00Z to NOW (3600 s): it holds a1
    assert agents.loc["a1", "busy_time_s"] == pytest.approx(206 + 36 + 3600)
    # a2: refused 0.5 s + 46 s + unknown outcome held until its 600 s quarantine ended
    assert agents.loc["a2", "busy_time_s"] == pytest.approx(0.5 + 46 + 600)
    assert agents["wrap_up_time_s"].to_dict() == {"a1": 30, "a2": 0, "a3": 0}
    # the run is still going: each agent's time in runs runs from its start to "as of"
    in_run = NOW - epoch("2026-11-20T23:00:00Z")
    assert agents["time_in_runs_s"].to_dict() == {"a1": in_run, "a2": in_run, "a3": in_run}
    assert agents.loc["a1", "utilisation"] == pytest.approx((206 + 36 + 3600 + 30) / in_run)
    assert (agents["utilisation"] <= 1).all()
    totals = report.agent_totals
    assert (totals["calls_placed"], totals["calls_answered"], totals["talk_time_s"]) == (6, 2, 425)
    assert totals["talk_time_s"] == report.figure("talk_time")  # the agents add up to the Summary
    assert totals["utilisation"] == pytest.approx(
        (agents["busy_time_s"].sum() + 30) / (3 * in_run))


def test_time_in_runs_counts_the_runs_an_agent_worked(builder: LedgerBuilder) -> None:
    """A finished run counts start to end; a run killed without an end (interrupted) to its last
    call's end, wrap-up included; a run the agent had no call in does not count for it."""
    phones = [f"+9199000001{i:02d}" for i in range(4)]
    cid, run1 = builder.campaign("runs", phones, at=epoch("2026-11-21T04:00:00Z"))
    call = builder.call(cid, run1, phones[0], "a1", at=epoch("2026-11-21T04:10:00Z"), duration=100)
    builder.wrap_up(call, 20)
    builder.finish_run(run1, epoch("2026-11-21T05:00:00Z"), "window_closed", "the window closed at 10:30")
    run2 = builder.start_run(cid, epoch("2026-11-22T04:00:00Z"))
    last = builder.call(cid, run2, phones[1], "a1", at=epoch("2026-11-22T04:30:00Z"), duration=60,
                        confirm_delay=4)
    builder.wrap_up(last, 15)
    builder.call(cid, run2, phones[2], "a2", at=epoch("2026-11-22T04:20:00Z"), duration=60)
    builder.mark_run(run2, "interrupted")  # killed; a later run noticed
    report = build_campaign_report(builder.ledger, "runs", now=epoch("2026-11-23T00:00:00Z"))
    agents = report.agents.set_index("agent")
    run2_end = epoch("2026-11-22T04:30:00Z") + 1 + 60 + 4 + 15  # a1's last call confirmed, + wrap-up
    run2_start = epoch("2026-11-22T04:00:00Z")
    assert agents.loc["a1", "time_in_runs_s"] == pytest.approx(3600 + run2_end - run2_start)
    assert agents.loc["a2", "time_in_runs_s"] == pytest.approx(run2_end - run2_start)
    assert agents.loc["a1", "wrap_up_time_s"] == 35
    busy = agents.loc["a1", "busy_time_s"]
    assert agents.loc["a1", "utilisation"] == pytest.approx((busy + 35) / agents.loc["a1", "time_in_runs_s"])
    assert list(report.runs["status"]) == ["Calling window closed",
                                           "Interrupted (killed; noticed by a later run)"]
    assert list(report.runs["status_code"]) == ["window_closed", "interrupted"]


def test_a_killed_run_shows_as_crashed_not_running(builder: LedgerBuilder, tmp_path: Path) -> None:
    """A run whose process died, with no later run to record it: crashed, ended at its last heartbeat."""
    cid, run = builder.campaign("killed", PHONES[:2], at=epoch("2026-11-20T23:00:00Z"))
    builder.call(cid, run, PHONES[0], "a1", at=epoch("2026-11-20T23:30:00Z"), talk=60, duration=90)
    ledger = builder.ledger
    ledger.write_progress(run, builder.holder, {"time": epoch("2026-11-20T23:45:00Z")})
    ledger.claim_campaign(cid, builder.holder, epoch("2026-11-20T23:00:00Z"))
    assert build_campaign_report(ledger, "killed", now=NOW).runs.loc[0, "status_code"] == "running"
    with ledger.write() as conn:  # the holder's process is gone: another machine, silent for a day
        conn.execute(update(t.holders).where(t.holders.c.holder_id == builder.holder)
                     .values(hostname="gone.example", heartbeat_at=0.0))
    report = build_campaign_report(ledger, "killed", now=NOW)
    runs = report.runs
    assert (runs.loc[0, "status_code"], runs.loc[0, "status"]) == ("crashed", run_status_label("crashed"))
    assert runs.loc[0, "ended"] == pd.Timestamp("2026-11-21 05:15:00")  # its last heartbeat, IST
    assert "died" in runs.loc[0, "reason"]
    assert report.status == "crashed"
    _csv_path, xlsx_path = write_campaign_report(report, tmp_path / "out")
    _header, rows = _rows(xlsx_path, "Runs")
    cells = [str(v) for v in rows[0].values()]
    assert run_status_label("crashed") in cells and run_status_label("running") not in cells, rows


def test_operators_controls_are_in_the_report(mixed: LedgerBuilder) -> None:
    """Who paused, resumed, stopped and requeued the campaign, when (in its zone) and why: the
    Controls sheet, the console's table and the Markdown summary all say it."""
    from ccm_tasks import control

    ledger = mixed.ledger
    cid = ledger.campaign_id("mixed")
    assert cid is not None
    ledger.set_control(cid, "pause", by="alice", reason="supervisor briefing",
                       now=epoch("2026-11-21T00:00:00Z"))
    ledger.set_control(cid, "run", by="alice", reason="", now=epoch("2026-11-21T00:20:00Z"))
    ledger.set_control(cid, "stop", by="bob", reason="end of shift", now=epoch("2026-11-21T01:40:00Z"))
    requeued = control.requeue_unknown(ledger, "mixed", by="carol", reason="agent confirmed no ring")
    assert requeued == [PHONES[3]]
    report = build_campaign_report(ledger, "mixed", now=NOW)
    _, xlsx_path = write_campaign_report(report)
    header, rows = _rows(xlsx_path, "Controls")
    assert header == ["When (Asia/Kolkata)", "Action", "By", "Why", "Customers"]
    assert [(r["Action"], r["By"], r["Why"]) for r in rows] == [
        ("paused", "alice", "supervisor briefing"), ("resumed", "alice", None),
        ("stopped", "bob", "end of shift"), ("requeued unknown outcomes", "carol", "agent confirmed no ring")]
    assert rows[0]["When (Asia/Kolkata)"] == datetime(2026, 11, 21, 5, 30)  # 00:00Z in the campaign's zone
    assert rows[3]["Customers"] == 1 and rows[0]["Customers"] is None
    markdown = campaign_report_markdown(report)
    assert "## Controls" in markdown and "end of shift" in markdown and "bob" in markdown


def test_workbook_round_trip_matches_the_ledger(mixed: LedgerBuilder) -> None:
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    csv_path, xlsx_path = write_campaign_report(report)
    assert xlsx_path == Path(xlsx_path.parent.parent.parent / "mixed" / "2026-11-21" / "outcomes.xlsx")
    wb = openpyxl.load_workbook(xlsx_path)
    assert wb.sheetnames == ["Summary", "Agents", "By hour", "Outcomes", "Attempts", "Runs", "Controls",
                             "Glossary"]

    header, outcomes = _rows(xlsx_path, "Outcomes")
    assert header == ["name", "city", "agent (input)", "customer_contact_uri", "final_status", "outcome",
                      "retry_pending", "waiting_for", "next_call_after (Asia/Kolkata)", "attempts", "agent",
                      "agent_name", "last_call_sid",
                      "first_attempt (Asia/Kolkata)", "last_attempt (Asia/Kolkata)", "talk_time",
                      "recordings", "source_file", "source_sheet", "source_row"]
    assert len(outcomes) == mixed.ledger.count("customers")
    with mixed.ledger.read() as conn:
        ledger_talk = conn.exec_driver_sql("SELECT SUM(COALESCE(total_talk_time, 0)) FROM attempts").scalar()
    assert sum((r["talk_time"] for r in outcomes), timedelta()) == timedelta(seconds=ledger_talk)
    assert outcomes[6]["city"] == "Pune"  # the control character was dropped, the rest kept
    assert [r["outcome"] for r in outcomes][:2] == ["Customer answered", "Customer did not answer"]

    _, attempts = _rows(xlsx_path, "Attempts")
    assert len(attempts) == mixed.ledger.count("attempts")
    refused_count = mixed.ledger.count("attempts", state="rejected")
    assert [r["state"] for r in attempts].count("rejected") == refused_count
    assert sum((r["talk_time"] for r in attempts), timedelta()) == timedelta(seconds=ledger_talk)
    refused = next(r for r in attempts if r["state"] == "rejected")
    assert (refused["error_category"], refused["error_code"]) == ("agent_busy", 10706)
    assert [r["attempt_id"] for r in attempts if r["stuck"]] == [
        int(report.attempts.loc[report.attempts["stuck"], "attempt_id"].iloc[0])]

    summary = _summary_blocks(wb["Summary"])
    assert summary["Outcome"] == {
        "Customer answered": (2, 0.25), "Customer did not answer": (1, 0.125),
        "Outcome unknown (may have rung)": (1, 0.125), "Call stuck (no end reported)": (1, 0.125),
        "Being called now": (1, 0.125), "Not called yet": (1, 0.125), "Withdrawn from the list": (1, 0.125),
        "All customers": (8, 1.0)}
    figures = {**summary["Headline figure"], **summary["More figures"]}
    assert figures["Talk time"][0] == timedelta(seconds=425)
    assert figures["Duplicate rows"][0] == 1
    assert figures["Runs"][0] == 1
    with zipfile.ZipFile(xlsx_path) as package:  # openpyxl does not load charts back; the parts are there
        charts = [package.read(f"xl/charts/chart{i}.xml").decode() for i in (1, 2, 3)]
    assert all("barChart" in chart for chart in charts)
    assert "Summary" in charts[0] and "'By hour'" in charts[1] and "Summary" in charts[2]

    header, agents = _rows(xlsx_path, "Agents")
    assert header[:6] == ["Agent", "Name", "Calls placed", "Calls answered", "Answer rate",
                          "Make Calls refused"]
    *agents, total = agents
    assert {r["Agent"]: r["Calls placed"] for r in agents} == {"a1": 2, "a2": 2, "a3": 2}
    assert sum((r["Talk time"] for r in agents), timedelta()) == figures["Talk time"][0]
    assert (total["Agent"], total["Calls placed"], total["Talk time"]) == ("All agents", 6,
                                                                           timedelta(seconds=425))

    rows = _csv(csv_path)
    assert len(rows) == len(outcomes)
    assert list(rows[0])[:3] == ["name", "city", "agent (input)"]
    assert "talk_time_s" in rows[0] and "first_attempt (Asia/Kolkata)" in rows[0]
    assert sum(int(r["talk_time_s"]) for r in rows) == ledger_talk
    assert [r["retry_pending"] for r in rows][:2] == ["FALSE", "TRUE"]


def test_formatting_header_frozen_filtered_durations_dates(mixed: LedgerBuilder) -> None:
    _, xlsx_path = write_campaign_report(build_campaign_report(mixed.ledger, "mixed", now=NOW))
    wb = openpyxl.load_workbook(xlsx_path)
    # Table sheets: header frozen, filtered, bold; the Summary is laid out by hand (no filter).
    expected_filter = {"Outcomes": "A1:T9", "Agents": "A1:L4", "Attempts": "A1:Y9", "By hour": "A1:E2",
                       "Runs": "A1:F2", "Glossary": f"A1:C{len(FIGURES) + len(OUTCOME_LABELS) + 12}"}
    for title, ref in expected_filter.items():
        ws = wb[title]
        assert ws.freeze_panes == "A2", ws.title
        assert ws.auto_filter.ref == ref, ws.title
        assert all(cell.font.bold for cell in ws[1] if cell.value is not None), ws.title
    for ws in wb.worksheets:  # print-ready: landscape, one page wide, titled and numbered pages
        setup = ws.page_setup
        assert (setup.orientation, setup.fitToWidth, ws.sheet_properties.pageSetUpPr.fitToPage) == (
            "landscape", 1, True), ws.title
        assert setup.fitToHeight == (1 if ws.title == "Summary" else 0), ws.title
        assert ws.oddFooter.center.text == "Page &P of &N", ws.title
        assert ws.oddHeader.left.text == "mixed: call outcomes", ws.title
        if ws.title != "Summary":
            assert ws.print_title_rows == "$1:$1", ws.title  # the header row on every page
    outcomes = wb["Outcomes"]
    talk, first = outcomes["P2"], outcomes["N2"]
    assert talk.value == timedelta(seconds=125) and talk.number_format == "[h]:mm:ss"
    assert first.value == datetime(2026, 11, 21, 5, 0) and first.number_format == "yyyy-mm-dd hh:mm:ss"
    assert outcomes.column_dimensions["N"].width >= 20  # a time fits
    agents = wb["Agents"]
    for col in "GIJK":  # talk time, busy, wrap-up, time in runs (H, the average, is blank for a2)
        assert agents[f"{col}2"].number_format == "[h]:mm:ss"
        assert isinstance(agents[f"{col}2"].value, timedelta)
    assert agents["E2"].number_format == "0.0%"
    total = agents["A5"]
    assert total.value == "All agents" and total.font.bold and agents["G5"].font.bold
    assert agents["G5"].number_format == "[h]:mm:ss" and agents["G5"].value == timedelta(seconds=425)
    assert wb["Attempts"]["P2"].number_format == "yyyy-mm-dd"  # daily_report_date


def test_formula_injection_is_neutralised_in_csv_and_xlsx(mixed: LedgerBuilder) -> None:
    csv_path, xlsx_path = write_campaign_report(build_campaign_report(mixed.ledger, "mixed", now=NOW))
    rows = _csv(csv_path)
    for i, payload in enumerate(INJECTIONS):
        assert rows[i]["name"] == "'" + payload  # CR survives inside a quoted CSV field
    # A clean E.164 number in the phone column is re-importable as it is (it cannot carry a payload).
    assert [r["customer_contact_uri"] for r in rows] == PHONES
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
    assert openpyxl.load_workbook(xlsx_path)["Outcomes"]["K2"].value == datetime(2026, 11, 21, 5, 0)

    newyork = build_campaign_report(builder.ledger, "newyork")
    assert newyork.outcomes.loc[0, "first_attempt"] == pd.Timestamp("2026-11-20 18:30:00")
    assert newyork.run_date == date(2026, 11, 20)
    assert "first_attempt (America/New_York)" in newyork.outcomes_table().header("first_attempt")

    # The call ended 05:01:01 IST on the 21st: the daily report of the 21st counts it, not the 20th's.
    assert build_daily_report(builder.ledger, date(2026, 11, 21)).by_campaign.set_index("campaign").loc[
        "india", "calls_placed"] == 1
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
    assert "| Customer answered | 2 | 25.0% |" in text
    assert "| Withdrawn from the list | 1 | 12.5% |" in text
    assert "## Agents" in text and "| a1 | Agent a1 | 2 | 1 | 50.0% | 0 | 0:02:05 |" in text
    assert "| **All agents** | **3 agents** | **6** | **2** | **33.3%** |" in text
    assert f"| Talk time | 0:07:05 | {FIGURES['talk_time'].definition} |" in text
    assert f"| Reach rate | 33.3% | {FIGURES['reach_rate'].definition} |" in text
    assert "customer_unanswered" not in text  # codes are for machines
    table = campaign_report_table(report)
    assert table[0] == {"outcome": "Customer answered", "final_status": "completed", "customers": 2,
                        "share_pct": 25.0}
    assert [r["final_status"] for r in table][-5:] == ["unknown", "stuck", "in_progress", "not_attempted",
                                                       "withdrawn"]


def test_rebuilding_gives_the_same_report(mixed: LedgerBuilder) -> None:
    first = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    second = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    for name in ("outcomes", "attempts", "statuses", "agents", "hours", "runs"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert first.figures == second.figures


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
    assert wb["Outcomes (3)"].auto_filter.ref == "A1:T3" and wb["Outcomes (3)"].freeze_panes == "A2"


def test_headline_figures_come_from_the_glossary(mixed: LedgerBuilder) -> None:
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    figures = headline_figures(report)
    assert [f.name for f in figures] == list(HEADLINE)
    assert [f.label for f in figures] == ["Customers reached", "Reach rate", "Calls placed", "Answer rate",
                                          "Talk time", "Average talk time", "Calls per customer",
                                          "Still to call"]
    for f in figures:
        assert f.definition == FIGURES[f.name].definition and f.kind == FIGURES[f.name].kind
    assert [f.text for f in figures] == ["2", "33.3%", "6", "33.3%", "0:07:05", "0:03:32", "1.00", "4"]
    data = figures_json(figures)
    assert data["reach_rate"] == {"label": "Reach rate", "value": pytest.approx(1 / 3), "unit": "ratio",
                                  "text": "33.3%", "definition": FIGURES["reach_rate"].definition}
    assert data["talk_time"]["value"] == 425 and data["talk_time"]["unit"] == "seconds"
    assert data["calls_placed"]["value"] == 6 and data["calls_placed"]["unit"] == "count"


def test_summary_reads_at_a_glance(mixed: LedgerBuilder) -> None:
    """Title, period, zone and status first; headline figures with their definitions; outcomes in
    words; the agents; charts where a laptop screen shows them, the outcome chart without zeros."""
    mixed.finish_run(1, epoch("2026-11-21T01:40:00Z"), "window_closed", "the calling window closed")
    report = build_campaign_report(mixed.ledger, "mixed", now=NOW)
    _, xlsx_path = write_campaign_report(report)
    ws = openpyxl.load_workbook(xlsx_path)["Summary"]
    assert ws["A1"].value == "mixed: call outcomes" and ws["A1"].font.bold and ws["A1"].font.sz >= 14
    assert ws["A2"].value == ("Period: 2026-11-21 05:00:00 to 2026-11-21 07:30:00 (Asia/Kolkata). "
                              "Status: Calling window closed (the calling window closed).")
    blocks = _summary_blocks(ws)
    headline = blocks["Headline figure"]
    assert list(headline) == [FIGURES[n].label for n in HEADLINE]
    assert headline["Reach rate"] == (pytest.approx(1 / 3), FIGURES["reach_rate"].definition)
    assert headline["Answer rate"] == (pytest.approx(1 / 3), FIGURES["answer_rate"].definition)
    agents = blocks["Agents, most talk time first (top 3)"]
    assert list(agents) == ["Agent a3", "Agent a1", "Agent a2"]
    # a3: 406 s + the stuck call from 23:45Z to "as of" (8,100 s) in a run of 2:40 (9,600 s)
    assert agents["Agent a3"] == (timedelta(seconds=300), "2 calls placed, 50.0% answered, 88.6% utilisation")
    runs = blocks["Latest runs: started (Asia/Kolkata)"]
    assert runs == {datetime(2026, 11, 21, 4, 30): (timedelta(hours=2, minutes=40),
                                                    "Calling window closed: the calling window closed")}
    codes = {"customer_unanswered", "not_attempted", "in_progress", "withdrawn", "window_closed"}
    assert not codes & {c.value for row in ws.iter_rows() for c in row}  # words, not codes

    charts = {chart.title.tx.rich.p[0].r[0].t: chart for chart in ws._charts}
    assert list(charts) == ["Customers by outcome", "Calls by hour of the day", "Talk time per agent"]
    anchors = [(chart.anchor._from.col, chart.anchor._from.row) for chart in charts.values()]
    assert all(col == 4 for col, _ in anchors)  # column E, right of the text blocks (A-C, 130 wide)
    assert sum(ws.column_dimensions[c].width for c in "ABCD") <= 140  # on a 1366-pixel laptop screen
    assert anchors[0][1] <= 3  # the first chart at the top, beside the headline figures
    outcome_refs = charts["Customers by outcome"].series[0].val.numRef.f
    first, last = (int(n) for n in re.search(r"\$B\$(\d+):\$B\$(\d+)", outcome_refs).groups())  # type: ignore[union-attr]
    assert last - first + 1 == 7  # the 7 outcomes that occurred (of the 11 there are)
    hourly = charts["Calls by hour of the day"].series  # placed and answered, from the By hour sheet
    assert [s.val.numRef.f for s in hourly] == ["'By hour'!$B$2", "'By hour'!$C$2"]
    assert ws.print_area is not None and ws.page_setup.fitToHeight == 1
