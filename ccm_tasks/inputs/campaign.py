"""A campaign's inputs as one object: customers, agents, and every row set aside and why.

The customers frame (``CampaignInputs.customers``) has one row per customer to call, in file order:

=================  ===========================================================================
customer_key       the E.164 number; unique in the frame (the identity of a customer)
phone              the E.164 number to dial (today the same as customer_key)
phone_input        the phone cell as written in the file
preferred_agent    the ``agent_key`` of the customer's sticky agent, or None
source_file        the file as written in (relative to) the definition (categorical)
source_sheet       the sheet name; "" for CSV (categorical)
source_row         the row number as Excel shows it (header = 1)
extra:<header>     every other column of the file, as text ("" when blank; None when the
                   customer came from a file without that column)
=================  ===========================================================================

The rejects file (:func:`write_rejects`) is one CSV for everything set aside, told apart by ``kind``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ccm_tasks.inputs.agents import Agent, load_agents
from ccm_tasks.inputs.customers import (
    REJECT_COLUMNS,
    SourceCount,
    load_customers,
    load_do_not_call,
)
from ccm_tasks.inputs.definition import CampaignDefinition, load_definition
from ccm_tasks.inputs.phones import PhoneNormaliser

REJECTS_FILE_COLUMNS: tuple[str, ...] = (
    "kind", "file", "sheet", "row", "column", "value", "reason",
    "customer_key", "related_file", "related_sheet", "related_row",
)
# The order kinds appear in the rejects file.
REJECT_KINDS: tuple[str, ...] = (
    "rejected", "duplicate", "suppressed", "warning", "dnc_rejected",
    "agent_rejected", "agent_duplicate",
)


@dataclass
class CampaignInputs:
    """Everything a run needs from the campaign's files, and everything set aside."""

    definition: CampaignDefinition
    customers: pd.DataFrame
    agents: list[Agent]
    rejects: pd.DataFrame  # customer rows with an unusable phone (file, sheet, row, column, value, reason)
    duplicates: pd.DataFrame  # later occurrences of a number; first_file/first_sheet/first_row
    suppressed: pd.DataFrame  # numbers on the do-not-call list; dnc_file/dnc_sheet/dnc_row
    agent_rejects: pd.DataFrame  # roster rows set aside (kind: agent_rejected | agent_duplicate)
    warnings: pd.DataFrame  # kept rows with a caveat (an unknown preferred agent)
    dnc_rejects: pd.DataFrame  # do-not-call entries that are not usable numbers
    sources: list[SourceCount] = field(default_factory=list)
    do_not_call_files: list[tuple[str, int]] = field(default_factory=list)
    agent_rows: int = 0

    @property
    def read_counts(self) -> dict[tuple[str, str], int]:
        """Data rows read per (file, sheet); sheet is "" for CSV."""
        return {(s.file, s.sheet): s.rows for s in self.sources}

    @property
    def rows_read(self) -> int:
        """Data rows read across every customer file and sheet."""
        return sum(s.rows for s in self.sources)

    @property
    def reject_reasons(self) -> dict[str, int]:
        """Rejected customer rows counted by reason, most common first."""
        return dict(Counter(self.rejects["reason"].tolist()).most_common())


def load_campaign_inputs(definition: CampaignDefinition | str | Path) -> CampaignInputs:
    """Read and validate everything the definition points at.

    Raises :class:`~ccm_tasks.inputs.errors.InputFileError` for a file that cannot be used at all
    (and :class:`~ccm_tasks.inputs.errors.DefinitionError` if given a path to a bad definition).
    Bad rows never raise: they land in ``rejects``, ``duplicates``, ``suppressed``...
    """
    if not isinstance(definition, CampaignDefinition):
        definition = load_definition(definition)
    region = definition.customers.default_region
    # Rosters and do-not-call lists take a valid number of any country (an agent abroad, an
    # opt-out that can never match); customers only those of the campaign's countries.
    normaliser = PhoneNormaliser(region)
    display = definition.display_path
    roster = load_agents(definition.agents, normaliser=normaliser,
                         display=display(definition.agents))
    dnc = load_do_not_call(definition.do_not_call, normaliser=normaliser, display=display)
    calling = PhoneNormaliser(region, definition.customers.calling_regions)
    loaded = load_customers(definition.customers, normaliser=calling, display=display,
                            do_not_call=dnc)
    customers = loaded.customers
    warnings = _resolve_preferred_agents(customers, roster.agents, normaliser)
    return CampaignInputs(
        definition=definition,
        customers=customers,
        agents=roster.agents,
        rejects=loaded.rejects,
        duplicates=loaded.duplicates,
        suppressed=loaded.suppressed,
        agent_rejects=roster.rejects,
        warnings=warnings,
        dnc_rejects=dnc.rejects,
        sources=loaded.sources,
        do_not_call_files=dnc.files,
        agent_rows=roster.rows,
    )


