"""Finding a field's column by its header, the way people actually name them.

Headers are compared by :func:`header_key`: case, accents, spaces, underscores and punctuation are
ignored, so "Mobile No.", "mobile_no" and "MOBILE NO" are the same header, and "Téléphone" is
"telephone". A repeated header that pandas would rename ("Phone", "Phone.1") is still the same
header. A mapping may also name a column by its letter, as Excel shows it: ``"column C"``.

Two plausible columns for one field are an error that names the mapping resolving it, never a
silent pick.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_NOT_ALNUM = re.compile(r"[\W_]+")
_RENAMED_REPEAT = re.compile(r"(.*\S)\.(\d+)")
_BY_LETTER = re.compile(r"column\s+([A-Za-z]{1,3})", re.IGNORECASE)


def header_key(text: str) -> str:
    """``"Mobile No."`` -> ``"mobileno"``, ``"Téléphone"`` -> ``"telephone"``: the form headers are
    compared in (NFKD folds accents and fullwidth letters; marks and punctuation are dropped)."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKD", text).casefold())


def _keys(*names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(header_key(n) for n in names))


PHONE_HEADERS: tuple[str, ...] = _keys(
    "phone", "phone number", "phone no", "phone num", "mobile", "mobile no", "mobile number",
    "mobile phone", "mobile phone number", "phone (mobile)", "mobile num", "mob", "mob no",
    "mob number", "ph", "ph no", "ph number", "contact", "contact num",
    "contact no", "contact number", "contact phone", "contact mobile", "msisdn",
    "customer phone", "customer phone number", "customer mobile", "customer mobile no",
    "customer mobile number", "customer number", "customer contact", "customer contact no",
    "customer contact number", "customer contact uri", "lead phone", "lead mobile",
    "primary phone", "primary mobile", "cell", "cell phone", "cell no", "cell number",
    "telephone", "telephone number", "tel", "tel no", "number",
    # Headers written in other languages by the same tools (accents fold away).
    "téléphone", "numéro de téléphone", "portable", "teléfono", "celular", "móvil", "telefon",
    "telefonnummer", "handy", "मोबाइल", "मोबाइल नंबर", "फ़ोन", "फ़ोन नंबर",
)
PREFERRED_AGENT_HEADERS: tuple[str, ...] = _keys(
    "preferred agent", "preferred agent id", "agent", "agent id", "agent user id", "sticky agent",
    "assigned agent", "assigned agent id", "agent name",
)
AGENT_USER_ID_HEADERS: tuple[str, ...] = _keys(
    "user id", "agent id", "agent user id", "user", "id", "agent"
)
AGENT_CONTACT_HEADERS: tuple[str, ...] = _keys(
    "contact uri", "user contact uri", "agent contact uri", "contact", "contact no",
    "contact number", "phone", "phone number", "phone no", "mobile", "mobile no", "mobile number",
    "number", "msisdn", "sip", "sip uri", "uri", "agent phone", "agent mobile", "agent number",
)
AGENT_NAME_HEADERS: tuple[str, ...] = _keys("name", "agent name", "full name", "display name")
AGENT_GROUP_HEADERS: tuple[str, ...] = _keys("group", "group name", "group id", "team", "team name")


class ColumnError(ValueError):
    """The header row does not say unambiguously which column holds a field."""


@dataclass(frozen=True)
class ColumnChoice:
    """The column chosen for a field: its index and header as written."""

    index: int
    header: str


