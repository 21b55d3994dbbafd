"""Generate the demo campaign's spreadsheets (seeded: the same files every run).

    python campaigns/demo/make_demo_data.py

Writes, next to this script: customers.csv, customers.xlsx (sheets North and South), agents.csv and
do_not_call.csv. The numbers are synthetic: run the demo against the simulator, never a real account.

Deliberately bad rows, so `ccm validate campaigns/demo/demo.yaml` has something to report:
invalid numbers, numbers Excel wrote in scientific notation, a decimal number cell, blank phones,
duplicates inside the CSV and across the CSV and the workbook, do-not-call matches, an unknown
preferred agent, an agent with neither user_id nor contact_uri, and a duplicate agent.
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import phonenumbers

HERE = Path(__file__).resolve().parent
SEED = 2026
FIRST = ["Aarav", "Vivaan", "Aditya", "Ananya", "Diya", "Ishaan", "Kavya", "Meera", "Rohan", "Saanvi",
         "Arjun", "Priya", "Rahul", "Sneha", "Vikram", "Neha", "Karthik", "Lakshmi", "Farhan", "Zoë"]
LAST = ["Sharma", "Iyer", "Reddy", "Patel", "Nair", "Gupta", "Khan", "Singh", "Das", "Mukherjee",
        "Menon", "Rao", "Joshi", "Kulkarni", "Bose"]
CITIES = ["Bengaluru", "Chennai", "Delhi", "Mumbai", "Pune", "Kolkata", "Hyderabad", "Kochi"]
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def mobile(rng: random.Random, used: set[str]) -> str:
    """A new valid 10-digit Indian mobile number (national format, no prefix)."""
    while True:
        number = rng.choice("9876") + "".join(rng.choice("0123456789") for _ in range(9))
        parsed = phonenumbers.parse(number, "IN")
        if number not in used and phonenumbers.is_valid_number(parsed):
            used.add(number)
            return number


def written(rng: random.Random, number: str) -> str:
    """The number as people type it: one of the usual Indian formats."""
    style = rng.randrange(7)
    if style == 0:
        return number
    if style == 1:
        return f"+91 {number[:5]} {number[5:]}"
    if style == 2:
        return "0" + number
    if style == 3:
        return "91" + number
    if style == 4:
        return f"0{number[:2]}-{number[2:6]}-{number[6:]}"
    if style == 5:
        return f"+91{number}"
    return f"{number[:5]} {number[5:]}"


def name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def order_id(rng: random.Random) -> str:
    return f"ORD-{rng.randrange(100000, 999999)}"


def main() -> None:
    rng = random.Random(SEED)
    used: set[str] = set()

    # ----------------------------------------------------------------- customers.csv
    csv_rows: list[list[str]] = []
    csv_numbers: list[str] = []
    for i in range(200):
        number = mobile(rng, used)
        csv_numbers.append(number)
        agent = f"agent-{rng.randrange(1, 11):03d}" if i % 20 == 3 else ""
        csv_rows.append([name(rng), written(rng, number), order_id(rng), rng.choice(CITIES), agent])
    csv_rows[10][1] = "12345"  # too short
    csv_rows[25][1] = "5555555555"  # ten digits, but no such Indian number range
    csv_rows[26][1] = "99531234567"  # one digit too many
    csv_rows[40][1] = "9.19953E+11"  # Excel's scientific notation: digits are gone
    csv_rows[41][1] = "9,19953E+11"  # the same, in a decimal-comma locale
    csv_rows[55][1] = ""  # blank phone
    csv_rows[56][1] = "   "  # blank phone (spaces)
    csv_rows[70][1] = "011-2345-6789"  # a Delhi landline: valid
    csv_rows[71][1] = "080 4123 4567"  # a Bengaluru landline: valid
    csv_rows[90][1] = written(rng, csv_numbers[5])  # duplicate inside the CSV
    csv_rows[91][1] = written(rng, csv_numbers[6])
    csv_rows[120][4] = "agent-099"  # a preferred agent who is not in the roster
    csv_rows[121][4] = "Agent Three"  # by name
    csv_rows[122][4] = "+91 98000 00004"  # by contact number
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Customer Name", "Mobile No.", "Order ID", "City", "Preferred Agent"])
    writer.writerows(csv_rows)
    (HERE / "customers.csv").write_text(buffer.getvalue(), encoding="utf-8")

    # ----------------------------------------------------------------- customers.xlsx
    workbook = openpyxl.Workbook()
    for sheet_name in ("North", "South"):
        sheet = workbook.active if sheet_name == "North" else workbook.create_sheet()
        assert sheet is not None
        sheet.title = sheet_name
        sheet.append(["Name", "Phone Number", "Order ID", "Agent"])
        for i in range(60):
            number = mobile(rng, used)
            cell: object = written(rng, number)
            if i % 4 == 0:
                cell = int(number)  # a number cell, as Excel stores typed digits
            elif i % 4 == 1:
                cell = float("91" + number)  # a float cell: 919953123456.0
            agent = f"agent-{rng.randrange(1, 11):03d}" if i % 15 == 7 else None
            sheet.append([name(rng), cell, order_id(rng), agent])
    north, south = workbook["North"], workbook["South"]
    north["B10"] = 9953123456.5  # a decimal number cell: not an exact integer
    north["B11"] = "9.19953E+11"
    north["B12"] = None  # blank phone
    # Duplicates across files: the same people, written differently, in the workbook.
    south["B20"] = int(csv_numbers[0])
    south["B21"] = f"+91 {csv_numbers[1]}"
    south["B22"] = "0" + csv_numbers[2]
    north["B30"] = float("91" + csv_numbers[3])
    workbook.properties.created = datetime(*FIXED_TIME)
    workbook.properties.modified = datetime(*FIXED_TIME)
    raw = io.BytesIO()
    workbook.save(raw)
    (HERE / "customers.xlsx").write_bytes(_fixed_zip(raw.getvalue()))

    # ----------------------------------------------------------------- do_not_call.csv
    dnc = [
        ["phone", "note"],
        [csv_numbers[8], "asked not to be called"],
        ["+91 " + csv_numbers[9], "complaint"],
        ["0" + csv_numbers[10], "DND registry"],
        [csv_numbers[150], "asked not to be called"],
        ["9000000000", "not one of our customers"],
        ["123", "typo in the list"],
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(dnc)
    (HERE / "do_not_call.csv").write_text(buffer.getvalue(), encoding="utf-8")

    # ----------------------------------------------------------------- agents.csv
    words = ["One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten"]
    agents = [["user_id", "contact_uri", "name", "group"]]
    for i in range(1, 11):
        agents.append([f"agent-{i:03d}", f"+9198000000{i:02d}", f"Agent {words[i - 1]}",
                       "sales" if i <= 5 else "support"])
    agents.append(["", "", "Agent Without Contact", "sales"])  # neither user_id nor contact_uri
    agents.append(["agent-003", "+919800000099", "Agent Three Again", "sales"])  # duplicate id
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(agents)
    (HERE / "agents.csv").write_text(buffer.getvalue(), encoding="utf-8")
    print(f"wrote demo data to {HERE}")


def _fixed_zip(data: bytes) -> bytes:
    """The same workbook with fixed timestamps inside the zip, so regenerating changes nothing."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(
        out, "w", compression=zipfile.ZIP_DEFLATED
    ) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


if __name__ == "__main__":
    main()
