"""XLSX writing: openpyxl builds the package (styles, the small hand-laid sheets, the chart); table
sheets are streamed as worksheet XML straight into it.

Why not openpyxl's write-only mode for the big sheets: it was the first choice and does everything
needed (``freeze_panes`` and column widths must be set on a write-only sheet before the first
``append``, because they are written with the sheet's head; ``auto_filter.ref`` may be set at any time
before ``save``, because it is written with the tail), but it serialises every cell through
ElementTree: measured here (no lxml) at about 57,000 cells/s, i.e. about two minutes for the
250,000-attempt benchmark. The streamed writer below produces the same SpreadsheetML (inline strings,
the style ids openpyxl registered) at about 750,000 cells/s, holding one chunk of rows at a time.

How: openpyxl saves the workbook with an empty placeholder for each table sheet (so the workbook
part, its relationships, the ``_FilterDatabase`` names and the styles all come from openpyxl); the
package is then copied entry by entry, each placeholder replaced by the streamed sheet. A table
longer than Excel's 1,048,576 rows continues on ``<name> (2)``.

Every table sheet has a bold header row, frozen, an autofilter over the whole table, column widths
from the header and the first rows, number formats by column kind (see
:mod:`ccm_tasks.reports.tables`), and a bold totals row when the table has one. Text cells are always
string cells, never formulas; those that start with a formula character carry the ``quotePrefix``
style.

Print set-up, on every sheet (:data:`PAGE`): A4 landscape, fitted to one page wide (as many pages
tall as it takes; a summary sheet to one page), the header row repeated on every page, the page's
header naming the report and the sheet, its footer "Page n of m".
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import Cell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from ccm_tasks.reports.tables import FORMULA_TRIGGERS, Kind, Table

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_TEXT = 32_767
"""Excel's cell limit; longer text is cut (and says so) rather than making a file Excel must repair."""

NUMBER_FORMATS: dict[Kind, str] = {
    "datetime": "yyyy-mm-dd hh:mm:ss",
    "date": "yyyy-mm-dd",
    "duration": "[h]:mm:ss",
    # Shown signed in a 1904-system workbook (write_workbook(date1904=True)); Excel's 1900 system
    # shows any negative time as #####.
    "duration_change": "+[h]:mm:ss;-[h]:mm:ss;0:00:00",
    "percent": "0.0%",
    "change": "+#,##0;-#,##0;0",
    "rate_change": "+0.0%;-0.0%;0.0%",
    "float": "#,##0.00",
}


@dataclass(frozen=True)
class PageSetup:
    """How every sheet prints (the values as SpreadsheetML writes them)."""

    paper_size: int = 9  # A4 (India's paper); 1 would be US Letter
    orientation: str = "landscape"
    margins: tuple[float, float, float, float, float, float] = (0.4, 0.4, 0.7, 0.6, 0.3, 0.3)
    """left, right, top, bottom, header, footer (inches)."""
    footer: str = "&CPage &P of &N"


PAGE = PageSetup()

_CHUNK_ROWS = 5_000
_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "s")
_EXCEL_EPOCH_1904 = np.datetime64("1904-01-01T00:00:00", "s")
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ILLEGAL_XML_BUT_NUL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NEEDS_PRESERVE = re.compile(r"^[ \t\n\r]|[ \t\n\r]$|[\t\n\r]")
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
       "rel": "http://schemas.openxmlformats.org/package/2006/relationships"}
_WIDTHS: dict[Kind, float] = {"datetime": 20.0, "date": 12.0, "duration": 10.0, "percent": 9.0,
                              "bool": 8.0, "change": 9.0, "rate_change": 9.0}


@dataclass(frozen=True)
class CustomSheet:
    """A small sheet laid out by hand with openpyxl (a summary with a chart)."""

    name: str
    fill: Callable[[Any], None]


def header_text(text: str) -> str:
    """Text for a page header or footer: ``&`` starts a code there (``&P`` is the page number)."""
    return text.replace("&", "&&")


def print_setup(ws: Any, *, title: str, fit_height: int = 0, repeat_header: bool = True) -> None:
    """The print set-up of a hand-laid sheet (:data:`PAGE`): landscape, one page wide (``fit_height``
    pages tall, 0: as many as needed), row 1 repeated, titled header and numbered footer."""
    ws.page_setup.orientation = PAGE.orientation
    ws.page_setup.paperSize = PAGE.paper_size
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = fit_height
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    left, right, top, bottom, head, foot = PAGE.margins
    ws.page_margins.left, ws.page_margins.right = left, right
    ws.page_margins.top, ws.page_margins.bottom = top, bottom
    ws.page_margins.header, ws.page_margins.footer = head, foot
    ws.oddHeader.left.text = header_text(title)
    ws.oddHeader.right.text = "&A"
    ws.oddFooter.center.text = "Page &P of &N"
    if repeat_header:
        ws.print_title_rows = "1:1"


