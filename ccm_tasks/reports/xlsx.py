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
import itertools
import math
import os
import queue
import re
import tempfile
import threading
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

_CHUNK_ROWS = 10_000
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
            with dst.open(info.filename, "w", force_zip64=True) as raw:
                pieces = _sheet_xml(table, start, stop, styles, epoch, selected=info.filename == first_sheet,
                                    totals=stop == len(table.frame))
                _write_behind(raw, (piece.encode("utf-8", "replace") for piece in pieces))


def _write_behind(raw: Any, chunks: Iterator[bytes]) -> None:
    """Write ``chunks`` to ``raw`` (a zip entry) from a second thread while the next chunk is being
    built: deflating releases the GIL, so compressing one chunk overlaps with building the next on
    another core. At most two chunks wait; an error on either side is raised here."""
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (chunk := pending.get()) is not None:
                raw.write(chunk)
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            while pending.get() is not None:  # drain, so the producer never blocks for ever
                pass

    thread = threading.Thread(target=writer, name="xlsx-deflate", daemon=True)
    thread.start()
    try:
        for chunk in chunks:
            if failure:
                break
            pending.put(chunk)
    finally:
        pending.put(None)
        thread.join()
    if failure:
        raise failure[0]


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
    yield from _body_rows(frame, columns, kinds, letters, start, stop, styles, epoch)
    if total_row is not None:
        yield f'<row r="{last}">'
        for column, kind, letter in zip(columns, kinds, letters, strict=True):
            yield _total_cell(f"{letter}{last}", total_row.get(column), kind, styles)
        yield "</row>"
    yield _sheet_end(table, ref)


def _body_rows(frame: pd.DataFrame, columns: list[str], kinds: list[Kind], letters: list[str], start: int,
               stop: int, styles: _Styles, epoch: np.datetime64) -> Iterator[str]:
    """The data rows, a chunk of rows per string, built column by column."""
    for chunk_start in range(start, stop, _CHUNK_ROWS):
        chunk_stop = min(stop, chunk_start + _CHUNK_ROWS)
        rows = [str(r) for r in range(chunk_start - start + 2, chunk_stop - start + 2)]
        parts: list[Part] = ['<row r="', rows, '">']
        for column, kind, letter in zip(columns, kinds, letters, strict=True):
            parts += _column_parts(frame[column].iloc[chunk_start:chunk_stop], kind, letter, rows, styles,
                                   epoch)
        parts.append("</row>")
        # Adjacent constants merged (fewer items per row to join); each list is one text per row.
        merged: list[Any] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        columns_in_order = [itertools.repeat(m) if isinstance(m, str) else m for m in merged]
        # strict=False: the constants repeat without end; the lists, all as long as the chunk, stop it.
        yield "".join(["".join(row) for row in zip(*columns_in_order, strict=False)])


