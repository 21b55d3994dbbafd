"""Reading spreadsheets: encodings, delimiters, sheets, row numbers, and files that are not usable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ccm_tasks.inputs.errors import InputFileError
from ccm_tasks.inputs.readers import read_tables

ROWS = [
    ["Name", "Mobile", "City"],
    ["Zoë Fernandes", "9953123456", "Panaji"],
    ["José Dsouza", "+91 99531 23457", "Mumbai"],
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_csv_encodings_keep_non_ascii_names(
    tmp_path: Path, write_csv: Callable[..., Path], encoding: str
) -> None:
    path = write_csv(tmp_path / "c.csv", ROWS, encoding=encoding)
    [table] = read_tables(path)
    assert table.headers == ["Name", "Mobile", "City"]  # no BOM glued to the first header
    assert list(table.columns[0]) == ["Zoë Fernandes", "José Dsouza"]
    assert list(table.rows) == [2, 3]
    assert table.sheet == ""


def test_utf8_start_with_cp1252_later_is_read_as_cp1252(tmp_path: Path) -> None:
    filler = "".join(f"Name {i},9953{i:06d}\n" for i in range(5000))  # > 64 KiB of plain ASCII
    path = tmp_path / "c.csv"
    path.write_bytes(("Name,Phone\n" + filler + "Zoë,9953123456\n").encode("cp1252"))
    [table] = read_tables(path)
    assert table.columns[0][-1] == "Zoë"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_is_detected(
    tmp_path: Path, write_csv: Callable[..., Path], delimiter: str
) -> None:
    rows = [["Name", "Phone Number", "Note"], ["A", "9953123456", "x, y; z"]]
    path = write_csv(tmp_path / "c.csv", rows, delimiter=delimiter)
    [table] = read_tables(path)
    assert table.headers == ["Name", "Phone Number", "Note"]
    assert table.columns[2][0] == "x, y; z"


def test_csv_keeps_excel_row_numbers_across_blank_and_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Name,Phone\nA,9953123456\n\nB,9953123457\nC,9953123458,extra\nD,9953123459\n")
    [table] = read_tables(path)
    assert list(table.columns[0]) == ["A", "", "B", "D"]
    assert list(table.rows) == [2, 3, 4, 6]
    assert [(b.row, "expected 2 fields" in b.problem) for b in table.broken] == [(5, True)]


def test_csv_cells_are_text_not_numbers(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    path = write_csv(tmp_path / "c.csv", [["Phone", "Pin"], ["09953123456", "007"], ["NA", ""]])
    [table] = read_tables(path)
    assert list(table.columns[0]) == ["09953123456", "NA"]
    assert list(table.columns[1]) == ["007", ""]


def test_xlsx_first_sheet_named_sheet_and_every_sheet(
    tmp_path: Path, write_xlsx: Callable[..., Path]
) -> None:
    path = write_xlsx(tmp_path / "w.xlsx", {
        "North": [["Phone", "Name"], [9953123456, "A"], [919953123457.0, "B"]],
        "South": [["Phone", "Name"], ["+91 99531 23458", "C"]],
        "Notes": [],
    })
    [first] = read_tables(path)
    assert first.sheet == "North"
    assert list(first.columns[0]) == ["9953123456", "919953123457"]  # numeric cells, no ".0"
    assert list(first.rows) == [2, 3]
    [south] = read_tables(path, "South")
    assert list(south.columns[0]) == ["+91 99531 23458"]
    assert [t.sheet for t in read_tables(path, "*")] == ["North", "South"]  # empty sheet skipped
    assert read_tables(path, "south")[0].sheet == "South"  # case-insensitive as a fallback


def test_missing_sheet_names_the_sheets(tmp_path: Path, write_xlsx: Callable[..., Path]) -> None:
    path = write_xlsx(tmp_path / "w.xlsx", {"North": [["Phone"], [9953123456]]})
    with pytest.raises(InputFileError, match=r"no sheet named 'West'; sheets: 'North'") as info:
        read_tables(path, "West")
    assert info.value.path == path


def test_empty_selected_sheet_is_an_error_naming_it(
    tmp_path: Path, write_xlsx: Callable[..., Path]
) -> None:
    path = write_xlsx(tmp_path / "w.xlsx", {"Data": [["Phone"], [9953123456]], "Blank": []})
    with pytest.raises(InputFileError, match=r"w.xlsx \(sheet 'Blank'\): the sheet is empty"):
        read_tables(path, "Blank")


def test_table_lower_down_keeps_its_sheet_row_numbers(tmp_path: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet["C3"], sheet["D3"] = "Phone", "Name"
    sheet["C4"], sheet["D4"] = 9953123456, "A"
    sheet["C6"] = "09953123457"
    workbook.save(tmp_path / "w.xlsx")
    [table] = read_tables(tmp_path / "w.xlsx")
    assert table.headers == ["Phone", "Name"]
    assert list(table.rows) == [4, 5, 6]
    assert list(table.columns[0]) == ["9953123456", "", "09953123457"]


def test_sheet_given_for_csv_is_an_error(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    path = write_csv(tmp_path / "c.csv", ROWS)
    with pytest.raises(InputFileError, match="CSV file has no sheets"):
        read_tables(path, "Sheet1")
    assert len(read_tables(path, "*")) == 1


@pytest.mark.parametrize("content", [b"", b"\n"])
def test_empty_file_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=r"empty.csv: the file is empty"):
        read_tables(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="file not found"):
        read_tables(tmp_path / "nope.csv")


def test_corrupt_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(InputFileError, match=r"broken.xlsx: not a valid .xlsx workbook"):
        read_tables(path)


def test_truncated_zip_named_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04" + os.urandom(2048))
    with pytest.raises(InputFileError, match=r"broken.xlsx: not a readable workbook"):
        read_tables(path)


def test_password_protected_xlsx(tmp_path: Path, write_encrypted: Callable[[Path], Path]) -> None:
    path = write_encrypted(tmp_path / "locked.xlsx")
    with pytest.raises(InputFileError, match=r"locked.xlsx: the workbook is password-protected"):
        read_tables(path)


def test_plain_ole2_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 2048)
    with pytest.raises(InputFileError, match=r"old.xls: not a readable workbook"):
        read_tables(path)


def test_pdf_is_not_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "customers.pdf"
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    with pytest.raises(InputFileError, match=r"customers.pdf: not a spreadsheet \(a PDF document\)"):
        read_tables(path)


def test_binary_txt_is_not_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"\x00\x01\x02binary\x00" * 20)
    with pytest.raises(InputFileError, match="not a spreadsheet"):
        read_tables(path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "customers.docx"
    path.write_bytes(b"hello")
    with pytest.raises(InputFileError, match=r"unsupported file type '.docx'"):
        read_tables(path)


def test_undecodable_text_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"Name,Phone\n" + b"A,9953123456\n" * 6000 + b"\x81\x8d\x8f,9953123457\n")
    with pytest.raises(InputFileError, match="neither UTF-8 nor Windows-1252"):
        read_tables(path)


def _write_ods(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """A minimal OpenDocument spreadsheet, built by hand (no writer library needed for a fixture):
    numbers as float cells, everything else as string cells."""
    import zipfile
    from xml.sax.saxutils import escape, quoteattr

    def cell(value: object) -> str:
        if isinstance(value, int | float):
            return (f'<table:table-cell office:value-type="float" office:value="{value!r}">'
                    f"<text:p>{value!r}</text:p></table:table-cell>")
        return (f'<table:table-cell office:value-type="string"><text:p>{escape(str(value))}</text:p>'
                "</table:table-cell>")

    tables = "".join(
        f"<table:table table:name={quoteattr(name)}>"
        + "".join(f"<table:table-row>{''.join(cell(v) for v in row)}</table:table-row>" for row in rows)
        + "</table:table>"
        for name, rows in sheets.items())
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>"
        "</office:document-content>")
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return path


def test_ods_workbook_reads_like_xlsx(tmp_path: Path) -> None:
    # LibreOffice users save .ods; calamine reads it the same way, sheets and number cells included.
    path = _write_ods(tmp_path / "w.ods", {
        "North": [["Phone", "Name"], [9953123456, "Zoë"], [919953123457.0, "B"]],
        "South": [["Phone", "Name"], ["+91 99531 23458", "C"]],
    })
    [first] = read_tables(path)
    assert (first.sheet, first.headers) == ("North", ["Phone", "Name"])
    assert list(first.columns[0]) == ["9953123456", "919953123457"]
    assert list(first.columns[1]) == ["Zoë", "B"]
    assert list(first.rows) == [2, 3]
    assert [t.sheet for t in read_tables(path, "*")] == ["North", "South"]
    with pytest.raises(InputFileError, match=r"no sheet named 'West'"):
        read_tables(path, "West")