def put(ws: Any, row: int, column: int, value: Any, kind: Kind = "text") -> None:
    """Write one cell of a hand-laid sheet: the same kinds, formats and formula safety as a table."""
    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return
    cell = ws.cell(row=row, column=column)
    if isinstance(value, str):
        cell.value = value
        if value.startswith(FORMULA_TRIGGERS):
            cell.data_type = "s"  # openpyxl made it a formula on assignment
            cell.quotePrefix = True
        return
    if kind in ("datetime", "date"):
        cell.value = pd.Timestamp(value).to_pydatetime()
    elif kind in ("duration", "duration_change"):
        cell.value = float(value) / 86400.0
    elif isinstance(value, np.generic):
        cell.value = value.item()
    else:
        cell.value = value
    number_format = NUMBER_FORMATS.get(kind)
    if number_format:
        cell.number_format = number_format


def style_header_row(ws: Any, row: int, columns: int) -> None:
    """Bold the header cells of a hand-laid table."""
    bold = Font(name="Calibri", bold=True)
    for col in range(1, columns + 1):
        ws.cell(row=row, column=col).font = bold


def write_workbook(path: Path, sheets: Sequence[Table | CustomSheet], *, date1904: bool = False) -> None:
    """Write the sheets, in order, to ``path`` (atomically: a reader never sees half a file).

    ``date1904``: the workbook's dates count from 1904, where Excel can show a negative duration
    (a change in talk time); its dates still read right, openpyxl and the streamed sheets convert."""
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    wb = Workbook()
    wb.remove(wb.active)
    if date1904:
        wb.epoch = CALENDAR_MAC_1904
    streamed: dict[str, tuple[Table, int, int]] = {}
    for sheet in sheets:
        if isinstance(sheet, CustomSheet):
            sheet.fill(wb.create_sheet(sheet.name))
            continue
        rows = len(sheet.frame)
        per_sheet = EXCEL_MAX_ROWS - 1
        for part, start in enumerate(range(0, max(rows, 1), per_sheet)):
            title = sheet.name if part == 0 else f"{sheet.name} ({part + 1})"
            stop = min(rows, start + per_sheet)
            ws = wb.create_sheet(title)
            # Only so that openpyxl writes the workbook's _FilterDatabase name; the sheet's own
            # <autoFilter> is in the streamed XML.
            ws.auto_filter.ref = _ref(len(sheet.frame.columns), stop - start)
            # Likewise for the print titles (the workbook's _xlnm.Print_Titles name).
            ws.print_title_rows = "1:1"
            streamed[title] = (sheet, start, stop)
    styles = _Styles.register(wb) if streamed else None
    wb.active = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    base_fd, base_name = tempfile.mkstemp(prefix=".base-", suffix=".xlsx", dir=path.parent)
    os.close(base_fd)
    out_fd, out_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".xlsx", dir=path.parent)
    os.close(out_fd)
    try:
        wb.save(base_name)
        if styles is None:
            os.replace(base_name, out_name)
        else:
            _replace_sheets(Path(base_name), Path(out_name), streamed, styles,
                            _EXCEL_EPOCH_1904 if date1904 else _EXCEL_EPOCH)
        os.replace(out_name, path)
    finally:
        for leftover in (base_name, out_name):
            if os.path.exists(leftover):
                os.unlink(leftover)


# --------------------------------------------------------------------------- styles