def column_letter(index: int) -> str:
    """0 -> ``A``, 27 -> ``AB``: a column as Excel names it."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def header_keys(headers: Sequence[str]) -> list[str]:
    """:func:`header_key` of each header, with pandas-style renamed repeats (``Phone.1`` beside
    ``Phone``) folded onto the header they repeat."""
    keys = [header_key(h) for h in headers]
    present = set(keys)
    for i, header in enumerate(headers):
        repeat = _RENAMED_REPEAT.fullmatch(header)
        if repeat is not None:
            base = header_key(repeat.group(1))
            if base in present and base != keys[i]:
                keys[i] = base
    return keys


def mapped_letter(mapped: str) -> str | None:
    """``"column C"`` -> ``"C"``; None when the mapping is a header name."""
    match = _BY_LETTER.fullmatch(mapped.strip())
    return match.group(1).upper() if match else None


def find_column(
    headers: Sequence[str],
    field: str,
    *,
    mapped: str | None,
    defaults: Sequence[str],
    required: bool,
    option: str = "",
    letters: Sequence[str] | None = None,
) -> ColumnChoice | None:
    """The column for ``field``: the mapped header if given, else one of the usual names.

    ``option`` is the definition key that maps the field for this file (named in the errors);
    ``letters`` are the columns' letters as Excel shows them (default: A, B, C... by position).
    Raises :class:`ColumnError` when a required field has no column, when a mapped header is
    missing or repeated, or when several columns carry usual names for the field.
    """
    keys = header_keys(headers)
    shown = list(letters) if letters is not None else [column_letter(i) for i in range(len(headers))]
    if mapped is not None:
        return _mapped_column(headers, keys, shown, field, mapped, option)
    hits = [i for i, k in enumerate(keys) if k in defaults]
    if not hits:
        if required:
            raise ColumnError(
                f"no {field} column found (looked for headers such as "
                f"{', '.join(repr(d) for d in defaults[:6])}...); columns: {_listing(headers, shown)}"
                + (f"; map it with {option}" if option else "")
            )
        return None
    if len(hits) > 1:
        # Two plausible columns is a question for the person who knows the file, not a guess.
        same_name = len({keys[i] for i in hits}) < len(hits)
        how = (
            f"map the one to call by its letter, e.g. {option}: 'column {shown[hits[-1]]}'"
            if same_name
            else f"map the one to use, e.g. {option}: {headers[hits[-1]]!r}"
        ) if option else ""
        raise ColumnError(
            f"several columns could be the {field} column: "
            f"{_listing([headers[i] for i in hits], [shown[i] for i in hits])}"
            + (f"; {how}" if how else "")
        )
    return ColumnChoice(hits[0], headers[hits[0]])


def _mapped_column(headers: Sequence[str], keys: Sequence[str], shown: Sequence[str], field: str,
                   mapped: str, option: str) -> ColumnChoice:
    """The column a definition maps by header or by letter ("column C")."""
    wanted = header_key(mapped)
    hits = [i for i, k in enumerate(keys) if k == wanted]
    letter = mapped_letter(mapped)
    if not hits and letter is not None:
        hits = [i for i, s in enumerate(shown) if s == letter]
        if not hits:
            raise ColumnError(
                f"no column {letter} (mapped as {field}); columns: {_listing(headers, shown)}"
            )
    if not hits:
        raise ColumnError(
            f"no column {mapped!r} (mapped as {field}); columns: {_listing(headers, shown)}"
            + (f"; map this file's with {option}" if option else "")
        )
    if len(hits) > 1:
        raise ColumnError(
            f"several columns are headed {headers[hits[0]]!r} (columns "
            f"{_and(shown[i] for i in hits)}), mapped as {field}; map the one to use by "
            f"its letter" + (f" with {option}" if option else "")
            + f", e.g. 'column {shown[hits[-1]]}', or rename the others"
        )
    return ColumnChoice(hits[0], headers[hits[0]])


def _and(items: Iterable[str]) -> str:
    values = list(items)
    return ", ".join(values[:-1]) + " and " + values[-1] if len(values) > 1 else "".join(values)


def _listing(headers: Sequence[str], letters: Sequence[str]) -> str:
    """Headers as a list; a repeated one also shows its column letter."""
    keys = header_keys(headers)
    repeated = {k for k in keys if keys.count(k) > 1}
    shown = ", ".join(
        f"{h!r} ({c})" if k in repeated else repr(h)
        for h, k, c in zip(headers[:12], keys[:12], letters[:12], strict=False)
    )
    return shown + (f" and {len(headers) - 12} more" if len(headers) > 12 else "")
