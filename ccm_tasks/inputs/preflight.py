"""What a run would do, without dialling: ``ccm validate CAMPAIGN_FILE``.

Reads the definition and every file it points at, writes the rejects file, and summarises: rows per
file and sheet, rejects by reason, duplicates, do-not-call suppressions, usable agents, and a rough
duration. ``ok`` is False when the campaign cannot run: a definition error, an unreadable file, no
valid customer or no usable agent.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ccm_tasks.dialer.window import CallingHours, local_minute
from ccm_tasks.inputs.campaign import CampaignInputs, load_campaign_inputs, rejects_table, write_rejects
from ccm_tasks.inputs.definition import CampaignDefinition, load_definition
from ccm_tasks.inputs.errors import InputError
from ccm_tasks.inputs.phones import time_zones
from ccm_tasks.settings import ExotelSettings

# Share of attempts in which the customer answers. A planning assumption, not a measurement: it
# only shapes the estimate (expected attempts per customer), and the report says so.
ASSUMED_ANSWER_RATE = 0.6
# Each call costs at least one POST and one status GET against the per-minute API budget.
MIN_REQUESTS_PER_CALL = 2
# Reasons name the characters found ("letter 'O' ..."), so a large file can have many: the summary
# shows the commonest, the rejects file has them all.
_REASONS_SHOWN = 12


@dataclass
class Estimate:
    """Rough duration of a run from the customer and agent counts."""

    customers: int
    agents: int
    average_handling_seconds: float
    expected_attempts: float
    agent_bound_hours: float  # attempts x handling time / agents
    budget_bound_hours: float  # attempts x requests per call / API budget
    hours_per_day: float

    @property
    def hours(self) -> float:
        """The binding bound, in hours of calling."""
        return max(self.agent_bound_hours, self.budget_bound_hours)

    @property
    def calling_days(self) -> int:
        """Calling days the run spans, given the daily window."""
        return max(1, math.ceil(self.hours / self.hours_per_day - 1e-9)) if self.hours else 0


def estimate(definition: CampaignDefinition, customers: int, agents: int,
             average_handling_seconds: float | None = None) -> Estimate:
    """Estimate how long calling ``customers`` with ``agents`` takes under the definition.

    Expected attempts per customer: 1 + q + q^2 + ... up to ``retry.max_attempts`` terms, with q the
    assumed share of unanswered attempts (only when ``customer_unanswered`` is retried). Every
    attempt is assumed to hold an agent for the average handling time (an upper bound: unanswered
    attempts are shorter).
    """
    aht = average_handling_seconds or definition.dialer.average_handling_seconds
    retry = definition.retry
    unanswered = 1 - ASSUMED_ANSWER_RATE
    attempts = (
        sum(unanswered**k for k in range(retry.max_attempts))
        if "customer_unanswered" in retry.retry_on
        else 1.0
    )
    total_attempts = customers * attempts
    agent_hours = total_attempts * aht / max(agents, 1) / 3600
    per_minute = definition.api_budget_per_minute or ExotelSettings().requests_per_minute
    budget_hours = total_attempts * MIN_REQUESTS_PER_CALL / per_minute / 60
    return Estimate(customers, agents, aht, attempts, agent_hours, budget_hours,
                    definition.window.hours_per_day)


@dataclass
class CallingPreview:
    """Who could be rung at ``now``: the calling hours in each recipient's zone, and the contact
    limit across every campaign in the ledger (the same rules the dialer applies)."""

    now: float
    timezone: str
    hours: str  # the daily window, "09:00-18:00"
    callable_now: int = 0
    later: list[tuple[str, int, float | None]] = field(default_factory=list)  # zones, customers, opens
    limit: str | None = None  # "2 calls per number in 7 days"; None: no limit
    held_by_limit: int = 0
    first_release: float | None = None
    ledger_note: str | None = None  # why the limit could not be checked

    def sections(self) -> list[tuple[str, list[str]]]:
        """The preview as (heading, lines) for a terminal and the console's preview page."""
        later = []
        for zones, count, opens in self.later:
            where = f"in {zones}" if zones else "in the campaign's own window"
            if opens is not None:
                when = f"opens {local_minute(opens, self.timezone)}"
            elif zones:
                when = f"never (their {self.hours} and the campaign's never overlap)"
            else:
                when = "never: the campaign's calling window has ended"
            later.append(f"{count:,} {where}: {when}")
        out = [(f"Calling hours (now: {local_minute(self.now, self.timezone)})",
                [f"callable now: {self.callable_now:,}", *later])]
        if self.limit is not None:
            if self.ledger_note:
                held = self.ledger_note
            else:
                first = (f"; the first may be rung again {local_minute(self.first_release, self.timezone)}"
                         if self.first_release is not None else "")
                held = f"held by the limit now: {self.held_by_limit:,} customer(s){first}"
            out.append((f"Contact limit ({self.limit}, across every campaign in the ledger)", [held]))
        return out

    def render(self) -> list[str]:
        """The preview as lines for a terminal."""
        return [line for heading, lines in self.sections() for line in (heading, *(f"  {x}" for x in lines))]


