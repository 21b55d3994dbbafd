"""CSV and text files for reports, written atomically (a manager opening a file mid-rebuild sees the
old file or the new one, never half of one).

CSV: UTF-8 with a byte-order mark (so Excel does not read it as the local code page), CRLF line ends,
times as ``yyyy-mm-dd hh:mm:ss`` in the table's zone, durations as plain seconds (``*_s`` columns),
ratios as numbers, booleans as TRUE/FALSE, and formula-like text neutralised with a leading quote,
except clean E.164 numbers in phone columns (the rule: :mod:`ccm_tasks.reports.tables`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ccm_tasks.reports.tables import Table, csv_safe, csv_safe_series


def write_csv(table: Table, path: Path) -> None:
    """Write a table as an Excel-friendly CSV."""
    frame = csv_frame(table)
    _atomic(path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8-sig", lineterminator="\r\n"))


def csv_frame(table: Table) -> pd.DataFrame:
    """The table's cells as they go into the CSV."""
    out: dict[str, pd.Series] = {}
    for column in table.frame.columns:
        values = table.frame[column]
        kind = table.kind(column)
        if kind in ("text", "phone"):
            cells = csv_safe_series(values, phone=kind == "phone")
        elif kind == "datetime":
            cells = values.dt.strftime("%Y-%m-%d %H:%M:%S")
        elif kind == "date":
            cells = values.dt.strftime("%Y-%m-%d")
        elif kind == "bool":
            cells = pd.Series(["" if v is None or v is pd.NA else "TRUE" if v else "FALSE"
                               for v in values.tolist()], index=values.index, dtype="object")
        elif kind in ("percent", "rate_change"):
            cells = values.astype("float64").round(6)
        elif kind in ("duration", "duration_change", "float") and pd.api.types.is_float_dtype(values.dtype):
            cells = values.round(2)
        else:
            cells = values
        out[csv_safe(table.header(column, for_csv=True))] = cells
    return pd.DataFrame(out, index=table.frame.index)


def write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write a binary file (a chart image) atomically."""
    _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def _atomic(path: Path, write: Callable[[str], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
