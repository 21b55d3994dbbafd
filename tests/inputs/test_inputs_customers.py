"""Customers: columns found by name, rejects with row numbers, duplicates, do-not-call, extras."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ccm_tasks.inputs import (
    CUSTOMER_COLUMNS,
    REJECTS_FILE_COLUMNS,
    InputFileError,
    load_campaign_inputs,
    write_rejects,
)
from ccm_tasks.inputs.phones import REASON_BLANK, REASON_FRACTION, REASON_SCIENTIFIC

MakeCampaign = Callable[..., Path]
WriteCsv = Callable[..., Path]
WriteXlsx = Callable[..., Path]


@pytest.mark.parametrize(
    "header",
    ["Mobile", "Phone Number", "contact", "Mobile No.", "phone", "msisdn", "Customer Phone",
     "MOBILE_NO", "phone-number"],
)
def test_phone_column_found_by_usual_names(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign, header: str
) -> None:
    write_csv(tmp_path / "customers.csv", [["Name", header], ["A", "9953123456"]])
    inputs = load_campaign_inputs(make_campaign())
    assert list(inputs.customers["customer_key"]) == ["+919953123456"]
    assert inputs.sources[0].phone_column == header


def test_every_phone_format_and_the_rejects(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Name", "Mobile", "Order ID"],
        ["a", "+91 99531 23451", "1"],
        ["b", "09953123452", "2"],
        ["c", "9953123453", "3"],
        ["d", "919953123454", "4"],
        ["e", "099-5312-3455", "5"],
        ["f", "919953123456.0", "6"],
        ["g", "011-2345-6789", "7"],  # Delhi landline
        ["h", "9.19953E+11", "8"],
        ["i", "12345", "9"],
        ["j", "", "10"],
        ["", "", ""],  # a blank row: skipped, not rejected
        ["k", "9953123457.5", "11"],
    ])
    inputs = load_campaign_inputs(make_campaign())
    assert list(inputs.customers["customer_key"]) == [
        "+919953123451", "+919953123452", "+919953123453", "+919953123454", "+919953123455",
        "+919953123456", "+911123456789",
    ]
    rejects = inputs.rejects
    assert list(rejects.columns) == ["file", "sheet", "row", "column", "value", "reason"]
    assert list(rejects["row"]) == [9, 10, 11, 13]
    assert list(rejects["value"]) == ["9.19953E+11", "12345", "", "9953123457.5"]
    assert rejects["reason"].tolist()[0] == REASON_SCIENTIFIC
    assert rejects["reason"].tolist()[2] == REASON_BLANK
    assert rejects["reason"].tolist()[3] == REASON_FRACTION
    assert set(rejects["column"]) == {"Mobile"}
    assert set(rejects["file"]) == {"customers.csv"}
    source = inputs.sources[0]
    assert (source.rows, source.rejected, source.called) == (11, 4, 7)


def test_customers_frame_columns_and_extras(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Customer Name", "Phone", "Order ID", "Agent"],
        ["Asha", "9953123456", "ORD-1", "agent-002"],
        ["Bala", "9953123457", "ORD-2", ""],
    ])
    customers = load_campaign_inputs(make_campaign()).customers
    assert list(customers.columns) == [*CUSTOMER_COLUMNS, "extra:Customer Name", "extra:Order ID"]
    first = customers.iloc[0]
    assert first["phone"] == first["customer_key"] == "+919953123456"
    assert first["phone_input"] == "9953123456"
    assert first["preferred_agent"] == "agent-002"
    assert pd.isna(customers.iloc[1]["preferred_agent"])
    assert (first["source_file"], first["source_sheet"], first["source_row"]) == (
        "customers.csv", "", 2)
    assert first["extra:Order ID"] == "ORD-1"


def test_preferred_agent_by_id_number_or_name_and_unknown_is_a_warning(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Phone", "Preferred Agent"],
        ["9953123451", "AGENT-001"],
        ["9953123452", "098000 00002"],
        ["9953123453", "asha"],
        ["9953123454", "agent-404"],
    ])
    inputs = load_campaign_inputs(make_campaign())
    assert inputs.customers["preferred_agent"].tolist()[:3] == ["agent-001", "agent-002", "agent-001"]
    assert pd.isna(inputs.customers["preferred_agent"].iloc[3])
    assert inputs.warnings["row"].tolist() == [5]
    assert "agent-404" in inputs.warnings["reason"].iloc[0]


def test_mapped_columns_case_and_spacing_insensitive(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Cust Mob", "RM"], ["9953123456", "agent-002"],
    ])
    path = make_campaign(customers={"files": ["customers.csv"],
                                    "columns": {"phone": "cust_mob", "preferred_agent": "rm"}})
    inputs = load_campaign_inputs(path)
    assert inputs.customers["preferred_agent"].tolist() == ["agent-002"]


def test_missing_phone_column_is_one_error(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Name", "City"], ["A", "Pune"]])
    with pytest.raises(InputFileError, match=r"customers.csv: no phone column found") as info:
        load_campaign_inputs(make_campaign())
    assert "'Name', 'City'" in str(info.value)


def test_mapped_phone_column_missing(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Name", "Phone"], ["A", "9953123456"]])
    path = make_campaign(customers={"files": ["customers.csv"], "columns": {"phone": "Mobile"}})
    with pytest.raises(InputFileError, match=r"no column 'Mobile' \(mapped as phone\)"):
        load_campaign_inputs(path)


def test_two_phone_like_columns_ask_for_a_mapping(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone", "Mobile"], ["9953123456", "9953123457"]])
    with pytest.raises(InputFileError, match=r"several columns could be the phone column"):
        load_campaign_inputs(make_campaign())


def test_missing_phone_column_names_the_sheet(
    tmp_path: Path, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_xlsx(tmp_path / "c.xlsx", {"Good": [["Phone"], [9953123456]], "Bad": [["Name"], ["A"]]})
    with pytest.raises(InputFileError, match=r"c.xlsx \(sheet 'Bad'\): no phone column") as info:
        load_campaign_inputs(make_campaign({"path": "c.xlsx", "sheet": "*"}))
    assert info.value.sheet == "Bad"


def test_prose_text_file_is_not_a_spreadsheet(tmp_path: Path, make_campaign: MakeCampaign) -> None:
    (tmp_path / "notes.txt").write_text("Please call these people tomorrow morning\nthanks\n")
    with pytest.raises(InputFileError, match=r"notes.txt: does not look like a spreadsheet"):
        load_campaign_inputs(make_campaign("notes.txt"))


def test_header_only_file_is_an_error_naming_the_file(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    # Issue 10: a header and nothing below it is a file that cannot be used, said as such (it
    # used to load as "no valid customer", which hides which file was wrong).
    write_csv(tmp_path / "customers.csv", [["Phone"]])
    with pytest.raises(InputFileError, match=r"customers.csv: has a header row \(row 1\) but no "
                                             r"customer rows below it"):
        load_campaign_inputs(make_campaign())


def test_duplicates_across_files_and_sheets_first_occurrence_wins(
    tmp_path: Path, write_csv: WriteCsv, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Name", "Phone"], ["A", "9953123451"], ["B", "+91 99531 23452"], ["A again", "09953123451"],
    ])
    write_xlsx(tmp_path / "more.xlsx", {
        "One": [["Name", "Mobile No."], ["B in xlsx", 919953123452], ["C", 9953123453]],
        "Two": [["Name", "Mobile No."], ["C again", "9953123453"], ["D", 9953123454.0]],
    })
    inputs = load_campaign_inputs(make_campaign(["customers.csv", {"path": "more.xlsx",
                                                                    "sheet": "*"}]))
    assert inputs.customers["customer_key"].tolist() == [
        "+919953123451", "+919953123452", "+919953123453", "+919953123454"]
    assert inputs.customers["extra:Name"].tolist() == ["A", "B", "C", "D"]
    dup = inputs.duplicates
    assert dup[["file", "sheet", "row", "first_file", "first_sheet", "first_row"]].values.tolist() == [
        ["customers.csv", "", 4, "customers.csv", "", 2],
        ["more.xlsx", "One", 2, "customers.csv", "", 3],
        ["more.xlsx", "Two", 2, "more.xlsx", "One", 3],
    ]
    assert dup["reason"].iloc[2] == "duplicate of more.xlsx [One] row 3"
    assert inputs.read_counts == {("customers.csv", ""): 3, ("more.xlsx", "One"): 2,
                                  ("more.xlsx", "Two"): 2}
    assert [s.duplicates for s in inputs.sources] == [1, 1, 1]


def test_duplicate_points_at_its_first_occurrence_when_firsts_are_out_of_file_order(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    # The first occurrences of b.csv's duplicates are in b.csv (row 3) and a.csv (row 2), in that
    # order: the report must pair each duplicate with its own first occurrence.
    write_csv(tmp_path / "a.csv", [["Phone"], ["9953123401"]])
    write_csv(tmp_path / "b.csv", [["Phone"], ["9953123499"], ["9953123402"], ["9953123402"],
                                   ["9953123401"]])
    inputs = load_campaign_inputs(make_campaign(["a.csv", "b.csv"]))
    dup = inputs.duplicates
    assert dup[["file", "row", "first_file", "first_row"]].values.tolist() == [
        ["b.csv", 4, "b.csv", 3],
        ["b.csv", 5, "a.csv", 2],
    ]
    assert dup["reason"].tolist() == ["duplicate of b.csv row 3", "duplicate of a.csv row 2"]


def test_do_not_call_suppresses_every_occurrence(
    tmp_path: Path, write_csv: WriteCsv, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Phone"], ["9953123451"], ["9953123452"], ["+919953123452"], ["9953123453"],
    ])
    write_csv(tmp_path / "dnc.csv", [["Mobile Number", "Why"], ["099531 23452", "asked"],
                                     ["123", "typo"]])
    write_xlsx(tmp_path / "dnc2.xlsx", {"List": [[919953123453]]})  # no header row at all
    path = make_campaign(do_not_call=["dnc.csv", "dnc2.xlsx"])
    inputs = load_campaign_inputs(path)
    assert inputs.customers["customer_key"].tolist() == ["+919953123451"]
    suppressed = inputs.suppressed
    assert suppressed["row"].tolist() == [3, 4, 5]
    assert suppressed[["dnc_file", "dnc_row"]].values.tolist() == [
        ["dnc.csv", 2], ["dnc.csv", 2], ["dnc2.xlsx", 1]]
    assert inputs.duplicates.empty  # suppressed rows are not also counted as duplicates
    assert inputs.dnc_rejects["value"].tolist() == ["123"]
    assert inputs.do_not_call_files == [("dnc.csv", 1), ("dnc2.xlsx", 1)]


def test_empty_do_not_call_list_is_allowed(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone"], ["9953123451"]])
    (tmp_path / "dnc.csv").write_text("")
    inputs = load_campaign_inputs(make_campaign(do_not_call="dnc.csv"))
    assert len(inputs.customers) == 1
    assert inputs.do_not_call_files == [("dnc.csv", 0)]


def test_corrupt_do_not_call_list_is_an_error(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone"], ["9953123451"]])
    (tmp_path / "dnc.xlsx").write_bytes(b"not a workbook at all" * 10)
    with pytest.raises(InputFileError, match=r"dnc\.xlsx"):
        load_campaign_inputs(make_campaign(do_not_call="dnc.xlsx"))


def test_numeric_and_scientific_cells_in_xlsx(
    tmp_path: Path, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_xlsx(tmp_path / "c.xlsx", {"Data": [
        ["Phone", "Amount"],
        [9953123451, 10.5],
        [919953123452.0, 3.0],
        [9953123453.5, 1],
        ["9.19953E+11", None],
        [None, None],
        [None, "orphan"],
    ]})
    inputs = load_campaign_inputs(make_campaign({"path": "c.xlsx", "sheet": "Data"}))
    assert inputs.customers["customer_key"].tolist() == ["+919953123451", "+919953123452"]
    assert inputs.customers["extra:Amount"].tolist() == ["10.5", "3"]
    assert inputs.rejects[["row", "reason"]].values.tolist() == [
        [4, REASON_FRACTION], [5, REASON_SCIENTIFIC], [7, REASON_BLANK]]
    assert inputs.sources[0].sheet == "Data"


def test_write_rejects_one_file_with_kinds(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Name", "Phone"], ["Zoë", "12345"], ["B", "9953123452"], ["B2", "9953123452"],
        ["C", "9953123453"],
    ])
    write_csv(tmp_path / "dnc.csv", [["phone"], ["9953123453"]])
    write_csv(tmp_path / "agents.csv", [["user_id", "contact_uri", "name"], ["agent-001", "", "A"],
                                        ["", "", "Nobody"], ["agent-001", "", "A again"]])
    inputs = load_campaign_inputs(make_campaign(do_not_call="dnc.csv"))
    out = write_rejects(inputs, tmp_path / "out" / "rejects.csv")
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    table = pd.read_csv(out, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(table.columns) == list(REJECTS_FILE_COLUMNS)
    assert table["kind"].tolist() == ["rejected", "duplicate", "suppressed", "agent_rejected",
                                      "agent_duplicate"]
    assert table["row"].tolist() == ["2", "4", "5", "3", "4"]
    assert table.loc[1, "related_row"] == "3"
    assert table.loc[2, "related_file"] == "dnc.csv"
