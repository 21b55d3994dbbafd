"""The report vocabulary: every figure's name, label, one-line definition and how it is computed.

This module is the one home of these definitions. The workbooks (Summary and Glossary sheets), the
daily report, its mail, ``summary.json``, the Prefect artifacts and the console all take their
labels and definitions from :data:`FIGURES`, and a campaign's headline figures from
:func:`headline_figures`, so a rate has one name and one meaning wherever a manager reads it:

* **reach rate** = customers reached / customers attempted (per *customer*);
* **answer rate** = calls answered / calls placed (per *call*).

Outcome codes (``customer_unanswered``) stay in the CSV and the Attempts sheet, for machines; people
read :func:`outcome_label` (``Customer did not answer``). Run statuses read as :func:`run_status_label`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ccm_tasks.reports.tables import Kind, Table, display

if TYPE_CHECKING:
    from ccm_tasks.reports.campaign import CampaignReport


@dataclass(frozen=True)
class FigureDef:
    """What a figure is: its machine name, the label people read, its definition and its formula."""

    name: str
    label: str
    definition: str
    computed: str
    kind: Kind = "int"


@dataclass(frozen=True)
class Figure:
    """One figure's value with its definition (a headline figure, a Summary line)."""

    name: str
    label: str
    value: Any
    kind: Kind
    definition: str

    @property
    def text(self) -> str:
        """The value as people read it (``57.3%``, ``1:02:03``, ``1,234``)."""
        return display(self.value, self.kind) or "-"

    def json_value(self) -> int | float | str | None:
        """The value for JSON: counts as integers, rates as ratios 0..1, durations in seconds."""
        value = self.value
        if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
            return None
        if self.kind in ("datetime", "date"):
            return str(pd.Timestamp(value).isoformat())
        if self.kind in ("text", "phone"):
            return str(value)
        if self.kind == "int":
            return int(value)
        return round(float(value), 6)