@dataclass(frozen=True)
class _Styles:
    """The cellXfs ids the streamed sheets refer to, registered in openpyxl's workbook styles."""

    header: int
    header_right: int  # over a column of numbers, which Excel aligns right
    header_quoted: int
    quoted: int
    by_kind: dict[str, int]
    total_by_kind: dict[str, int]

    @classmethod
    def register(cls, wb: Any) -> _Styles:
        scratch = wb.create_sheet("_styles")

        def style_id(*, bold: bool = False, quoted: bool = False, number_format: str | None = None,
                     right: bool = False) -> int:
            cell = Cell(scratch, row=1, column=1)
            if right:
                cell.alignment = Alignment(horizontal="right")
            if bold:
                cell.font = Font(name="Calibri", bold=True)  # unnamed, LibreOffice shows a serif face
            if quoted:
                cell.quotePrefix = True
            if number_format:
                cell.number_format = number_format
            return int(cell.style_id)

        styles = cls(header=style_id(bold=True), header_right=style_id(bold=True, right=True),
                     header_quoted=style_id(bold=True, quoted=True),
                     quoted=style_id(quoted=True),
                     by_kind={k: style_id(number_format=f) for k, f in NUMBER_FORMATS.items()},
                     total_by_kind={k: style_id(bold=True, number_format=f)
                                    for k, f in NUMBER_FORMATS.items()})
        wb.remove(scratch)
        return styles


# --------------------------------------------------------------------------- package surgery


def _sheet_parts(package: zipfile.ZipFile) -> dict[str, str]:
    """Sheet title -> its part name inside the package, from the workbook and its relationships."""
    # Our own file, just written by openpyxl: not untrusted XML.
    workbook = ElementTree.fromstring(package.read("xl/workbook.xml"))  # noqa: S314
    rels = ElementTree.fromstring(package.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
    targets = {r.get("Id"): str(r.get("Target")) for r in rels.findall("rel:Relationship", _NS)}
    parts: dict[str, str] = {}
    for sheet in workbook.findall("m:sheets/m:sheet", _NS):
        target = targets[sheet.get(f"{{{_NS['r']}}}id")]
        parts[str(sheet.get("name"))] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return parts


def _replace_sheets(base: Path, out: Path, streamed: dict[str, tuple[Table, int, int]],
                    styles: _Styles, epoch: np.datetime64) -> None:
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED,
                                                       compresslevel=1) as dst:
        parts = _sheet_parts(src)
        by_part = {part: title for title, part in parts.items() if title in streamed}
        first_sheet = next(iter(parts.values()))
        for info in src.infolist():
            title = by_part.get(info.filename)
            if title is None:
                dst.writestr(info, src.read(info.filename), compress_type=zipfile.ZIP_DEFLATED,
                             compresslevel=1)
                continue
            table, start, stop = streamed[title]
            # By name, so the archive's compression level applies (level 1: the streamed XML is large
            # and repetitive; higher levels cost seconds for a few percent).
            with dst.open(info.filename, "w", force_zip64=True) as raw, \
                    io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
                last_part = stop == len(table.frame)
                for piece in _sheet_xml(table, start, stop, styles, epoch,
                                        selected=info.filename == first_sheet, totals=last_part):
                    text.write(piece)


# --------------------------------------------------------------------------- the streamed sheet


def _ref(columns: int, rows: int) -> str:
    return f"A1:{get_column_letter(max(columns, 1))}{rows + 1}"


def _sheet_xml(table: Table, start: int, stop: int, styles: _Styles, epoch: np.datetime64, *,
               selected: bool, totals: bool) -> Iterator[str]:
    frame = table.frame
    columns = [str(c) for c in frame.columns]
    kinds = [table.kind(c) for c in columns]
    letters = [get_column_letter(i) for i in range(1, len(columns) + 1)]
    ref = _ref(len(columns), stop - start)
    total_row = table.totals if totals and table.totals is not None else None
    last = stop - start + 1 + (1 if total_row is not None else 0)
    tab = ' tabSelected="1"' if selected else ""
    yield ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           f'<worksheet xmlns="{_NS["m"]}" xmlns:r="{_NS["r"]}">'
           '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'
           f'<dimension ref="A1:{letters[-1] if letters else "A"}{last}"/>'
           f'<sheetViews><sheetView{tab} workbookViewId="0">'
           '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
           '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
           '<sheetFormatPr defaultRowHeight="15"/><cols>')
    sample = frame.iloc[start:min(stop, start + 1000)]
    for i, (column, kind) in enumerate(zip(columns, kinds, strict=True), start=1):
        total = total_row.get(column) if total_row is not None else None
        width = _width(table.header(column), kind, sample[column], total if isinstance(total, str) else "")
        yield f'<col min="{i}" max="{i}" width="{width:.1f}" customWidth="1"/>'
    yield '</cols><sheetData><row r="1">'
    for column, kind, letter in zip(columns, kinds, letters, strict=True):
        header = table.header(column)
        sid = (styles.header_quoted if header.startswith(FORMULA_TRIGGERS)
               else styles.header if kind in ("text", "phone", "bool") else styles.header_right)
        yield _text_cell(f"{letter}1", header, sid)
    yield "</row>"
    for chunk_start in range(start, stop, _CHUNK_ROWS):
        chunk_stop = min(stop, chunk_start + _CHUNK_ROWS)
        first_row = chunk_start - start + 2
        cells = [_column_cells(frame[column].iloc[chunk_start:chunk_stop], kind, letter, first_row, styles,
                               epoch)
                 for column, kind, letter in zip(columns, kinds, letters, strict=True)]
        yield "".join([f'<row r="{r}">{"".join(row)}</row>'
                       for r, row in enumerate(zip(*cells, strict=True), start=first_row)])
    if total_row is not None:
        yield f'<row r="{last}">'
        for column, kind, letter in zip(columns, kinds, letters, strict=True):
            yield _total_cell(f"{letter}{last}", total_row.get(column), kind, styles)
        yield "</row>"
    left, right, top, bottom, head, foot = PAGE.margins
    title = escape_xml(header_text(table.title or table.name))
    yield (f'</sheetData><autoFilter ref="{ref}"/>'
           f'<pageMargins left="{left}" right="{right}" top="{top}" bottom="{bottom}" header="{head}" '
           f'footer="{foot}"/>'
           f'<pageSetup paperSize="{PAGE.paper_size}" orientation="{PAGE.orientation}" fitToWidth="1" '
           'fitToHeight="0"/>'
           f'<headerFooter><oddHeader>&amp;L{title}&amp;R&amp;A</oddHeader>'
           f'<oddFooter>{escape_xml(PAGE.footer)}</oddFooter></headerFooter>'
           "</worksheet>")


