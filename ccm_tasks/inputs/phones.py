"""Phone numbers to E.164, exactly as written or not at all, fast enough for a million rows.

:func:`normalise_phone` is the definition: spreadsheet rules of ours, then ``phonenumbers.parse``
and ``is_valid_number``. Our rules exist because the library is built to be forgiving, and a
forgiving guess rings a stranger: it turns keypad letters into digits (``98765abcde`` would become
+919876522233), drops a stray letter, a ``*`` or a leading minus sign, and splits extensions off.
Applied before the library, in this order:

* invisible format characters (zero-width space, word joiner, direction marks, soft hyphen) are
  removed; what is left is stripped; nothing left -> ``blank phone``;
* Excel's text wrappers are unwrapped: a leading apostrophe (``'+919953123456``, also how exports
  guard against formula injection) and a formula that is a text literal (``="09953123456"``);
* several numbers in one cell (``9953123456 / 9953123457``, ``..., ...``) -> rejected;
* an extension (``ext. 12``, ``x12``, ``#12``, ``;ext=12``) -> rejected: Make Call cannot dial one;
* a date (``2026-01-05``, how a workbook's date cell reads) -> rejected;
* scientific notation (``9.19953E+11``) -> rejected: Excel has already dropped digits;
* a decimal (``919953123456.0``) is a spreadsheet number: ``.0`` (any number of zeros) is dropped,
  any other fraction is rejected;
* after that only digits (any script: Devanagari and fullwidth digits are digits), spaces, dashes,
  dots, slashes, parentheses and brackets may remain, and one ``+`` before the first digit. A letter
  (``9812OOO018``: the letter O for zero) or any other symbol is rejected, the reason naming it; so
  is a number starting with a minus sign (``-9812000023`` is a negative number, not a phone).

A numeric cell (``int``/``float`` from a workbook) is written as its integer digits first
(:func:`cell_text`); a float that is not an exact integer, or too large to be one, is rejected.
Finally a valid number must belong to one of the campaign's countries (``customers.countries``).

:class:`PhoneNormaliser.many` gives the same answers for a whole column. ``phonenumbers.parse`` plus
``is_valid_number`` costs 10-30 us a row, seconds per million, so the common shapes (``9953123456``,
``09953123456``, ``919953123456``, ``+91 99531-23456``...) are decided with NumPy on the raw bytes and
with lookup tables compiled from the library's own metadata patterns (see ``_numberplan``); every
other row (letters, symbols, non-ASCII text among them) goes through :func:`normalise_phone` with a
cache. The fast path mirrors the library's parsing steps for the region (international prefix,
default country code, national prefix) and only decides a row when the answer is certain;
``tests/inputs/test_inputs_phones.py`` compares both on thousands of generated inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberDesc, PhoneNumberFormat
from phonenumbers.phonenumberutil import ValidationResult, _test_number_length

from ccm_tasks.inputs import _numberplan as plan
from ccm_tasks.inputs._regions import REGION_NAMES

REASON_BLANK = "blank phone"
REASON_SCIENTIFIC = "scientific notation: Excel dropped digits (format the column as Text)"
REASON_FRACTION = "a number with decimals, not a phone number"
REASON_NOT_A_NUMBER = "not a phone number"
REASON_WRONG_LENGTH = "wrong number of digits"
REASON_INVALID = "not a valid number (no such number range)"
REASON_EXTENSION = "has an extension"
REASON_SEVERAL = "holds more than one number (write one number per cell)"
REASON_MINUS = "starts with a minus sign: a negative number, not a phone number"
REASON_PLUS_INSIDE = "has a '+' that is not at the start"
REASON_DATE = "a date, not a phone number (Excel formatted the cell as a date?)"

_SCIENTIFIC_RE = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_DECIMAL_RE = re.compile(r"(\+?\d+)\.(\d+)")
_EXACT_FLOAT_LIMIT = 2**53
# Unicode format characters (category Cf) that people paste without seeing them.
_INVISIBLE_RE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_APOSTROPHES = "'\u2018\u2019"
_FORMULA_TEXT_RE = re.compile(r'=\s*"([^"]*)"')
# Two numbers in one cell: separated by / , ; | & or a word "or"/"and", each with 7+ digits.
_SEVERAL_SPLIT_RE = re.compile(r"[/,;|&\n\uff0f\uff0c\uff1b]|\s(?:or|and)\s", re.IGNORECASE)
_MIN_DIGITS_OF_A_NUMBER = 7
# How a workbook's date cell is written by cell_text (ISO 8601), with or without a time.
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_EXTENSION_RE = re.compile(
    r"\d[\s\-.)\]]*(?:[,;]\s*)?(?:e?xt(?:ension|n)?\.?|x|\#|~|;\s*ext\s*=)\s*[:.=]?\s*\d{1,7}\s*\#?$",
    re.IGNORECASE,
)
_PLUS_SIGNS = "+\uff0b"
_OPENERS = "([\uff08\uff3b"
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d\ufe63"
# What may stand between digits: libphonenumber's punctuation less "x", "~" and the tildes (which
# it reads as extension marks), plus any Unicode space.
_SEPARATORS = frozenset(_DASHES + _OPENERS + ")]\uff09\uff3d./\uff0e\uff0f")

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PhoneResult:
    """One number's verdict: ``e164`` when valid, else ``reason``."""

    e164: str | None
    reason: str | None

    @property
    def ok(self) -> bool:
        """True when the number is valid."""
        return self.e164 is not None