_DEFS = (
    # Customers
    FigureDef("customers", "Customers",
              "Customers in the campaign: every valid row loaded, withdrawn ones included.",
              "count of the campaign's customers"),
    FigureDef("customers_attempted", "Customers attempted",
              "Customers we started calling: all but those not called yet and those withdrawn.",
              "customers whose outcome is neither 'Not called yet' nor 'Withdrawn from the list'"),
    FigureDef("customers_reached", "Customers reached",
              "Customers with a completed call: they answered and were connected to an agent.",
              "customers with at least one call whose call status is completed"),
    FigureDef("reach_rate", "Reach rate",
              "Share of the customers attempted who were reached (per customer, not per call).",
              "customers reached / customers attempted", "percent"),
    FigureDef("still_to_call", "Still to call",
              "Customers with calling left: a retry due, not called yet, or being called now.",
              "customers in state pending or calling", "int"),
    FigureDef("retries_due", "Retries due",
              "Customers whose last call did not complete and who will be called again.",
              "pending customers with at least one call placed"),
    FigureDef("held_by_contact_limit", "Held by the contact limit",
              "Customers waiting because their number had its most calls across campaigns in the "
              "rolling window (limits.max_calls_per_number); called again after next_call_after.",
              "pending customers whose latest contact-limit hold came after their last call and has "
              "not lapsed", "int"),
    FigureDef("customers_withdrawn", "Withdrawn",
              "Customers removed from the inputs (e.g. put on the do-not-call list): never called again.",
              "customers in state withdrawn"),
    # Calls
    FigureDef("calls_placed", "Calls placed",
              "Make Calls that may have rung a phone: placed, ended, or with an unknown outcome.",
              "attempts in state placed, terminal or unknown (refused ones are not counted)"),
    FigureDef("calls_answered", "Calls answered",
              "Calls placed that the customer answered and that connected (call status completed).",
              "calls placed whose call status is completed"),
    FigureDef("answer_rate", "Answer rate",
              "Share of the calls placed that were answered (per call, not per customer).",
              "calls answered / calls placed", "percent"),
    FigureDef("attempts_per_customer", "Calls per customer",
              "Calls placed per customer attempted, retries included.",
              "calls placed / customers attempted", "float"),
    FigureDef("calls_refused", "Make Calls refused",
              "Make Calls the API refused (e.g. the agent was busy): nothing rang, nothing is charged.",
              "attempts in state rejected"),
    FigureDef("calls_unknown", "Outcome unknown",
              "Make Calls sent whose answer was lost: the call may have rung; never sent again.",
              "attempts in state unknown"),
    FigureDef("calls_stuck", "Calls stuck",
              "Calls placed that have not been reported over long after they should have ended.",
              "open attempts with stuck_at set"),
    # Time
    FigureDef("talk_time", "Talk time",
              "Time customers spent talking with agents, as the API reports it.",
              "sum of total_talk_time over the calls placed (none reported counts as 0)", "duration"),
    FigureDef("average_talk_time", "Average talk time",
              "Talk time per call answered.",
              "talk time / calls answered", "duration"),
    FigureDef("median_talk_time", "Median talk time",
              "Half the calls answered were shorter than this, half longer.",
              "median of total_talk_time over the calls answered", "duration"),
    FigureDef("busy_time", "Busy time",
              "Time the agent was held by calls: from just before the Make Call until the call was "
              "confirmed over.",
              "sum over its attempts of (confirmed over - created); an unknown outcome holds the agent "
              "until its quarantine ends; an open call until 'as of'", "duration"),
    FigureDef("wrap_up_time", "Wrap-up time",
              "After-call work the dialler gave the agent once a call ended.",
              "sum of wrap_up_seconds over its attempts (none counts as 0)", "duration"),
    FigureDef("time_in_runs", "Time in runs",
              "How long the campaign's runs lasted in which the agent had at least one call.",
              "sum over those runs of (ended - started); a run still going ends at 'as of', one that "
              "ended without saying so (crashed, interrupted) at its last call's end", "duration"),
    FigureDef("utilisation", "Utilisation",
              "Share of its time in runs that the agent was busy or wrapping up.",
              "(busy time + wrap-up time) / time in runs", "percent"),
    # Inputs and runs
    FigureDef("rows_read", "Input rows read", "Rows read from the customer files at the last load.",
              "from the last load's input summary"),
    FigureDef("rows_valid", "Valid input rows", "Rows loaded as customers at the last load.",
              "from the last load's input summary"),
    FigureDef("rows_rejected", "Input rows rejected",
              "Rows set aside at the last load because they could not be dialled as written.",
              "from the last load's input summary (the rejects file lists each with its reason)"),
    FigureDef("rows_duplicate", "Duplicate rows", "Rows whose number appeared earlier in the inputs.",
              "from the last load's input summary"),
    FigureDef("rows_suppressed", "On the do-not-call list", "Rows whose number is on the do-not-call list.",
              "from the last load's input summary"),
    FigureDef("agents", "Agents in the roster", "Agents loaded from the roster at the last load.",
              "from the last load's input summary"),
    FigureDef("agents_rejected", "Agents rejected", "Roster rows set aside at the last load (bad number, "
              "duplicate).", "from the last load's input summary"),
    FigureDef("runs", "Runs", "Times the campaign was started.", "count of the campaign's runs"),
    FigureDef("first_call", "First call", "When the first Make Call was sent.",
              "earliest created time of the campaign's attempts", "datetime"),
    FigureDef("last_call_over", "Last call over", "When the last call was confirmed over.",
              "latest confirmed-terminal time of the campaign's attempts", "datetime"),
    FigureDef("as_of", "Figures as of", "The time these figures hold for.",
              "the later of the clock and the latest time in the campaign's rows", "datetime"),
)

FIGURES: dict[str, FigureDef] = {d.name: d for d in _DEFS}
"""Every figure the reports show, by name, in the Glossary's order."""

HEADLINE: tuple[str, ...] = ("customers_reached", "reach_rate", "calls_placed", "answer_rate", "talk_time",
                             "average_talk_time", "attempts_per_customer", "still_to_call")
"""A campaign's headline figures, in the order a manager reads them."""

DAILY_FIGURES: tuple[str, ...] = ("calls_placed", "calls_answered", "answer_rate", "talk_time",
                                  "average_talk_time")
"""The daily report's figures (each counted on the day the call ended)."""

DAILY_COUNTING = ("The daily report counts a call on the day it ended, in the report's time zone (an "
                  "unknown outcome on the day its Make Call was sent); refused Make Calls are never "
                  "counted.")
"""The daily report's counting rule, in one sentence (printed on its Summary and in its mail)."""

OUTCOME_LABELS: dict[str, str] = {
    "completed": "Customer answered",
    "customer_unanswered": "Customer did not answer",
    "agent_unanswered": "Agent did not answer",
    "agent_canceled": "Agent cancelled the call",
    "customer_no_dial": "Customer's number could not be dialled",
    "agent_no_dial": "Agent's phone could not be dialled",
    "unknown": "Outcome unknown (may have rung)",
    "stuck": "Call stuck (no end reported)",
    "in_progress": "Being called now",
    "not_attempted": "Not called yet",
    "withdrawn": "Withdrawn from the list",
}
"""Customer outcomes (``final_status``) and call statuses in words."""