def _resolve_preferred_agents(
    customers: pd.DataFrame, agents: list[Agent], normaliser: PhoneNormaliser
) -> pd.DataFrame:
    """Rewrite ``preferred_agent`` to agent keys; unknown names become None plus a warning.

    A customer may name its agent by user_id, contact number (any format) or name (when unique).
    """
    by_name: dict[str, list[str]] = {}
    lookup: dict[str, str] = {}
    for agent in agents:
        lookup[agent.agent_key] = agent.agent_key
        if agent.user_id:
            lookup[agent.user_id] = agent.agent_key
            lookup[agent.user_id.casefold()] = agent.agent_key
        if agent.contact_uri:
            lookup[agent.contact_uri] = agent.agent_key
        if agent.name:
            by_name.setdefault(agent.name.casefold(), []).append(agent.agent_key)
    for name, keys in by_name.items():
        if len(keys) == 1:
            lookup.setdefault(name, keys[0])

    def resolve(value: str) -> str | None:
        found = lookup.get(value) or lookup.get(value.casefold())
        if found is None:
            number = normaliser.one(value)
            found = lookup.get(number.e164) if number.e164 else None
        return found

    column = customers["preferred_agent"].to_numpy(dtype=object)
    named = np.flatnonzero(pd.notna(column))
    codes, uniques = pd.factorize(column[named])
    resolved = np.array([resolve(str(u)) for u in uniques], dtype=object)
    new = np.full(len(column), None, dtype=object)
    new[named] = resolved[codes]
    rows = named[pd.isna(resolved[codes])]
    customers["preferred_agent"] = pd.Series(new, index=customers.index, dtype=object)
    return pd.DataFrame({
        "file": customers["source_file"].to_numpy(dtype=object)[rows],
        "sheet": customers["source_sheet"].to_numpy(dtype=object)[rows],
        "row": customers["source_row"].to_numpy()[rows],
        "column": "preferred_agent",
        "value": column[rows],
        "reason": [f"preferred agent {v!r} is not in the roster; any agent may call"
                   for v in column[rows]],
    }, columns=list(REJECT_COLUMNS))


def rejects_table(inputs: CampaignInputs) -> pd.DataFrame:
    """Everything set aside as one table (the rejects file's rows), ordered by kind then source."""
    pieces: list[pd.DataFrame] = []

    def add(kind: str, frame: pd.DataFrame, related: tuple[str, str, str] | None = None) -> None:
        if not len(frame):
            return
        piece = pd.DataFrame({c: frame[c] if c in frame else None for c in REJECT_COLUMNS})
        piece.insert(0, "kind", kind)
        piece["customer_key"] = frame["customer_key"] if "customer_key" in frame else None
        for name, source in zip(("related_file", "related_sheet", "related_row"),
                                related or (None, None, None), strict=True):
            piece[name] = frame[source] if source is not None else None
        pieces.append(piece)

    add("rejected", inputs.rejects)
    add("duplicate", inputs.duplicates, ("first_file", "first_sheet", "first_row"))
    add("suppressed", inputs.suppressed, ("dnc_file", "dnc_sheet", "dnc_row"))
    add("warning", inputs.warnings)
    add("dnc_rejected", inputs.dnc_rejects)
    for kind in ("agent_rejected", "agent_duplicate"):
        add(kind, inputs.agent_rejects[inputs.agent_rejects["kind"] == kind])
    if not pieces:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECTS_FILE_COLUMNS})
    table = pd.concat(pieces, ignore_index=True)[list(REJECTS_FILE_COLUMNS)]
    table["row"] = pd.array(table["row"], dtype="Int64")
    table["related_row"] = pd.array(
        pd.to_numeric(table["related_row"], errors="coerce"), dtype="Int64"
    )
    return table


def write_rejects(inputs: CampaignInputs, path: str | Path) -> Path:
    """Write the rejects file: one CSV (UTF-8 with BOM, so Excel shows names right), a ``kind``
    column telling rejected / duplicate / suppressed / warning / dnc_rejected / agent_rejected /
    agent_duplicate rows apart. Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rejects_table(inputs).to_csv(path, index=False, encoding="utf-8-sig")
    return path
