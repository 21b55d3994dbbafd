"""Run one campaign: inputs -> ledger -> engine -> summary. Library code; Prefect wraps it.

``prepare_run`` does everything that can fail fast (definition, spreadsheets, the runner lock)
and chooses the target: the real CCM API when ``EXOTEL_*`` credentials are set, else the built-in
simulator started in-process with the campaign's own agents and virtual number (and it says so).
``PreparedRun.run`` dials until done and writes the run's summary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from ccm_tasks.callbacks import CallbackHub, callback_url, create_receiver_app
from ccm_tasks.clock import Clock, ScaledClock, SystemClock
from ccm_tasks.dialer.budget import ApiBudget
from ccm_tasks.dialer.engine import CampaignEngine, RunResult, config_from_definition
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.models import StatusCallback
from ccm_tasks.inputs import CampaignDefinition, CampaignInputs, load_campaign_inputs, load_definition
from ccm_tasks.inputs.campaign import write_rejects
from ccm_tasks.ledger import Ledger
from ccm_tasks.paths import campaign_reports_dir, default_ledger_path
from ccm_tasks.redact import redaction_filter
from ccm_tasks.reports.files import write_text
from ccm_tasks.settings import ExotelSettings
from ccm_tasks.simulator.scenario import Scenario, ScenarioAgent
from ccm_tasks.simulator.server import BackgroundServer, SimulatorServer

log = logging.getLogger("ccm.runner")

EXTRA_PREFIX = "extra:"


class CampaignCannotRun(Exception):
    """The campaign cannot start: the message says why and what to do."""


@dataclass
class Target:
    """Where calls go: the real API, a stand-in server, or the embedded simulator."""

    client: CCMClient
    clock: Clock
    description: str
    simulated: bool
    simulator: SimulatorServer | None = None

    async def aclose(self) -> None:
        """Close the client and stop an embedded simulator."""
        await self.client.aclose()
        if self.simulator is not None:
            self.simulator.stop()


_BUDGETS: dict[tuple[str, str], ApiBudget] = {}


def budget_for(client: CCMClient, per_minute: int, clock: Clock) -> ApiBudget:
    """The one budget of this account in this process (shared by every campaign it runs)."""
    key = (client.base_url, client.account_sid)
    budget = _BUDGETS.get(key)
    if budget is None or budget.clock is not clock:
        budget = _BUDGETS[key] = ApiBudget(per_minute, clock)
    return budget


def embedded_scenario(definition: CampaignDefinition, inputs: CampaignInputs) -> Scenario:
    """The built-in simulator's world for this campaign: its agents (devices on) and its number.

    ``CCM_SIM_SCENARIO`` names a scenario file to start from (faults, behaviour, time scale);
    ``CCM_SIM_TIME_SCALE`` overrides its time scale.
    """
    path = os.environ.get("CCM_SIM_SCENARIO")
    base = Scenario.from_file(path) if path else Scenario.builtin("default")
    agents: list[ScenarioAgent] = []
    for i, agent in enumerate(inputs.agents, start=1):
        agents.append(ScenarioAgent(
            user_id=agent.user_id or f"sim-user-{i:04d}",
            contact_uri=agent.contact_uri or f"+9197{i:08d}",
            name=agent.name))
    known = {a.user_id for a in agents} | {a.contact_uri for a in agents}
    extra = [a for a in base.agents if a.user_id not in known and a.contact_uri not in known]
    update: dict[str, Any] = {
        "agents": agents + extra, "agent_pool": None,
        "virtual_numbers": sorted(set(base.virtual_numbers) | {definition.virtual_number}),
        "account": base.account.model_copy(update={"voip_enabled": True}) if not path else base.account,
    }
    if os.environ.get("CCM_SIM_TIME_SCALE"):
        update["time_scale"] = float(os.environ["CCM_SIM_TIME_SCALE"])
    return base.model_copy(update=update)


async def choose_target(definition: CampaignDefinition, inputs: CampaignInputs,
                        settings: ExotelSettings | None = None) -> Target:
    """Real API with credentials; a stand-in at EXOTEL_BASE_URL; else the embedded simulator."""
    settings = settings or ExotelSettings()
    if settings.has_credentials:
        clock = await clock_of_stand_in(settings.base_url) if settings.base_url else SystemClock()
        client = CCMClient.from_settings(settings, clock=clock)
        simulated = settings.base_url is not None and not isinstance(clock, SystemClock)
        where = settings.resolved_base_url
        return Target(client, clock, f"{'simulator' if simulated else 'CCM API'} at {where}", simulated)
    scenario = embedded_scenario(definition, inputs)
    server = SimulatorServer(scenario).start()
    client = CCMClient(**server.client_settings(), clock=server.clock)
    return Target(client, server.clock,
                  f"built-in simulator at {server.base_url} ({scenario.time_scale:g}x time)", True, server)


async def clock_of_stand_in(base_url: str) -> Clock:
    """A stand-in that is our simulator reports its time scale; share its clock."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            response = await http.get(f"{base_url}/_sim/health")
            info = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        info = None
    if not isinstance(info, dict) or "time_scale" not in info or "time" not in info:
        return SystemClock()
    scale = float(info["time_scale"])
    return SystemClock() if scale == 1.0 else ScaledClock(scale, origin=float(info["time"]))


