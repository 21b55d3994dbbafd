"""Run one campaign: inputs -> ledger -> engine -> summary. Library code; Prefect wraps it.

:func:`prepare_run` does everything that can fail fast (definition, spreadsheets, the runner lock)
and sets up the run against the target :func:`~ccm_tasks.target.target_from_settings` chose.
:meth:`CampaignRun.run` dials until done, records how the run ended, and writes its files.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ccm_tasks.callbacks import RunReceiver, start_run_receiver
from ccm_tasks.dialer.config import config_from_definition
from ccm_tasks.dialer.engine import CampaignEngine
from ccm_tasks.dialer.journal import SendJournal
from ccm_tasks.dialer.progress import RunResult
from ccm_tasks.errors import CampaignCannotRun
from ccm_tasks.exotel.models import StatusCallback
from ccm_tasks.inputs import CampaignDefinition, CampaignInputs, load_campaign_inputs, load_definition
from ccm_tasks.inputs.campaign import write_rejects
from ccm_tasks.inputs.customers import EXTRA_PREFIX
from ccm_tasks.ledger import Ledger
from ccm_tasks.paths import campaign_reports_dir, journal_dir, resolve_ledger
from ccm_tasks.summary import InputCounts, RunSummary, summarise
from ccm_tasks.target import Target, World, target_from_settings

log = logging.getLogger("ccm.runner")

__all__ = ["CampaignCannotRun", "CampaignRun", "RunSetup", "customer_rows", "input_counts", "prepare_run"]


@dataclass(frozen=True)
class RunSetup:
    """Everything a prepared run is made of."""

    definition: CampaignDefinition
    definition_path: str
    inputs: InputCounts
    ledger: Ledger
    target: Target
    engine: CampaignEngine
    journal: SendJournal
    receiver: RunReceiver | None
    rejects_path: Path | None
    started_at: float


class CampaignRun:
    """A campaign ready to dial: :meth:`start` it now, :meth:`run` it to the end."""

    def __init__(self, setup: RunSetup) -> None:
        self.setup = setup
        self._task: asyncio.Task[RunResult] | None = None
        self.summary: RunSummary | None = None
        self.report: Any = None  # the campaign report written at the end (ccm_tasks.reports.CampaignReport)

    @property
    def engine(self) -> CampaignEngine:
        """The run's engine."""
        return self.setup.engine

    @property
    def name(self) -> str:
        """The campaign's name."""
        return self.setup.definition.name

    @property
    def run_id(self) -> int:
        """The run's id in the ledger."""
        run_id = self.engine.state.ids.run_id
        assert run_id is not None
        return run_id

    def start(self) -> asyncio.Task[RunResult]:
        """Start dialling in the background (idempotent); returns the engine's task."""
        if self._task is None:
            if self.setup.receiver is not None:
                self.setup.receiver.attach(self.engine.campaign_id, self.engine.deliver_callback)
            self._task = asyncio.get_running_loop().create_task(self.engine.run(), name="campaign")
        return self._task

    async def run(self) -> RunSummary:
        """Dial until done; record how the run ended; write the report and summary.json."""
        result: RunResult | None = None
        try:
            result = await self.start()
        finally:
            summary = await asyncio.shield(self._close(result))
        return summary

    async def _close(self, result: RunResult | None) -> RunSummary:
        s = self.setup
        engine, now = s.engine, s.target.clock.time()
        summary = summarise(
            campaign=s.definition.name, target=s.target.description, simulated=s.target.simulated,
            ledger=s.ledger.display_url, result=result, progress=engine.snapshot(), started_at=s.started_at,
            ended_at=now, timezone=s.definition.window.timezone, inputs=s.inputs,
            callbacks_enabled=engine.cfg.callbacks, callbacks_used=engine.callbacks_used,
            rejects_file=s.rejects_path)
        try:
            await asyncio.to_thread(self._record, summary, now)
            files, figures = await asyncio.to_thread(self._write_report)
            # summary.json holds the report's files and headline figures, so it is written after them.
            summary = summary.with_files(tuple(files), figures)
            written = summary.write_json(s.started_at, s.definition.window.timezone)
            summary = summary.with_files((*files, written))
        finally:
            if s.receiver is not None:
                s.receiver.close()
            await s.target.aclose()
            s.journal.close(remove=not engine.state.calls)
        self.summary = summary
        return summary

    def _record(self, summary: RunSummary, now: float) -> None:
        s, ids = self.setup, self.setup.engine.state.ids
        assert ids.run_id is not None
        s.ledger.finish_run(ids.run_id, summary.status, summary.reason, summary.to_json(), now)
        s.ledger.release_campaign(ids.campaign_id, ids.holder_id, summary.status, summary.reason, now)
        s.ledger.retire_holder(ids.holder_id)

    def _write_report(self) -> tuple[list[str], Mapping[str, Any]]:
        from ccm_tasks.reports import (
            build_campaign_report,
            figures_json,
            headline_figures,
            write_campaign_report,
        )

        name = self.setup.definition.name
        try:
            self.report = build_campaign_report(self.setup.ledger, name)
            files = [str(p) for p in write_campaign_report(self.report)]
            return files, figures_json(headline_figures(self.report))
        except Exception as exc:  # the run's outcome is in the ledger; `ccm report` can rebuild this
            log.error("the campaign report could not be written (%s); rebuild it with "
                      "`ccm report campaign %s`", exc, name)
            return [], {}


