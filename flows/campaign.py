"""The ``run_campaign`` flow: wiring only. The engine does the work (ccm_tasks.dialer).

Run standalone (a deployment, a worker), it prepares the campaign itself. Started by ``ccm run``,
it *attaches* to a run the command already started: Prefect's temporary server takes ~10 s to come
up, and the calls should not wait for it.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from ccm_tasks.reports import campaign_report_markdown, campaign_report_table
from ccm_tasks.runner import PreparedRun, summary_markdown
from ccm_tasks.tasks import prepare_campaign

ATTACHED_RUN: ContextVar[PreparedRun | None] = ContextVar("ccm_attached_run", default=None)


@flow(name="run-campaign", persist_result=False, log_prints=False)
async def run_campaign(definition: str, ledger: str | None = None, wait_for_window: bool = True,
                       progress_every: float = 5.0) -> State[Any]:
    """Dial one campaign until every customer has a final outcome or the window closes."""
    logger = get_run_logger()
    prepared = ATTACHED_RUN.get()
    if prepared is None:
        # An async task called from an async flow is awaited; Prefect's stubs type it as the result.
        state = await prepare_campaign(definition, ledger, wait_for_window, return_state=True)  # type: ignore[misc]
        if not state.is_completed():
            logger.error("The campaign cannot run: %s", state.message)
            return Failed(message=f"cannot run: {state.message}")
        prepared = await state.result()
    prepared.engine.log = logger  # engine logs now belong to this flow run
    logger.info("Campaign %s: %d customers, %d agents; calls go to %s", prepared.definition.name,
                prepared.engine.total, len(prepared.inputs.agents), prepared.target.description)
    prepared.start()
    publisher = asyncio.create_task(_publish_progress(prepared, progress_every))
    try:
        summary = await prepared.run()
    finally:
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
    name = prepared.definition.name
    markdown = summary_markdown(summary)
    if prepared.report is not None:
        markdown += "\n" + campaign_report_markdown(prepared.report)
        await acreate_table_artifact(campaign_report_table(prepared.report), key=f"{name}-outcomes",
                                     description="Customers by final status")
    await acreate_markdown_artifact(markdown, key=f"{name}-run-summary",
                                    description=f"Run summary: {summary['status']}")
    if summary["exit_code"]:
        return Failed(message=f"{summary['status']}: {summary['reason']}", data=summary)
    return Completed(message=f"{summary['status']}: {summary['reason']}", data=summary)


async def _publish_progress(prepared: PreparedRun, every: float) -> None:
    snap = prepared.engine.snapshot()
    artifact_id = await acreate_progress_artifact(
        progress=0.0, key=f"{prepared.definition.name}-progress", description=_describe(snap))
    while True:
        await asyncio.sleep(every)
        snap = prepared.engine.snapshot()
        percent = 100.0 * snap["done"] / snap["total"] if snap["total"] else 100.0
        await aupdate_progress_artifact(artifact_id=artifact_id, progress=percent,
                                        description=_describe(snap))


def _describe(snap: dict[str, Any]) -> str:
    agents = snap["agents"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(snap["outcomes"].items())) or "none yet"
    return (f"{snap['done']}/{snap['total']} customers final; {snap['live_calls']} live calls; "
            f"agents {agents['busy']} busy / {agents['idle']} idle / {agents['paused']} paused; "
            f"outcomes: {outcomes}")
