"""Spreadsheets to text columns with Excel row numbers: CSV (any common encoding; , ; TAB or |),
.xlsx/.xlsm/.xls/.ods workbooks through calamine, and HTML tables saved as "Excel" files.

Every cell is read as text: a workbook's numeric cells go through :func:`~ccm_tasks.inputs.phones.
cell_text` (``9953123456.0`` -> ``"9953123456"``; a float that is not an exact integer keeps its
decimals so the phone rules can reject it), CSV and HTML cells are never type-inferred. Row numbers
are the ones the user sees in Excel: a CSV record is one row (a quoted newline stays inside its
cell), Excel's ``sep=;`` first line is hidden as Excel hides it, and a workbook row keeps its sheet
row even when the table starts lower down.

**The header row is found, not assumed.** CRM exports put a title, a date and a blank row above the
header. With a :class:`HeaderSearch`, the header is the first of the first ``HEADER_SEARCH_ROWS``
rows that holds a recognised header (a phone header, or the mapped one), unless a row of data (a
valid phone number) comes before it: then nothing is skipped and the first row is the header, so
rows of data are never taken for a preamble. When the next row holds a recognised header too (and
no data), the header spans two rows and the lower one names the fields. ``HeaderSearch.row`` gives
the header's row outright.

**The type comes from the content, not the name**: a zip is a workbook (.xlsx/.ods), an OLE2
compound file is a legacy .xls or an encrypted (password-protected) Office file, an HTML document
with a table is read as that table, and delimited text is CSV whatever its name (a CSV renamed
.xlsx). Whatever cannot be read as a whole raises one :class:`InputFileError`; a row with too many
fields is not an error but a :class:`BrokenRow`.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import python_calamine

from ccm_tasks.inputs.columns import column_letter
from ccm_tasks.inputs.errors import InputFileError
from ccm_tasks.inputs.phones import cell_text

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]

ALL_SHEETS = "*"
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", "")
# How far down a header is looked for: CRM preambles are a few rows (title, date, filters, blank).
HEADER_SEARCH_ROWS = 50

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = (",", ";", "\t", "|")
_SKIPPED_LINE_RE = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")
_EXCEL_SEP_RE = re.compile(r"\s*sep=(.)\s*", re.IGNORECASE)

RowTest = Callable[[Sequence[str]], bool]


@dataclass(frozen=True)
class HeaderSearch:
    """How to find a table's header row.

    ``row``: the header's row as Excel shows it (no search). Else ``holds_header`` says whether a
    row holds a recognised header and ``holds_data`` whether it holds data (a number to call):
    the search stops at data, so a table whose header is not recognised keeps its first row as the
    header (and gets the usual "no phone column" error) instead of losing rows to a guess.
    Neither given: the first non-blank row is the header.
    """

    row: int | None = None
    holds_header: RowTest | None = None
    holds_data: RowTest | None = None


@dataclass(frozen=True)
class BrokenRow:
    """A CSV line the parser could not split into the header's columns (it is left out)."""

    row: int
    problem: str


@dataclass
class Table:
    """One CSV file, worksheet or HTML table, as text columns.

    ``columns[i]`` holds the cells under ``headers[i]`` (``""`` when blank; headers as written, so
    two columns may carry the same one) in the column Excel calls ``letters[i]``; ``rows`` is each
    data row's number as Excel shows it, and ``header_row`` the header's.
    """

    path: Path
    sheet: str  # "" for CSV
    headers: list[str]
    columns: list[ObjectArray]
    rows: IntArray
    delimited: bool = True  # False for a text file whose header line has no delimiter at all
    broken: list[BrokenRow] = field(default_factory=list)
    header_row: int = 1
    letters: list[str] = field(default_factory=list)
    kind: str = "csv"  # csv | workbook | html

    def __post_init__(self) -> None:
        if not self.letters:
            self.letters = [column_letter(i) for i in range(len(self.headers))]

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


