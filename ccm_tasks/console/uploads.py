"""Uploaded spreadsheets: stored safely under the campaign's folder, checked, and previewed.

* The stored name is generated: a cleaned stem of the uploaded name (letters, digits, ``-``, ``_``;
  for people to recognise) plus random hex, and an extension chosen from the file's *content*. The
  uploaded name is never used as a path.
* A zip (.xlsx, .ods) is opened with :mod:`zipfile` first and refused unread by calamine when its
  parts expand past the bound: declared sizes are checked, then the parts are actually inflated
  and counted, since a zip's declared sizes can lie.
* Everything else is read by the same library code as ``ccm validate``
  (:func:`ccm_tasks.inputs.readers.read_tables`), so a bad file gets the same message on the page.
  Cells are read as text: formulas are never evaluated (calamine reads cached values only).
"""

from __future__ import annotations

import re
import secrets
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ccm_tasks.inputs import InputFileError
from ccm_tasks.inputs.columns import PHONE_HEADERS, ColumnError, find_column
from ccm_tasks.inputs.readers import ALL_SHEETS, Table, read_tables

UPLOADS_FOLDER = "uploads"
PREVIEW_ROWS = 5
_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_MAX_ZIP_MEMBERS = 10_000
_CHUNK = 1 << 20
_STEM_RE = re.compile(r"[^A-Za-z0-9_-]+")


class UploadRefused(ValueError):
    """An uploaded file cannot be used; the message is for the person who uploaded it."""


@dataclass(frozen=True)
class StoredFile:
    """An upload kept under the campaign's folder."""

    path: Path  # the generated name, inside <campaign>/uploads/
    uploaded_as: str  # the name the browser gave, for display only


@dataclass(frozen=True)
class TablePreview:
    """The first rows of one sheet (or CSV file), its header row and the phone column found."""

    sheet: str  # "" for CSV
    header_row: int  # as Excel shows it
    headers: list[str]
    rows: list[list[str]]
    row_numbers: list[int]
    data_rows: int
    phone_column: str | None
    problem: str | None  # why no phone column was chosen (none found, several candidates...)


