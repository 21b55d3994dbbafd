"""Customer lists to validated, deduplicated customers; every row set aside is accounted for.

Per row only the phone number is checked, column-wise (see :mod:`ccm_tasks.inputs.phones`):
a pydantic model per row costs ~2.5 us here before any phone parsing (2.5 s per million rows,
more than the whole bare CSV read) for a check that is one field wide. Pydantic stays at the
boundaries where it pays: the definition and the agent roster.

Each file is read with its own column mapping (``customers.files[].columns`` over
``customers.columns``) and header row (found among the first rows, or ``header_row``); a file or
sheet with a header and no customer row is an error naming it.

Order of decisions, across all files and sheets in the order the definition lists them:
1. a row whose every cell is blank is skipped silently (Excel keeps formatted empty rows);
2. a row with an unusable phone is **rejected** (reason per row; a number of a country the
   campaign does not call is unusable too);
3. a valid number on the do-not-call list is **suppressed** (every occurrence);
4. a number seen before is a **duplicate** of its first occurrence, which is the one called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ccm_tasks.inputs.columns import (
    PHONE_HEADERS,
    PREFERRED_AGENT_HEADERS,
    ColumnChoice,
    ColumnError,
    find_column,
    header_key,
    header_keys,
    mapped_letter,
)
from ccm_tasks.inputs.definition import CustomerColumns, CustomersSpec
from ccm_tasks.inputs.errors import InputFileError
from ccm_tasks.inputs.phones import (
    REASON_BLANK,
    REASON_NOT_A_NUMBER,
    PhoneBatch,
    PhoneNormaliser,
    e164_strings,
    normalise_phone,
)
from ccm_tasks.inputs.readers import ALL_SHEETS, HeaderSearch, RowTest, Table, read_tables

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]

EXTRA_PREFIX = "extra:"
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_key", "phone", "phone_input", "preferred_agent",
    "source_file", "source_sheet", "source_row",
)
REJECT_COLUMNS: tuple[str, ...] = ("file", "sheet", "row", "column", "value", "reason")
DUPLICATE_COLUMNS: tuple[str, ...] = (
    "file", "sheet", "row", "column", "value", "customer_key",
    "first_file", "first_sheet", "first_row", "reason",
)
SUPPRESSED_COLUMNS: tuple[str, ...] = (
    "file", "sheet", "row", "column", "value", "customer_key", "dnc_file", "dnc_sheet", "dnc_row",
    "reason",
)

Display = Callable[[Path], str]

REASON_HEADER_AGAIN = "a header row again (repeated header), not a customer"
_MIN_DIGITS = 7  # fewer digits than any number a campaign could call: not worth parsing as data


@dataclass
class SourceCount:
    """What became of the rows of one (file, sheet)."""

    file: str
    sheet: str
    rows: int = 0  # data rows read, fully blank rows not counted
    rejected: int = 0
    suppressed: int = 0
    duplicates: int = 0
    phone_column: str = ""
    header_row: int = 1  # as Excel shows it; rows above it were a title or other preamble

    @property
    def valid(self) -> int:
        """Rows with a usable phone number."""
        return self.rows - self.rejected

    @property
    def called(self) -> int:
        """Rows that become customers to call."""
        return self.rows - self.rejected - self.suppressed - self.duplicates


@dataclass
class DoNotCall:
    """The numbers never to call, with where each was listed first."""

    keys: IntArray  # sorted, unique E.164 keys
    sources: dict[int, tuple[str, str, int]]  # key -> (file, sheet, row)
    files: list[tuple[str, int]]  # (file, numbers listed)
    rejects: pd.DataFrame  # unusable entries (REJECT_COLUMNS)

    @classmethod
    def empty(cls) -> DoNotCall:
        """No do-not-call list."""
        return cls(np.zeros(0, dtype=np.int64), {}, [], _frame([], REJECT_COLUMNS))


@dataclass
class CustomerSet:
    """The customers to call and everything set aside, with per-source counts."""

    customers: pd.DataFrame
    rejects: pd.DataFrame
    duplicates: pd.DataFrame
    suppressed: pd.DataFrame
    sources: list[SourceCount] = field(default_factory=list)


@dataclass
class _Part:
    """One table after phone validation: full columns plus the positions of its valid rows.

    Columns stay whole (no per-step copies of a million-row object array); rows are taken once,
    when the customers frame is assembled.
    """

    file: str
    sheet: str
    phone_header: str
    valid: IntArray  # positions (in this table) of the rows with a valid number
    key: IntArray  # E.164 keys of those rows
    rows: IntArray  # Excel row numbers, whole table
    raw: ObjectArray  # whole table
    preferred: ObjectArray | None  # whole table, normalised
    extras: dict[str, tuple[str, ObjectArray]]  # folded header -> (header as written, whole table)
    count: SourceCount


def _frame(records: list[tuple[object, ...]], columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=list(columns)) if records else pd.DataFrame(
        {c: pd.Series(dtype=object) for c in columns}
    )


def load_customers(
    spec: CustomersSpec,
    *,
    normaliser: PhoneNormaliser,
    display: Display,
    do_not_call: DoNotCall | None = None,
) -> CustomerSet:
    """Read every customer file of the definition; see the module docstring for the rules."""
    dnc = do_not_call or DoNotCall.empty()
    parts: list[_Part] = []
    rejects: list[pd.DataFrame] = []
    sources: list[SourceCount] = []
    holds_data = rows_with_numbers(normaliser.region)
    for index, entry in enumerate(spec.files):
        columns = spec.columns_for(index)
        # The key that maps this file's columns: with several files, only the file's own key
        # changes this file alone.
        option = (
            "customers.columns" if len(spec.files) == 1 and entry.columns is None
            else f"customers.files[{index}].columns"
        )
        search = HeaderSearch(
            row=entry.header_row,
            holds_header=_holds_header(columns.phone, PHONE_HEADERS),
            holds_data=holds_data,
        )
        for table in read_tables(entry.path, entry.sheet, search):
            part, table_rejects = _read_part(table, columns, option, normaliser,
                                             display(entry.path))
            parts.append(part)
            rejects.append(table_rejects)
            sources.append(part.count)
    customers, duplicates, suppressed = _combine(parts, dnc)
    return CustomerSet(
        customers=customers,
        rejects=pd.concat(rejects, ignore_index=True) if rejects else _frame([], REJECT_COLUMNS),
        duplicates=duplicates,
        suppressed=suppressed,
        sources=sources,
    )


def _holds_header(mapped: str | None, defaults: tuple[str, ...]) -> RowTest:
    """A row holds the header when a cell is the mapped header (unmapped: a usual one; mapped by
    letter, "column C": a usual one, or a header that is literally "column C")."""
    if mapped is not None and mapped_letter(mapped) is None:
        wanted = header_key(mapped)
        return lambda cells: any(header_key(c) == wanted for c in cells)
    names = frozenset(defaults) | ({header_key(mapped)} if mapped is not None else set())
    return lambda cells: any(header_key(c) in names for c in cells)


def rows_with_numbers(region: str) -> RowTest:
    """Whether a row holds a valid phone number of any country (data, so no header is below it)."""
    seen: dict[str, bool] = {}

    def is_number(text: str) -> bool:
        found = seen.get(text)
        if found is None:
            found = sum(c.isdecimal() for c in text) >= _MIN_DIGITS and normalise_phone(
                text, region).ok
            seen[text] = found
        return found

    return lambda cells: any(is_number(c) for c in cells)


def _read_part(
    table: Table, mapping: CustomerColumns, option: str, normaliser: PhoneNormaliser, file: str
) -> tuple[_Part, pd.DataFrame]:
    phone, preferred = _find_columns(table, mapping, option, normaliser)
    raw = table.columns[phone.index]
    batch = normaliser.many(raw)
    rejected, reasons, data_rows = _rejected_rows(table, batch, raw, phone)
    count = SourceCount(
        file=file, sheet=table.sheet, rows=data_rows,
        rejected=len(rejected) + len(table.broken), phone_column=phone.header,
        header_row=table.header_row,
    )
    reject_frame = pd.DataFrame({
        "file": file,
        "sheet": table.sheet,
        "row": np.concatenate([table.rows[rejected], [b.row for b in table.broken]]).astype(np.int64),
        "column": [phone.header] * len(rejected) + [""] * len(table.broken),
        "value": np.concatenate([raw[rejected], [""] * len(table.broken)]).astype(object),
        "reason": np.concatenate([reasons, [b.problem for b in table.broken]]).astype(object),
    }, columns=list(REJECT_COLUMNS))
    valid = np.flatnonzero(batch.valid)
    taken = {phone.index} | ({preferred.index} if preferred is not None else set())
    part = _Part(
        file=file,
        sheet=table.sheet,
        phone_header=phone.header,
        valid=valid,
        key=batch.key[valid],
        rows=table.rows,
        raw=raw,
        preferred=(
            normalise_preferred(table.columns[preferred.index]) if preferred is not None else None
        ),
        extras=_extra_columns(table, taken),
        count=count,
    )
    return part, reject_frame


def _find_columns(table: Table, mapping: CustomerColumns, option: str,
                  normaliser: PhoneNormaliser) -> tuple[ColumnChoice, ColumnChoice | None]:
    """The phone column (required) and the preferred-agent column, or an error a person can act on."""
    try:
        phone = find_column(
            table.headers, "phone", mapped=mapping.phone, defaults=PHONE_HEADERS,
            required=True, option=f"{option}.phone", letters=table.letters,
        )
        preferred = find_column(
            table.headers, "preferred_agent", mapped=mapping.preferred_agent,
            defaults=PREFERRED_AGENT_HEADERS, required=False,
            option=f"{option}.preferred_agent", letters=table.letters,
        )
    except ColumnError as exc:
        problem = str(exc)
        prose = len(table.headers) == 1 and (
            len(table.headers[0].split()) >= 4 or len(table.headers[0]) > 40
        )
        if not table.delimited and prose and table.kind == "csv" and mapping.phone is None:
            problem = (
                "does not look like a spreadsheet: the first line has no ',', ';', '|' or tab "
                "between columns, and no phone column"
            )
        elif mapping.phone is None and rows_with_numbers(normaliser.region)(table.headers):
            problem = (
                f"row {table.header_row} holds a phone number where the header should be: add a "
                "header row (e.g. Phone) above the numbers, or give the header's row with "
                "header_row if it is further down"
            )
        elif table.header_row == 1 and mapping.phone is None:
            problem += "; if the header is not the first row, give its row with header_row"
        raise InputFileError(table.path, problem, sheet=table.sheet or None) from None
    assert phone is not None
    if preferred is not None and preferred.index == phone.index:
        preferred = None
    return phone, preferred


def _rejected_rows(table: Table, batch: PhoneBatch, raw: ObjectArray,
                   phone: ColumnChoice) -> tuple[IntArray, ObjectArray, int]:
    """Rows rejected for their number (blank rows are not rows), their reasons, and the data rows."""
    invalid = np.flatnonzero(~batch.valid)
    blank_phone = invalid[batch.reason[invalid] == REASON_BLANK]
    blank_row = blank_phone[table.blank_rows(blank_phone)]
    skip = np.zeros(len(invalid), dtype=bool)
    skip[np.searchsorted(invalid, blank_row)] = True
    rejected = invalid[~skip]
    data_rows = table.n_rows - len(blank_row) + len(table.broken)
    if not data_rows:
        raise InputFileError(
            table.path,
            f"has a header row (row {table.header_row}) but no customer rows below it",
            sheet=table.sheet or None,
        )
    reasons = batch.reason[rejected]
    words = np.flatnonzero(reasons == REASON_NOT_A_NUMBER)  # text without a digit
    if len(words):
        # A header repeated below (two exports pasted together, a second header-like row) is
        # reported as what it is, not as "not a phone number".
        header_words = {*PHONE_HEADERS, header_key(phone.header)}
        again = [header_key(str(v)) in header_words for v in raw[rejected[words]]]
        reasons[words[np.array(again, dtype=bool)]] = REASON_HEADER_AGAIN
    return rejected, reasons, data_rows


def _extra_columns(table: Table, taken: set[int]) -> dict[str, tuple[str, ObjectArray]]:
    """The other columns, carried into the reports by their folded header."""
    keys = header_keys(table.headers)
    extras: dict[str, tuple[str, ObjectArray]] = {}
    for i, (header, column) in enumerate(zip(table.headers, table.columns, strict=True)):
        if i in taken:
            continue
        # Columns are matched across files by their folded header ("Customer Name" and
        # "customer name" are one report column); a repeat within a file keeps its own column.
        key, name, n = keys[i], header, 0
        while key in extras:
            n += 1
            key, name = f"{keys[i]}#{n}", f"{header}.{n}"
        extras[key] = (name, column)
    return extras


class _ValidSpace:
    """The valid rows of every part, in order: position i is the i-th valid row over all parts."""

    def __init__(self, parts: list[_Part]) -> None:
        self.parts = parts
        sizes = [len(p.key) for p in parts]
        self.n = sum(sizes)
        self.key = np.concatenate([p.key for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        self.part_of = np.repeat(np.arange(len(parts)), sizes)
        self.local = np.concatenate([p.valid for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        self.files = np.array([p.file for p in parts], dtype=object)
        self.sheets = np.array([p.sheet for p in parts], dtype=object)
        self.headers = np.array([p.phone_header for p in parts], dtype=object)

    def take(self, column: Callable[[_Part], npt.NDArray[Any] | None], at: IntArray) -> npt.NDArray[Any]:
        """A per-part column at positions ``at``, in the order of ``at`` (which need not be sorted:
        first occurrences are not); None where a part lacks the column."""
        parts, local = self.parts, self.local
        if len(parts) == 1:
            values = column(parts[0])
            return values[local[at]] if values is not None else np.full(len(at), None, dtype=object)
        out = np.full(len(at), None, dtype=object)
        owner = self.part_of[at]
        for i, part in enumerate(parts):
            values = column(part)
            if values is not None:
                mine = owner == i
                out[mine] = values[local[at[mine]]]
        return out

    def located(self, at: IntArray) -> dict[str, Any]:
        """Where rows ``at`` are, as the user sees them, with the cell and its number."""
        return {
            "file": self.files[self.part_of[at]],
            "sheet": self.sheets[self.part_of[at]],
            "row": self.take(lambda p: p.rows, at).astype(np.int64),
            "column": self.headers[self.part_of[at]],
            "value": self.take(lambda p: p.raw, at),
            "customer_key": e164_strings(self.key[at]),
        }


def _first_occurrences(key: IntArray, candidates: IntArray) -> tuple[IntArray, IntArray]:
    """Among ``candidates``, the later occurrences of a number and, for each, its first occurrence."""
    # Only numbers that occur more than once need more than a hash pass (a few percent of rows).
    repeated = candidates[pd.Series(key[candidates], copy=False).duplicated(keep=False).to_numpy()]
    codes, _uniques = pd.factorize(key[repeated])
    # factorize numbers keys in order of first appearance, so a row is a first occurrence
    # exactly when its code is larger than every code before it.
    first_seen = codes > np.maximum.accumulate(np.concatenate([[-1], codes[:-1]]))
    return repeated[~first_seen], repeated[first_seen][codes[~first_seen]]


def _combine(parts: list[_Part], dnc: DoNotCall) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Suppress, deduplicate and assemble the customers frame (first occurrence wins)."""
    space = _ValidSpace(parts)
    key, n = space.key, space.n
    # A hash look-up against the (small) list; np.isin would sort the whole key column.
    suppressed = (
        pd.Series(key, copy=False).isin(dnc.keys).to_numpy()
        if len(dnc.keys)
        else np.zeros(n, dtype=bool)
    )
    candidates = np.flatnonzero(~suppressed)
    duplicate, first = _first_occurrences(key, candidates)
    is_duplicate = np.zeros(n, dtype=bool)
    is_duplicate[duplicate] = True
    keep = candidates[~is_duplicate[candidates]]
    hidden = np.flatnonzero(suppressed)

    suppressed_per_part = np.bincount(space.part_of[hidden], minlength=len(parts))
    duplicates_per_part = np.bincount(space.part_of[duplicate], minlength=len(parts))
    for i, part in enumerate(parts):
        part.count.suppressed = int(suppressed_per_part[i])
        part.count.duplicates = int(duplicates_per_part[i])
    return (_customers_frame(space, keep), _duplicates_frame(space, duplicate, first),
            _suppressed_frame(space, hidden, dnc))