OUTCOME_MEANINGS: dict[str, str] = {
    "completed": "The customer answered and was connected to the agent.",
    "customer_unanswered": "The agent answered; the customer's phone rang out or was declined.",
    "agent_unanswered": "The agent's phone rang first and the agent did not answer; the customer was "
                        "not called.",
    "agent_canceled": "The agent hung up before the customer answered.",
    "customer_no_dial": "The customer's number could not be reached (invalid, switched off, network).",
    "agent_no_dial": "The agent's phone could not be reached.",
    "unknown": "The Make Call was sent but its answer was lost; it is never sent again automatically.",
    "stuck": "A call placed that was not reported over long after it should have ended.",
    "in_progress": "A call to this customer is being placed or is live.",
    "not_attempted": "No call has been placed to this customer yet.",
    "withdrawn": "Removed from the inputs (e.g. put on the do-not-call list); not called again.",
}

RUN_STATUS_LABELS: dict[str, str] = {
    "new": "Not run yet",
    "running": "Running",
    "completed": "Completed: every customer has an outcome",
    "window_closed": "Calling window closed",
    "campaign_ended": "Campaign end date passed",
    "fatal": "Stopped by an error",
    "no_agents": "No agent could take calls",
    "stopped": "Stopped by an operator",
    "cancelled": "Cancelled",
    "crashed": "Crashed (the process died)",
    "interrupted": "Interrupted (killed; noticed by a later run)",
}
"""Run and campaign statuses in words."""


def outcome_label(code: str) -> str:
    """An outcome or call status in words (an unknown code is shown as it is)."""
    return OUTCOME_LABELS.get(code, code.replace("_", " ").capitalize())


def run_status_label(code: str | None) -> str:
    """A run's (or campaign's) status in words."""
    if not code:
        return ""
    return RUN_STATUS_LABELS.get(code, code.replace("_", " ").capitalize())


def figure(name: str, value: Any) -> Figure:
    """A value under its glossary definition."""
    d = FIGURES[name]
    return Figure(d.name, d.label, value, d.kind, d.definition)


def headline_figures(report: CampaignReport) -> tuple[Figure, ...]:
    """A campaign's headline figures (label, value, definition), in :data:`HEADLINE` order."""
    return tuple(figure(name, report.figure(name)) for name in HEADLINE)


def figures_json(figures: Iterable[Figure]) -> dict[str, dict[str, Any]]:
    """Figures for ``summary.json``: ``{name: {"label", "value", "unit", "text", "definition"}}``.

    ``value`` is machine-readable (rates as ratios 0..1, durations in seconds); ``text`` is what
    people read (``57.3%``, ``1:02:03``)."""
    units: Mapping[str, str] = {"percent": "ratio", "duration": "seconds", "datetime": "iso-8601",
                                "float": "number", "int": "count"}
    return {f.name: {"label": f.label, "value": f.json_value(), "unit": units.get(f.kind, "text"),
                     "text": f.text, "definition": f.definition} for f in figures}


def figures_markdown(figures: Iterable[Figure]) -> str:
    """Figures as a Markdown table (figure, value, what it means): for artifacts and the console."""
    lines = ["| figure | value | what it means |", "| --- | ---: | --- |"]
    lines += [f"| {f.label} | {f.text} | {f.definition} |" for f in figures]
    return "\n".join(lines)


def figures_lines(figures: Iterable[Figure]) -> list[str]:
    """Figures as aligned console lines (``Reach rate ......... 94.7%``)."""
    items = list(figures)
    width = max((len(f.label) for f in items), default=0)
    return [f"{f.label:<{width}}  {f.text}" for f in items]


def glossary_table(names: Iterable[str] | None = None, *, title: str = "Glossary") -> Table:
    """The Glossary sheet: each figure's label, definition and how it is computed, then the outcomes."""
    defs = [FIGURES[n] for n in names] if names is not None else list(_DEFS)
    rows = [(d.label, d.definition, d.computed) for d in defs]
    rows += [(f"Outcome: {label}", OUTCOME_MEANINGS.get(code, ""), f"code {code}")
             for code, label in OUTCOME_LABELS.items()]
    rows += [(f"Run status: {label}", "", f"code {code}") for code, label in RUN_STATUS_LABELS.items()]
    frame = pd.DataFrame(rows, columns=["term", "definition", "computed"], dtype="object")
    return Table("Glossary", frame, {"term": "text", "definition": "text", "computed": "text"},
                 labels={"term": "Term", "definition": "What it means", "computed": "How it is computed"},
                 title=title)
