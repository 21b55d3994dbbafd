"""Fixtures for the inputs tests: small real files written into tmp_path."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

Rows = Sequence[Sequence[Any]]


def write_csv(path: Path, rows: Rows, *, delimiter: str = ",", encoding: str = "utf-8") -> Path:
    """Write rows as delimited text (values joined as given: no quoting unless a value needs it)."""
    lines = []
    for row in rows:
        cells = []
        for value in row:
            text = "" if value is None else str(value)
            if delimiter in text or '"' in text or "\n" in text:
                text = '"' + text.replace('"', '""') + '"'
            cells.append(text)
        lines.append(delimiter.join(cells))
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def write_xlsx(path: Path, sheets: dict[str, Rows]) -> Path:
    """Write a workbook with one sheet per entry, cells typed as given (int, float, str, None)."""
    workbook = openpyxl.Workbook()
    first = True
    for name, rows in sheets.items():
        sheet = workbook.active if first else workbook.create_sheet()
        assert sheet is not None
        first = False
        sheet.title = name
        for row in rows:
            sheet.append(list(row))
    workbook.save(path)
    return path


def write_encrypted_office_file(path: Path) -> Path:
    """A minimal OLE2 compound file shaped like a password-protected .xlsx.

    Excel encrypts an .xlsx by wrapping it in a compound file whose directory holds the streams
    EncryptionInfo and EncryptedPackage; this writes the header and such a directory sector.
    """
    header = bytearray(512)
    header[0:8] = bytes.fromhex("D0CF11E0A1B11AE1")
    struct.pack_into("<HHHHH", header, 24, 0x003E, 0x0003, 0xFFFE, 9, 6)  # version, order, shifts
    struct.pack_into("<I", header, 44, 1)  # one FAT sector
    struct.pack_into("<I", header, 48, 1)  # directory starts at sector 1
    fat = bytearray(b"\xff" * 512)
    struct.pack_into("<II", fat, 0, 0xFFFFFFFD, 0xFFFFFFFE)
    directory = bytearray()
    for name, kind in (("Root Entry", 5), ("EncryptionInfo", 2), ("EncryptedPackage", 2),
                       ("\x06DataSpaces", 1)):
        encoded = (name + "\x00").encode("utf-16-le")
        entry = bytearray(128)
        entry[: len(encoded)] = encoded
        struct.pack_into("<HB", entry, 64, len(encoded), kind)
        directory += entry
    path.write_bytes(bytes(header) + bytes(fat) + bytes(directory) + b"\x00" * 1024)
    return path


@pytest.fixture
def make_campaign(tmp_path: Path) -> Callable[..., Path]:
    """Write a campaign definition (and a default roster) into tmp_path; return its path."""

    def factory(
        customers: Any = "customers.csv",
        *,
        agents: Rows | None = None,
        name: str = "test",
        **extra: Any,
    ) -> Path:
        roster = tmp_path / "agents.csv"
        if not roster.exists() or agents is not None:
            write_csv(roster, agents or [
                ["user_id", "contact_uri", "name", "group"],
                ["agent-001", "+919800000001", "Asha", "sales"],
                ["agent-002", "+919800000002", "Bala", "support"],
            ])
        if isinstance(customers, dict) and "files" in customers:
            spec = customers
        else:
            spec = {"files": customers if isinstance(customers, list) else [customers]}
        data: dict[str, Any] = {
            "name": name,
            "customers": spec,
            "agents": "agents.csv",
            "virtual_number": "+918045680000",
            **extra,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return factory


@pytest.fixture(name="write_csv")
def write_csv_fixture() -> Callable[..., Path]:
    """:func:`write_csv` (fixtures, so test modules need no package imports)."""
    return write_csv


@pytest.fixture(name="write_xlsx")
def write_xlsx_fixture() -> Callable[..., Path]:
    """:func:`write_xlsx`."""
    return write_xlsx


@pytest.fixture(name="write_encrypted")
def write_encrypted_fixture() -> Callable[[Path], Path]:
    """:func:`write_encrypted_office_file`."""
    return write_encrypted_office_file