def read_tables(
    path: Path, sheet: str | None = None, header: HeaderSearch | None = None
) -> list[Table]:
    """Read ``path``: one table for CSV, one per selected worksheet for a workbook, the table of an
    HTML document (one per table with ``"*"`` when it holds several).

    ``sheet``: None for the first sheet, ``"*"`` for every sheet, or a sheet name. Empty sheets are
    left out when reading every sheet; an empty file or an empty selected sheet is an error.
    """
    search = header or HeaderSearch()
    kind = _detect_kind(path)
    if kind == "workbook":
        return _read_workbook(path, sheet, search)
    if kind == "html":
        return _read_html(path, sheet, search)
    if sheet not in (None, ALL_SHEETS):
        raise InputFileError(path, f"sheet {sheet!r} was asked for, but a CSV file has no sheets")
    return [_read_csv(path, search)]


# --------------------------------------------------------------------------- detection


def _detect_kind(path: Path) -> str:
    """ "workbook", "html" or "text", or an InputFileError saying why the file is none of them."""
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
    if head.startswith(b"%PDF"):
        raise InputFileError(path, "not a spreadsheet (a PDF document); export the list as CSV or XLSX")
    text = _text_of(head)
    if text is not None:
        markup = text.lstrip("\ufeff \t\r\n").lower()
        if markup.startswith("<"):
            if "<table" in markup:
                return "html"
            if "urn:schemas-microsoft-com:office:spreadsheet" in markup:
                raise InputFileError(
                    path, "an Excel 2003 XML spreadsheet, which cannot be read here; open it in "
                          "Excel and save it as .xlsx or CSV"
                )
            if markup.startswith(("<!doctype html", "<html", "<?xml")):
                raise InputFileError(path, "an HTML or XML document without a table of rows")
        if _looks_delimited(text):
            return "text"  # CSV, whatever the name says (a CSV renamed .xlsx)
    if suffix in WORKBOOK_SUFFIXES:
        raise InputFileError(
            path, f"not a valid {suffix} workbook (corrupt, or another kind of file renamed)"
        )
    if suffix not in TEXT_SUFFIXES:
        raise InputFileError(
            path, f"not a spreadsheet: unsupported file type {suffix!r} "
                  f"(use .csv, .xlsx, .xls or .ods)"
        )
    if text is None:
        raise InputFileError(path, "not a spreadsheet (a binary file, not CSV text)")
    return "text"


