"""Uploads: limits, content sniffing, zip bombs, hostile names, and the same messages as ccm validate."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl

from ccm_tasks.console.uploads import UploadRefused, display_stem, preview, store_upload
from tests.console.conftest import Console, csrf

DEMO = Path(__file__).resolve().parents[2] / "campaigns" / "demo"


def _new(client: object, files: list[tuple[str, tuple[str, bytes]]], name: str = "upl",
         **fields: str) -> object:
    token = csrf(client.get("/campaigns/new").text)  # type: ignore[attr-defined]
    data = {"csrf_token": token, "name": name, "virtual_number": "+918045680000", "roster": "0", **fields}
    return client.post("/campaigns/new", data=data, files=files)  # type: ignore[attr-defined]


def _errors(page: str) -> list[str]:
    return re.findall(r'class="error"[^>]*>([^<]+)<', page)


def test_a_good_upload_writes_a_normal_definition(console: Console) -> None:
    client = console.client("operator")
    response = _new(client, [("customers", ("../../etc/Customer List (March).csv",
                                             (DEMO / "customers.csv").read_bytes()))])
    assert response.status_code == 303 and response.headers["location"] == "/campaigns/upl/edit"
    stored = list((console.home / "campaigns" / "upl" / "uploads").iterdir())
    assert len(stored) == 1 and re.fullmatch(r"Customer_List_March-[0-9a-f]{8}\.csv", stored[0].name)
    from ccm_tasks.inputs import preflight

    report = preflight(console.home / "campaigns" / "upl" / "upl.yaml")  # ccm validate agrees
    assert report.ok and len(report.inputs.customers) == 191  # no do-not-call list given  # type: ignore[union-attr]


def test_not_a_spreadsheet_gets_the_validate_message(console: Console) -> None:
    client = console.client("operator")
    pdf = _new(client, [("customers", ("list.xlsx", b"%PDF-1.7\n" + b"x" * 100))])
    assert pdf.status_code == 400
    assert any("not a spreadsheet (a PDF document)" in e for e in _errors(pdf.text)), _errors(pdf.text)
    png = _new(client, [("customers", ("list.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)))])
    assert any("not a spreadsheet (a binary file" in e for e in _errors(png.text))
    assert not (console.home / "campaigns" / "upl").exists()  # nothing kept


def test_oversized_upload_is_refused_before_it_is_read(make_console: object) -> None:
    console = make_console(max_upload_mb=1)  # type: ignore[operator]
    client = console.client("operator")
    response = _new(client, [("customers", ("big.csv", b"phone\n" + b"9953123456\n" * 200_000))])
    assert response.status_code == 413 and "Upload too large" in response.text
    assert response.headers["content-security-policy"]
    assert not (console.home / "campaigns" / "upl").exists()


def test_row_limit(make_console: object) -> None:
    console = make_console(max_rows=100)  # type: ignore[operator]
    upload = ("c.csv", (DEMO / "customers.csv").read_bytes())
    response = _new(console.client("operator"), [("customers", upload)])
    assert response.status_code == 400 and any("at most 100" in e for e in _errors(response.text))


def test_zip_bomb_is_refused_unread(tmp_path: Path) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (64 * 2**20))  # 64 MiB of zeros: ~64 KiB zipped
    bomb.seek(0)
    try:
        store_upload(bomb, tmp_path, "bomb.xlsx", max_bytes=2**20, max_expanded_bytes=16 * 2**20)
    except UploadRefused as exc:
        assert "expands to more than 16 MB" in str(exc)
    else:
        raise AssertionError("a zip bomb was accepted")
    assert [p.name for p in (tmp_path / "uploads").iterdir()] == []


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("readme.txt", "hello")
    data.seek(0)
    try:
        store_upload(data, tmp_path, "x.xlsx", max_bytes=2**20, max_expanded_bytes=2**20)
    except UploadRefused as exc:
        assert "not an Excel (.xlsx) or OpenDocument" in str(exc)
    else:
        raise AssertionError("accepted")


def test_formulas_are_text_and_names_are_harmless(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Cust Ph", "Name"])
    sheet.append(["9953123456", "=HYPERLINK(\"http://x\",\"y\")"])
    sheet.append(["=1+1", "Asha"])
    data = io.BytesIO()
    workbook.save(data)
    data.seek(0)
    stored = store_upload(data, tmp_path, "..\\..\\evil/.. name.xlsx", max_bytes=2**20,
                          max_expanded_bytes=2**24)
    assert stored.path.parent == tmp_path / "uploads" and stored.path.suffix == ".xlsx"
    assert display_stem("../../") == "file"
    (table,) = preview(stored.path)
    assert table.phone_column is None and "no phone column" in (table.problem or "")
    assert table.rows[1][0] == "" or not table.rows[1][0].isdigit()  # a formula is never computed
    (mapped,) = preview(stored.path, phone_column="Cust Ph")
    assert mapped.phone_column == "Cust Ph" and mapped.header_row == 1


def test_two_operators_uploading_at_once(console: Console) -> None:
    """Two signed-in operators create campaigns at the same moment: different names each get their
    own folder and files; the same name twice gives one campaign and a clear refusal, never a mix."""
    import threading

    import httpx

    from ccm_tasks.simulator.server import BackgroundServer
    from tests.console.test_console_launch import _signed_in

    csv_bytes = (DEMO / "customers.csv").read_bytes()
    server = BackgroundServer(console.app).start()
    try:
        pairs = [_signed_in(server.base_url, "operator"), _signed_in(server.base_url, "admin")]

        def at_once(names: list[str]) -> list[httpx.Response]:
            results: list[httpx.Response] = []
            barrier = threading.Barrier(2)

            def create(client: httpx.Client, name: str) -> None:
                token = csrf(client.get("/campaigns/new").text)
                barrier.wait()
                upload = [("customers", (f"{name}.csv", csv_bytes))]
                results.append(client.post("/campaigns/new", files=upload,
                                           data={"csrf_token": token, "name": name, "roster": "0",
                                                 "virtual_number": "+918045680000"}))

            threads = [threading.Thread(target=create, args=(client, name))
                       for (client, _token), name in zip(pairs, names, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            return results

        apart = at_once(["north", "south"])
        assert sorted(r.status_code for r in apart) == [303, 303], [r.text[-500:] for r in apart]
        for name in ("north", "south"):
            (stored,) = (console.home / "campaigns" / name / "uploads").iterdir()
            assert stored.name.startswith(f"{name}-") and stored.read_bytes() == csv_bytes
        same = at_once(["same", "same"])
        codes = sorted(r.status_code for r in same)
        assert codes[0] == 303 and codes[1] in (400, 409), [r.text[-500:] for r in same]
        refused = next(r for r in same if r.status_code != 303)
        assert any("same" in e for e in _errors(refused.text)), _errors(refused.text)
        assert len(list((console.home / "campaigns" / "same" / "uploads").iterdir())) == 1
    finally:
        server.stop()