def escape_xml(text: str) -> str:
    """Text for an XML element's content."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _total_cell(ref: str, value: Any, kind: Kind, styles: _Styles) -> str:
    """One cell of a table's bold totals row."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return _text_cell(ref, value, styles.header_quoted if value.startswith(FORMULA_TRIGGERS)
                          else styles.header)
    number = float(value) / 86400.0 if kind in ("duration", "duration_change") else float(value)
    text = str(int(number)) if number == int(number) and kind not in ("duration", "duration_change",
                                                                      "percent") else repr(number)
    return f'<c r="{ref}" s="{styles.total_by_kind.get(kind, styles.header)}"><v>{text}</v></c>'


def _width(header: str, kind: Kind, sample: pd.Series, total: str = "") -> float:
    fixed = _WIDTHS.get(kind)
    longest = max(len(header), len(total))
    if fixed is not None:
        return max(fixed, longest + 2.0)
    if len(sample):
        lengths = sample.dropna().astype("str").str.len()
        if len(lengths):
            # The 95th percentile, so one long note does not make the column a screen wide.
            longest = max(longest, int(lengths.quantile(0.95)))
    return float(min(60, max(8, longest + 2)))


def _escape(text: str) -> str:
    if _ILLEGAL_XML.search(text):
        text = _ILLEGAL_XML.sub("", text)  # not allowed in XML at all; Excel would refuse the file
    if len(text) > EXCEL_MAX_TEXT:
        text = text[:EXCEL_MAX_TEXT - 12] + " [truncated]"
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")  # a bare CR would be read back as LF
    return text


def _escape_all(texts: list[str | None]) -> tuple[list[str | None], bool, bool]:
    """:func:`_escape` over a column chunk, and whether any cell may need the quote prefix or
    ``xml:space="preserve"``. One replace per entity over the whole chunk (cells joined by NUL, which
    XML text can never hold); the per-cell path only when a cell needs cleaning or cutting."""
    present = [t for t in texts if t]
    if not present:
        return [None] * len(texts), False, False
    joined = "\x00".join(present)
    quoted = joined.startswith(FORMULA_TRIGGERS) or any(f"\x00{c}" in joined for c in FORMULA_TRIGGERS)
    spaced = (joined[0] == " " or joined[-1] == " " or "\x00 " in joined or " \x00" in joined
              or "\t" in joined or "\n" in joined or "\r" in joined)
    if (joined.count("\x00") != len(present) - 1 or _ILLEGAL_XML_BUT_NUL.search(joined)
            or max(map(len, present)) > EXCEL_MAX_TEXT):
        return [_escape(t) if t else None for t in texts], quoted, True
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        if raw in joined:
            joined = joined.replace(raw, entity)
    pieces: list[str | None] = list(joined.split("\x00"))
    if len(present) == len(texts):
        return pieces, quoted, spaced
    escaped = iter(pieces)
    return [next(escaped) if t else None for t in texts], quoted, spaced


