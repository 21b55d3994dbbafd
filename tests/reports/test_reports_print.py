"""The reports as a manager prints and opens them, rendered by real LibreOffice (headless) and read
back with poppler: the Summary on one page with its charts, page counts, headers repeated, nothing
cut at the page's edge; the CSV re-imported by pandas and by LibreOffice with its phone numbers whole."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libreoffice
import openpyxl
import pandas as pd
import pytest
from demo_ledger import DAY, demo_ledger
from report_ledgers import LedgerBuilder, epoch, ist

from ccm_tasks.reports import (
    FIGURES,
    build_campaign_report,
    build_daily_report,
    write_campaign_report,
    write_daily_report,
)
from ccm_tasks.reports.glossary import DAILY_COUNTING, DAILY_FIGURES, HEADLINE
from tests.support import needs


@dataclass(frozen=True)
class Rendered:
    """A workbook and its PDF's pages."""

    workbook: Path
    pages: list[str]
    count: int

    def sheet_pages(self) -> dict[str, list[int]]:
        """Sheet name -> its page numbers (each page's header names its sheet at the right)."""
        out: dict[str, list[int]] = {}
        for number, text in enumerate(self.pages, start=1):
            first = next(line for line in text.splitlines() if line.strip())
            out.setdefault(first.split()[-1] if "By " not in first else " ".join(first.split()[-2:]),
                           []).append(number)
        return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Rendered]]:
    """The demo's campaign workbook and daily workbook, as PDFs (one LibreOffice run each)."""
    if not libreoffice.available():
        pytest.skip(needs("libreoffice", "renders the workbooks to PDF (soffice, pdfinfo, pdftotext)"))
    folder = tmp_path_factory.mktemp("print")
    builder = demo_ledger(folder)
    campaign = build_campaign_report(builder.ledger, "loan-reminders-nov", now=ist("2026-11-21 20:00:00"))
    workbook = write_campaign_report(campaign, folder / "campaign")[1]
    daily = write_daily_report(build_daily_report(builder.ledger, DAY), folder / "daily")[0]
    builder.ledger.close()
    out = {}
    for name, book in (("campaign", workbook), ("daily", daily)):
        pdf = libreoffice.convert(book, folder / f"pdf-{name}")
        out[name] = Rendered(book, libreoffice.page_texts(pdf), libreoffice.page_count(pdf))
    yield out


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_campaign_summary_prints_on_one_page_with_its_charts(rendered: dict[str, Rendered]) -> None:
    r = rendered["campaign"]
    sheets = r.sheet_pages()
    assert sheets["Summary"] == [1]  # the whole Summary, charts included, on the first page
    summary = _flat(r.pages[0])
    assert "loan-reminders-nov: call outcomes" in summary
    assert "Period: 2026-11-14 09:" in summary
    assert "Status: Interrupted (killed; noticed by a later run)" in summary
    for name in HEADLINE:  # every headline figure with its whole definition
        assert FIGURES[name].label in summary and FIGURES[name].definition in summary, name
    for title in ("Customers by outcome", "Calls by hour of the day", "Talk time per agent"):
        assert title in summary  # the charts are on the page, not cut onto the next
    assert "Latest runs" in summary and "Calling window closed: the calling window closed" in summary
    assert "customer_unanswered" not in summary and "Customer did not answer" in summary
    assert "Page 1 of" in summary


def test_the_campaign_workbook_page_count(rendered: dict[str, Rendered]) -> None:
    r = rendered["campaign"]
    sheets = r.sheet_pages()
    names = openpyxl.load_workbook(r.workbook, read_only=True).sheetnames
    assert list(sheets) == names  # every sheet prints, in order
    assert sum(len(p) for p in sheets.values()) == r.count
    for small in ("Agents", "By hour", "Runs"):
        assert len(sheets[small]) == 1, small
    # 260 customers and 330 attempts, one page wide each: a few pages, not hundreds
    assert r.count <= 14, sheets
    for number in sheets["Outcomes"]:  # the header row repeats on every page
        assert "customer_contact_uri" in r.pages[number - 1]
    assert all(f"of {r.count}" in page for page in r.pages)  # "Page n of m" on every page