def _sheet_end(table: Table, ref: str) -> str:
    """Filter, margins, page set-up and the printed header and footer."""
    left, right, top, bottom, head, foot = PAGE.margins
    title = escape_xml(header_text(table.title or table.name))
    return (f'</sheetData><autoFilter ref="{ref}"/>'
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


def _escape_all(texts: list[str]) -> tuple[list[str], bool, bool]:
    """:func:`_escape` over a column chunk (``""`` for a blank cell), and whether any cell may need
    the quote prefix or ``xml:space="preserve"``. One replace per entity over the whole chunk (cells
    joined by NUL, which XML text can never hold); the per-cell path only when a cell needs cleaning
    or cutting."""
    joined = "\x00".join(texts)
    if not joined.strip("\x00"):
        return texts, False, False
    marked = "\x00" + joined + "\x00"
    quoted = any(f"\x00{c}" in marked for c in FORMULA_TRIGGERS)
    spaced = ("\x00 " in marked or " \x00" in marked or "\t" in joined or "\n" in joined or "\r" in joined)
    if (joined.count("\x00") != len(texts) - 1 or _ILLEGAL_XML_BUT_NUL.search(joined)
            or (len(joined) > EXCEL_MAX_TEXT and max(map(len, texts)) > EXCEL_MAX_TEXT)):
        return [_escape(t) if t else "" for t in texts], quoted, True
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;")):
        if raw in joined:
            joined = joined.replace(raw, entity)
    return joined.split("\x00"), quoted, spaced


def _text_cell(ref: str, text: str, style: int | None) -> str:
    s = f' s="{style}"' if style is not None else ""
    space = ' xml:space="preserve"' if _NEEDS_PRESERVE.search(text) else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{_escape(text)}</t></is></c>'


Part = str | list[str]
"""A piece of every cell of a column chunk: the same text for each cell, or one text per cell."""


def _column_parts(values: pd.Series, kind: Kind, letter: str, rows: list[str], styles: _Styles,
                  epoch: np.datetime64 = _EXCEL_EPOCH) -> list[Part]:
    """One column over a chunk of rows as parts that, joined in order, make each row's cell:
    ``<c r="B7" s="3"><v>42</v></c>``; a blank cell is ``<c r="B7"/>``, an empty cell as Excel itself
    writes them, so every row of a chunk is made of the same parts.

    Why parts: a row is then one ``join`` of a tuple that ``zip`` builds in C (constants come from
    ``itertools.repeat``), instead of a string formatted in Python for every cell; the work that
    depends on a value (escaping, the formula rule, a serial day's text) is done once per distinct
    value of the chunk."""
    head: list[Part] = [f'<c r="{letter}', rows]
    if kind in ("text", "phone"):
        return [*head, _text_tails(values, styles)]
    if kind == "bool":
        flags = values.to_numpy(dtype=object, na_value=None).tolist()
        return [*head, ['"/>' if v is None else '" t="b"><v>1</v></c>' if v else '" t="b"><v>0</v></c>'
                        for v in flags]]
    style = styles.by_kind.get(kind)
    mid = '"' + (f' s="{style}"' if style is not None else "") + "><v>"
    numbers, ok = _number_pieces(values, kind, epoch)
    if ok.all():
        return [*head, mid, *numbers, "</v></c>"]
    blank = (~ok).astype(np.intp)

    def either(when_ok: str, when_blank: str) -> list[str]:
        return list(np.array([when_ok, when_blank], dtype=object)[blank].tolist())

    cleared = []
    for piece in numbers:  # the value's texts: "" in a blank cell
        texts = np.array(piece, dtype=object)
        texts[~ok] = ""
        cleared.append(texts.tolist())
    return [*head, either(mid, '"/>'), *cleared, either("</v></c>", "")]


def _text_tails(values: pd.Series, styles: _Styles) -> list[str]:
    """Each cell's text after its reference (``" t="inlineStr"><is><t>...</t></is></c>``, or ``"/>``
    for a blank cell: missing or empty text), worked out once per distinct value of the chunk (in C,
    ``factorize`` finds them and the missing ones faster than a Python loop over the cells could)."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    texts = list(map(str, uniques.tolist()))  # str of a str is itself; a stray number becomes text
    escaped, quoted, spaced = _escape_all(texts)
    if not quoted and not spaced:  # the usual case: no per-value decisions
        tails = ['" t="inlineStr"><is><t>' + e + "</t></is></c>" if e else '"/>' for e in escaped]
    else:
        tails = []
        for raw, e in zip(texts, escaped, strict=True):
            if not e:
                tails.append('"/>')
                continue
            s = f' s="{styles.quoted}"' if quoted and raw.startswith(FORMULA_TRIGGERS) else ""
            space = ' xml:space="preserve"' if spaced and _NEEDS_PRESERVE.search(raw) else ""
            tails.append(f'"{s} t="inlineStr"><is><t{space}>{e}</t></is></c>')
    table = np.array([*tails, '"/>'], dtype=object)  # code -1 (missing) takes the last: blank
    return list(table[codes].tolist())


def _texts(numbers: np.ndarray) -> np.ndarray:
    """Integers as decimal text (an object array): each distinct value formatted once."""
    distinct, inverse = np.unique(numbers, return_inverse=True)
    return np.array([str(v) for v in distinct.tolist()], dtype=object)[inverse.reshape(-1)]


@functools.cache
def _day_fractions() -> np.ndarray:
    """The decimal text of s/86400 for every second of a day (12 places: 43 ns, far below the second
    Excel shows and the millisecond openpyxl reads back), so a time is written without a float repr."""
    return np.array(["", *(f"{s / 86400:.12f}"[1:].rstrip("0") for s in range(1, 86400))], dtype=object)


def _serial_pieces(seconds: np.ndarray, ok: np.ndarray) -> list[list[str]]:
    """Whole seconds since Excel's epoch (or durations) as serial-day text: the day, its fraction."""
    days, second = np.divmod(np.where(ok, seconds, 0), 86400)
    return [_texts(days).tolist(), _day_fractions()[second].tolist()]


def _number_pieces(values: pd.Series, kind: Kind, epoch: np.datetime64 = _EXCEL_EPOCH
                   ) -> tuple[list[list[str]], np.ndarray]:
    """The ``<v>`` text of each number in a column chunk, as pieces, and which cells have one."""
    if kind in ("datetime", "date"):
        stamps = values.to_numpy(dtype="datetime64[s]")
        ok = ~np.isnat(stamps)
        seconds = np.where(ok, stamps - epoch, np.timedelta64(0, "s")).astype("int64")
        ok &= seconds >= 0
        return _serial_pieces(seconds, ok), ok
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        ints = values.to_numpy(dtype="int64")
        ok = np.ones(len(ints), dtype=bool)
        if kind in ("duration", "duration_change") and (ints >= 0).all():
            return _serial_pieces(ints, ok), ok
        if kind not in ("duration", "duration_change"):
            return [list(map(str, ints.tolist()))], ok
    floats = values.to_numpy(dtype="float64", na_value=np.nan)
    ok = np.isfinite(floats)
    whole = np.where(ok, floats, 0.0)
    if kind in ("duration", "duration_change"):
        if np.all((whole == np.floor(whole)) & (whole >= 0)):
            return _serial_pieces(whole.astype("int64"), ok), ok
        floats = floats / 86400.0
    elif kind in ("int", "change") or pd.api.types.is_integer_dtype(values.dtype):
        if np.all(whole == np.floor(whole)):
            texts = np.array(list(map(str, whole.astype("int64").tolist())), dtype=object)
            texts[~ok] = ""
            return [texts.tolist()], ok
    return [[repr(v) if good else "" for v, good in zip(floats.tolist(), ok.tolist(), strict=True)]], ok