def _duplicates_frame(space: _ValidSpace, duplicate: IntArray, first: IntArray) -> pd.DataFrame:
    files, sheets = space.files[space.part_of[first]], space.sheets[space.part_of[first]]
    first_rows = space.take(lambda p: p.rows, first).astype(np.int64)
    return pd.DataFrame({
        **space.located(duplicate),
        "first_file": files,
        "first_sheet": sheets,
        "first_row": first_rows,
        "reason": [
            f"duplicate of {_where(f, s, r)}"
            for f, s, r in zip(files.tolist(), sheets.tolist(), first_rows.tolist(), strict=True)
        ],
    }, columns=list(DUPLICATE_COLUMNS))


def _suppressed_frame(space: _ValidSpace, hidden: IntArray, dnc: DoNotCall) -> pd.DataFrame:
    listed = [dnc.sources.get(int(k), ("", "", 0)) for k in space.key[hidden].tolist()]
    return pd.DataFrame({
        **space.located(hidden),
        "dnc_file": [s[0] for s in listed],
        "dnc_sheet": [s[1] for s in listed],
        "dnc_row": np.array([s[2] for s in listed], dtype=np.int64),
        "reason": [f"on the do-not-call list ({_where(*s)})" for s in listed],
    }, columns=list(SUPPRESSED_COLUMNS))


