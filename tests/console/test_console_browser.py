"""The console in a real browser: Debian's headless Chromium driven by Playwright (never a downloaded
browser). One journey from sign-in to the downloaded report, checked against the ledger, then the
refusals a person can meet. Screenshots of the main pages go to tests/console/screenshots/
(git-ignored; docs/console/ keeps one of each page)."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest

from ccm_tasks.simulator.server import BackgroundServer
from tests.console.conftest import PASSWORD, Console
from tests.support import needs

SHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(needs("browser", "Debian's chromium is not installed (apt-get install chromium)"))
    return path


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    """A page in headless Chromium with a fresh profile."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ccm-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=executable, args=CHROMIUM_ARGS, headless=True,
            accept_downloads=True, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def _workbook(path: Path) -> None:
    """Two sheets with bad rows; the phone column has a header the defaults do not know."""
    book = openpyxl.Workbook()
    north = book.active
    north.title = "North"
    north.append(["Cust Ph", "Name", "City"])
    for i in range(9):
        north.append([f"99531234{i:02d}", f"North {i}", "Pune"])
    north.append(["", "No number", "Pune"])          # blank phone: rejected
    north.append(["12345", "Too short", "Pune"])     # wrong number of digits: rejected
    north.append(["9953123400", "Again", "Pune"])    # duplicate of row 2
    south = book.create_sheet("South")
    south.append(["Cust Ph", "Name", "City"])
    for i in range(8):
        south.append([f"98101234{i:02d}", f"South {i}", "Chennai"])
    south.append(["9.19953E+11", "Excel mangled", "Chennai"])  # scientific notation: rejected
    book.save(path)


def _roster(path: Path) -> None:
    path.write_text("user_id,contact_uri,name\n" + "".join(
        f"agent-{i},+9197000000{i:02d},Agent {i}\n" for i in range(1, 5)))


def _sign_in(page: object, base: str, name: str) -> None:
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.fill("#name", name)  # type: ignore[attr-defined]
    page.fill("#password", PASSWORD)  # type: ignore[attr-defined]
    page.click("main button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{base}/")  # type: ignore[attr-defined]


def _sign_out(page: object, base: str) -> None:
    page.click("form.signout button")  # type: ignore[attr-defined]
    page.wait_for_url(f"{base}/login")  # type: ignore[attr-defined]


