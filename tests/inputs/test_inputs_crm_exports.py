"""Spreadsheets as operations staff really send them (issue 10, parts 2 and 3).

CRM exports (Zoho, Salesforce, LeadSquared style) put a title, a date and a blank row above the
header, name columns their own way, repeat headers, and save "Excel" files that are HTML tables or
CSV text. Every test builds its files and asserts the exact set to dial and each reject's row (as
Excel shows it), column and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from ccm_tasks.inputs import InputFileError, load_campaign_inputs, preflight
from ccm_tasks.inputs.customers import REASON_HEADER_AGAIN
from ccm_tasks.inputs.phones import REASON_SCIENTIFIC
from ccm_tasks.inputs.readers import read_tables

MakeCampaign = Callable[..., Path]
WriteCsv = Callable[..., Path]
WriteXlsx = Callable[..., Path]

PREAMBLE = [["Leads Report - Zoho CRM"], ["Generated on: 05-01-2026 10:30"], ["Filter: Status = Open"],
            []]


def _phones(inputs: object) -> list[str]:
    return inputs.customers["phone"].tolist()  # type: ignore[attr-defined,no-any-return]


def _rejects(inputs: object) -> list[list[object]]:
    frame = inputs.rejects  # type: ignore[attr-defined]
    return frame[["sheet", "row", "column", "value", "reason"]].values.tolist()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- header rows


def test_csv_header_below_a_title_date_and_blank_row(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        *PREAMBLE,
        ["Lead Name", "Mobile Number*", "City", "Lead Owner"],
        ["Asha", "+91-9953123401", "Pune", "Ravi"],
        ["Bala", "9953l23402", "Delhi", "Ravi"],
        ["Chitra", "099531 23403", "Goa", ""],
    ])
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401", "+919953123403"]
    assert inputs.customers["source_row"].tolist() == [6, 8]
    assert _rejects(inputs) == [["", 7, "Mobile Number*", "9953l23402",
                                 "letter 'l' found where digits belong"]]
    assert inputs.customers.columns.tolist()[-3:] == ["extra:Lead Name", "extra:City",
                                                      "extra:Lead Owner"]
    assert (inputs.sources[0].header_row, inputs.sources[0].rows) == (5, 3)
    report = preflight(make_campaign())
    assert ("  customers.csv: header in row 5 (phone column 'Mobile Number*'); the rows above it "
            "are not read.") in report.render().splitlines()


def test_xlsx_title_merged_across_columns_and_number_cells(
    tmp_path: Path, make_campaign: MakeCampaign
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Leads"
    sheet["A1"] = "Customer list - March"
    sheet.merge_cells("A1:D1")
    sheet["A2"] = "Exported 2026-03-01"
    sheet.append([])
    sheet.append(["S.No", "Customer Name", "Contact No", "Remarks"])
    sheet.append([1, "Asha", 9953123401, "call after 5"])
    sheet.append([2, "Bala", 919953123402.0, ""])
    sheet.append([3, "Chitra", "9.19953E+11", ""])
    workbook.save(tmp_path / "leads.xlsx")
    inputs = load_campaign_inputs(make_campaign("leads.xlsx"))
    assert _phones(inputs) == ["+919953123401", "+919953123402"]
    assert _rejects(inputs) == [["Leads", 7, "Contact No", "9.19953E+11", REASON_SCIENTIFIC]]
    assert inputs.sources[0].header_row == 4
    assert inputs.customers["extra:S.No"].tolist() == ["1", "2"]


def test_explicit_header_row_for_csv_and_xlsx(
    tmp_path: Path, write_csv: WriteCsv, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    # "Cust Mob" is no usual name, so the header cannot be found: header_row says where it is.
    rows = [["Report"], ["Name", "Cust Mob"], ["A", "9953123401"], ["B", "12345"]]
    write_csv(tmp_path / "c.csv", rows)
    write_xlsx(tmp_path / "c.xlsx", {"S": rows})
    path = make_campaign(customers={
        "files": [{"path": "c.csv", "header_row": 2}, {"path": "c.xlsx", "header_row": 2}],
        "columns": {"phone": "cust mob"},
    })
    inputs = load_campaign_inputs(path)
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.duplicates["row"].tolist() == [3]
    assert _rejects(inputs) == [["", 4, "Cust Mob", "12345", "wrong number of digits"],
                                ["S", 4, "Cust Mob", "12345", "wrong number of digits"]]


def test_header_row_that_is_blank_or_past_the_end_is_an_error(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "c.csv", [["Phone"], ["9953123401"], [], ["9953123402"]])
    with pytest.raises(InputFileError, match=r"c.csv: header_row 3 is a blank row"):
        load_campaign_inputs(make_campaign({"path": "c.csv", "header_row": 3}))
    with pytest.raises(InputFileError, match=r"header_row 90 is below"):
        load_campaign_inputs(make_campaign({"path": "c.csv", "header_row": 90}))


def test_rows_of_data_are_never_taken_for_a_preamble(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    # The real header names no usual phone column; a data row below holds the word "Phone" (a
    # lead source). Taking that row as the header would silently lose the rows above it.
    write_csv(tmp_path / "customers.csv", [
        ["Name", "Cust Ph", "Source"], ["A", "9953123401", "Web"], ["B", "9953123402", "Phone"],
        ["C", "9953123403", "Web"],
    ])
    with pytest.raises(InputFileError, match=r"no phone column found.*'Name', 'Cust Ph', 'Source'.*"
                                             r"map it with customers.columns.phone"):
        load_campaign_inputs(make_campaign())


def test_a_repeated_header_row_is_rejected_as_what_it_is(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    # Two exports pasted one under the other.
    write_csv(tmp_path / "customers.csv", [
        ["Full Name", "Mobile Phone"], ["A", "9953123401"], ["Full Name", "Mobile Phone"],
        ["B", "9953123402"],
    ])
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401", "+919953123402"]
    assert _rejects(inputs) == [["", 3, "Mobile Phone", "Mobile Phone", REASON_HEADER_AGAIN]]


def test_a_header_of_two_rows_is_read_by_its_lower_row(
    tmp_path: Path, write_csv: WriteCsv, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    # Salesforce's labels above API names; group labels above field names. A data row that holds
    # a header word ("Mobile" as a lead source) stays data.
    write_csv(tmp_path / "sf.csv", [["Full Name", "Mobile Phone"], ["Name", "MobilePhone"],
                                    ["A", "9953123401"]])
    write_xlsx(tmp_path / "groups.xlsx", {"S": [["Customer", None, "Contact"],
                                                ["Name", "Source", "Mobile No"],
                                                ["B", "Mobile", 9953123402]]})
    write_csv(tmp_path / "plain.csv", [["Name", "Phone", "Source"], ["C", "9953123403", "Mobile"]])
    inputs = load_campaign_inputs(make_campaign(["sf.csv", "groups.xlsx", "plain.csv"]))
    assert _phones(inputs) == ["+919953123401", "+919953123402", "+919953123403"]
    assert [(s.header_row, s.phone_column) for s in inputs.sources] == [
        (2, "MobilePhone"), (2, "Mobile No"), (1, "Phone")]
    assert inputs.rejects.empty
    assert inputs.customers["extra:Source"].tolist() == [None, "Mobile", "Mobile"]


# --------------------------------------------------------------------------- column mapping


def test_per_file_columns_combine_a_workbook_and_a_csv(
    tmp_path: Path, write_csv: WriteCsv, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_xlsx(tmp_path / "north.xlsx", {"Leads": [["Customer Name", "Cust Mob", "RM"],
                                                   ["Asha", 9953123401, "agent-002"]]})
    write_csv(tmp_path / "south.csv", [["customer name", "Tel. Client"], ["Bala", "09953123402"]],
              encoding="cp1252")
    path = make_campaign(customers={
        "files": [{"path": "north.xlsx", "columns": {"phone": "Cust Mob", "preferred_agent": "RM"}},
                  {"path": "south.csv", "columns": {"phone": "tel client"}}],
    })
    inputs = load_campaign_inputs(path)
    assert _phones(inputs) == ["+919953123401", "+919953123402"]
    assert inputs.customers["preferred_agent"].tolist() == ["agent-002", None]
    # "Customer Name" and "customer name" are one report column, headed as first written.
    assert inputs.customers["extra:Customer Name"].tolist() == ["Asha", "Bala"]
    assert "extra:customer name" not in inputs.customers


def test_per_file_columns_override_the_campaigns_field_by_field(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "a.csv", [["Mobile No.", "Owner"], ["9953123401", "agent-001"]])
    write_csv(tmp_path / "b.csv", [["Téléphone", "Owner"], ["9953123402", "agent-002"]])
    path = make_campaign(customers={
        "files": ["a.csv", {"path": "b.csv", "columns": {"phone": "Téléphone"}}],
        "columns": {"phone": "Mobile No.", "preferred_agent": "Owner"},
    })
    inputs = load_campaign_inputs(path)
    assert _phones(inputs) == ["+919953123401", "+919953123402"]
    assert inputs.customers["preferred_agent"].tolist() == ["agent-001", "agent-002"]


def test_the_error_names_the_option_that_works_for_that_file(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "a.csv", [["Mobile No."], ["9953123401"]])
    write_csv(tmp_path / "b.csv", [["Cell Phone #"], ["9953123402"]])
    path = make_campaign(customers={"files": ["a.csv", "b.csv"], "columns": {"phone": "Mobile No."}})
    with pytest.raises(InputFileError, match=r"b.csv: no column 'Mobile No.' \(mapped as phone\); "
                                             r"columns: 'Cell Phone #'; map this file's with "
                                             r"customers.files\[1\].columns.phone"):
        load_campaign_inputs(path)
    write_csv(tmp_path / "b.csv", [["Ref"], ["9953123402"]])
    path = make_campaign(customers={"files": ["a.csv", "b.csv"]})
    with pytest.raises(InputFileError, match=r"b.csv: no phone column found .* map it with "
                                             r"customers.files\[1\].columns.phone"):
        load_campaign_inputs(path)


@pytest.mark.parametrize("header", ["Téléphone", "TELEPHONE", "téléphone", "Numéro de téléphone",
                                    "Mobile Number*", "Contact No", "Phone (Mobile)",
                                    "\uff30\uff28\uff2f\uff2e\uff25"])  # fullwidth PHONE
def test_headers_fold_accents_case_and_width(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign, header: str
) -> None:
    write_csv(tmp_path / "customers.csv", [["Nom", header], ["Zoë", "9953123401"]], encoding="utf-8-sig")
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.sources[0].phone_column == header


@pytest.mark.parametrize("headers", [["Phone", "Name", "Phone"], ["Phone", "Name", "Phone.1"]])
def test_two_columns_headed_phone_are_ambiguous(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign, headers: list[str]
) -> None:
    write_csv(tmp_path / "customers.csv", [headers, ["9953123401", "A", "9953123402"]])
    with pytest.raises(InputFileError, match=r"several columns could be the phone column: .*"
                                             r"map the one to call by its letter, e\.g\. "
                                             r"customers.columns.phone: 'column C'"):
        load_campaign_inputs(make_campaign())
    path = make_campaign(customers={"files": ["customers.csv"], "columns": {"phone": "column C"}})
    inputs = load_campaign_inputs(path)
    assert _phones(inputs) == ["+919953123402"]
    assert inputs.customers["extra:Phone"].tolist() == ["9953123401"]


def test_a_mapping_to_a_repeated_header_is_ambiguous_too(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone", "Phone"], ["9953123401", "9953123402"]])
    path = make_campaign(customers={"files": ["customers.csv"], "columns": {"phone": "Phone"}})
    with pytest.raises(InputFileError, match=r"several columns are headed 'Phone' \(columns A and "
                                             r"B\).*'column B'"):
        load_campaign_inputs(path)


def test_phone_and_mobile_still_ask_for_a_mapping(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone", "Mobile"], ["9953123401", "9953123402"]])
    with pytest.raises(InputFileError, match=r"several columns could be the phone column: 'Phone', "
                                             r"'Mobile'; map the one to use, e.g. "
                                             r"customers.columns.phone: 'Mobile'"):
        load_campaign_inputs(make_campaign())


# --------------------------------------------------------------------------- CSV dialects


def test_excel_sep_line_is_the_delimiter_and_not_a_row(
    tmp_path: Path, make_campaign: MakeCampaign
) -> None:
    (tmp_path / "customers.csv").write_text(
        "sep=;\nName;Mobile;Amount\nAsha;9953123401;1,5\nBala;9953123402,5;2\n", encoding="utf-8")
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.customers["extra:Amount"].tolist() == ["1,5"]
    # Excel hides the sep line: the header is row 1 and Bala row 3, as Excel shows them.
    assert inputs.customers["source_row"].tolist() == [2]
    assert _rejects(inputs) == [["", 3, "Mobile", "9953123402,5",
                                 "character ',' found where digits belong"]]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "cp1252"])
def test_title_rows_in_every_encoding(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign, encoding: str
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Rapport des prospects"], [], ["Nom", "Téléphone"], ["Zoë", "9953123401"],
        ["José", "+91 99531 2340O"],
    ], delimiter="\t" if encoding == "utf-16" else ",", encoding=encoding)
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.customers["extra:Nom"].tolist() == ["Zoë"]
    assert _rejects(inputs) == [["", 5, "Téléphone", "+91 99531 2340O",
                                 "letter 'O' found where digits belong"]]


def test_quoted_newlines_keep_excel_row_numbers_below_a_preamble(
    tmp_path: Path, make_campaign: MakeCampaign
) -> None:
    (tmp_path / "customers.csv").write_text(
        '"Report\nMarch",,\n\nName,Phone,Note\nA,9953123401,"two\nlines"\nB,12345,\n'
        'C,9953123403,x,y\nD,9953123404,\n')
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401", "+919953123404"]
    assert inputs.customers["source_row"].tolist() == [4, 7]
    assert [r[1] for r in _rejects(inputs)] == [5, 6]
    assert _rejects(inputs)[1][4].startswith("row has 4 fields, expected 3 fields")


def test_trailing_delimiters_on_data_rows_only(
    tmp_path: Path, make_campaign: MakeCampaign
) -> None:
    (tmp_path / "customers.csv").write_text("Name,Phone\nA,9953123401,\nB,9953123402,\n")
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401", "+919953123402"]
    assert list(inputs.customers.columns)[-1] == "extra:Name"
    assert inputs.rejects.empty


# --------------------------------------------------------------------------- empty tables


def test_header_only_sheet_is_an_error_naming_file_and_sheet(
    tmp_path: Path, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_xlsx(tmp_path / "c.xlsx", {"Data": [["Phone"], [9953123401]],
                                     "April": [["Phone", "Name"], [None, None]]})
    with pytest.raises(InputFileError, match=r"c.xlsx \(sheet 'April'\): has a header row \(row 1\) "
                                             r"but no customer rows below it"):
        load_campaign_inputs(make_campaign({"path": "c.xlsx", "sheet": "*"}))


def test_header_only_file_is_an_error_line_in_validate(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Leads"], [], ["Name", "Mobile"], [], []])
    report = preflight(make_campaign())
    assert not report.ok
    assert report.error is not None
    assert "customers.csv: has a header row (row 3) but no customer rows below it" in report.error
    assert "ERROR: " in report.render()


# --------------------------------------------------------------------------- file types


def test_csv_renamed_xlsx_is_read_as_csv(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "leads.xlsx", [["Name", "Mobile"], ["A", "9953123401"], ["B", "99531"]])
    inputs = load_campaign_inputs(make_campaign("leads.xlsx"))
    assert _phones(inputs) == ["+919953123401"]
    assert _rejects(inputs) == [["", 3, "Mobile", "99531", "wrong number of digits"]]


HTML_XLS = """<html xmlns:x="urn:schemas-microsoft-com:office:excel">
<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>
<body><table border="1">
<tr><td colspan="4"><b>Lead Export</b></td></tr>
<tr><td colspan="4">Generated: 05/01/2026</td></tr>
<tr><th>Lead Name</th><th>Mobile</th><th>Amount</th><th>Notes</th></tr>
<tr><td>Zoë</td><td>09953123401</td><td>1,234</td><td>first<br>second</td></tr>
<tr><td>B &amp; Co</td><td>9.19953E+11</td><td>007</td><td></td></tr>
<tr><td>Chitra</td><td>+91&nbsp;99531&nbsp;23403</td><td>NaN</td><td>x</td></tr>
<tr><td>Dev</td><td>98765abcde</td><td></td><td></td></tr>
</table></body></html>
"""


def test_html_table_saved_as_xls_is_read_as_text(tmp_path: Path, make_campaign: MakeCampaign) -> None:
    (tmp_path / "export.xls").write_text(HTML_XLS, encoding="utf-8")
    inputs = load_campaign_inputs(make_campaign("export.xls"))
    assert _phones(inputs) == ["+919953123401", "+919953123403"]
    # Cells are text as written: no "1,234" -> 1234, "007" -> 7, or 9.19953E+11 -> a number.
    assert inputs.customers["extra:Amount"].tolist() == ["1,234", "NaN"]
    assert inputs.customers["extra:Lead Name"].tolist() == ["Zoë", "Chitra"]
    assert inputs.customers["extra:Notes"].tolist() == ["first\nsecond", "x"]
    assert _rejects(inputs) == [
        ["", 5, "Mobile", "9.19953E+11", REASON_SCIENTIFIC],
        ["", 7, "Mobile", "98765abcde", "letters 'a', 'b', 'c', 'd', 'e' found where digits belong"],
    ]
    assert inputs.sources[0].header_row == 3


def test_html_file_without_a_table_is_an_error(tmp_path: Path, make_campaign: MakeCampaign) -> None:
    (tmp_path / "export.xls").write_text("<html><body><p>Session expired</p></body></html>")
    with pytest.raises(InputFileError, match=r"export.xls: an HTML or XML document without a table"):
        load_campaign_inputs(make_campaign("export.xls"))


def test_chart_only_workbook_is_a_clear_error(tmp_path: Path, make_campaign: MakeCampaign) -> None:
    from openpyxl.chart import BarChart, Reference

    workbook = openpyxl.Workbook()
    data = workbook.active
    assert data is not None
    data.append([1])
    chart_sheet = workbook.create_chartsheet("Chart")
    chart = BarChart()
    chart.add_data(Reference(data, min_col=1, min_row=1, max_row=1))
    chart_sheet.add_chart(chart)
    workbook.remove(data)
    workbook.save(tmp_path / "chart.xlsx")
    with pytest.raises(InputFileError, match=r"chart.xlsx: the workbook holds only charts"):
        load_campaign_inputs(make_campaign("chart.xlsx"))


def test_chart_sheet_beside_data_is_skipped(tmp_path: Path, make_campaign: MakeCampaign) -> None:
    from openpyxl.chart import BarChart, Reference

    workbook = openpyxl.Workbook()
    data = workbook.active
    assert data is not None
    data.title = "Data"
    chart_sheet = workbook.create_chartsheet("Chart", 0)  # first in the workbook
    data.append(["Phone"])
    data.append([9953123401])
    chart = BarChart()
    chart.add_data(Reference(data, min_col=1, min_row=1, max_row=2))
    chart_sheet.add_chart(chart)
    workbook.save(tmp_path / "mixed.xlsx")
    inputs = load_campaign_inputs(make_campaign("mixed.xlsx"))
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.sources[0].sheet == "Data"


def test_password_protected_and_corrupt_files_keep_their_errors(
    tmp_path: Path, write_encrypted: Callable[[Path], Path], make_campaign: MakeCampaign
) -> None:
    write_encrypted(tmp_path / "locked.xls")
    with pytest.raises(InputFileError, match=r"locked.xls: the workbook is password-protected"):
        load_campaign_inputs(make_campaign("locked.xls"))
    (tmp_path / "broken.xlsx").write_bytes(bytes(range(256)) * 16)
    with pytest.raises(InputFileError, match=r"broken.xlsx: not a valid .xlsx workbook"):
        load_campaign_inputs(make_campaign("broken.xlsx"))


# --------------------------------------------------------------------------- other lists


def test_do_not_call_list_and_roster_below_a_title(
    tmp_path: Path, write_csv: WriteCsv, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone"], ["9953123401"], ["9953123402"]])
    write_xlsx(tmp_path / "dnc.xlsx", {"Opt-outs": [["Do not call - updated weekly"], [],
                                                    ["Mobile No", "Date"], [919953123402, "2026-01-02"]]})
    agents = [["Agent roster"], ["User ID", "Contact URI"], ["agent-009", "+919800000009"]]
    inputs = load_campaign_inputs(make_campaign(agents=agents, do_not_call="dnc.xlsx"))
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.suppressed[["row", "dnc_file", "dnc_sheet", "dnc_row"]].values.tolist() == [
        [3, "dnc.xlsx", "Opt-outs", 4]]
    assert inputs.dnc_rejects.empty
    assert [a.agent_key for a in inputs.agents] == ["agent-009"]


def test_reader_reports_the_header_row_and_letters(tmp_path: Path, write_xlsx: WriteXlsx) -> None:
    from ccm_tasks.inputs.readers import HeaderSearch

    path = write_xlsx(tmp_path / "w.xlsx", {"S": [["Title"], [None, "Name", None, "Phone"],
                                                   [None, "A", None, "9953123401"]]})
    search = HeaderSearch(holds_header=lambda cells: "Phone" in cells)
    [table] = read_tables(path, None, search)
    assert (table.header_row, table.headers, table.letters) == (2, ["Name", "Phone"], ["B", "D"])
    assert list(table.rows) == [3]


def test_date_cells_and_headerless_sheets(
    tmp_path: Path, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    import datetime

    write_xlsx(tmp_path / "c.xlsx", {"S": [["Phone", "Due"], [datetime.date(2026, 1, 5), "x"],
                                           [9953123401, datetime.date(2026, 1, 6)]]})
    inputs = load_campaign_inputs(make_campaign("c.xlsx"))
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.customers["extra:Due"].tolist() == ["2026-01-06"]
    assert _rejects(inputs) == [["S", 2, "Phone", "2026-01-05",
                                 "a date, not a phone number (Excel formatted the cell as a date?)"]]
    write_xlsx(tmp_path / "bare.xlsx", {"S": [[9953123401, "A"], [9953123402, "B"]]})
    with pytest.raises(InputFileError, match=r"bare.xlsx \(sheet 'S'\): row 1 holds a phone number "
                                             r"where the header should be"):
        load_campaign_inputs(make_campaign("bare.xlsx"))


def test_pipe_delimited_export(tmp_path: Path, make_campaign: MakeCampaign) -> None:
    (tmp_path / "customers.csv").write_text("Name|Mobile|City\nA, B|9953123401|Pune\n")
    inputs = load_campaign_inputs(make_campaign())
    assert _phones(inputs) == ["+919953123401"]
    assert inputs.customers["extra:Name"].tolist() == ["A, B"]
