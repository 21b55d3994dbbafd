"""Report tables: a DataFrame plus how each column is shown, and the cell-safety rules all writers share.

Column kinds (``Kind``) decide the rendering in every format:

=============  ===========================  ==============================  ====================
kind           DataFrame holds              XLSX                            CSV / Markdown
=============  ===========================  ==============================  ====================
text           str or missing               inline string                   as is (neutralised)
phone          E.164 text or missing        inline string                   E.164 as is, else neutralised
int, float     numbers                      number                          number
bool           bool                         boolean                         TRUE / FALSE
datetime       naive local datetime64[s]    date ``yyyy-mm-dd hh:mm:ss``    ``2026-11-21 05:00:00``
date           naive local datetime64[s]    date ``yyyy-mm-dd``             ``2026-11-21``
duration       seconds                      seconds/86400, ``[h]:mm:ss``    seconds (``h:mm:ss`` in Markdown)
percent        ratio 0..1                   ``0.0%``                        ratio (``45.6%`` in Markdown)
change         signed number                ``+#,##0;-#,##0;0``             signed number
duration_change signed seconds              ``+[h]:mm:ss;-[h]:mm:ss`` [#]_  signed seconds (``+0:02:05``)
rate_change    signed ratio                 ``+0.0%;-0.0%;0.0%``            ratio
=============  ===========================  ==============================  ====================

.. [#] Excel shows a negative time as ``#####`` in its default (1900) date system; a workbook with a
   ``duration_change`` column is written in the 1904 date system, where it shows ``-0:02:05``, so
   every duration of the daily report reads h:mm:ss, changes included.

Times are shown in one IANA zone per table, named in the header: ``first_attempt (Asia/Kolkata)``.
Times are truncated to the whole second (never rounded up), so a call that ended at 23:59:59.7 shows
23:59:59 and lands on the same day as the daily report that counts it.

Formula injection (OWASP, "CSV Injection"): a text cell that begins with ``=``, ``+``, ``-``, ``@``,
tab or carriage return could be evaluated by a spreadsheet program (customer spreadsheets feed names
and notes into these reports). Every text cell is neutralised, with one exception for machines:

* CSV: the cell is prefixed with a single quote (``'=HYPERLINK(...)``, ``'-2``), as OWASP advises;
  a spreadsheet shows the quote and evaluates nothing. The exception: a cell of a **phone** column
  (a number the product validated and dialled, ``customer_contact_uri``) that is a clean E.164
  number, ``+`` then 7 to 15 digits and nothing else (``+919588139986``), is written as is, so a
  CRM or pandas re-imports it unchanged. Such a cell cannot carry a payload: it holds no function,
  reference, operator after the sign, or separator, so the most a spreadsheet can do is read it as
  the number it is. Any other cell of a phone column (an ``sip:`` address, a malformed value) and
  every cell of every other column, E.164-looking or not (a spreadsheet's own "alternate phone"
  column), is neutralised as above.
* XLSX: the cell is written as a string cell (never a formula) with the ``quotePrefix`` style, which
  is exactly what Excel stores when a person types ``'=...``: it shows ``+919953123456`` without a
  visible quote, and editing the cell does not turn it into a formula or a number. Phone cells too:
  in a workbook the quote is invisible and keeps the number from becoming 9.19953E+11.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Executable

Kind = Literal["text", "phone", "int", "float", "bool", "datetime", "date", "duration", "percent",
               "change", "duration_change", "rate_change"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is neutralised (see the module docstring)."""

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
"""A clean E.164 number (full match): the only text a CSV cell may start with ``+`` unquoted."""

TEXT_KINDS = frozenset({"text", "phone"})

_TIME_KINDS = frozenset({"datetime", "date"})


@dataclass(frozen=True)
class Table:
    """A report table: its rows, how each column is shown, and the zone its times are in."""

    name: str
    frame: pd.DataFrame
    kinds: Mapping[str, Kind] = field(default_factory=dict)
    timezone: str = "UTC"
    labels: Mapping[str, str] = field(default_factory=dict)
    """Plain headers for people (XLSX, Markdown); the CSV keeps the column names for machines."""
    totals: Mapping[str, Any] | None = None
    """A totals row shown (bold) under the table in the workbook and Markdown; not in the CSV."""
    title: str = ""
    """What the printed page's header says (e.g. the campaign's name)."""

    def kind(self, column: str) -> Kind:
        """How a column is shown; columns not listed are typed by their dtype (text by default)."""
        kind = self.kinds.get(column)
        if kind is not None:
            return kind
        dtype = self.frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "bool"
        if pd.api.types.is_integer_dtype(dtype):
            return "int"
        if pd.api.types.is_float_dtype(dtype):
            return "float"
        return "text"

    def header(self, column: str, *, for_csv: bool = False) -> str:
        """The column's header: times name their zone; XLSX durations drop the ``_s`` (seconds) suffix
        because the cell shows h:mm:ss, while CSV keeps plain seconds under the ``_s`` name."""
        kind = self.kind(column)
        label = None if for_csv else self.labels.get(column)
        if kind in _TIME_KINDS:
            return f"{label or column} ({self.timezone})"
        if label is not None:
            return label
        if kind in ("duration", "duration_change") and not for_csv and column.endswith("_s"):
            return column[:-2]
        return column

    def select(self, columns: Sequence[str]) -> Table:
        """The same table with only ``columns``, in that order (a sheet shows fewer than the CSV)."""
        totals = None if self.totals is None else {c: v for c, v in self.totals.items() if c in columns}
        return Table(self.name, self.frame[list(columns)], self.kinds, self.timezone, self.labels, totals,
                     self.title)