def calling_preview(inputs: CampaignInputs, *, now: float | None = None,
                    ledger: str | None = None) -> CallingPreview:
    """How many customers are callable at ``now`` (default: this moment), when the others' hours
    open, and how many the contact limit holds, read from the ledger the campaign would use (an
    existing one only: a preview never creates a ledger)."""
    definition = inputs.definition
    now = time.time() if now is None else now
    hours = CallingHours(definition.dial_window())
    w = definition.window
    preview = CallingPreview(now=now, timezone=w.timezone, hours=f"{w.start:%H:%M}-{w.end:%H:%M}")
    groups: Counter[tuple[str, ...]] = Counter()
    for phone in inputs.customers["phone"]:
        zones = time_zones(phone)
        groups[zones if zones is not None and len(hours.windows(zones)) > 1 else ()] += 1
    for zones, count in sorted(groups.items()):
        if hours.is_open(zones or None, now):
            preview.callable_now += count
        else:
            preview.later.append((", ".join(zones), count, hours.next_open(zones or None, now)))
    preview.later.sort(key=lambda g: (g[2] is None, g[2] or 0.0))
    _preview_limit(preview, inputs, ledger)
    return preview


def _preview_limit(preview: CallingPreview, inputs: CampaignInputs, location: str | None) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from ccm_tasks.ledger import ContactLimit, Ledger
    from ccm_tasks.paths import ledger_exists, resolve_ledger

    limits = inputs.definition.limits
    if not limits.max_calls_per_number:
        return
    preview.limit = f"{limits.max_calls_per_number} call(s) per number in {limits.window_days:g} day(s)"
    location = resolve_ledger(location or inputs.definition.ledger)
    if not ledger_exists(location):
        preview.ledger_note = "no ledger yet: no number has been called, none is held"
        return
    try:
        ledger = Ledger(location)
        try:
            held = ledger.numbers_at_limit(
                ContactLimit(limits.max_calls_per_number, limits.window_days * 86400.0), preview.now)
        finally:
            ledger.close()
    except (SQLAlchemyError, OSError) as exc:  # a preview reports; it does not fail the validation
        preview.ledger_note = f"could not read the ledger: {type(exc).__name__}"
        return
    ours = [held[k] for k in inputs.customers["customer_key"] if k in held]
    preview.held_by_limit = len(ours)
    preview.first_release = min(ours) if ours else None