def _customers_frame(space: _ValidSpace, keep: IntArray) -> pd.DataFrame:
    e164 = e164_strings(space.key[keep])
    take, part_of = space.take, space.part_of
    columns: dict[str, npt.NDArray[Any] | pd.Categorical] = {
        "customer_key": e164,
        "phone": e164,
        "phone_input": take(lambda p: p.raw, keep),
        "preferred_agent": take(lambda p: p.preferred, keep),
        "source_file": _labels(space.files, part_of[keep]),
        "source_sheet": _labels(space.sheets, part_of[keep]),
        "source_row": take(lambda p: p.rows, keep).astype(np.int64),
    }
    names: dict[str, str] = {}
    for part in space.parts:
        for folded, (name, _column) in part.extras.items():
            names.setdefault(folded, name)
    for folded, name in names.items():
        columns[EXTRA_PREFIX + name] = take(_extra(folded), keep)
    # Object columns as built: letting pandas infer its "str" dtype would copy and re-check
    # every string of a million-row frame.
    return pd.DataFrame(
        {name: values if isinstance(values, pd.Categorical)
         else pd.Series(values, dtype=None if name == "source_row" else object, copy=False)
         for name, values in columns.items()},
        copy=False,
    )


def _extra(key: str) -> Callable[[_Part], ObjectArray | None]:
    return lambda part: part.extras[key][1] if key in part.extras else None


