"""What a run did, as one frozen value: printed at the end of ``ccm run``, stored in the ledger's
run row, written to ``summary.json`` and published as a Prefect artifact."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ccm_tasks.dialer.progress import Progress, RequestCounts, RunResult
from ccm_tasks.paths import campaign_reports_dir
from ccm_tasks.reports.files import write_text


@dataclass(frozen=True)
class InputCounts:
    """Rows read and what became of them (the last load of the inputs)."""

    rows_read: int = 0
    valid: int = 0
    rejected: int = 0
    duplicates: int = 0
    suppressed: int = 0
    agents: int = 0
    agents_rejected: int = 0
    ledger_sync: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """How one run of a campaign went."""

    campaign: str
    target: str
    simulated: bool
    ledger: str  # where the ledger is, password masked
    status: str
    reason: str
    exit_code: int
    started: str  # ISO 8601 in the campaign's zone
    ended: str
    customers: int
    final: int
    pending: int
    outcomes: Mapping[str, int]
    calls_placed: int  # Make Calls the API answered 200 in this run
    requests: RequestCounts  # requests sent (that may have reached the server), and 429s
    callbacks_enabled: bool
    callbacks_used: int
    stuck_calls: int
    dropped_agents: Mapping[str, str]
    unavailable_agents: Mapping[str, str]  # refused as unavailable (device off...) with no call since
    inputs: InputCounts
    rejects_file: str | None = None
    files: tuple[str, ...] = ()
    figures: Mapping[str, Any] = field(default_factory=dict)  # headline figures of the report

    def to_json(self) -> dict[str, Any]:
        """As JSON-ready data (summary.json, the ledger's run row)."""
        data = asdict(self)
        data["files"] = list(self.files)
        out: dict[str, Any] = json.loads(json.dumps(data, default=str))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        """Back from :meth:`to_json` (a run row's summary, read by another process)."""
        fields = dict(data)
        fields["requests"] = RequestCounts(**fields.get("requests") or {})
        fields["inputs"] = InputCounts(**fields.get("inputs") or {})
        fields["files"] = tuple(fields.get("files") or ())
        return cls(**fields)

    def with_files(self, files: tuple[str, ...], figures: Mapping[str, Any] | None = None) -> RunSummary:
        """The summary with the files written at the end (and the report's headline figures)."""
        from dataclasses import replace

        return replace(self, files=files, figures=dict(figures or self.figures))

    def render(self) -> str:
        """A few lines for a terminal."""
        req = self.requests
        lines = [f"Campaign {self.campaign}: {self.status} - {self.reason}",
                 f"  calls went to: {self.target}",
                 f"  ledger: {self.ledger}",
                 f"  customers: {self.customers}  final: {self.final}  left for a later run: {self.pending}  "
                 f"calls placed this run: {self.calls_placed}"]
        if self.outcomes:
            lines.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in _by_count(self.outcomes)))
        lines.append(f"  API requests sent: {req.post_sent} Make Call, {req.get_sent} Get Call Details; "
                     f"{req.rate_limited} answered 429")
        if self.stuck_calls:
            lines.append(f"  STUCK calls (agents kept leased): {self.stuck_calls}")
        if self.dropped_agents:
            dropped = "; ".join(f"{k} ({v})" for k, v in self.dropped_agents.items())
            lines.append(f"  agents dropped: {dropped}")
        if self.unavailable_agents:
            lines.append("  agents unavailable at the end: "
                         + "; ".join(f"{k} ({v})" for k, v in self.unavailable_agents.items()))
        i = self.inputs
        lines.append(f"  inputs: {i.valid} valid of {i.rows_read} rows; {i.rejected} rejected, "
                     f"{i.duplicates} duplicates, {i.suppressed} on the do-not-call list")
        if self.rejects_file:
            lines.append(f"  set-aside rows: {self.rejects_file}")
        for f in self.files:
            lines.append(f"  {'report' if f.endswith(('.xlsx', '.csv')) else 'summary'}: {f}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """As Markdown (a Prefect artifact)."""
        req = self.requests
        lines = [f"# Campaign `{self.campaign}`: {self.status}", "", self.reason, "",
                 f"Calls went to: {self.target}", "", "| | |", "| --- | ---: |",
                 f"| customers | {self.customers} |", f"| final | {self.final} |",
                 f"| left for a later run | {self.pending} |",
                 f"| calls placed this run | {self.calls_placed} |",
                 f"| Make Call requests sent | {req.post_sent} |",
                 f"| Get Call Details requests sent | {req.get_sent} |",
                 f"| answered 429 | {req.rate_limited} |", f"| stuck calls | {self.stuck_calls} |", "",
                 "| outcome | customers |", "| --- | ---: |"]
        lines += [f"| {status} | {count} |" for status, count in _by_count(self.outcomes)]
        if self.files:
            lines += ["", "Files:", *[f"- `{f}`" for f in self.files]]
        return "\n".join(lines) + "\n"

    def write_json(self, day_of: float, timezone: str) -> str:
        """``reports/<campaign>/<run date>/summary.json``; returns its path."""
        day = datetime.fromtimestamp(day_of, tz=ZoneInfo(timezone)).date()
        path = campaign_reports_dir(self.campaign, day) / "summary.json"
        write_text(path, json.dumps(self.to_json(), indent=2) + "\n")
        return str(path)


def summarise(*, campaign: str, target: str, simulated: bool, ledger: str, result: RunResult | None,
              progress: Progress, started_at: float, ended_at: float, timezone: str, inputs: InputCounts,
              callbacks_enabled: bool, callbacks_used: int, rejects_file: Path | None) -> RunSummary:
    """The summary of a run from its result (None: the run died) and its last progress."""
    zone = ZoneInfo(timezone)

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, tz=zone).isoformat(timespec="seconds")

    return RunSummary(
        campaign=campaign, target=target, simulated=simulated, ledger=ledger,
        status=result.status if result else "crashed",
        reason=result.reason if result else "the run failed with an internal error (see the log)",
        exit_code=result.exit_code if result else 1, started=iso(started_at), ended=iso(ended_at),
        customers=progress.total, final=progress.done,
        pending=result.pending if result else progress.total - progress.done,
        outcomes=dict(progress.outcomes), calls_placed=progress.placed, requests=progress.requests,
        callbacks_enabled=callbacks_enabled, callbacks_used=callbacks_used, stuck_calls=progress.stuck,
        dropped_agents=dict(result.dropped_agents) if result else {},
        unavailable_agents=dict(result.paused_agents) if result else {},
        inputs=inputs, rejects_file=str(rejects_file) if rejects_file else None)


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