def _text_cell(ref: str, text: str, style: int | None) -> str:
    s = f' s="{style}"' if style is not None else ""
    space = ' xml:space="preserve"' if _NEEDS_PRESERVE.search(text) else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{_escape(text)}</t></is></c>'


def _column_cells(values: pd.Series, kind: Kind, letter: str, first_row: int, styles: _Styles,
                  epoch: np.datetime64 = _EXCEL_EPOCH) -> list[str]:
    """The cells of one column over a chunk of rows ("" for a blank cell)."""
    rows = range(first_row, first_row + len(values))
    if kind in ("text", "phone"):
        return _text_cells(values, letter, rows, styles)
    if kind == "bool":
        flags = values.to_numpy(dtype=object, na_value=None).tolist()
        return ["" if v is None else f'<c r="{letter}{r}" t="b"><v>{1 if v else 0}</v></c>'
                for r, v in zip(rows, flags, strict=True)]
    numbers = _number_texts(values, kind, epoch)
    style = styles.by_kind.get(kind)
    s = f' s="{style}"' if style is not None else ""
    return ["" if v is None else f'<c r="{letter}{r}"{s}><v>{v}</v></c>'
            for r, v in zip(rows, numbers, strict=True)]


def _text_cells(values: pd.Series, letter: str, rows: range, styles: _Styles) -> list[str]:
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        texts: list[str | None] = values.to_numpy(dtype=object, na_value=None).tolist()
    else:
        texts = [v if isinstance(v, str) else None if v is None or v != v else str(v)
                 for v in values.tolist()]
    escaped, quoted, spaced = _escape_all(texts)
    if not quoted and not spaced:
        return ["" if e is None else f'<c r="{letter}{r}" t="inlineStr"><is><t>{e}</t></is></c>'
                for r, e in zip(rows, escaped, strict=True)]
    prefix = f' s="{styles.quoted}"'
    out: list[str] = []
    for r, v, e in zip(rows, texts, escaped, strict=True):
        if v is None or e is None:
            out.append("")
            continue
        s = prefix if quoted and v.startswith(FORMULA_TRIGGERS) else ""
        space = ' xml:space="preserve"' if spaced and _NEEDS_PRESERVE.search(v) else ""
        out.append(f'<c r="{letter}{r}"{s} t="inlineStr"><is><t{space}>{e}</t></is></c>')
    return out


@functools.cache
def _day_fractions() -> tuple[str, ...]:
    """The decimal text of s/86400 for every second of a day (12 places: 43 ns, far below the second
    Excel shows and the millisecond openpyxl reads back), so a time is written without a float repr."""
    return ("", *(f"{s / 86400:.12f}"[1:].rstrip("0") for s in range(1, 86400)))


def _serials(seconds: np.ndarray, ok: np.ndarray) -> list[str | None]:
    """Whole seconds since Excel's epoch (or durations) as serial-day text."""
    fractions = _day_fractions()
    days, second = np.divmod(seconds, 86400)
    return [f"{d}{fractions[x]}" if good else None
            for d, x, good in zip(days.tolist(), second.tolist(), ok.tolist(), strict=True)]


def _number_texts(values: pd.Series, kind: Kind, epoch: np.datetime64 = _EXCEL_EPOCH) -> list[str | None]:
    """The ``<v>`` text of each number in a column chunk (None: blank)."""
    if kind in ("datetime", "date"):
        stamps = values.to_numpy(dtype="datetime64[s]")
        ok = ~np.isnat(stamps)
        seconds = np.where(ok, stamps - epoch, np.timedelta64(0, "s")).astype("int64")
        return _serials(seconds, ok & (seconds >= 0))
    floats = values.to_numpy(dtype="float64", na_value=np.nan)
    ok = np.isfinite(floats)
    if kind in ("duration", "duration_change"):
        whole = np.where(ok, floats, 0.0)
        if np.all((whole == np.floor(whole)) & (whole >= 0)):
            return _serials(whole.astype("int64"), ok)
        floats = floats / 86400.0
    elif pd.api.types.is_integer_dtype(values.dtype) or (
            kind in ("int", "change") and np.all(floats[ok] == np.floor(floats[ok]))):
        return [str(int(v)) if good else None for v, good in zip(floats.tolist(), ok.tolist(), strict=True)]
    return [repr(v) if good else None for v, good in zip(floats.tolist(), ok.tolist(), strict=True)]