@dataclass
class PreflightReport:
    """The outcome of a dry run over a campaign's inputs."""

    definition_path: Path
    definition: CampaignDefinition | None = None
    inputs: CampaignInputs | None = None
    error: str | None = None
    rejects_path: Path | None = None
    estimate: Estimate | None = None
    calling: CallingPreview | None = None

    @property
    def ok(self) -> bool:
        """True when the campaign can run: inputs load, some customer and some agent are usable."""
        return (
            self.error is None
            and self.inputs is not None
            and len(self.inputs.customers) > 0
            and len(self.inputs.agents) > 0
        )

    def render(self) -> str:
        """The report as text for a terminal."""
        lines = [f"Campaign file: {self.definition_path}"]
        if self.definition is not None:
            lines[0] = f"Campaign {self.definition.name!r} ({self.definition_path})"
        if self.error is not None:
            lines.append(f"ERROR: {self.error}")
        if self.inputs is not None:
            lines += _render_customers(self.inputs)
            lines += _render_agents(self.inputs)
        if self.estimate is not None and self.ok:
            lines += _render_estimate(self.estimate, self.definition)
        if self.calling is not None and self.ok:
            lines += self.calling.render()
        if self.rejects_path is not None:
            lines.append(f"Rejects file: {self.rejects_path}")
        if self.ok:
            lines.append("OK: the campaign can run.")
        else:
            why = ""
            if self.error is None and self.inputs is not None:
                why = " (no valid customer)" if not len(self.inputs.customers) else " (no usable agent)"
            lines.append(f"NOT OK: the campaign cannot run{why}.")
        return "\n".join(lines)


def _render_customers(inputs: CampaignInputs) -> list[str]:
    lines = ["Customers"]
    width = max([len(_source_name(s.file, s.sheet)) for s in inputs.sources] + [5])
    header = f"  {'source':<{width}}  {'rows':>8}  {'rejected':>8}  {'duplicate':>9}  " \
             f"{'do-not-call':>11}  {'to call':>8}"
    lines.append(header)
    for s in inputs.sources:
        lines.append(f"  {_source_name(s.file, s.sheet):<{width}}  {s.rows:>8}  {s.rejected:>8}  "
                     f"{s.duplicates:>9}  {s.suppressed:>11}  {s.called:>8}")
    total_rows = inputs.rows_read
    rejected = sum(s.rejected for s in inputs.sources)
    duplicates = sum(s.duplicates for s in inputs.sources)
    suppressed = sum(s.suppressed for s in inputs.sources)
    called = len(inputs.customers)
    lines.append(f"  {'total':<{width}}  {total_rows:>8}  {rejected:>8}  {duplicates:>9}  "
                 f"{suppressed:>11}  {called:>8}")
    skipped = total_rows - called
    lines.append(f"  {called} customers will be called; {skipped} of {total_rows} rows will be "
                 f"skipped ({rejected} rejected, {duplicates} duplicate, {suppressed} do-not-call).")
    for s in inputs.sources:
        if s.header_row > 1:  # a title or other preamble above the header: say what was skipped
            lines.append(f"  {_source_name(s.file, s.sheet)}: header in row {s.header_row} "
                         f"(phone column {s.phone_column!r}); the rows above it are not read.")
    if rejected:
        lines.append("  Rejected by reason:")
        reasons = list(inputs.reject_reasons.items())
        for reason, count in reasons[:_REASONS_SHOWN]:
            lines.append(f"    {count:>8}  {reason}")
        if len(reasons) > _REASONS_SHOWN:
            rest = sum(count for _reason, count in reasons[_REASONS_SHOWN:])
            lines.append(f"    {rest:>8}  ({len(reasons) - _REASONS_SHOWN} other reasons: see the "
                         "rejects file)")
    if duplicates:
        lines.append(f"  Duplicates: {duplicates} rows repeat a number seen earlier "
                     "(only the first occurrence is called).")
    for file, listed in inputs.do_not_call_files:
        lines.append(f"  Do-not-call list {file}: {listed} numbers.")
    if len(inputs.dnc_rejects):
        lines.append(f"  Do-not-call entries that are not usable numbers: {len(inputs.dnc_rejects)}.")
    preferred = int(inputs.customers["preferred_agent"].notna().sum())
    if preferred or len(inputs.warnings):
        unknown = len(inputs.warnings)
        lines.append(f"  Preferred agent: {preferred} customers have one in the roster; {unknown} "
                     f"{'names' if unknown == 1 else 'name'} an agent not in it (ignored).")
    return lines


