"""``ccm report campaign`` and ``ccm report daily`` through the command's entry point."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from report_ledgers import LedgerBuilder, epoch

from ccm_tasks.cli import main


@pytest.fixture
def ledger_file(builder: LedgerBuilder) -> str:
    """A ledger with one campaign and two calls on 21 November (IST)."""
    phones = ["+919900000010", "+919900000011"]
    cid, run = builder.campaign("demo", phones, at=epoch("2026-11-21T03:00:00Z"))
    builder.call(cid, run, phones[0], "a1", at=epoch("2026-11-21T04:00:00Z"), talk=42)
    builder.call(cid, run, phones[1], "a2", at=epoch("2026-11-21T04:05:00Z"), status="customer_unanswered",
                 talk=0, customer_state="pending")
    builder.finish_run(run, epoch("2026-11-21T05:00:00Z"))
    builder.ledger.close()
    return str(builder.path)


def test_report_campaign(ledger_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "campaign", "demo", "--ledger", ledger_file]) == 0
    printed = capsys.readouterr().out.split()
    folder = tmp_path / "reports" / "demo" / "2026-11-21"
    assert printed == [str(folder / "outcomes.csv"), str(folder / "outcomes.xlsx")]
    assert openpyxl.load_workbook(folder / "outcomes.xlsx")["Outcomes"].max_row == 3

    assert main(["report", "campaign", "demo", "--ledger", ledger_file, "--date", "2026-12-01"]) == 0
    other_day = tmp_path / "reports" / "demo" / "2026-12-01"
    assert capsys.readouterr().out.split()[0] == str(other_day / "outcomes.csv")


def test_report_campaign_unknown(ledger_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "campaign", "nope", "--ledger", ledger_file]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "ccm report: no campaign named 'nope' in the ledger"


def test_report_without_a_ledger_creates_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "var" / "ledger.sqlite"
    assert main(["report", "daily", "--ledger", str(missing)]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert not missing.exists()


def test_report_daily(ledger_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "daily", "--date", "2026-11-21", "--ledger", ledger_file]) == 0
    daily = tmp_path / "reports" / "daily"
    expected = [str(daily / f"2026-11-21.{ext}") for ext in ("xlsx", "csv", "md")]
    assert capsys.readouterr().out.split() == expected
    text = (daily / "2026-11-21.md").read_text()
    assert "2 calls ended on 2026-11-21 (Asia/Kolkata) across 1 campaign; 1 answered (50.0%)." in text

    assert main(["report", "daily", "--date", "2026-11-21", "--timezone", "Mars/Olympus",
                 "--ledger", ledger_file]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", "daily", "--date", "21/11/2026", "--ledger", ledger_file])
    assert exc.value.code == 2
