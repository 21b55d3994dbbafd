"""Spreadsheets to text columns with Excel row numbers: CSV (any common encoding and delimiter),
and .xlsx/.xlsm/.xls/.ods workbooks through calamine.

Every cell is read as text: a workbook's numeric cells go through :func:`~ccm_tasks.inputs.phones.
cell_text` (``9953123456.0`` -> ``"9953123456"``; a float that is not an exact integer keeps its
decimals so the phone rules can reject it), CSV cells are never type-inferred. Row numbers are the
ones the user sees in Excel: the header is row 1 of a CSV file, and a workbook row keeps its sheet
row even when the table starts lower down.

The file's type comes from its first bytes, not its name: a zip is a workbook (.xlsx/.ods), an OLE2
compound file is a legacy .xls or an encrypted (password-protected) Office file, and text is CSV.
Whatever cannot be read as a whole raises one :class:`InputFileError`; a row with too many fields
is not an error but a :class:`BrokenRow`.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import python_calamine

from ccm_tasks.inputs.errors import InputFileError
from ccm_tasks.inputs.phones import cell_text

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]

ALL_SHEETS = "*"
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", "")

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = (",", ";", "\t")
_SKIPPED_LINE_RE = re.compile(r"Skipping line (\d+): (.*)")


@dataclass(frozen=True)
class BrokenRow:
    """A CSV line the parser could not split into the header's columns (it is left out)."""

    row: int
    problem: str