def display_stem(uploaded_name: str | None) -> str:
    """A recognisable, harmless stem from an uploaded file name (``../../x y.xlsx`` -> ``x_y``)."""
    base = (uploaded_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    cleaned = _STEM_RE.sub("_", stem).strip("_-")[:40]
    return cleaned or "file"


def store_upload(source: BinaryIO, folder: Path, uploaded_name: str | None, *,
                 max_bytes: int, max_expanded_bytes: int) -> StoredFile:
    """Copy an upload into ``folder/uploads/`` under a generated name; refuse what is unusable.

    Raises :class:`UploadRefused` (nothing is kept) for a file over ``max_bytes``, an empty file, a
    zip that is not a workbook or that expands past ``max_expanded_bytes``, and whatever
    ``read_tables`` cannot read (its message, naming the uploaded file).
    """
    target_dir = folder / UPLOADS_FOLDER
    target_dir.mkdir(parents=True, exist_ok=True)
    shown = (uploaded_name or "the file").replace("\\", "/").rsplit("/", 1)[-1][:100] or "the file"
    incoming = target_dir / f".incoming-{secrets.token_hex(8)}"
    try:
        size = 0
        with incoming.open("wb") as out:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadRefused(f"{shown}: larger than the upload limit of "
                                        f"{max_bytes / 2**20:g} MB")
                out.write(chunk)
        if size == 0:
            raise UploadRefused(f"{shown}: the file is empty")
        suffix = _suffix_from_content(incoming, shown, max_expanded_bytes)
        final = target_dir / f"{display_stem(uploaded_name)}-{secrets.token_hex(4)}{suffix}"
        incoming.rename(final)
    finally:
        incoming.unlink(missing_ok=True)
    try:
        read_tables(final, ALL_SHEETS)
    except InputFileError as exc:
        final.unlink(missing_ok=True)
        raise UploadRefused(f"{shown}{_where(exc)}: {exc.problem}") from None
    return StoredFile(final, shown)


def _where(exc: InputFileError) -> str:
    return f" (sheet {exc.sheet!r})" if exc.sheet else ""


def _suffix_from_content(path: Path, shown: str, max_expanded_bytes: int) -> str:
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(_ZIP_MAGIC):
        return _zip_workbook_suffix(path, shown, max_expanded_bytes)
    if head.startswith(_OLE2_MAGIC):
        return ".xls"  # legacy workbook, or an encrypted one (read_tables says which)
    return ".csv"  # text, or not a spreadsheet at all: read_tables says which, in words


def _zip_workbook_suffix(path: Path, shown: str, max_expanded_bytes: int) -> str:
    """.xlsx or .ods for a workbook inside a zip whose parts expand within the bound."""
    limit_mb = f"{max_expanded_bytes / 2**20:g} MB"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > _MAX_ZIP_MEMBERS:
                raise UploadRefused(f"{shown}: refused: the workbook has {len(members)} parts "
                                    f"(more than {_MAX_ZIP_MEMBERS})")
            if sum(m.file_size for m in members) > max_expanded_bytes:
                raise UploadRefused(f"{shown}: refused: the workbook expands to more than {limit_mb} "
                                    "(a compressed bomb, or far too large to read)")
            names = {m.filename for m in members}
            if "xl/workbook.xml" in names:
                suffix = ".xlsm" if "xl/vbaProject.bin" in names else ".xlsx"
            elif "mimetype" in names and archive.read("mimetype").strip() == _ODS_MIME:
                suffix = ".ods"
            else:
                raise UploadRefused(f"{shown}: not a spreadsheet: a zip archive, but not an Excel "
                                    "(.xlsx) or OpenDocument (.ods) workbook")
            expanded = 0
            for member in members:  # the declared sizes can lie: inflate and count
                with archive.open(member) as part:
                    while chunk := part.read(_CHUNK):
                        expanded += len(chunk)
                        if expanded > max_expanded_bytes:
                            raise UploadRefused(f"{shown}: refused: the workbook expands to more "
                                                f"than {limit_mb} (a compressed bomb, or far too "
                                                "large to read)")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as exc:
        raise UploadRefused(f"{shown}: not a readable workbook (corrupt?): {exc}") from None
    return suffix


def count_rows(paths: Sequence[Path]) -> int:
    """Data rows across every sheet of ``paths`` (the row limit applies to the total)."""
    return sum(table.n_rows for path in paths for table in read_tables(path, ALL_SHEETS))


def sheet_names(path: Path) -> list[str]:
    """The sheets of a workbook with data ("" once for a CSV file)."""
    return [table.sheet for table in read_tables(path, ALL_SHEETS)]


def preview(path: Path, *, phone_column: str | None = None,
            rows: int = PREVIEW_ROWS) -> list[TablePreview]:
    """The first rows of every sheet of ``path``, with the phone column the run would use."""
    return [_preview_table(table, phone_column, rows) for table in read_tables(path, ALL_SHEETS)]


def _preview_table(table: Table, phone_column: str | None, rows: int) -> TablePreview:
    chosen: str | None = None
    problem: str | None = None
    try:
        found = find_column(table.headers, "phone", mapped=phone_column, defaults=PHONE_HEADERS,
                            required=True, hint="choose it below")
        chosen = found.header if found is not None else None
    except ColumnError as exc:
        problem = str(exc)
    shown = min(rows, table.n_rows)
    first_data = int(table.rows[0]) if table.n_rows else 2
    return TablePreview(
        sheet=table.sheet, header_row=first_data - 1, headers=list(table.headers),
        rows=[[str(column[i]) for column in table.columns] for i in range(shown)],
        row_numbers=[int(r) for r in table.rows[:shown]], data_rows=table.n_rows,
        phone_column=chosen, problem=problem)


def remove_folder(folder: Path) -> None:
    """Delete a campaign folder the console created and could not finish (best effort)."""
    shutil.rmtree(folder, ignore_errors=True)