def csv_safe(text: str) -> str:
    """The text as a CSV cell that a spreadsheet will not evaluate."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def csv_safe_phone(text: str) -> str:
    """A phone column's cell: a clean E.164 number as is, anything else as :func:`csv_safe`."""
    return text if E164.fullmatch(text) else csv_safe(text)


def csv_safe_series(values: pd.Series, *, phone: bool = False) -> pd.Series:
    """:func:`csv_safe` (or :func:`csv_safe_phone`) over a column (missing values stay missing).

    Each distinct value is looked at once, and a column in which no text starts with a formula
    character (most of them) is passed through after one scan of its joined text."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    texts = list(map(str, uniques.tolist()))  # a stray number or date in a text column: its text
    joined = "\x00" + "\x00".join(texts)
    if any(f"\x00{c}" in joined for c in FORMULA_TRIGGERS):
        safe = csv_safe_phone if phone else csv_safe
        texts = list(map(safe, texts))
    cells = np.array([*texts, None], dtype=object)[codes]  # code -1 (missing) takes the last: None
    return pd.Series(cells, index=values.index, dtype="object")


def read_frame(conn: Connection, query: Executable) -> pd.DataFrame:
    """A query's rows as a DataFrame, from the driver's own tuples: ``pandas.read_sql`` builds a
    SQLAlchemy ``Row`` for each first, a third of the time for a large table. Columns keep the
    driver's values (text as ``object``, missing as ``None`` or NaN)."""
    result = conn.execute(query)
    columns = list(result.keys())
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    return pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)


# --------------------------------------------------------------------------- times


def local_times(epoch: pd.Series, timezone: str) -> pd.Series:
    """Epoch seconds -> naive local datetime64[s] in ``timezone``, truncated to the second."""
    seconds = np.floor(epoch.to_numpy(dtype="float64", na_value=np.nan))
    utc = pd.to_datetime(seconds, unit="s", utc=True)
    local = utc.tz_convert(ZoneInfo(timezone)).tz_localize(None).astype("datetime64[s]")
    return pd.Series(local, index=epoch.index)


def local_dates(epoch: pd.Series, timezone: str) -> pd.Series:
    """Epoch seconds -> the local calendar date (as midnight datetime64[s]) in ``timezone``."""
    return local_times(epoch, timezone).dt.floor("D")


def local_datetime(epoch: float | None, timezone: str) -> datetime | None:
    """One epoch time as a naive local datetime (truncated to the second)."""
    if epoch is None or epoch != epoch:
        return None
    aware = datetime.fromtimestamp(float(np.floor(epoch)), tz=ZoneInfo(timezone))
    return aware.replace(tzinfo=None)


def day_bounds(day: date, timezone: str) -> tuple[float, float]:
    """Epoch seconds [start, end) of a calendar day in ``timezone`` (23 or 25 hours across DST)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(date.fromordinal(day.toordinal() + 1), time(0), tzinfo=zone)
    return start.timestamp(), end.timestamp()


def hms(seconds: float | None) -> str:
    """Seconds as h:mm:ss (Markdown); the sign is kept."""
    if seconds is None or seconds != seconds:
        return ""
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    return f"{sign}{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def display(value: Any, kind: Kind) -> str:
    """A value as Markdown/console text."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return ""
    if kind == "duration":
        return hms(float(value))
    if kind == "duration_change":
        text = hms(float(value))
        return text if text.startswith("-") or float(value) == 0 else "+" + text
    if kind == "percent":
        return f"{float(value) * 100:.1f}%"
    if kind == "rate_change":
        return f"{float(value) * 100:+.1f} pp"
    if kind == "change":
        return f"{value:+,.0f}" if isinstance(value, float) else f"{int(value):+,d}"
    if kind == "datetime":
        return str(pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S"))
    if kind == "date":
        return str(pd.Timestamp(value).strftime("%Y-%m-%d"))
    if kind == "bool":
        return "yes" if bool(value) else "no"
    if kind == "float":
        return f"{float(value):,.2f}"
    if kind == "phone":
        return str(value)
    if kind == "int":
        return f"{int(value):,d}"
    return str(value)


def markdown_table(table: Table, columns: list[str] | None = None, *, limit: int | None = None) -> str:
    """A Markdown table (pipes and line breaks in cells escaped; numbers right-aligned)."""
    columns = columns or list(table.frame.columns)
    kinds = [table.kind(c) for c in columns]
    head = "| " + " | ".join(_md_cell(table.header(c)) for c in columns) + " |"
    align = "| " + " | ".join("---" if k in TEXT_KINDS else "---:" for k in kinds) + " |"
    lines = [head, align]
    frame = table.frame if limit is None else table.frame.head(limit)
    for row in frame[columns].itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_md_cell(display(v, k)) for v, k in zip(row, kinds, strict=True))
                     + " |")
    if table.totals is not None:
        cells = [display(table.totals.get(c), k) for c, k in zip(columns, kinds, strict=True)]
        lines.append("| " + " | ".join(f"**{_md_cell(c)}**" if c else "" for c in cells) + " |")
    if limit is not None and len(table.frame) > limit:
        lines.append(f"\n({len(table.frame) - limit} more rows in the workbook)")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    # Cells come from customer spreadsheets and agent rosters: keep them from breaking the table or
    # injecting HTML into the rendered artifact.
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
            .replace("\r", " ").replace("\n", " "))