async def prepare_run(definition_path: str | Path, *, ledger: str | Path | None = None,
                      wait_for_window: bool = True, flow_run_id: str | None = None) -> CampaignRun:
    """Validate, lock and set up one campaign run. Raises :class:`CampaignCannotRun`."""
    definition, inputs = await asyncio.to_thread(_load, definition_path)
    rejects_path = None
    if len(inputs.rejects) or len(inputs.duplicates) or len(inputs.suppressed) or len(inputs.agent_rejects):
        rejects_path = campaign_reports_dir(definition.name) / "rejects.csv"
        rejects_path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(write_rejects, inputs, rejects_path)
    book = await asyncio.to_thread(Ledger, resolve_ledger(ledger or definition.ledger))
    target = await asyncio.to_thread(target_from_settings, World(inputs.agents, [definition.virtual_number]),
                                     book, cap_per_minute=definition.api_budget_per_minute)
    receiver: RunReceiver | None = None
    journal_path = journal_dir() / f"{uuid.uuid4().hex}.sent"
    journal = SendJournal(journal_path)
    try:
        receiver, setup = await asyncio.to_thread(
            _set_up, definition, str(definition_path), inputs, book, target, journal, rejects_path,
            wait_for_window, flow_run_id)
    except BaseException:
        if receiver is not None:
            receiver.close()
        await target.aclose()
        journal.close(remove=True)
        raise
    return CampaignRun(setup)


def _load(definition_path: str | Path) -> tuple[CampaignDefinition, CampaignInputs]:
    from ccm_tasks.inputs import DefinitionError, InputError

    try:
        definition = load_definition(definition_path)
        inputs = load_campaign_inputs(definition)
    except (DefinitionError, InputError) as exc:
        raise CampaignCannotRun(str(exc)) from None
    if inputs.customers.empty:
        raise CampaignCannotRun(f"{definition_path}: no valid customer to call "
                                f"({len(inputs.rejects)} rejected; see `ccm validate`)")
    return definition, inputs


def _set_up(definition: CampaignDefinition, definition_path: str, inputs: CampaignInputs, ledger: Ledger,
            target: Target, journal: SendJournal, rejects_path: Path | None, wait_for_window: bool,
            flow_run_id: str | None) -> tuple[RunReceiver | None, RunSetup]:
    """The ledger side of starting a run (blocking; on a worker thread)."""
    clock = target.clock
    now = clock.time()
    holder_id = ledger.register_holder(f"ccm run {definition.name} pid={os.getpid()}",
                                       journal=str(journal.path))
    counts = input_counts(inputs)
    campaign_id = ledger.upsert_campaign(definition.name, definition_path=definition_path,
                                         timezone=definition.window.timezone, now=now,
                                         input_summary=asdict(counts))
    other = ledger.claim_campaign(campaign_id, holder_id, now)
    if other is not None:
        ledger.retire_holder(holder_id)
        raise CampaignCannotRun(f"campaign {definition.name!r} is already running in another process "
                                f"(holder {other}); one runner per campaign")
    # A stop applies to the run it stopped; a pause holds until someone resumes.
    ledger.set_control(campaign_id, "run", by="ccm run", reason="a new run started", now=now,
                       only_if=["stop"])
    receiver = None
    status_callbacks: list[StatusCallback] = []
    if definition.callbacks.enabled:
        receiver = start_run_receiver(definition.callbacks, ledger, campaign_id, clock=clock,
                                      simulated=target.simulated)
        status_callbacks = receiver.urls
    sync = ledger.sync_customers(campaign_id, customer_rows(inputs), now)
    run_id = ledger.start_run(campaign_id, holder_id, now, flow_run_id=flow_run_id)
    config = config_from_definition(definition, status_callbacks=status_callbacks,
                                    wait_for_window=wait_for_window)
    engine = CampaignEngine(config=config, ledger=ledger, client=target.client, budget=target.budget,
                            clock=clock,
                            campaign_id=campaign_id, run_id=run_id, holder_id=holder_id, agents=inputs.agents,
                            customers=ledger.customer_rows(campaign_id), journal=journal,
                            budget_per_minute=definition.api_budget_per_minute or target.requests_per_minute,
                            budget_account=target.account)
    inputs_summary = replace(counts, ledger_sync=sync)
    return receiver, RunSetup(definition, definition_path, inputs_summary, ledger, target, engine, journal,
                              receiver, rejects_path, now)


def customer_rows(inputs: CampaignInputs) -> list[dict[str, Any]]:
    """Ledger rows for the valid customers, extra spreadsheet columns carried in ``extra``."""
    df = inputs.customers
    extras = [c for c in df.columns if str(c).startswith(EXTRA_PREFIX)]
    rows = []
    for rec in df.to_dict("records"):
        pref = rec.get("preferred_agent")
        rows.append({
            "customer_key": rec["customer_key"], "phone": rec["phone"],
            "preferred_agent": pref if isinstance(pref, str) and pref else None,
            "source_file": rec.get("source_file"), "source_sheet": rec.get("source_sheet") or None,
            "source_row": int(rec["source_row"]) if rec.get("source_row") is not None else None,
            "extra": {c[len(EXTRA_PREFIX):]: (None if _isna(rec[c]) else str(rec[c])) for c in extras},
        })
    return rows


def _isna(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def input_counts(inputs: CampaignInputs) -> InputCounts:
    """Rows read, valid, and set aside by kind."""
    return InputCounts(rows_read=inputs.rows_read, valid=len(inputs.customers), rejected=len(inputs.rejects),
                       duplicates=len(inputs.duplicates), suppressed=len(inputs.suppressed),
                       agents=len(inputs.agents), agents_rejected=len(inputs.agent_rejects))