@dataclass
class Receiver:
    """This run's status-callback receiver (when the definition enables callbacks)."""

    server: BackgroundServer | None
    hub: CallbackHub
    urls: list[StatusCallback]
    unsubscribe: Callable[[], None] | None = None

    def close(self) -> None:
        """Stop listening."""
        if self.unsubscribe is not None:
            self.unsubscribe()
        if self.server is not None:
            self.server.stop()


def start_receiver(
    definition: CampaignDefinition, ledger: Ledger, campaign_id: int, target: Target
) -> Receiver:
    """Listen for this campaign's callbacks and build the status_callback list for Make Call."""
    cb = definition.callbacks
    token = ledger.callback_token(campaign_id)
    redaction_filter().add_secrets([token])
    hub = CallbackHub()
    server = None
    if cb.listen:
        host, _, port = cb.listen.rpartition(":")
        app = create_receiver_app(ledger, hub, clock=target.clock)
        server = BackgroundServer(app, host, int(port)).start()
    base = cb.public_url
    if base is None:
        if not target.simulated:
            raise CampaignCannotRun("callbacks.enabled needs callbacks.public_url (an https address Exotel "
                                    "can reach) to dial for real")
        if server is None:
            raise CampaignCannotRun("callbacks.enabled needs callbacks.public_url or callbacks.listen")
        base = server.base_url  # the simulator runs here and can reach the receiver directly
    url = callback_url(base, token)
    urls = [StatusCallback(event="answered", url=url), StatusCallback(event="terminal", url=url)]
    return Receiver(server, hub, urls)


@dataclass
class PreparedRun:
    """A campaign ready to dial: its engine, ledger, target and bookkeeping ids."""

    definition: CampaignDefinition
    inputs: CampaignInputs
    ledger: Ledger
    target: Target
    engine: CampaignEngine
    campaign_id: int
    run_id: int
    holder_id: str
    sync: dict[str, int]
    rejects_path: Path | None
    started_at: float
    receiver: Receiver | None = None
    report: Any = None  # the campaign report written at the end (ccm_tasks.reports.CampaignReport)
    result: RunResult | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    _task: asyncio.Task[RunResult] | None = None

    @property
    def clock(self) -> Clock:
        return self.target.clock

    def start(self) -> asyncio.Task[RunResult]:
        """Start dialling in the background (idempotent); returns the engine's task."""
        if self._task is None:
            if self.receiver is not None:
                self.receiver.unsubscribe = self.receiver.hub.subscribe(self.campaign_id,
                                                                        self.engine.deliver_callback)
            self._task = asyncio.get_running_loop().create_task(self.engine.run(), name="campaign")
        return self._task

    async def run(self) -> dict[str, Any]:
        """Dial until done; record the outcome; write the summary. Returns the summary."""
        try:
            self.result = await self.start()
        finally:
            await self._close()
        return self.summary

    def _write_report(self) -> list[str]:
        from ccm_tasks.reports import build_campaign_report, write_campaign_report

        try:
            self.report = build_campaign_report(self.ledger, self.definition.name)
            return [str(p) for p in write_campaign_report(self.report)]
        except Exception as exc:  # the run's outcome is in the ledger; `ccm report` can rebuild this
            log.error("the campaign report could not be written (%s); rebuild it with "
                      "`ccm report campaign %s`", exc, self.definition.name)
            return []

    async def _close(self) -> None:
        now = self.clock.time()
        self.summary = build_summary(self, now)
        status, reason = self.summary["status"], self.summary["reason"]
        try:
            self.ledger.finish_run(self.run_id, status, reason, self.summary, now)
            self.ledger.release_campaign(self.campaign_id, self.holder_id, status, reason, now)
            self.ledger.retire_holder(self.holder_id)
            self.summary["files"] = self._write_report() + write_run_summary(
                self.summary, self.definition, self.started_at)
        finally:
            if self.receiver is not None:
                self.receiver.close()
            await self.target.aclose()