@dataclass
class Table:
    """One CSV file or one worksheet, as text columns.

    ``columns[i]`` holds the cells under ``headers[i]`` (``""`` when blank); ``rows`` is each data
    row's number as Excel shows it.
    """

    path: Path
    sheet: str  # "" for CSV
    headers: list[str]
    columns: list[ObjectArray]
    rows: IntArray
    delimited: bool = True  # False for a text file whose first line has no delimiter at all
    broken: list[BrokenRow] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Number of data rows (blank ones included)."""
        return len(self.rows)

    def blank_rows(self, among: IntArray) -> npt.NDArray[np.bool_]:
        """For the row indexes ``among``: whether every cell of that row is blank."""
        blank = np.ones(len(among), dtype=bool)
        for column in self.columns:
            still = np.flatnonzero(blank)
            if not len(still):
                break
            blank[still] = [not str(v).strip() for v in column[among[still]]]
        return blank


def read_tables(path: Path, sheet: str | None = None) -> list[Table]:
    """Read ``path``: one table for CSV, one per selected worksheet for a workbook.

    ``sheet``: None for the first sheet, ``"*"`` for every sheet, or a sheet name. Empty sheets are
    left out when reading every sheet; an empty file or an empty selected sheet is an error.
    """
    kind = _detect_kind(path)
    if kind == "workbook":
        return _read_workbook(path, sheet)
    if sheet not in (None, ALL_SHEETS):
        raise InputFileError(path, f"sheet {sheet!r} was asked for, but a CSV file has no sheets")
    return [_read_csv(path)]


# --------------------------------------------------------------------------- detection


def _detect_kind(path: Path) -> str:
    """ "workbook" or "text", or an InputFileError saying why the file is neither."""
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a folder, not a spreadsheet")
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if not head:
        raise InputFileError(path, "the file is empty")
    if head.startswith(_ZIP_MAGIC):
        return "workbook"
    if head.startswith(_OLE2_MAGIC):
        if _contains(path, _ENCRYPTED_STREAM):
            raise InputFileError(
                path, "the workbook is password-protected (encrypted); save a copy without a "
                      "password and point the campaign at that"
            )
        return "workbook"
    if suffix in WORKBOOK_SUFFIXES:
        raise InputFileError(
            path, f"not a valid {suffix} workbook (corrupt, or another kind of file renamed)"
        )
    if head.startswith(b"%PDF"):
        raise InputFileError(path, "not a spreadsheet (a PDF document); export the list as CSV or XLSX")
    if suffix not in TEXT_SUFFIXES:
        raise InputFileError(
            path, f"not a spreadsheet: unsupported file type {suffix!r} "
                  f"(use .csv, .xlsx, .xls or .ods)"
        )
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputFileError(path, "not a spreadsheet (a binary file, not CSV text)")
    return "text"


def _contains(path: Path, needle: bytes) -> bool:
    """Whether the file contains ``needle`` (read in chunks; OLE2 directories sit anywhere)."""
    overlap = len(needle) - 1
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False


# --------------------------------------------------------------------------- CSV


def _detect_encoding(path: Path, head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # Excel's "Unicode Text" export
    sample = head if len(head) < _SNIFF_BYTES else head[: head.rfind(b"\n") + 1] or head
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
    except UnicodeDecodeError:
        raise InputFileError(
            path, "text is neither UTF-8 nor Windows-1252 (cp1252); save it as CSV UTF-8"
        ) from None
    return "cp1252"


def _detect_delimiter(text: str) -> str | None:
    """The delimiter of the header line: the most frequent of , ; TAB outside quotes (None if none)."""
    for line in text.splitlines():
        if not line.strip():
            continue
        counts = dict.fromkeys(_DELIMITERS, 0)
        quoted = False
        for char in line:
            if char == '"':
                quoted = not quoted
            elif not quoted and char in counts:
                counts[char] += 1
        best = max(_DELIMITERS, key=lambda d: counts[d])
        return best if counts[best] else None
    return None


def _read_csv(path: Path) -> Table:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    encoding = _detect_encoding(path, head)
    delimiter = _detect_delimiter(head.decode(encoding, errors="replace"))
    try:
        try:
            frame, broken = _pandas_csv(path, delimiter or ",", encoding)
        except UnicodeDecodeError:
            if encoding != "utf-8":
                raise
            # UTF-8 in the first 64 KiB, something else further down: Windows-1252 explains both.
            frame, broken = _pandas_csv(path, delimiter or ",", "cp1252")
    except UnicodeDecodeError:
        raise InputFileError(
            path, "text is neither UTF-8 nor Windows-1252 (cp1252); save it as CSV UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise InputFileError(path, "the file is empty") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise InputFileError(path, f"not readable as CSV: {exc}") from None
    n_kept = len(frame)
    rows = np.arange(2, n_kept + 2, dtype=np.int64)
    if broken:
        # The parser drops bad lines; keep the survivors' numbers as Excel would show them.
        all_rows = np.arange(2, n_kept + len(broken) + 2, dtype=np.int64)
        rows = np.setdiff1d(all_rows, [b.row for b in broken])[:n_kept]
    headers = [str(h) for h in frame.columns]
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    return Table(path, "", headers, columns, rows, delimited=delimiter is not None, broken=broken)


def _pandas_csv(path: Path, delimiter: str, encoding: str) -> tuple[pd.DataFrame, list[BrokenRow]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(
            path,
            sep=delimiter,
            encoding=encoding,
            dtype=object,  # text as is: no float phones, no dates, no "NA" -> NaN
            na_filter=False,
            keep_default_na=False,
            skip_blank_lines=False,  # blank lines keep their Excel row numbers
            index_col=False,
            on_bad_lines="warn",
            engine="c",
        )
    broken: list[BrokenRow] = []
    for warning in caught:
        for match in _SKIPPED_LINE_RE.finditer(str(warning.message)):
            broken.append(BrokenRow(int(match.group(1)), f"row has {match.group(2)}"))
    return frame, broken


# --------------------------------------------------------------------------- workbooks


def _read_workbook(path: Path, sheet: str | None) -> list[Table]:
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError:
        raise InputFileError(path, "the workbook is password-protected") from None
    except (python_calamine.CalamineError, OSError, ValueError) as exc:
        raise InputFileError(path, f"not a readable workbook (corrupt?): {exc}") from None
    names = list(workbook.sheet_names)
    if not names:
        raise InputFileError(path, "the workbook has no sheets")
    if sheet is None:
        chosen = names[:1]
    elif sheet == ALL_SHEETS:
        chosen = names
    elif sheet in names:
        chosen = [sheet]
    else:
        folded = {n.casefold().strip(): n for n in names}
        if sheet.casefold().strip() not in folded:
            raise InputFileError(
                path, f"no sheet named {sheet!r}; sheets: {', '.join(map(repr, names))}"
            )
        chosen = [folded[sheet.casefold().strip()]]
    tables = []
    for name in chosen:
        table = _read_sheet(path, workbook, name)
        if table is None:
            if sheet != ALL_SHEETS:
                raise InputFileError(path, "the sheet is empty", sheet=name)
            continue
        tables.append(table)
    if not tables:
        raise InputFileError(path, "every sheet is empty")
    return tables


def _read_sheet(
    path: Path, workbook: python_calamine.CalamineWorkbook, name: str
) -> Table | None:
    try:
        worksheet = workbook.get_sheet_by_name(name)
        data = worksheet.to_python(skip_empty_area=True)
        start = worksheet.start
    except python_calamine.CalamineError as exc:
        raise InputFileError(path, f"the sheet cannot be read: {exc}", sheet=name) from None
    if start is None or not data:
        return None
    first_row, first_col = start
    header_at = next(
        (i for i, row in enumerate(data) if any(cell_text(c).strip() for c in row)), None
    )
    if header_at is None:
        return None
    width = max(len(r) for r in data)
    header_cells = list(data[header_at]) + [""] * (width - len(data[header_at]))
    body = data[header_at + 1 :]
    rows = np.arange(len(body), dtype=np.int64) + first_row + header_at + 2
    raw_columns: Sequence[tuple[object, ...]] = (
        list(zip(*[r if len(r) == width else list(r) + [""] * (width - len(r)) for r in body],
                 strict=True))
        if body
        else [() for _ in range(width)]
    )
    headers: list[str] = []
    columns: list[ObjectArray] = []
    for j, (header_cell, cells) in enumerate(zip(header_cells, raw_columns, strict=True)):
        header = cell_text(header_cell).strip()
        texts = np.array(
            [c if c.__class__ is str else cell_text(c) for c in cells], dtype=object
        )
        if not header:
            if not any(str(v).strip() for v in texts):
                continue  # an unused column inside the sheet's range
            header = f"Unnamed: {_column_letter(first_col + j)}"
        headers.append(header)
        columns.append(texts)
    return Table(path, name, _unique(headers), columns, rows)


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _unique(headers: list[str]) -> list[str]:
    """Repeated headers get ``.1``, ``.2``... as pandas does for CSV."""
    seen: dict[str, int] = {}
    out = []
    for header in headers:
        if header in seen:
            seen[header] += 1
            out.append(f"{header}.{seen[header]}")
        else:
            seen[header] = 0
            out.append(header)
    return out
