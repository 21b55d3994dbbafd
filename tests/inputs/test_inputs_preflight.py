"""`ccm validate` and preflight(): the demo campaign, and campaigns that cannot run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ccm_tasks.cli import main
from ccm_tasks.inputs import load_campaign_inputs, load_definition, preflight
from ccm_tasks.inputs.preflight import estimate

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "campaigns" / "demo" / "demo.yaml"


def test_validate_demo_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rejects = tmp_path / "demo-rejects.csv"
    assert main(["validate", str(DEMO), "--rejects", str(rejects)]) == 0
    out = capsys.readouterr().out
    assert "Campaign 'demo'" in out
    assert re.search(r"customers.csv\s+200\s+7\s+2\s+3\s+188", out)
    assert re.search(r"customers.xlsx \[North\]\s+60\s+3\s+1\s+0\s+56", out)
    assert re.search(r"customers.xlsx \[South\]\s+60\s+0\s+3\s+0\s+57", out)
    assert re.search(r"total\s+320\s+10\s+6\s+3\s+301", out)
    assert "301 customers will be called; 19 of 320 rows will be skipped" in out
    assert "blank phone" in out and "scientific notation" in out
    assert "10 usable (sales: 5, support: 5); 2 rejected" in out
    assert "neither user_id nor contact_uri" in out and "duplicate user_id" in out
    assert "20 customers have one in the roster; 1 names an agent not in it" in out
    assert out.rstrip().endswith("OK: the campaign can run.")
    table = pd.read_csv(rejects, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert table["kind"].value_counts().to_dict() == {
        "rejected": 10, "duplicate": 6, "suppressed": 3, "agent_rejected": 1,
        "agent_duplicate": 1, "warning": 1, "dnc_rejected": 1}


def test_demo_inputs_from_python() -> None:
    inputs = load_campaign_inputs(DEMO)
    assert len(inputs.customers) == 301
    assert inputs.customers["customer_key"].is_unique
    assert [a.agent_key for a in inputs.agents] == [f"agent-{i:03d}" for i in range(1, 11)]
    assert inputs.agents[0].contact_uri == "+919800000001"
    assert {a.group for a in inputs.agents} == {"sales", "support"}
    assert inputs.customers["preferred_agent"].notna().sum() == 20
    assert set(inputs.customers["source_sheet"]) == {"", "North", "South"}


def test_unrunnable_campaign_exits_1_with_one_line_error(
    tmp_path: Path, make_campaign: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "customers.csv").write_text("Name,City\nA,Pune\n")
    path = make_campaign()
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    error_lines = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and "customers.csv: no phone column found" in error_lines[0]
    assert "Traceback" not in out
    assert out.rstrip().endswith("NOT OK: the campaign cannot run.")


def test_definition_error_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nwindow: {start: '25:00'}\n")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR:" in out and "window.start" in out and "bad.yaml" in out


def test_no_valid_customer_is_not_ok_but_writes_rejects(
    tmp_path: Path, make_campaign: Callable[..., Path]
) -> None:
    (tmp_path / "customers.csv").write_text("Phone\n12345\n\n")
    report = preflight(make_campaign(), output_dir=tmp_path / "out")
    assert not report.ok
    assert report.rejects_path == tmp_path / "out" / "test-rejects.csv"
    assert report.rejects_path.exists()
    assert "NOT OK: the campaign cannot run (no valid customer)." in report.render()


def test_no_usable_agent_is_not_ok(tmp_path: Path, make_campaign: Callable[..., Path]) -> None:
    (tmp_path / "customers.csv").write_text("Phone\n9953123456\n")
    path = make_campaign(agents=[["user_id", "name"], ["", "Nobody"]])
    report = preflight(path)
    assert not report.ok
    assert report.error is not None and "no usable agent" in report.error


def test_default_rejects_file_sits_next_to_the_definition(
    tmp_path: Path, make_campaign: Callable[..., Path]
) -> None:
    (tmp_path / "customers.csv").write_text("Phone\n9953123456\n")
    report = preflight(make_campaign(name="spring"))
    assert report.ok
    assert report.rejects_path == tmp_path / "spring-rejects.csv"


def test_estimate_says_what_it_assumes(tmp_path: Path) -> None:
    definition = load_definition(DEMO)
    est = estimate(definition, customers=1000, agents=10, average_handling_seconds=120)
    assert est.expected_attempts == pytest.approx(1 + 0.4 + 0.16)
    assert est.agent_bound_hours == pytest.approx(1000 * 1.56 * 120 / 10 / 3600)
    assert est.calling_days == 1
    report = preflight(DEMO, average_handling_seconds=120, output_dir=tmp_path)
    assert "x 120 s / 10 agents" in report.render()
    assert "assumes 60% of attempts are answered" in report.render()


def test_inputs_package_does_not_import_prefect() -> None:
    import subprocess
    import sys

    code = "import sys, ccm_tasks.inputs; sys.exit('prefect' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_validate_previews_calling_hours_and_the_contact_limit(
    tmp_path: Path, make_campaign: Callable[..., Path]
) -> None:
    """`ccm validate` says who is callable now, when the others' hours open (in their own zone), and
    how many customers the contact limit holds, from calls other campaigns made in the ledger."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ccm_tasks.ledger import Ledger

    (tmp_path / "customers.csv").write_text(
        "Phone\n9953123456\n9953123457\n9953123458\n+1 212 555 0100\n+1 212 555 0101\n")
    path = make_campaign(customers={"files": ["customers.csv"], "countries": ["IN", "US"]},
                         window={"start": "09:00", "end": "23:00", "timezone": "Asia/Kolkata"},
                         limits={"max_calls_per_number": 2, "window_days": 7})
    now = datetime(2026, 12, 2, 11, 0, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()  # 00:30 in New York
    ledger = Ledger(tmp_path / "ledger.sqlite")
    other = ledger.upsert_campaign("other", definition_path="-", timezone="Asia/Kolkata", now=now - 3600)
    ledger.sync_customers(other, [{"customer_key": "+919953123456", "phone": "+919953123456"}], now - 3600)
    holder = ledger.register_holder("test")
    customer = ledger.customer_rows(other)[0].id
    for n, ago in enumerate((3 * 86400, 3600)):  # two calls in the last 7 days: at the limit
        claim = ledger.claim(agent_key=f"agent-{n}", agent_name=None, holder_id=holder, campaign_id=other,
                             run_id=None, customer_id=customer, attempt_no=n + 1, now=now - ago)
        assert claim.ok
    ledger.close()
    report = preflight(path, now=now, ledger=str(tmp_path / "ledger.sqlite"))
    assert report.ok and report.calling is not None
    calling = report.calling
    assert calling.callable_now == 3
    [(zones, count, opens)] = calling.later
    assert "America/New_York" in zones and count == 2
    assert opens == datetime(2026, 12, 2, 9, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert calling.held_by_limit == 1
    assert calling.first_release == now - 3 * 86400 + 7 * 86400
    text = report.render()
    assert "callable now: 3" in text and "2 in America/New_York: opens 2026-12-02 19:30 IST" in text
    assert "held by the limit now: 1 customer(s)" in text

    # 09:00-18:00 in Kolkata and in New York never overlap: said plainly, not left to be found out.
    path = make_campaign(customers={"files": ["customers.csv"], "countries": ["IN", "US"]},
                         window={"start": "09:00", "end": "18:00", "timezone": "Asia/Kolkata"})
    text = preflight(path, now=now).render()
    assert "2 in America/New_York: never (their 09:00-18:00 and the campaign's never overlap)" in text