def _render_agents(inputs: CampaignInputs) -> list[str]:
    definition = inputs.definition
    lines = [f"Agents ({definition.display_path(definition.agents)})"]
    groups = Counter(a.group or "(no group)" for a in inputs.agents)
    group_text = ", ".join(f"{g}: {n}" for g, n in sorted(groups.items()))
    rejected = len(inputs.agent_rejects)
    lines.append(f"  {len(inputs.agents)} usable ({group_text}); {rejected} rejected")
    for record in inputs.agent_rejects.head(10).itertuples(index=False):
        lines.append(f"    row {record.row}: {record.reason}")
    if rejected > 10:
        lines.append(f"    ... and {rejected - 10} more (see the rejects file)")
    return lines


def _render_estimate(est: Estimate, definition: CampaignDefinition | None) -> list[str]:
    lines = [
        "Estimate",
        f"  {est.customers} customers x {est.expected_attempts:.2f} expected attempts x "
        f"{est.average_handling_seconds:g} s / {est.agents} agents = {_duration(est.agent_bound_hours)}"
        " of calling",
    ]
    if est.budget_bound_hours > est.agent_bound_hours:
        lines.append(f"  the API budget is the limit: at least {_duration(est.budget_bound_hours)} "
                     f"({MIN_REQUESTS_PER_CALL} requests per call)")
    if definition is not None:
        window = definition.window
        days = "every day" if len(window.days) == 7 else ", ".join(window.days)
        lines.append(f"  = about {est.calling_days} calling day(s) of "
                     f"{_duration(est.hours_per_day)} ({window.start:%H:%M}-{window.end:%H:%M} "
                     f"{window.timezone}, {days})")
    lines.append(f"  (assumes {ASSUMED_ANSWER_RATE:.0%} of attempts are answered and every attempt "
                 "holds an agent for the average handling time: an upper bound)")
    return lines


def _duration(hours: float) -> str:
    minutes = round(hours * 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _source_name(file: str, sheet: str) -> str:
    return f"{file} [{sheet}]" if sheet else file


def default_rejects_path(definition: CampaignDefinition, output_dir: Path | None = None) -> Path:
    """``<name>-rejects.csv`` next to the definition, or in ``output_dir``."""
    folder = output_dir if output_dir is not None else definition.base_dir
    return Path(folder) / f"{definition.name}-rejects.csv"


def preflight(
    definition_path: str | Path,
    average_handling_seconds: float | None = None,
    *,
    output_dir: str | Path | None = None,
    rejects_path: str | Path | None = None,
    now: float | None = None,
    ledger: str | None = None,
) -> PreflightReport:
    """Load everything a run would load, write the rejects file, and report; never dials.

    Errors (a bad definition, an unreadable file) are captured in the report, not raised.
    ``now`` and ``ledger`` shape the calling preview (default: this moment, the campaign's ledger).
    """
    report = PreflightReport(definition_path=Path(definition_path))
    try:
        report.definition = load_definition(definition_path)
        report.inputs = load_campaign_inputs(report.definition)
    except InputError as exc:
        report.error = str(exc)
        return report
    definition, inputs = report.definition, report.inputs
    target = (
        Path(rejects_path)
        if rejects_path is not None
        else default_rejects_path(definition, Path(output_dir) if output_dir is not None else None)
    )
    try:
        report.rejects_path = write_rejects(inputs, target)
    except OSError as exc:
        report.error = f"cannot write the rejects file {target}: {exc.strerror or exc}"
    report.estimate = estimate(definition, len(inputs.customers), len(inputs.agents),
                               average_handling_seconds)
    if len(inputs.customers):
        report.calling = calling_preview(inputs, now=now, ledger=ledger)
    return report


__all__ = ["CallingPreview", "Estimate", "PreflightReport", "calling_preview", "default_rejects_path",
           "estimate", "preflight", "rejects_table"]
