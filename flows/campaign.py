"""The ``run-campaign`` flow: wiring only. The engine does the work (ccm_tasks.dialer).

A function of its parameters:

* without ``run_id`` (a deployment, a worker, a schedule) it prepares the campaign and dials it;
  Prefect's cancellation (SIGTERM) and the loss of the worker that started it both stop new calls
  and drain live ones for up to ``drain_seconds`` before the run ends as ``cancelled``;
* with ``run_id`` it follows a run that is already dialling (``ccm run`` starts its calls before
  Prefect's temporary server is up) by reading that run's figures from the ledger.

Either way it keeps a progress artifact up to date, publishes the run's summary and the report's
tables at the end, and emits ``ccm.campaign.*`` events an automation can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.client.schemas.objects import State
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed

from ccm_tasks.dialer.progress import Progress
from ccm_tasks.keys import artifact_key
from ccm_tasks.ledger import Ledger
from ccm_tasks.paths import resolve_ledger
from ccm_tasks.runner import CampaignRun
from ccm_tasks.summary import RunSummary
from ccm_tasks.tasks import prepare_campaign

DRAIN_SECONDS = 25.0
"""Real seconds a cancelled run follows live calls before it ends; under the process worker's 30 s
grace between SIGTERM and SIGKILL. Calls still live then are confirmed by the next run at once."""


@flow(name="run-campaign", persist_result=False, log_prints=False)
async def run_campaign(definition: str, ledger: str | None = None, wait_for_window: bool = True,
                       progress_every: float = 5.0, run_id: int | None = None,
                       drain_seconds: float = DRAIN_SECONDS) -> State[Any]:
    """Dial one campaign until every customer has a final outcome or the window closes (or, with
    ``run_id``, follow that run to its end)."""
    if run_id is not None:
        return await _follow(ledger, run_id, progress_every)
    logger = get_run_logger()
    # An async task called from an async flow is awaited; Prefect's stubs type it as the result.
    state = await prepare_campaign(definition, ledger, wait_for_window, str(flow_run.get_id() or ""),  # type: ignore[misc]
                                   return_state=True)
    if not state.is_completed():
        logger.error("The campaign cannot run: %s", state.message)
        return Failed(message=f"cannot run: {state.message}")
    run: CampaignRun = await state.result()
    logger.info("Campaign %s: %d customers, %d agents; calls go to %s; ledger %s", run.name, run.engine.total,
                run.setup.inputs.agents, run.setup.target.description, run.setup.ledger.display_url)
    _event("started", run.name, {"customers": run.engine.total})
    with _drain_on_termination(run, drain_seconds):
        run.start()
        publisher = asyncio.create_task(_publish_progress(run.name, run.engine.snapshot, progress_every))
        try:
            summary = await run.run()
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
    return await _finish(summary, run.setup.ledger, run.engine.snapshot())


async def _follow(ledger: str | None, run_id: int, every: float) -> State[Any]:
    book = await asyncio.to_thread(Ledger, resolve_ledger(ledger))
    try:
        row = await asyncio.to_thread(book.run, run_id)
        if row is None:
            return Failed(message=f"no run {run_id} in ledger {book.display_url}")
        await asyncio.to_thread(book.set_flow_run, run_id, str(flow_run.get_id() or ""))

        async def progress() -> tuple[Progress | None, dict[str, Any] | None]:
            current = await asyncio.to_thread(book.run, run_id)
            data = (current or {}).get("progress")
            return (Progress.from_json(data) if data else None), current

        first, _ = await progress()
        name = first.campaign if first else f"run-{run_id}"
        key = artifact_key(name, "progress")
        artifact_id = await acreate_progress_artifact(
            progress=100 * (first.fraction if first else 0.0), key=key,
            description=first.line() if first else "starting")
        while True:
            snap, current = await progress()
            if snap is not None:
                await aupdate_progress_artifact(artifact_id=artifact_id, progress=100 * snap.fraction,
                                                description=snap.line())
            if current is None or current["status"] != "running":
                break
            await asyncio.sleep(every)
        if not current or not current.get("summary"):
            return Failed(message=f"run {run_id} ended without a summary ({(current or {}).get('status')})")
        return await _finish(RunSummary.from_json(current["summary"]), book, snap, publish_progress=False)
    finally:
        book.close()


async def _finish(summary: RunSummary, ledger: Ledger, last: Progress | None, *,
                  publish_progress: bool = True) -> State[Any]:
    """Publish the final figures, the summary and the report's tables; end the flow run's state."""
    from ccm_tasks.reports import (
        build_campaign_report,
        campaign_report_markdown,
        campaign_report_table,
        figures_markdown,
        headline_figures,
    )

    name = summary.campaign
    if publish_progress and last is not None:
        await acreate_progress_artifact(progress=100 * last.fraction, key=artifact_key(name, "progress"),
                                        description=last.line())
    markdown = summary.markdown()
    try:
        report = await asyncio.to_thread(build_campaign_report, ledger, name)
        figures = figures_markdown(headline_figures(report))
        markdown += f"\n{figures}\n{campaign_report_markdown(report)}"
        await acreate_table_artifact(campaign_report_table(report), key=artifact_key(name, "outcomes"),
                                     description="Customers by final status")
    except Exception as exc:  # the run's record is in the ledger; `ccm report` rebuilds it
        get_run_logger().warning("the campaign report could not be published: %s", exc)
    await acreate_markdown_artifact(markdown, key=artifact_key(name, "run-summary"),
                                    description=f"Run summary: {summary.status}")
    _event({"window_closed": "window-closed", "fatal": "fatal", "no_agents": "fatal"}.get(
        summary.status, "finished"), name, {"status": summary.status, "reason": summary.reason,
                                            "final": summary.final, "pending": summary.pending})
    message = f"{summary.status}: {summary.reason}"
    if summary.status == "cancelled":
        return Cancelled(message=message, data=summary)
    if summary.exit_code and summary.status != "interrupted":
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)


async def _publish_progress(name: str, snapshot: Callable[[], Progress], every: float) -> None:
    snap = snapshot()
    artifact_id = await acreate_progress_artifact(
        progress=100 * snap.fraction, key=artifact_key(name, "progress"), description=snap.line())
    while True:
        await asyncio.sleep(every)
        snap = snapshot()
        await aupdate_progress_artifact(artifact_id=artifact_id, progress=100 * snap.fraction,
                                        description=snap.line())


def _event(what: str, campaign: str, payload: dict[str, Any]) -> None:
    """``ccm.campaign.<what>`` about the campaign (an automation can notify someone on it)."""
    emit_event(event=f"ccm.campaign.{what}", payload={"campaign": campaign, **payload},
               resource={"prefect.resource.id": f"ccm.campaign.{artifact_key(campaign)}",
                         "prefect.resource.name": campaign})


@contextlib.contextmanager
def _drain_on_termination(run: CampaignRun, drain_seconds: float) -> Iterator[None]:
    """Prefect cancels a flow run with SIGTERM; a worker that dies leaves us orphaned. Either way:
    no new calls, live calls followed for up to ``drain_seconds``, then the run ends."""
    loop = asyncio.get_running_loop()
    parent = os.getppid()

    def cancel(why: str) -> None:
        if run.engine.state.held.stop_reason is None:
            run.engine.drain(why, drain_seconds)

    async def watch_parent() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us the parent died
            await asyncio.sleep(1.0)
        cancel("the worker that started this run is gone")

    watcher = loop.create_task(watch_parent())
    installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, cancel, "cancelled (SIGTERM)")
        installed = True
    try:
        yield
    finally:
        watcher.cancel()
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)