def _labels(names: ObjectArray, codes: IntArray) -> pd.Categorical:
    """A categorical of repeated labels: one byte per row instead of an object pointer."""
    categories = list(dict.fromkeys(names.tolist()))
    position = np.array([categories.index(n) for n in names.tolist()], dtype=np.int64)
    return pd.Categorical.from_codes(position[codes] if len(codes) else codes, categories=categories)


def _where(file: str, sheet: str, row: int) -> str:
    return f"{file}" + (f" [{sheet}]" if sheet else "") + f" row {row}"


def normalise_preferred(values: ObjectArray) -> ObjectArray:
    """Preferred-agent cells: stripped text, blank as None (worked out once per distinct value)."""
    out: ObjectArray = np.full(len(values), None, dtype=object)
    filled = np.flatnonzero(values != "")  # most rows name no agent: skip them cheaply
    if len(filled):
        codes, uniques = pd.factorize(values[filled], use_na_sentinel=True)
        cleaned = np.array(
            [(str(u).strip() or None) if u is not None else None for u in uniques] + [None],
            dtype=object,
        )
        out[filled] = cleaned[codes]  # code -1 (missing) picks the trailing None
    return out


def load_do_not_call(
    paths: list[Path], *, normaliser: PhoneNormaliser, display: Display
) -> DoNotCall:
    """Read do-not-call lists (CSV/XLSX, every sheet); numbers are normalised like customers'.

    The number column is a phone-like header, else the first column. A header that is itself a
    valid number means the list has no header, and it counts as an entry. Unusable entries are
    reported, never silently dropped; an empty list is allowed (nobody has opted out yet).
    """
    keys: list[IntArray] = []
    sources: dict[int, tuple[str, str, int]] = {}
    files: list[tuple[str, int]] = []
    rejects: list[tuple[object, ...]] = []
    search = HeaderSearch(holds_header=_holds_header(None, PHONE_HEADERS),
                          holds_data=rows_with_numbers(normaliser.region))
    for path in paths:
        file = display(path)
        try:
            tables = read_tables(path, ALL_SHEETS, search)
        except InputFileError as exc:
            if exc.problem in ("the file is empty", "every sheet is empty"):
                files.append((file, 0))
                continue
            raise
        listed = 0
        for table in tables:
            try:
                choice = find_column(table.headers, "phone", mapped=None, defaults=PHONE_HEADERS,
                                     required=False)
            except ColumnError:
                choice = None
            index = choice.index if choice is not None else 0
            header = table.headers[index]
            values = table.columns[index]
            rows = table.rows
            head = normaliser.one(header)
            if head.ok:  # no header row: the first line is a number too
                values = np.concatenate([np.array([header], dtype=object), values])
                rows = np.concatenate([[rows[0] - 1 if len(rows) else 1], rows]).astype(np.int64)
                header = ""
            batch = normaliser.many(values)
            for i in np.flatnonzero(batch.valid).tolist():
                k = int(batch.key[i])
                sources.setdefault(k, (file, table.sheet, int(rows[i])))
            listed += int(np.count_nonzero(batch.valid))
            keys.append(batch.key[batch.valid])
            for i in np.flatnonzero(~batch.valid & (batch.reason != REASON_BLANK)).tolist():
                rejects.append((file, table.sheet, int(rows[i]), header, values[i], batch.reason[i]))
        files.append((file, listed))
    all_keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    return DoNotCall(all_keys, sources, files, _frame(rejects, REJECT_COLUMNS))