@dataclass(frozen=True)
class PhoneBatch:
    """Verdicts for a column: integer keys (0 when rejected; the E.164 digits read as an integer,
    cheap to compare and deduplicate), reasons, and E.164 strings made from the keys on demand
    (a million ``str`` objects cost a fifth of a second: callers that keep only some rows make
    them for those rows with :func:`e164_strings`)."""

    key: IntArray
    reason: ObjectArray

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """Mask of valid rows."""
        mask: npt.NDArray[np.bool_] = self.key != 0
        return mask

    @cached_property
    def e164(self) -> ObjectArray:
        """E.164 strings, None where rejected."""
        out: ObjectArray = np.full(len(self.key), None, dtype=object)
        valid = np.flatnonzero(self.valid)
        out[valid] = e164_strings(self.key[valid])
        return out


def cell_text(value: object) -> str:
    """A spreadsheet cell as text: integral numbers without ``.0``, blanks as ``""``.

    A float that is not an exact integer keeps its decimals (and ``repr`` writes huge ones in
    scientific notation), so the phone rules reject it instead of rounding it to a guess.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < _EXACT_FLOAT_LIMIT:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def normalise_phone(
    value: object, region: str = "IN", countries: Collection[str] | None = None
) -> PhoneResult:
    """The reference: our spreadsheet rules (module docstring), then ``phonenumbers.parse`` +
    ``is_valid_number``; a valid number outside ``countries`` (None: any) is rejected too."""
    text = _INVISIBLE_RE.sub("", cell_text(value)).strip()
    if not text:
        return PhoneResult(None, REASON_BLANK)
    text = unwrap_text(text)
    if not text:
        return PhoneResult(None, REASON_BLANK)
    if _SCIENTIFIC_RE.fullmatch(text):  # first: the commonest value the fast path leaves here
        return PhoneResult(None, REASON_SCIENTIFIC)
    if _ISO_DATE_RE.fullmatch(text):
        return PhoneResult(None, REASON_DATE)
    if _holds_several(text):
        return PhoneResult(None, REASON_SEVERAL)
    if _has_extension(text):
        return PhoneResult(None, REASON_EXTENSION)
    decimal = _DECIMAL_RE.fullmatch(text)
    if decimal:
        if decimal.group(2).strip("0"):
            return PhoneResult(None, REASON_FRACTION)
        text = decimal.group(1)
    problem = character_problem(text)
    if problem is not None:
        return PhoneResult(None, problem)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return PhoneResult(None, REASON_NOT_A_NUMBER)
    if number.extension:  # our rules leave no extension mark, but the library knows more
        return PhoneResult(None, REASON_EXTENSION)
    if phonenumbers.is_valid_number(number):
        if countries is not None:
            if phonenumbers.region_code_for_number(number) not in countries:
                return PhoneResult(None, country_reason(number))
        return PhoneResult(phonenumbers.format_number(number, PhoneNumberFormat.E164), None)
    if phonenumbers.is_possible_number(number):
        return PhoneResult(None, REASON_INVALID)
    return PhoneResult(None, REASON_WRONG_LENGTH)


def unwrap_text(text: str) -> str:
    """Excel's ways of keeping a number as text: ``'0995...`` and ``="0995..."`` (stripped)."""
    if text[0] in _APOSTROPHES and len(text) > 1 and text[1] not in _APOSTROPHES:
        return text[1:].strip()
    formula = _FORMULA_TEXT_RE.fullmatch(text)
    if formula:
        return _INVISIBLE_RE.sub("", formula.group(1)).strip()
    return text


def _has_extension(text: str) -> bool:
    """A whole number (6+ digits), then an extension mark and its digits, at the end."""
    match = _EXTENSION_RE.search(text)
    return match is not None and sum(c.isdecimal() for c in text[: match.start() + 1]) >= 6


def _holds_several(text: str) -> bool:
    pieces: list[str] = _SEVERAL_SPLIT_RE.split(text)
    if len(pieces) < 2:
        return False
    numbers = [p for p in pieces if sum(c.isdecimal() for c in p) >= _MIN_DIGITS_OF_A_NUMBER]
    return len(numbers) >= 2


def character_problem(text: str) -> str | None:
    """Why ``text`` is not digits and separators with at most a leading ``+``; None if it is.

    The reason names the characters: ``letter 'O' found where digits belong`` for ``9812OOO018``.
    """
    letters: dict[str, None] = {}
    others: dict[str, None] = {}
    plus_at: list[int] = []
    digits = 0
    for i, char in enumerate(text):
        if char.isdecimal():
            digits += 1
        elif char in _SEPARATORS or char.isspace():
            pass
        elif char in _PLUS_SIGNS:
            plus_at.append(i)
        elif char.isalpha():
            letters[char] = None
        else:
            others[char] = None
    if not digits:
        return REASON_NOT_A_NUMBER  # "N/A", "call later": words, not a mistyped number
    if letters or others:
        parts = []
        if letters:
            parts.append(_named("letter", list(letters)))
        if others:
            parts.append(_named("character", list(others)))
        return " and ".join(parts) + " found where digits belong"
    # The first thing that is not a space or an opening bracket is a digit, or one "+" and then
    # (after spaces and brackets) a digit.
    significant = [(i, c) for i, c in enumerate(text) if not c.isspace() and c not in _OPENERS]
    position = 0
    if significant and significant[0][1] in _PLUS_SIGNS:
        position = 1
    if any(i != significant[0][0] for i in plus_at):
        return REASON_PLUS_INSIDE
    if position < len(significant) and not significant[position][1].isdecimal():
        first = significant[position][1]
        if first in _DASHES:
            return REASON_MINUS
        return f"starts with {first!r}, not a digit"
    return None


def _named(kind: str, chars: list[str]) -> str:
    shown = ", ".join(repr(c) for c in chars[:6]) + (", ..." if len(chars) > 6 else "")
    return f"{kind}{'s' if len(chars) > 1 else ''} {shown}"


def country_reason(number: phonenumbers.PhoneNumber) -> str:
    """``+1: United States, not in this campaign's countries`` for a valid number."""
    region = phonenumbers.region_code_for_number(number) or ""
    if region == "001":
        name = "an international (non-geographic) number"
    else:
        name = REGION_NAMES.get(region) or region or "an unknown country"
    return f"+{number.country_code}: {name}, not in this campaign's countries"


