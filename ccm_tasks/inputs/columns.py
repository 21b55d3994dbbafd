"""Finding a field's column by its header, the way people actually name them.

Headers are compared by :func:`header_key`: case, spaces, underscores and punctuation are ignored, so
"Mobile No.", "mobile_no" and "MOBILE NO" are the same header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_NOT_ALNUM = re.compile(r"[\W_]+")

PHONE_HEADERS: tuple[str, ...] = (
    "phone", "phonenumber", "phoneno", "phonenum", "mobile", "mobileno", "mobilenumber",
    "mobilephone", "mob", "mobno", "contact", "contactno", "contactnumber", "msisdn",
    "customerphone", "customerphonenumber", "customermobile", "customermobileno",
    "customermobilenumber", "customernumber", "customercontact", "customercontactno",
    "customercontactnumber", "customercontacturi", "cell", "cellphone", "cellno", "cellnumber",
    "telephone", "telephonenumber", "tel", "telno", "number",
)
PREFERRED_AGENT_HEADERS: tuple[str, ...] = (
    "preferredagent", "preferredagentid", "agent", "agentid", "agentuserid", "stickyagent",
    "assignedagent", "assignedagentid", "agentname",
)
AGENT_USER_ID_HEADERS: tuple[str, ...] = ("userid", "agentid", "agentuserid", "user", "id", "agent")
AGENT_CONTACT_HEADERS: tuple[str, ...] = (
    "contacturi", "usercontacturi", "agentcontacturi", "contact", "contactno", "contactnumber",
    "phone", "phonenumber", "phoneno", "mobile", "mobileno", "mobilenumber", "number", "msisdn",
    "sip", "sipuri", "uri", "agentphone", "agentmobile", "agentnumber",
)
AGENT_NAME_HEADERS: tuple[str, ...] = ("name", "agentname", "fullname", "displayname")
AGENT_GROUP_HEADERS: tuple[str, ...] = ("group", "groupname", "groupid", "team", "teamname")


def header_key(text: str) -> str:
    """``"Mobile No."`` -> ``"mobileno"``: the form headers are compared in."""
    return _NOT_ALNUM.sub("", text.casefold())


class ColumnError(ValueError):
    """The header row does not say unambiguously which column holds a field."""


@dataclass(frozen=True)
class ColumnChoice:
    """The column chosen for a field: its index and header as written."""

    index: int
    header: str


def find_column(
    headers: Sequence[str],
    field: str,
    *,
    mapped: str | None,
    defaults: Sequence[str],
    required: bool,
    hint: str = "",
) -> ColumnChoice | None:
    """The column for ``field``: the mapped header if given, else one of the usual names.

    Raises :class:`ColumnError` when a required field has no column, when a mapped header is
    missing, or when several columns carry usual names for the field (say which to use instead).
    """
    keys = [header_key(h) for h in headers]
    if mapped is not None:
        wanted = header_key(mapped)
        hits = [i for i, k in enumerate(keys) if k == wanted]
        if not hits:
            raise ColumnError(
                f"no column {mapped!r} (mapped as {field}); columns: {_listing(headers)}"
            )
        return ColumnChoice(hits[0], headers[hits[0]])
    hits = [i for i, k in enumerate(keys) if k in defaults]
    if not hits:
        if required:
            raise ColumnError(
                f"no {field} column found (looked for headers such as "
                f"{', '.join(repr(d) for d in defaults[:6])}...); columns: {_listing(headers)}"
                + (f"; {hint}" if hint else "")
            )
        return None
    if len(hits) > 1:
        # Two plausible columns is a question for the person who knows the file, not a guess.
        raise ColumnError(
            f"several columns could be the {field} column: {_listing([headers[i] for i in hits])}"
            + (f"; {hint}" if hint else "")
        )
    return ColumnChoice(hits[0], headers[hits[0]])


def _listing(headers: Sequence[str]) -> str:
    shown = ", ".join(repr(h) for h in headers[:12])
    return shown + (f" and {len(headers) - 12} more" if len(headers) > 12 else "")