def _text_of(head: bytes) -> str | None:
    """The sniffed bytes as text if they are text (None for binary data)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    if b"\x00" in head:
        return None
    sample = head if len(head) < _SNIFF_BYTES else head[: head.rfind(b"\n") + 1] or head
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = sample.decode("latin-1")  # for sniffing only: the CSV reader names the encoding
    controls = sum(1 for c in text[:4096] if c < " " and c not in "\t\r\n")
    return text if controls <= len(text[:4096]) // 100 else None


def _looks_delimited(text: str) -> bool:
    """Whether one of the first non-blank lines has a , ; TAB or | (or Excel's ``sep=`` line)."""
    lines = [line for line in text.splitlines()[:20] if line.strip()][:10]
    if lines and _EXCEL_SEP_RE.fullmatch(lines[0]):
        return True
    return any(d in line for line in lines for d in _DELIMITERS)


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


# --------------------------------------------------------------------------- header rows


def _find_header(rows: Sequence[Sequence[str]], search: HeaderSearch) -> tuple[int | None, bool]:
    """(index of the header row, whether it was recognised); index None when every row is blank.

    Without a recognised header (or when a row of data comes first), the first non-blank row.
    """
    first = next((i for i, row in enumerate(rows) if any(c.strip() for c in row)), None)
    if search.holds_header is None:
        return first, False
    window = rows[:HEADER_SEARCH_ROWS]
    for i, row in enumerate(window):
        if search.holds_header(row):
            # A header of two rows (group labels above field names, or Salesforce's labels above
            # API names): the lower row names the fields, as long as it is not a row of data.
            while (
                i + 1 < len(window)
                and search.holds_header(window[i + 1])
                and not (search.holds_data is not None and search.holds_data(window[i + 1]))
            ):
                i += 1
            return i, True
        if search.holds_data is not None and search.holds_data(row):
            break
    return first, False


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
    """The delimiter of the first non-blank line: the most frequent of , ; TAB | outside quotes."""
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


def _records(text: str, delimiter: str, limit: int) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    try:
        return list(itertools.islice(reader, limit))
    except csv.Error:
        return []


@dataclass(frozen=True)
class _CsvLayout:
    delimiter: str | None
    header_index: int  # the header's record, counted from the file's first record (0-based)
    headers: list[str]
    width: int  # fields to read per record (the header's, or one more for trailing delimiters)
    hidden_lines: int  # 1 when Excel's "sep=;" line comes first (Excel does not show it as a row)


def _csv_layout(path: Path, sample: str, search: HeaderSearch) -> _CsvLayout:
    """Delimiter and header row from the first 64 KiB: each delimiter's first recognised header."""
    lines = sample.splitlines(keepends=True)
    hidden = 0
    given: str | None = None
    if lines:
        sep = _EXCEL_SEP_RE.fullmatch(lines[0].lstrip("\ufeff").rstrip("\r\n"))
        if sep is not None:
            hidden, given = 1, sep.group(1)
            sample = "".join(lines[1:])
    limit = max(HEADER_SEARCH_ROWS, (search.row or 0)) + 20
    delimiter: str | None
    if search.row is not None:
        delimiter = given or _detect_delimiter(sample)
        records = _records(sample, delimiter or ",", limit)
        index = search.row - 1
        if index >= len(records):
            raise InputFileError(
                path, f"header_row {search.row} is below the file's first {len(records)} rows"
            )
        if not any(c.strip() for c in records[index]):
            raise InputFileError(path, f"header_row {search.row} is a blank row")
    else:
        found: list[tuple[int, int, str, list[list[str]]]] = []
        for candidate in [given] if given else list(_DELIMITERS):
            records = _records(sample, candidate, limit)
            at, recognised = _find_header(records, search)
            if at is not None and recognised:
                found.append((at, -len(records[at]), candidate, records))
        if found:
            index, _, delimiter, records = min(found, key=lambda f: (f[0], f[1]))
        else:
            delimiter = given or _detect_delimiter(sample)
            records = _records(sample, delimiter or ",", limit)
            first, _ = _find_header(records, HeaderSearch())
            if first is None:
                raise InputFileError(path, "the file is empty")
            index = first
    headers = [h.strip() for h in records[index]]
    width = len(headers)
    # Some exporters end every data line with a delimiter but not the header line: read one more
    # field (it is dropped again when blank) instead of turning every row into a broken one.
    if any(len(r) == width + 1 and not r[-1].strip() for r in records[index + 1 :]):
        width += 1
    return _CsvLayout(delimiter, index + hidden, headers, width, hidden)


def _read_csv(path: Path, search: HeaderSearch) -> Table:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    encoding = _detect_encoding(path, head)
    sample = head if len(head) < _SNIFF_BYTES else head[: head.rfind(b"\n") + 1] or head
    layout = _csv_layout(path, sample.decode(encoding, errors="replace"), search)
    try:
        try:
            frame, broken = _pandas_csv(path, layout, encoding)
        except UnicodeDecodeError:
            if encoding != "utf-8":
                raise
            # UTF-8 in the first 64 KiB, something else further down: Windows-1252 explains both.
            frame, broken = _pandas_csv(path, layout, "cp1252")
    except UnicodeDecodeError:
        raise InputFileError(
            path, "text is neither UTF-8 nor Windows-1252 (cp1252); save it as CSV UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        frame, broken = pd.DataFrame({i: pd.Series(dtype=object) for i in range(layout.width)}), []
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise InputFileError(path, f"not readable as CSV: {exc}") from None
    # Excel shows record r (1-based, counted from the file's start) as row r, less a hidden sep line.
    header_row = layout.header_index + 1 - layout.hidden_lines
    n_kept = len(frame)
    rows = np.arange(header_row + 1, header_row + 1 + n_kept, dtype=np.int64)
    if broken:
        # The parser drops bad lines; keep the survivors' numbers as Excel would show them.
        all_rows = np.arange(header_row + 1, header_row + 1 + n_kept + len(broken), dtype=np.int64)
        rows = np.setdiff1d(all_rows, [b.row for b in broken])[:n_kept]
    headers = list(layout.headers) + [""] * (layout.width - len(layout.headers))
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    headers, columns, letters = _named_columns(headers, columns, list(range(len(headers))))
    return Table(path, "", headers, columns, rows, delimited=len(layout.headers) > 1,
                 broken=broken, header_row=header_row, letters=letters, kind="csv")


def _pandas_csv(path: Path, layout: _CsvLayout, encoding: str) -> tuple[pd.DataFrame, list[BrokenRow]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(
            path,
            sep=layout.delimiter or ",",
            encoding=encoding,
            header=None,
            names=list(range(layout.width)),  # our own header (read above): no renaming of repeats
            skiprows=layout.header_index + 1,  # records (quoted newlines included), not lines
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
            expected = len(layout.headers)
            broken.append(BrokenRow(
                int(match.group(1)) - layout.hidden_lines,
                f"row has {match.group(3)} fields, expected {expected} fields like the header "
                f"(a {layout.delimiter or ','!r} inside a value that is not quoted?)",
            ))
    return frame, broken


def _named_columns(
    headers: list[str], columns: list[ObjectArray], positions: list[int]
) -> tuple[list[str], list[ObjectArray], list[str]]:
    """Headers, columns and letters with unnamed columns named by letter, or dropped when blank."""
    out_headers: list[str] = []
    out_columns: list[ObjectArray] = []
    letters: list[str] = []
    for header, column, position in zip(headers, columns, positions, strict=True):
        letter = column_letter(position)
        if not header.strip():
            if not len(column) or not any(str(v).strip() for v in column[column != ""]):
                continue  # an unused column (a trailing delimiter, formatting past the table)
            header = f"Unnamed: {letter}"
        out_headers.append(header.strip())
        out_columns.append(column)
        letters.append(letter)
    return out_headers, out_columns, letters


# --------------------------------------------------------------------------- workbooks


def _read_workbook(path: Path, sheet: str | None, search: HeaderSearch) -> list[Table]:
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError:
        raise InputFileError(path, "the workbook is password-protected") from None
    except (python_calamine.CalamineError, OSError, ValueError) as exc:
        raise InputFileError(path, f"not a readable workbook (corrupt?): {exc}") from None
    all_names = list(workbook.sheet_names)
    # Chart sheets (and dialog or macro sheets) hold no rows.
    names = [
        m.name for m in workbook.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet
    ] or ([] if len(workbook.sheets_metadata) else all_names)
    if not names:
        if all_names:
            raise InputFileError(
                path, "the workbook holds only charts, no worksheet with rows "
                      f"(sheets: {', '.join(map(repr, all_names))})"
            )
        raise InputFileError(path, "the workbook has no sheets")
    if sheet is None:
        chosen = names[:1]
    elif sheet == ALL_SHEETS:
        chosen = names
    elif sheet in names:
        chosen = [sheet]
    elif sheet.casefold().strip() in (folded := {n.casefold().strip(): n for n in names}):
        chosen = [folded[sheet.casefold().strip()]]
    elif sheet in all_names:
        raise InputFileError(
            path, f"sheet {sheet!r} is a chart, not a worksheet; worksheets: "
                  f"{', '.join(map(repr, names))}"
        )
    else:
        raise InputFileError(path, f"no sheet named {sheet!r}; sheets: {', '.join(map(repr, names))}")
    tables = []
    for name in chosen:
        table = _read_sheet(path, workbook, name, search)
        if table is None:
            if sheet != ALL_SHEETS:
                raise InputFileError(path, "the sheet is empty", sheet=name)
            continue
        tables.append(table)
    if not tables:
        raise InputFileError(path, "every sheet is empty")
    return tables


def _read_sheet(
    path: Path, workbook: python_calamine.CalamineWorkbook, name: str, search: HeaderSearch
) -> Table | None:
    try:
        worksheet = workbook.get_sheet_by_name(name)
        data = worksheet.to_python(skip_empty_area=True)
        start = worksheet.start
    except python_calamine.CalamineError as exc:
        raise InputFileError(path, f"the sheet cannot be read: {exc}", sheet=name) from None
    if start is None or not data:
        return None
    return _table_from_rows(path, name, data, start[0], start[1], search, kind="workbook")


def _table_from_rows(
    path: Path,
    sheet: str,
    data: Sequence[Sequence[object]],
    first_row: int,
    first_col: int,
    search: HeaderSearch,
    *,
    kind: str,
) -> Table | None:
    """A table from rows of cells whose first row is sheet row ``first_row + 1`` (0-based start)."""
    top = [[cell_text(c) for c in row] for row in data[: HEADER_SEARCH_ROWS + 1]]
    if search.row is not None:
        header_at = search.row - 1 - first_row
        if header_at < 0 or header_at >= len(data) or not any(c.strip() for c in
                                                              map(cell_text, data[header_at])):
            last = first_row + len(data)
            raise InputFileError(
                path, f"header_row {search.row} is a blank row (the sheet's rows with cells are "
                      f"{first_row + 1} to {last})", sheet=sheet or None,
            )
    else:
        found, _ = _find_header(top, search)
        if found is None:
            if not any(any(cell_text(c).strip() for c in row) for row in data):
                return None
            found = next(i for i, row in enumerate(data) if any(cell_text(c).strip() for c in row))
        header_at = found
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
    headers = [cell_text(h).strip() for h in header_cells]
    columns: list[ObjectArray] = [
        np.array([c if c.__class__ is str else cell_text(c) for c in cells], dtype=object)
        for cells in raw_columns
    ]
    headers, columns, letters = _named_columns(
        headers, columns, [first_col + j for j in range(width)]
    )
    return Table(path, sheet, headers, columns, rows, header_row=first_row + header_at + 1,
                 letters=letters, kind=kind)


# --------------------------------------------------------------------------- HTML


def _read_html(path: Path, sheet: str | None, search: HeaderSearch) -> list[Table]:
    """An HTML document's tables (CRMs save these as .xls): cell text as written, no inference.

    Parsed with lxml directly rather than ``pandas.read_html``, which infers numbers: it turns
    "9.19953E+11" into 919953000000.0, a guess, and "1,234" into 1234. A cell spanning several
    columns or rows holds its text in its first cell, the others blank (as Excel shows merged
    cells).
    """
    import lxml.html  # only for HTML files
    from lxml import etree

    try:
        document = lxml.html.document_fromstring(path.read_bytes())
    except (etree.ParserError, ValueError) as exc:
        raise InputFileError(path, f"not a readable HTML table: {exc}") from None
    for br in document.iter("br"):
        br.tail = "\n" + (br.tail or "")
    grids = [
        grid for table in document.iter("table")
        if not table.findall(".//table") and (grid := _html_grid(table))
    ]
    if not grids:
        raise InputFileError(path, "an HTML document without a table of rows")
    names = [f"table {i + 1}" for i in range(len(grids))] if len(grids) > 1 else [""]
    if sheet == ALL_SHEETS:
        chosen = list(range(len(grids)))
    elif sheet is None:
        # The first table that holds a recognised header (a page may put a title table first).
        recognised = [i for i, g in enumerate(grids) if _find_header(g, search)[1]]
        chosen = recognised[:1] or [0]
    elif sheet in names:
        chosen = [names.index(sheet)]
    else:
        raise InputFileError(
            path, f"no table named {sheet!r} in this HTML file; tables: "
                  f"{', '.join(repr(n) for n in names if n) or 'one, unnamed (use sheet: null)'}"
        )
    tables = []
    for i in chosen:
        table = _table_from_rows(path, names[i], grids[i], 0, 0, search, kind="html")
        if table is not None:
            tables.append(table)
    if not tables:
        raise InputFileError(path, "the HTML table is empty")
    return tables


def _html_grid(table: object) -> list[list[str]]:
    """The table's rows as text cells, spans laid out as Excel lays out merged cells."""
    grid: list[list[str]] = []
    pending: dict[tuple[int, int], str] = {}  # cells covered by a rowspan from above
    for r, tr in enumerate(table.iter("tr")):  # type: ignore[attr-defined]
        row: list[str] = []
        c = 0
        for cell in tr:
            if cell.tag not in ("td", "th"):
                continue
            while (r, c) in pending:
                row.append(pending.pop((r, c)))
                c += 1
            text = cell.text_content().replace("\r\n", "\n").strip(" \t\r\n")
            colspan = _span(cell.get("colspan"))
            rowspan = _span(cell.get("rowspan"))
            for k in range(colspan):
                row.append(text if k == 0 else "")
                for below in range(1, rowspan):
                    pending[(r + below, c + k)] = ""
            c += colspan
        while (r, c) in pending:
            row.append(pending.pop((r, c)))
            c += 1
        grid.append(row)
    return grid if any(any(c.strip() for c in row) for row in grid) else []


def _span(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 1000))
    except ValueError:
        return 1