def _shot(page: object, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_journey_from_upload_to_report(make_console: object, browser_page: object, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import expect

    page = browser_page
    console: Console = make_console(max_upload_mb=1)  # type: ignore[operator]
    monkeypatch.setenv("CCM_SIM_TIME_SCALE", "300")
    workbook, roster = tmp_path / "Customers (two regions).xlsx", tmp_path / "agents.csv"
    _workbook(workbook)
    _roster(roster)
    server = BackgroundServer(console.app).start()
    base = server.base_url
    try:
        # No session: the sign-in page.
        page.goto(f"{base}/campaigns/new")  # type: ignore[attr-defined]
        expect(page).to_have_url(f"{base}/login?next=/campaigns/new")  # type: ignore[arg-type]
        _shot(page, "01-sign-in")
        # Wrong role: a manager cannot create campaigns.
        _sign_in(page, base, "manager")
        page.goto(f"{base}/campaigns/new")  # type: ignore[attr-defined]
        expect(page.locator("h1")).to_have_text("Not allowed for your role")  # type: ignore[attr-defined]
        _sign_out(page, base)

        _sign_in(page, base, "operator")
        # Refusals on the upload form: not a spreadsheet, oversized, no CSRF token.
        page.goto(f"{base}/campaigns/new")  # type: ignore[attr-defined]
        fake = tmp_path / "list.xlsx"
        fake.write_bytes(b"%PDF-1.7\n" + b"0" * 500)
        page.fill("#name", "refused")  # type: ignore[attr-defined]
        page.fill("#virtual_number", "+918045680000")  # type: ignore[attr-defined]
        page.set_input_files("#customers", str(fake))  # type: ignore[attr-defined]
        page.set_input_files("#agents_file", str(roster))  # type: ignore[attr-defined]
        page.click("main button[type=submit]")  # type: ignore[attr-defined]
        expect(page.locator(".error").first).to_contain_text("not a spreadsheet (a PDF document)")  # type: ignore[attr-defined]
        big = tmp_path / "big.csv"
        big.write_bytes(b"phone\n" + b"9953123456\n" * 150_000)
        page.fill("#name", "refused")  # type: ignore[attr-defined]
        page.fill("#virtual_number", "+918045680000")  # type: ignore[attr-defined]
        page.set_input_files("#customers", str(big))  # type: ignore[attr-defined]
        page.set_input_files("#agents_file", str(roster))  # type: ignore[attr-defined]
        page.click("main button[type=submit]")  # type: ignore[attr-defined]
        expect(page.locator("h1")).to_have_text("Upload too large")  # type: ignore[attr-defined]
        page.goto(f"{base}/campaigns/new")  # type: ignore[attr-defined]
        page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")  # type: ignore[attr-defined]
        page.fill("#name", "refused")  # type: ignore[attr-defined]
        page.fill("#virtual_number", "+918045680000")  # type: ignore[attr-defined]
        page.set_input_files("#customers", str(workbook))  # type: ignore[attr-defined]
        page.set_input_files("#agents_file", str(roster))  # type: ignore[attr-defined]
        page.click("main button[type=submit]")  # type: ignore[attr-defined]
        expect(page.locator("h1")).to_have_text("The form could not be accepted")  # type: ignore[attr-defined]
        assert not (console.home / "campaigns" / "refused").exists()

        # Step 1: the files.
        page.goto(f"{base}/campaigns/new")  # type: ignore[attr-defined]
        page.fill("#name", "journey")  # type: ignore[attr-defined]
        page.fill("#virtual_number", "080 4568 0000")  # type: ignore[attr-defined]
        page.set_input_files("#customers", str(workbook))  # type: ignore[attr-defined]
        page.set_input_files("#agents_file", str(roster))  # type: ignore[attr-defined]
        _shot(page, "02-new-campaign")
        page.click("main button[type=submit]")  # type: ignore[attr-defined]
        page.wait_for_url(f"{base}/campaigns/journey/edit")  # type: ignore[attr-defined]
        # Step 2: the phone column is not found by its usual names: map it.
        expect(page.locator(".error").first).to_contain_text("No phone column chosen")  # type: ignore[attr-defined]
        page.select_option("#phone_column", "Cust Ph")  # type: ignore[attr-defined]
        page.fill("#window_start", "00:00")  # type: ignore[attr-defined]
        page.fill("#window_end", "23:59")  # type: ignore[attr-defined]
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            page.check(f"input[name=days][value={day}]")  # type: ignore[attr-defined]
        _shot(page, "03-settings")
        page.click("main button[type=submit] >> text=Save and preview")  # type: ignore[attr-defined]
        page.wait_for_url(f"{base}/campaigns/journey/preview")  # type: ignore[attr-defined]
        # Step 3: the preview's counts and rejects.
        expect(page.locator("#headline")).to_have_text(  # type: ignore[attr-defined]
            "17 customers will be called; 4 of 21 rows will be skipped "
            "(3 rejected, 1 duplicate, 0 on the do-not-call list).")
        rejects = page.locator("#rejects tbody tr")  # type: ignore[attr-defined]
        expect(rejects).to_have_count(4)
        expect(page.locator("#rejects")).to_contain_text("South")  # type: ignore[attr-defined]
        expect(page.locator("#rejects")).to_contain_text("scientific notation")  # type: ignore[attr-defined]
        expect(page.locator("#agents")).to_contain_text("4 agents found")  # type: ignore[attr-defined]
        with page.expect_download() as info:  # type: ignore[attr-defined]
            page.click("text=Download the rejects file (CSV)")  # type: ignore[attr-defined]
        assert info.value.suggested_filename == "journey-rejects.csv"
        _shot(page, "04-preview")

        # Launch on the simulator, then watch it (the page updates by itself).
        page.click("button.primary")  # type: ignore[attr-defined]
        expect(page.locator("#outcome")).to_contain_text("Started `ccm run`")  # type: ignore[attr-defined]
        page.click("text=Watch campaign journey")  # type: ignore[attr-defined]
        page.fill("#reason", "checking the pause button")  # type: ignore[attr-defined]
        page.click("button[value=pause]")  # type: ignore[attr-defined]
        expect(page.locator("#outcome")).to_contain_text("pause")  # type: ignore[attr-defined]
        page.click("text=Watch campaign journey")  # type: ignore[attr-defined]
        expect(page.locator("#state")).to_have_text("paused", timeout=10_000)  # type: ignore[attr-defined]
        page.fill("#reason", "done checking")  # type: ignore[attr-defined]
        page.click("button[value=resume]")  # type: ignore[attr-defined]
        expect(page.locator("#outcome")).to_contain_text("resumed")  # type: ignore[attr-defined]
        page.click("text=Watch campaign journey")  # type: ignore[attr-defined]
        url = page.url  # type: ignore[attr-defined]
        expect(page.locator("#percent")).to_have_text("100.0%", timeout=90_000)  # type: ignore[attr-defined]
        assert page.url == url  # type: ignore[attr-defined]  # htmx swapped the figures: no reload
        expect(page.locator("#state")).to_have_text("finished", timeout=30_000)  # type: ignore[attr-defined]
        _shot(page, "05-campaign")

        # The report, and its CSV checked against the ledger.
        page.click("main a[href='/campaigns/journey/report']")  # type: ignore[attr-defined]
        expect(page.locator("h1")).to_have_text("Campaign journey: report")  # type: ignore[attr-defined]
        _shot(page, "06-report")
        with page.expect_download() as info:  # type: ignore[attr-defined]
            page.click("#download-csv")  # type: ignore[attr-defined]
        download = info.value
        assert download.suggested_filename.startswith("journey-outcomes-")
        rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
        with console.ledger.read() as conn:
            from sqlalchemy import text

            ledger_rows = conn.execute(text(
                "SELECT c.customer_key, c.final_status FROM customers c "
                "JOIN campaigns k ON k.id = c.campaign_id WHERE k.name = 'journey'")).all()
        assert len(rows) == len(ledger_rows) == 17
        assert Counter(r["final_status"] for r in rows) == Counter(s for _, s in ledger_rows)
        assert {r["customer_contact_uri"].lstrip("'") for r in rows} == {k for k, _ in ledger_rows}

        page.goto(f"{base}/")  # type: ignore[attr-defined]
        expect(page.locator("table")).to_contain_text("journey")  # type: ignore[attr-defined]
        _shot(page, "07-campaigns")
        page.goto(f"{base}/reports/daily")  # type: ignore[attr-defined]
        _shot(page, "08-daily-report")
        _sign_out(page, base)
        page.goto(f"{base}/")  # type: ignore[attr-defined]
        expect(page).to_have_url(f"{base}/login?next=/")  # type: ignore[arg-type]
    finally:
        console.stop_runs()
        server.stop()
