"""The agent roster: CSV, XLSX or YAML to validated, deduplicated :class:`Agent` records.

An agent is reached by ``user_id`` (the CCM user) or by ``contact_uri`` (a phone number, normalised
to E.164 like customers', or a SIP URI ``sip:user@domain``); at least one is required. Its
``agent_key``, the dialer's lease key, is the user_id if given, else the contact_uri.

A roster row that fails validation, or repeats a user_id or contact_uri seen in an earlier row, is
rejected with its row number (for YAML: the line where the entry starts) and reason. A roster with no
usable agent at all is an :class:`InputFileError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic import model_validator as _model_validator
from yaml.nodes import MappingNode, SequenceNode

from ccm_tasks.exotel.models import SIP_RE
from ccm_tasks.inputs.columns import (
    AGENT_CONTACT_HEADERS,
    AGENT_GROUP_HEADERS,
    AGENT_NAME_HEADERS,
    AGENT_USER_ID_HEADERS,
    ColumnError,
    find_column,
    header_key,
)
from ccm_tasks.inputs.customers import REJECT_COLUMNS, rows_with_numbers
from ccm_tasks.inputs.errors import InputFileError
from ccm_tasks.inputs.phones import PhoneNormaliser, cell_text
from ccm_tasks.inputs.readers import HeaderSearch, read_tables
from ccm_tasks.inputs.yamlio import compose_yaml

AGENT_FIELDS: tuple[str, ...] = ("user_id", "contact_uri", "name", "group")
YAML_SUFFIXES = (".yaml", ".yml")
_HEADERS = {
    "user_id": AGENT_USER_ID_HEADERS,
    "contact_uri": AGENT_CONTACT_HEADERS,
    "name": AGENT_NAME_HEADERS,
    "group": AGENT_GROUP_HEADERS,
}


@dataclass(frozen=True, slots=True)
class Agent:
    """One usable agent. ``agent_key`` identifies it to the dialer (its lease key)."""

    agent_key: str
    user_id: str | None
    contact_uri: str | None
    name: str | None
    group: str | None


class AgentRecord(BaseModel):
    """One roster row, validated. Needs ``context={"normaliser": PhoneNormaliser}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str | None = None
    contact_uri: str | None = None
    name: str | None = None
    group: str | None = None

    @field_validator("user_id", "contact_uri", "name", "group", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None:
            return None
        text = cell_text(value).strip()
        return text or None

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str | None) -> str | None:
        if value is not None and any(c.isspace() for c in value):
            raise ValueError("a user_id has no spaces (it is the CCM user's id)")
        return value

    @field_validator("contact_uri")
    @classmethod
    def _contact(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if value.lower().startswith(("sip:", "sips:")):
            if not SIP_RE.match(value):
                raise ValueError("not a SIP URI of the form sip:user@domain")
            return value
        normaliser: PhoneNormaliser | None = (info.context or {}).get("normaliser")
        result = (normaliser or PhoneNormaliser()).one(value)
        if result.e164 is None:
            raise ValueError(f"not a phone number or SIP URI ({result.reason})")
        return result.e164

    @_model_validator(mode="after")
    def _reachable(self) -> AgentRecord:
        if self.user_id is None and self.contact_uri is None:
            raise ValueError("neither user_id nor contact_uri: the agent cannot be reached")
        return self

    def to_agent(self) -> Agent:
        """The engine's plain record."""
        key = self.user_id if self.user_id is not None else self.contact_uri
        assert key is not None
        return Agent(key, self.user_id, self.contact_uri, self.name, self.group)


@dataclass
class AgentRoster:
    """Usable agents in roster order, and the rows set aside (REJECT_COLUMNS plus ``kind``)."""

    agents: list[Agent]
    rejects: pd.DataFrame
    rows: int

    @property
    def duplicates(self) -> int:
        """Rows rejected because they repeat an earlier agent."""
        return int((self.rejects["kind"] == "agent_duplicate").sum()) if len(self.rejects) else 0


@dataclass(frozen=True)
class _RosterRow:
    sheet: str
    row: int
    values: dict[str, Any]
    problem: tuple[str, str] | None = None  # (column, reason) found before validation


def load_agents(
    path: Path, *, normaliser: PhoneNormaliser, display: str | None = None
) -> AgentRoster:
    """Read and validate a roster; raises :class:`InputFileError` if no agent is usable."""
    file = display or str(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        rows = _yaml_rows(path)
    else:
        rows = _table_rows(path, normaliser)
    agents: list[Agent] = []
    rejects: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    seen_uris: dict[str, int] = {}

    def reject(row: _RosterRow, kind: str, column: str, value: Any, reason: str) -> None:
        rejects.append({"kind": kind, "file": file, "sheet": row.sheet, "row": row.row,
                        "column": column, "value": "" if value is None else cell_text(value),
                        "reason": reason})

    for row in rows:
        if row.problem is not None:
            reject(row, "agent_rejected", row.problem[0], None, row.problem[1])
            continue
        try:
            record = AgentRecord.model_validate(row.values, context={"normaliser": normaliser})
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            column = str(error["loc"][0]) if error["loc"] else "user_id"
            reason = str(error["msg"]).removeprefix("Value error, ")
            reject(row, "agent_rejected", column, row.values.get(column), reason)
            continue
        if record.user_id is not None and record.user_id in seen_ids:
            reject(row, "agent_duplicate", "user_id", record.user_id,
                   f"duplicate user_id (first at row {seen_ids[record.user_id]})")
            continue
        if record.contact_uri is not None and record.contact_uri in seen_uris:
            reject(row, "agent_duplicate", "contact_uri", row.values.get("contact_uri"),
                   f"duplicate contact_uri {record.contact_uri} "
                   f"(first at row {seen_uris[record.contact_uri]})")
            continue
        if record.user_id is not None:
            seen_ids[record.user_id] = row.row
        if record.contact_uri is not None:
            seen_uris[record.contact_uri] = row.row
        agents.append(record.to_agent())

    columns = ["kind", *REJECT_COLUMNS]
    frame = pd.DataFrame(rejects, columns=columns) if rejects else pd.DataFrame(
        {c: pd.Series(dtype=object) for c in columns}
    )
    if not agents:
        detail = "; ".join(f"row {r['row']}: {r['reason']}" for r in rejects[:3])
        raise InputFileError(
            path,
            f"no usable agent in the roster ({len(rows)} rows"
            + (f", all rejected: {detail}" if rejects else "") + ")",
        )
    return AgentRoster(agents=agents, rejects=frame, rows=len(rows))


def _field_for(key: str) -> str | None:
    folded = header_key(key)
    for field_name in AGENT_FIELDS:
        if folded == header_key(field_name):
            return field_name
    for field_name, names in _HEADERS.items():
        if folded in names:
            return field_name
    return None


def _table_rows(path: Path, normaliser: PhoneNormaliser) -> list[_RosterRow]:
    # A title above the header is skipped as for customers: the header is the first row naming a
    # user_id or contact column.
    names = frozenset((*_HEADERS["user_id"], *_HEADERS["contact_uri"], "userid", "contacturi"))
    search = HeaderSearch(
        holds_header=lambda cells: any(header_key(c) in names for c in cells),
        holds_data=rows_with_numbers(normaliser.region),
    )
    tables = read_tables(path, None, search)
    rows: list[_RosterRow] = []
    for table in tables:
        chosen: dict[str, int] = {}
        try:
            for field_name in AGENT_FIELDS:
                choice = find_column(table.headers, field_name, mapped=None,
                                     defaults=(header_key(field_name), *_HEADERS[field_name]),
                                     required=False)
                if choice is not None and choice.index not in chosen.values():
                    chosen[field_name] = choice.index
        except ColumnError as exc:
            raise InputFileError(path, str(exc), sheet=table.sheet or None) from None
        if "user_id" not in chosen and "contact_uri" not in chosen:
            raise InputFileError(
                path,
                "no user_id or contact_uri column; columns: "
                + ", ".join(repr(h) for h in table.headers),
                sheet=table.sheet or None,
            )
        for i in range(table.n_rows):
            values = {f: table.columns[j][i] for f, j in chosen.items()}
            if all(not str(v).strip() for v in values.values()):
                continue
            rows.append(_RosterRow(table.sheet, int(table.rows[i]), values))
    return rows


def _yaml_rows(path: Path) -> list[_RosterRow]:
    try:
        data, node = compose_yaml(path)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not valid YAML: {exc}") from None
    items_node = node
    if isinstance(data, dict) and isinstance(node, MappingNode):
        if set(data) != {"agents"}:
            raise InputFileError(path, "a YAML roster is a list of agents, or a mapping with "
                                       "one key 'agents' holding that list")
        data = data["agents"]
        items_node = node.value[0][1]
    if data is None:
        raise InputFileError(path, "the roster is empty")
    if not isinstance(data, list) or not isinstance(items_node, SequenceNode):
        raise InputFileError(path, "a YAML roster is a list of agents (- user_id: ...)")
    rows: list[_RosterRow] = []
    for item, item_node in zip(data, items_node.value, strict=True):
        line = item_node.start_mark.line + 1
        if isinstance(item, str):  # "- agent-001" shorthand
            item = {"user_id": item}
        if not isinstance(item, dict):
            rows.append(_RosterRow("", line, {}, ("", "an entry must be a mapping (user_id: ...)")))
            continue
        values: dict[str, Any] = {}
        problem: tuple[str, str] | None = None
        for key, value in item.items():
            field_name = _field_for(str(key))
            if field_name is None:
                problem = problem or (
                    str(key), f"unknown key {key!r} (allowed: {', '.join(AGENT_FIELDS)})"
                )
            else:
                values[field_name] = value
        rows.append(_RosterRow("", line, values, problem))
    return rows