async def prepare_run(definition_path: str | Path, *, ledger_path: str | Path | None = None,
                      wait_for_window: bool = True) -> PreparedRun:
    """Validate, lock and set up one campaign run. Raises :class:`CampaignCannotRun`."""
    from ccm_tasks.inputs import DefinitionError, InputError

    try:
        definition = load_definition(definition_path)
        inputs = load_campaign_inputs(definition)
    except (DefinitionError, InputError) as exc:
        raise CampaignCannotRun(str(exc)) from None
    if inputs.customers.empty:
        raise CampaignCannotRun(f"{definition_path}: no valid customer to call "
                                f"({len(inputs.rejects)} rejected; see `ccm validate`)")
    rejects_path = None
    if len(inputs.rejects) or len(inputs.duplicates) or len(inputs.suppressed) or len(inputs.agent_rejects):
        rejects_path = campaign_reports_dir(definition.name) / "rejects.csv"
        rejects_path.parent.mkdir(parents=True, exist_ok=True)
        write_rejects(inputs, rejects_path)
    ledger = Ledger(ledger_path or definition.ledger or default_ledger_path())
    target = await choose_target(definition, inputs)
    receiver: Receiver | None = None
    try:
        clock = target.clock
        now = clock.time()
        holder_id = ledger.register_holder(f"ccm run {definition.name} pid={os.getpid()}")
        summary = {**input_counts(inputs), "agents": len(inputs.agents),
                   "agents_rejected": len(inputs.agent_rejects)}
        campaign_id = ledger.upsert_campaign(definition.name, definition_path=str(definition_path),
                                             timezone=definition.window.timezone, now=now,
                                             input_summary=summary)
        other = ledger.claim_campaign(campaign_id, holder_id, now)
        if other is not None:
            raise CampaignCannotRun(f"campaign {definition.name!r} is already running in another process "
                                    f"(holder {other}); one runner per campaign")
        status_callbacks: list[StatusCallback] = []
        if definition.callbacks.enabled:
            receiver = start_receiver(definition, ledger, campaign_id, target)
            status_callbacks = receiver.urls
        sync = ledger.sync_customers(campaign_id, customer_rows(inputs), now)
        run_id = ledger.start_run(campaign_id, holder_id, now)
        config = config_from_definition(definition, status_callbacks=status_callbacks,
                                        wait_for_window=wait_for_window)
        budget = budget_for(target.client, definition.api_budget_per_minute, clock)
        target.client.gate = budget
        engine = CampaignEngine(config=config, ledger=ledger, client=target.client, budget=budget,
                                clock=clock, campaign_id=campaign_id, run_id=run_id, holder_id=holder_id,
                                agents=inputs.agents, customers=ledger.customer_rows(campaign_id))
    except BaseException:
        if receiver is not None:
            receiver.close()
        await target.aclose()
        raise
    return PreparedRun(definition, inputs, ledger, target, engine, campaign_id, run_id, holder_id, sync,
                       rejects_path, now, receiver)


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


def input_counts(inputs: CampaignInputs) -> dict[str, int]:
    """Rows read, valid, and set aside by kind."""
    return {"rows_read": inputs.rows_read, "valid": len(inputs.customers),
            "rejected": len(inputs.rejects), "duplicates": len(inputs.duplicates),
            "suppressed": len(inputs.suppressed)}