def is_supported_region(region: str) -> bool:
    """Whether libphonenumber knows the ISO region code (``IN``, ``SG``...)."""
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


# --------------------------------------------------------------------------- fast path

_CHUNK_ROWS = 1 << 16
_WIDTH = 20  # longer strings (nothing a clean number needs) take the reference path
_POW10 = np.array([10**i for i in range(19)], dtype=np.int64)
_SPACE, _PLUS, _DASH, _OPEN, _CLOSE = 32, 43, 45, 40, 41

# Row verdicts inside the fast path.
_SLOW, _OK, _BAD, _BLANK, _BAD_COUNTRY = -1, 1, 0, 2, 3
_MAX_NSN = 17  # libphonenumber's _MAX_LENGTH_FOR_NSN: longer national numbers raise TOO_LONG
_NOT_POSSIBLE = (
    ValidationResult.TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ValidationResult.INVALID_LENGTH,
)

Digits = tuple[IntArray, IntArray]  # a digit string per row: its value and its length (zeros kept)


class _FastPlan:
    """One region's numbering plan as lookup tables, plus the library's parsing steps over them.

    Tables are built the first time a length is needed and then kept (a memo of pure functions of
    the library's metadata, so sharing it between callers is safe).
    """

    def __init__(self, region: str, metadata: PhoneMetadata) -> None:
        self.region = region
        if not metadata.country_code:
            raise plan.UnsupportedPattern("no country code")
        self.country_code = int(metadata.country_code)
        self.cc_digits = str(self.country_code)
        national_prefix = _literal_digits(metadata.national_prefix_for_parsing)
        idd = _literal_digits(metadata.international_prefix)
        if national_prefix is None or idd is None or metadata.national_prefix_transform_rule:
            raise plan.UnsupportedPattern("national or international prefix is a pattern")
        self.national_prefix = national_prefix
        self.idd = idd
        general = metadata.general_desc
        if general is None or not general.national_number_pattern:
            raise plan.UnsupportedPattern("no general description")
        self._general: PhoneNumberDesc = general
        self._general_pattern: str = general.national_number_pattern
        self._types = [
            desc
            for desc in (
                metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip,
                metadata.personal_number, metadata.pager, metadata.uan, metadata.voicemail,
                metadata.fixed_line, metadata.mobile,
            )
            if desc is not None and desc.national_number_pattern
        ]
        # The library's length verdict depends on the length only (for the UNKNOWN type).
        self.length_class = np.array(
            [_test_number_length("0" * n, metadata) for n in range(19)], dtype=np.int64
        )
        self._general_auto = plan.DigitAutomaton([self._general_pattern])
        self._type_autos: dict[tuple[str, ...], plan.DigitAutomaton] = {}
        self._tables: dict[tuple[str, int], plan.Table] = {}
        # Every built table of a kind, end to end, so one gather serves rows of any length.
        self._flat: dict[str, tuple[plan.Table, IntArray, IntArray]] = {}

    def _table(self, kind: str, length: int) -> plan.Table:
        found = self._tables.get((kind, length))
        if found is not None:
            return found
        # Short prefixes first (a 1000-entry table), one digit more while prefixes stay undecided:
        # a 10**6-entry table costs ~20 ms to build, one of 10**4 well under one.
        for key_digits in sorted({min(k, length) for k in range(3, plan.KEY_DIGITS + 1)}):
            table = self._build_table(kind, length, key_digits)
            if key_digits == min(plan.KEY_DIGITS, length) or not (table == plan.UNDECIDED).any():
                break
        self._tables[(kind, length)] = table
        return table

    def _build_table(self, kind: str, length: int, key_digits: int) -> plan.Table:
        if kind == "general":  # _match_national_number: the pattern alone
            table = self._general_auto.prefix_table(length, key_digits)
        else:  # is_valid_number: general desc and some number type, each with its length list
            lengths_ok = not self._general.possible_length or length in self._general.possible_length
            patterns = tuple(
                str(d.national_number_pattern)
                for d in self._types
                if not d.possible_length or length in d.possible_length
            )
            if lengths_ok and patterns:
                types = self._type_autos.get(patterns)
                if types is None:
                    types = self._type_autos[patterns] = plan.DigitAutomaton(patterns)
                table = plan.table_and(
                    self._general_auto.prefix_table(length, key_digits),
                    types.prefix_table(length, key_digits),
                )
            else:
                table = np.full(10**key_digits, plan.NO_MATCH, dtype=np.int8)
        return table

    def lookup(self, kind: str, digits: Digits, rows: npt.NDArray[np.bool_]) -> npt.NDArray[np.int8]:
        """MATCH / NO_MATCH / UNDECIDED for each row in ``rows`` (UNDECIDED elsewhere)."""
        value, length = digits
        out = np.full(value.shape, plan.UNDECIDED, dtype=np.int8)
        index = np.flatnonzero(rows & (length >= 1) & (length <= 18))
        if not len(index):
            return out
        n = length[index]
        flat, offsets, shifts = self._flat_tables(kind, np.flatnonzero(np.bincount(n)).tolist())
        out[index] = flat[offsets[n] + value[index] // shifts[n]]
        return out

    def _flat_tables(self, kind: str, lengths: list[int]) -> tuple[plan.Table, IntArray, IntArray]:
        """The kind's tables end to end; per length its offset (-1: not built) and key divisor."""
        flat = self._flat.get(kind)
        if flat is not None and all(flat[1][n] >= 0 for n in lengths):
            return flat
        built = sorted({n for (k, n) in self._tables if k == kind} | set(lengths))
        tables = [self._table(kind, n) for n in built]
        offsets = np.full(19, -1, dtype=np.int64)
        shifts = np.ones(19, dtype=np.int64)
        position = 0
        for n, table in zip(built, tables, strict=True):
            offsets[n] = position
            position += len(table)
            key_digits = len(str(len(table))) - 1  # a table has 10**key_digits entries
            shifts[n] = _POW10[n - key_digits]
        self._flat[kind] = (np.concatenate(tables), offsets, shifts)
        return self._flat[kind]

    def strip_national_prefix(
        self, digits: Digits, rows: npt.NDArray[np.bool_]
    ) -> tuple[Digits, npt.NDArray[np.bool_]]:
        """``_maybe_strip_national_prefix_carrier_code``: the digits after it, and undecided rows."""
        value, length = digits
        undecided = np.zeros(value.shape, dtype=bool)
        if not self.national_prefix:
            return digits, undecided
        prefixed = rows & (length > 0) & _starts_with(digits, self.national_prefix)
        rest = _drop(digits, len(self.national_prefix))
        original = self.lookup("general", digits, prefixed)
        stripped = self.lookup("general", rest, prefixed)
        keep = (original == plan.MATCH) & (stripped == plan.NO_MATCH)
        strip = (original == plan.NO_MATCH) | (stripped == plan.MATCH)
        undecided = prefixed & ~keep & ~strip
        take = prefixed & strip & ~keep
        return _where(take, rest, digits), undecided


def _literal_digits(pattern: str | None) -> str | None:
    """The pattern as a plain digit string, "" for none, None when it is a real regex."""
    if not pattern:
        return ""
    return pattern if pattern.isdigit() and pattern.isascii() else None


@lru_cache(maxsize=16)
def _fast_plan(region: str) -> _FastPlan | None:
    """The region's fast path, or None when its plan breaks an assumption the fast path relies on."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or not metadata.country_code:
        return None
    cc = int(metadata.country_code)
    cc_str = str(cc)
    # One region per calling code (not +1 or +44 style sharing), and no shorter code is a prefix.
    if tuple(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())) != (region,):
        return None
    if any(int(cc_str[:i]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE for i in range(1, len(cc_str))):
        return None
    try:
        return _FastPlan(region, metadata)
    except plan.UnsupportedPattern:
        return None


def _as_bytes(values: ObjectArray) -> npt.NDArray[np.uint8]:
    """Fixed-width ASCII bytes, one row per value; a non-ASCII value becomes "\\x01" (slow path)."""
    try:
        fixed = values.astype(f"S{_WIDTH}")
    except (UnicodeEncodeError, TypeError, ValueError):
        fixed = np.array(
            [v if isinstance(v, str) and v.isascii() else "\x01" for v in values],
            dtype=f"S{_WIDTH}",
        )
    return fixed.view(np.uint8).reshape(len(values), _WIDTH)


def _starts_with(digits: Digits, literal: str) -> npt.NDArray[np.bool_]:
    """Whether each digit string starts with ``literal``."""
    value, length = digits
    if not literal:
        return np.zeros(value.shape, dtype=bool)
    shift = length - len(literal)
    head = value // _POW10[np.clip(shift, 0, 18)]
    mask: npt.NDArray[np.bool_] = (shift >= 0) & (head == int(literal))
    return mask


def _drop(digits: Digits, count: int) -> Digits:
    """The digit strings without their first ``count`` digits (empty when shorter)."""
    value, length = digits
    rest = np.maximum(length - count, 0)
    return value % _POW10[rest], rest


def _where(mask: npt.NDArray[np.bool_], a: Digits, b: Digits) -> Digits:
    return np.where(mask, a[0], b[0]), np.where(mask, a[1], b[1])


_BLANK_BYTES = (0, 9, 10, 11, 12, 13, _SPACE)  # padding and what str.strip() removes, in ASCII


def _fast_chunk(
    fp: _FastPlan, raw: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.int8], IntArray, npt.NDArray[np.bool_]]:
    """Verdict (_OK/_BAD/_BLANK/_SLOW), E.164 key and "length is possible" for rows of bytes.

    Follows ``phonenumbers.parse`` step by step for strings of ASCII digits, spaces, dashes and
    parentheses with an optional leading "+"; anything the tables leave undecided stays _SLOW.

    Longer than 60 lines on purpose: it is one vectorised pipeline whose ten working arrays
    (``slow``, ``whole``, ``national``, ...) every step narrows, in the library's own order; split
    into functions, each would take and return most of them, and the side-by-side reading against
    ``phonenumbers.parse`` that the differential test relies on would be lost.
    """
    n_rows, width = raw.shape
    lengths = np.strings.str_len(raw.view(f"S{width}").reshape(n_rows)).astype(np.int64)
    verdict = np.full(n_rows, _SLOW, dtype=np.int8)
    key = np.zeros(n_rows, dtype=np.int64)

    # One contiguous array per character position, up to the longest value (positions past it
    # are padding in every row).
    longest = max(int(lengths.max(initial=0)), 1)
    by_column = np.ascontiguousarray(raw[:, :longest].T)
    plus = by_column[0] == _PLUS
    digits = by_column - np.uint8(48)  # a digit's value; wraps below '0' to 208 and up
    is_digit = digits < 10
    is_pad = by_column == 0
    taken = is_digit | is_pad
    for separator in (_SPACE, _DASH, _OPEN, _CLOSE):
        taken |= by_column == separator
    taken[0] |= plus
    n_digits = is_digit.sum(axis=0, dtype=np.int64)
    # NUL bytes inside the text (not just the padding) are not something to decide here.
    fits = (is_pad.sum(axis=0, dtype=np.int64) == longest - lengths) & (lengths < width)
    no_digits = np.flatnonzero(fits & (n_digits == 0))
    if len(no_digits):
        only_space = np.isin(raw[no_digits], _BLANK_BYTES).all(axis=1)
        verdict[no_digits[only_space]] = _BLANK
    # Fewer than 3 digits meets the library's viability rules in ways not worth modelling here.
    slow = ~(fits & taken.all(axis=0) & (n_digits >= 3) & (n_digits <= 18))
    # So is an ISO date ("2026-01-05": a workbook's date cell as cell_text writes it).
    if longest >= 10:
        slow |= (lengths == 10) & (by_column[4] == _DASH) & (by_column[7] == _DASH)

    # The digits as one integer: Horner's rule over the character positions (up to the longest
    # value: padding adds nothing). On the way, a dash or ")" before the first digit (a minus
    # sign, "-9812000023") is our rule, not the library's (which skips it): the reference
    # decides those rows.
    value = np.zeros(n_rows, dtype=np.int64)
    step = np.empty(n_rows, dtype=np.int64)
    no_digit_yet = n_digits > 0  # (rows without digits are blank or slow already)
    for j in range(longest):
        if no_digit_yet.any():
            slow |= no_digit_yet & ((by_column[j] == _DASH) | (by_column[j] == _CLOSE))
            no_digit_yet &= ~is_digit[j]
        np.multiply(value, 10, out=step)
        np.add(step, digits[j], out=step)
        np.copyto(value, step, where=is_digit[j])
    whole: Digits = (value, np.minimum(n_digits, 18))  # longer rows are already _SLOW
    after_cc = _drop(whole, len(fp.cc_digits))
    starts_cc = _starts_with(whole, fp.cc_digits)

    # _maybe_extract_country_code. "+": only our own country code is decided here.
    slow |= plus & ~starts_cc
    # No "+": an international prefix (00...) is left to the library; then the default country
    # code is taken off only when the whole number is not itself plausible (or is too long).
    bare = ~plus & ~slow
    slow |= bare & _starts_with(whole, fp.idd)
    bare &= ~slow
    cc_rows = bare & starts_cc
    potential, undecided = fp.strip_national_prefix(after_cc, cc_rows)
    slow |= undecided
    cc_rows &= ~slow
    whole_general = fp.lookup("general", whole, cc_rows)
    potential_general = fp.lookup("general", potential, cc_rows)
    too_long = fp.length_class[np.minimum(n_digits, 18)] == ValidationResult.TOO_LONG
    extract = ((whole_general == plan.NO_MATCH) & (potential_general == plan.MATCH)) | too_long
    keep = ~too_long & ((whole_general == plan.MATCH) | (potential_general == plan.NO_MATCH))
    slow |= cc_rows & ~extract & ~keep
    national = _where(plus & ~slow, after_cc, _where(cc_rows & extract & ~slow, potential, whole))

    # parse(): too short a national number raises; then the national prefix goes, unless what is
    # left has an impossible length.
    slow |= national[1] < 2
    stripped, undecided = fp.strip_national_prefix(national, ~slow)
    slow |= undecided
    national = _where(
        np.isin(fp.length_class[np.minimum(stripped[1], 18)], _NOT_POSSIBLE), national, stripped
    )
    slow |= (national[1] > _MAX_NSN) | (national[1] + len(fp.cc_digits) > 18)

    valid = fp.lookup("valid", national, ~slow)
    slow |= valid == plan.UNDECIDED
    verdict[~slow & (valid == plan.MATCH)] = _OK
    verdict[~slow & (valid == plan.NO_MATCH)] = _BAD
    ok = verdict == _OK
    key[ok] = fp.country_code * _POW10[national[1][ok]] + national[0][ok]
    possible = np.isin(
        fp.length_class[np.minimum(national[1], 18)],
        (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY),
    )
    return verdict, key, possible


def e164_strings(keys: IntArray) -> ObjectArray:
    """``+`` and the digits of each key (nonzero), as Python strings."""
    # fromiter over f-strings: no intermediate list (measured faster than a list or str.format).
    return np.fromiter((f"+{k}" for k in keys.tolist()), dtype=object, count=len(keys))


class PhoneNormaliser:
    """Normalises numbers for one default region; remembers the answers it had to compute slowly.

    ``countries``: the regions whose numbers are accepted (None: a valid number of any country).
    """

    def __init__(self, region: str = "IN", countries: Iterable[str] | None = None) -> None:
        self.region = region.upper()
        if not is_supported_region(self.region):
            raise ValueError(f"unknown phone region {region!r}")
        self.countries = (
            frozenset(c.upper() for c in countries) if countries is not None else None
        )
        unknown = sorted(c for c in self.countries or () if not is_supported_region(c))
        if unknown:
            raise ValueError(f"unknown phone region(s) {', '.join(unknown)}")
        self._cache: dict[str, PhoneResult] = {}
        self._plan = _fast_plan(self.region)
        # Every number the fast path accepts belongs to its region (one region per country code).
        self._fast_reject: str | None = None
        if self._plan is not None and self.countries is not None and self.region not in self.countries:
            example = phonenumbers.example_number(self.region)
            self._fast_reject = (
                country_reason(example) if example is not None
                else f"+{self._plan.country_code}: {self.region}, not in this campaign's countries"
            )
        self.fast_rows = 0
        self.slow_rows = 0

    @property
    def has_fast_path(self) -> bool:
        """Whether the region's numbering plan could be compiled into lookup tables."""
        return self._plan is not None

    def one(self, value: object) -> PhoneResult:
        """One value through the reference rules (cached by its text)."""
        text = cell_text(value)
        found = self._cache.get(text)
        if found is None:
            found = normalise_phone(text, self.region, self.countries)
            self._cache[text] = found
        return found

    def many(self, values: ObjectArray, *, fast: bool = True) -> PhoneBatch:
        """Normalise a column; cells that are not strings are written with :func:`cell_text`."""
        values = np.asarray(values, dtype=object)
        if len(values) and pd.api.types.infer_dtype(values, skipna=False) != "string":
            values = np.array([cell_text(v) for v in values.tolist()], dtype=object)
        n = len(values)
        verdict = np.full(n, _SLOW, dtype=np.int8)
        key = np.zeros(n, dtype=np.int64)
        possible = np.zeros(n, dtype=bool)
        fp = self._plan if fast else None
        if fp is not None:
            # Chunks keep the byte matrices and their temporaries small (a few MB each).
            for start in range(0, n, _CHUNK_ROWS):
                chunk = values[start : start + _CHUNK_ROWS]
                v, k, p = _fast_chunk(fp, _as_bytes(chunk))
                verdict[start : start + len(chunk)] = v
                key[start : start + len(chunk)] = k
                possible[start : start + len(chunk)] = p
        reason = np.full(n, None, dtype=object)
        if self._fast_reject is not None:
            reason[verdict == _OK] = self._fast_reject
            key[verdict == _OK] = 0
            verdict[verdict == _OK] = _BAD_COUNTRY
        reason[(verdict == _BAD) & possible] = REASON_INVALID
        reason[(verdict == _BAD) & ~possible] = REASON_WRONG_LENGTH
        reason[verdict == _BLANK] = REASON_BLANK
        slow = np.flatnonzero(verdict == _SLOW)
        self.fast_rows += n - len(slow)
        self.slow_rows += len(slow)
        for i in slow.tolist():
            value = values[i]
            if _SCIENTIFIC_RE.fullmatch(value):
                # Excel's 9.19953E+11: the commonest value the fast path leaves, and one the
                # reference rejects at its first rule (nothing to strip or unwrap in it).
                reason[i] = REASON_SCIENTIFIC
                continue
            result = self.one(value)
            if result.e164 is not None:
                key[i] = int(result.e164[1:])
            else:
                reason[i] = result.reason
        return PhoneBatch(key=key, reason=reason)


def time_zones(e164: str) -> tuple[str, ...] | None:
    """The IANA time zones a number's owner may be in (libphonenumber's data), or None when the
    number does not tell (the campaign's own zone applies then)."""
    return _time_zones(_zone_key(e164))


def _zone_key(e164: str) -> str:
    """Numbers of a country whose zone data has no finer prefix than the country code share one
    answer (India: every +91 number is Asia/Kolkata); other numbers are looked up one by one."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    digits = e164.lstrip("+")
    for size in (1, 2, 3):
        code = digits[:size]
        if code in TIMEZONE_DATA and _single_prefix(code):
            return "+" + code
    return e164


@lru_cache(maxsize=1024)
def _single_prefix(code: str) -> bool:
    from phonenumbers.tzdata import TIMEZONE_DATA

    return sum(1 for key in TIMEZONE_DATA if key.startswith(code)) == 1


@lru_cache(maxsize=65536)
def _time_zones(key: str) -> tuple[str, ...] | None:
    from phonenumbers import timezone

    try:
        if key.count("+") and len(key) <= 4:  # a whole country: its one entry
            from phonenumbers.tzdata import TIMEZONE_DATA

            zones = tuple(TIMEZONE_DATA[key[1:]])
        else:
            zones = tuple(timezone.time_zones_for_number(phonenumbers.parse(key)))
    except (NumberParseException, KeyError):
        return None
    zones = tuple(z for z in zones if z != timezone.UNKNOWN_TIMEZONE)
    return zones or None
