"""What ``ccm run`` does: prepare, start dialling at once, attach the Prefect flow, report.

Dialling starts as soon as the inputs are valid and the runner lock is held; the ``run_campaign``
flow attaches when Prefect's (temporary) server is up, ~10 s later, and from then on the engine's
logs and progress go to the flow run. If Prefect cannot start, the run goes on without it and says
so. Ctrl-C once: no new calls, live calls are followed to the end. Twice: stop now (re-run resumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from pathlib import Path
from typing import Any

from ccm_tasks.logs import redact_all_handlers
from ccm_tasks.progress import show_progress
from ccm_tasks.runner import CampaignCannotRun, PreparedRun, prepare_run, render_summary

log = logging.getLogger("ccm.run")


async def run_command(definition: str | Path, *, ledger: str | None = None, wait_for_window: bool = True,
                      use_prefect: bool = True, tty: bool | None = None) -> int:
    """Run one campaign from the command line; returns the process exit code."""
    try:
        prepared = await prepare_run(definition, ledger_path=ledger, wait_for_window=wait_for_window)
    except CampaignCannotRun as exc:
        print(f"ccm run: the campaign cannot run: {exc}")
        return 2
    if prepared.target.simulated:
        print(f"Calls are SIMULATED: {prepared.target.description}. "
              "Set EXOTEL_API_KEY, EXOTEL_API_TOKEN and EXOTEL_ACCOUNT_SID to dial for real.")
    else:
        print(f"Dialling for real through the {prepared.target.description}.")
    print(f"Campaign {prepared.definition.name}: {prepared.engine.total} customers "
          f"({prepared.engine.queue.waiting} to dial), {len(prepared.inputs.agents)} agents, "
          f"calling window {prepared.engine.cfg.window.describe(prepared.clock.time())}.")
    _install_stop_handler(prepared)
    prepared.start()
    progress = asyncio.create_task(show_progress(prepared.engine.snapshot, tty=tty))
    try:
        summary = await (_with_prefect(prepared, definition, ledger, wait_for_window) if use_prefect
                         else prepared.run())
    finally:
        progress.cancel()
        await asyncio.gather(progress, return_exceptions=True)
    print(render_summary(summary))
    return int(summary["exit_code"])


async def _with_prefect(prepared: PreparedRun, definition: str | Path, ledger: str | None,
                        wait_for_window: bool) -> dict[str, Any]:
    # Prefect's import (~2 s) and its temporary server (~10-20 s) both happen off the event loop,
    # so the engine keeps dialling, polling and heartbeating meanwhile.
    flows_campaign = await asyncio.to_thread(importlib.import_module, "flows.campaign")
    redact_all_handlers()
    ATTACHED_RUN, run_campaign = flows_campaign.ATTACHED_RUN, flows_campaign.run_campaign

    token = ATTACHED_RUN.set(prepared)
    try:
        await _start_prefect_server_off_loop()
        await run_campaign(definition=str(definition), ledger=ledger, wait_for_window=wait_for_window,
                           return_state=True)
    except Exception as exc:  # Prefect could not start: never let that cost the calls
        log.warning("Prefect is unavailable (%s); the run continues without flow tracking", exc)
        if not prepared.summary:
            return await prepared.run()
    finally:
        ATTACHED_RUN.reset(token)
    return prepared.summary


async def _start_prefect_server_off_loop() -> None:
    """Start Prefect's temporary server in a thread. Prefect starts it inside the event loop with
    blocking waits (~10-20 s here), which would freeze the engine: no polls, no heartbeats."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return  # a real server: nothing to start
    from prefect.server.api.server import SubprocessASGIServer

    await asyncio.to_thread(SubprocessASGIServer().start)


def _install_stop_handler(prepared: PreparedRun) -> None:
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print("\nStopping: no new calls; following live calls to the end (Ctrl-C again to stop now).")
            prepared.engine.request_stop("interrupted by the operator")
        else:
            raise KeyboardInterrupt

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, on_signal)