def build_summary(run: PreparedRun, now: float) -> dict[str, Any]:
    """What the run did, for the console, the ledger and artifacts."""
    engine = run.engine
    snap = engine.snapshot()
    result = run.result
    zone = ZoneInfo(run.definition.window.timezone)
    return {
        "campaign": run.definition.name,
        "target": run.target.description,
        "simulated": run.target.simulated,
        "status": result.status if result else "crashed",
        "reason": result.reason if result else "the run was interrupted",
        "exit_code": result.exit_code if result else 1,
        "started": datetime.fromtimestamp(run.started_at, tz=zone).isoformat(timespec="seconds"),
        "ended": datetime.fromtimestamp(now, tz=zone).isoformat(timespec="seconds"),
        "customers": snap["total"],
        "final": snap["done"],
        "pending": result.pending if result else snap["total"] - snap["done"],
        "outcomes": snap["outcomes"],
        "calls_placed_this_run": snap["placed"],
        "callbacks": {"enabled": run.engine.cfg.callbacks, "used": run.engine.callbacks_used},
        "stuck_calls": snap["stuck"],
        "dropped_agents": result.dropped_agents if result else {},
        "api_requests": snap["requests"],
        "inputs": {**input_counts(run.inputs), "ledger_sync": run.sync},
        "rejects_file": str(run.rejects_path) if run.rejects_path else None,
    }


def write_run_summary(
    summary: dict[str, Any], definition: CampaignDefinition, started_at: float
) -> list[str]:
    """``reports/<campaign>/<run date>/summary.json``; returns the paths written."""
    zone = ZoneInfo(definition.window.timezone)
    path = campaign_reports_dir(definition.name, datetime.fromtimestamp(started_at, tz=zone).date())
    path /= "summary.json"
    write_text(path, json.dumps(summary, indent=2, default=str) + "\n")
    return [str(path)]


def render_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines for a terminal."""
    lines = [f"Campaign {summary['campaign']}: {summary['status']} - {summary['reason']}",
             f"  calls went to: {summary['target']}",
             f"  customers: {summary['customers']}  final: {summary['final']}  "
             f"left for a later run: {summary['pending']}  calls placed this run: "
             f"{summary['calls_placed_this_run']}"]
    outcomes = summary.get("outcomes") or {}
    if outcomes:
        lines.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(),
                                                                               key=lambda kv: -kv[1])))
    req = summary.get("api_requests") or {}
    lines.append(f"  API requests: {req.get('post', 0)} Make Call, {req.get('get', 0)} Get Call Details, "
                 f"{req.get('rate_limited', 0)} answered 429")
    if summary.get("stuck_calls"):
        lines.append(f"  STUCK calls (agents kept leased): {summary['stuck_calls']}")
    if summary.get("dropped_agents"):
        dropped = summary["dropped_agents"].items()
        lines.append("  agents dropped: " + "; ".join(f"{k} ({v})" for k, v in dropped))
    inputs = summary.get("inputs") or {}
    lines.append(f"  inputs: {inputs.get('valid', 0)} valid of {inputs.get('rows_read', 0)} rows; "
                 f"{inputs.get('rejected', 0)} rejected, {inputs.get('duplicates', 0)} duplicates, "
                 f"{inputs.get('suppressed', 0)} on the do-not-call list")
    if summary.get("rejects_file"):
        lines.append(f"  set-aside rows: {summary['rejects_file']}")
    for f in summary.get("files") or []:
        label = "report" if f.endswith((".xlsx", ".csv")) else "summary"
        lines.append(f"  {label}: {f}")
    return "\n".join(lines)


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run summary as Markdown (a Prefect artifact)."""
    lines = [f"# Campaign `{summary['campaign']}`: {summary['status']}", "", summary["reason"], "",
             f"Calls went to: {summary['target']}", "",
             "| | |", "| --- | ---: |",
             f"| customers | {summary['customers']} |", f"| final | {summary['final']} |",
             f"| left for a later run | {summary['pending']} |",
             f"| calls placed this run | {summary['calls_placed_this_run']} |",
             f"| stuck calls | {summary['stuck_calls']} |", "",
             "| outcome | customers |", "| --- | ---: |"]
    for status, count in sorted((summary.get("outcomes") or {}).items(), key=lambda kv: -kv[1]):
        lines.append(f"| {status} | {count} |")
    files = summary.get("files") or []
    if files:
        lines += ["", "Files:", *[f"- `{f}`" for f in files]]
    return "\n".join(lines) + "\n"