def test_the_daily_report_prints_whole(rendered: dict[str, Rendered]) -> None:
    r = rendered["daily"]
    sheets = r.sheet_pages()
    assert list(sheets) == ["Summary", "By campaign", "By agent", "By hour", "By status", "Glossary"]
    assert r.count == 6 and all(len(p) == 1 for p in sheets.values())
    summary = _flat(r.pages[0])
    assert "Calls on Saturday 21 November 2026 (Asia/Kolkata)" in summary
    assert DAILY_COUNTING in summary  # the explanatory sentence whole, not cut at the page's edge
    for name in DAILY_FIGURES:
        assert FIGURES[name].definition in summary, name
    assert "Calls by hour of the day" in summary and "Sat 14 Nov" in summary
    assert re.search(r"Talk time \d+:\d\d:\d\d \d+:\d\d:\d\d [+-]\d+:\d\d:\d\d", summary)  # one format
    assert "#" not in summary  # no ##### for a negative duration


@pytest.fixture
def phones_csv(builder: LedgerBuilder) -> tuple[Path, list[str]]:
    """outcomes.csv of a campaign whose spreadsheet columns try formula injection and hold a phone-like
    text, with one number written as a SIP address (not E.164: neutralised)."""
    phones = ["+919588139986", "+12125550100", "+447911123456"]
    extras = [{"name": "=HYPERLINK(\"http://evil.example\",\"x\")", "alt_phone": "+919999999999"},
              {"name": "-2+3", "alt_phone": "@SUM(A1)"}, {"name": "Asha", "alt_phone": ""}]
    cid, run = builder.campaign("csv", phones, at=epoch("2026-11-21T03:00:00Z"), extras=extras)
    builder.call(cid, run, phones[0], "a1", at=epoch("2026-11-21T04:00:00Z"))
    csv_path, _ = write_campaign_report(build_campaign_report(builder.ledger, "csv"))
    return csv_path, phones


def test_the_csv_reimports_with_pandas(phones_csv: tuple[Path, list[str]]) -> None:
    path, phones = phones_csv
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame["customer_contact_uri"]) == phones  # E.164, no apostrophe
    assert list(frame["name"]) == ["'=HYPERLINK(\"http://evil.example\",\"x\")", "'-2+3", "Asha"]
    # an input column is neutralised even when it holds a clean number: only our phone column is exempt
    assert list(frame["alt_phone"]) == ["'+919999999999", "'@SUM(A1)", ""]


def test_the_csv_reimports_with_libreoffice(phones_csv: tuple[Path, list[str]], tmp_path: Path) -> None:
    if not libreoffice.available():
        pytest.skip(needs("libreoffice", "re-imports the CSV with LibreOffice Calc"))
    path, phones = phones_csv
    # As a person importing into a spreadsheet would: UTF-8, columns as text (a CRM's import does the
    # same); then with LibreOffice's own type detection.
    text_columns = "/".join(f"{i}/2" for i in range(1, 40))
    as_text = libreoffice.convert(path, tmp_path / "text", "xlsx",
                                  infilter=f"CSV:44,34,76,1,{text_columns}")
    detected = libreoffice.convert(path, tmp_path / "detected", "xlsx", infilter="CSV:44,34,76,1")
    for book, numbers in ((as_text, phones), (detected, [int(p[1:]) for p in phones])):
        ws = openpyxl.load_workbook(book).active
        header = [c.value for c in ws[1]]
        col = header.index("customer_contact_uri") + 1
        values = [ws.cell(row=r, column=col).value for r in range(2, 5)]
        assert values == numbers, book  # the digits whole; never an apostrophe, never 9.59E+11 text
        name = ws.cell(row=2, column=header.index("name") + 1)
        assert name.data_type == "s" and str(name.value).startswith("'=")  # shown, never evaluated
        assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)
