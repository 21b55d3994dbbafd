"""What ``ccm run`` does: prepare, start dialling at once, let Prefect track it, report.

Dialling starts as soon as the inputs are valid and the runner lock is held. Prefect's temporary
server takes 10-20 s to come up, so the ``run-campaign`` flow is started beside the run, off the
event loop, and *follows* it through the ledger (``run_id``); if Prefect is not up when the run
ends, the command does not wait for it. Signals:

* Ctrl-C (SIGINT) once: no new calls, live calls are followed to the end (the run ends ``stopped``);
* SIGTERM (a container stopping, a Prefect cancellation): the same, for at most ``DRAIN_SECONDS``;
  the run ends ``cancelled`` either way;
* a second signal: stop now (``interrupted``, exit 130): the summary is still printed, and calls
  left live are confirmed by the next run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ccm_tasks.errors import CampaignCannotRun
from ccm_tasks.logs import redact_all_handlers
from ccm_tasks.progress import show_progress
from ccm_tasks.runner import CampaignRun, prepare_run

log = logging.getLogger("ccm.run")

DRAIN_SECONDS = 25.0
"""Real seconds a SIGTERM lets live calls finish (a container's stop grace is often 30 s)."""
TRACKER_GRACE = 10.0
"""Real seconds the command waits, after the run ended, for the flow to publish its last figures."""


async def run_command(definition: str | Path, *, ledger: str | None = None, wait_for_window: bool = True,
                      use_prefect: bool = True, tty: bool | None = None) -> int:
    """Run one campaign from the command line; returns the process exit code."""
    try:
        run = await prepare_run(definition, ledger=ledger, wait_for_window=wait_for_window)
    except CampaignCannotRun as exc:
        print(f"ccm run: the campaign cannot run: {exc}")
        return 2
    target = run.setup.target
    if target.simulated:
        print(f"Calls are SIMULATED: {target.description}. "
              "Set EXOTEL_API_KEY, EXOTEL_API_TOKEN and EXOTEL_ACCOUNT_SID to dial for real.")
    else:
        print(f"Dialling for real through the {target.description}.")
    window = run.engine.cfg.window.describe(target.clock.time())
    print(f"Campaign {run.name}: {run.engine.total} customers ({run.engine.waiting} to dial), "
          f"{run.setup.inputs.agents} agents, calling window {window}; "
          f"ledger {run.setup.ledger.display_url}.",
          flush=True)
    handlers = _install_signal_handlers(run)
    run.start()
    progress = asyncio.create_task(show_progress(run.engine.snapshot, tty=tty))
    tracker = PrefectTracker(run, str(definition)) if use_prefect else None
    try:
        summary = await run.run()
    finally:
        progress.cancel()
        await asyncio.gather(progress, return_exceptions=True)
        handlers()
    if tracker is not None:
        await tracker.settle()
    print(summary.render())
    return summary.exit_code


class PrefectTracker:
    """The run-campaign flow, following one run; started beside it, never waited for at the end."""

    def __init__(self, run: CampaignRun, definition: str) -> None:
        self.run, self.definition = run, definition
        self.up = False  # Prefect's server answered and the flow started
        self.task = asyncio.create_task(self._track(), name="prefect-tracker")

    async def _track(self) -> None:
        try:
            flows_campaign = await asyncio.to_thread(importlib.import_module, "flows.campaign")
            redact_all_handlers()
            await self._start_server_off_loop()
            self.up = True
            await flows_campaign.run_campaign(definition=self.definition, ledger=self.run.setup.ledger.url,
                                              run_id=self.run.run_id, return_state=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Prefect could not start: never let that cost the calls
            log.warning("Prefect is unavailable (%s); the run goes on without flow tracking", exc)

    async def settle(self) -> None:
        """Give an attached flow a moment to publish the end; never wait for Prefect to come up."""
        if not self.up:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.task, TRACKER_GRACE)

    @staticmethod
    async def _start_server_off_loop() -> None:
        """Start Prefect's temporary server in a daemon thread. Prefect starts it inside the event
        loop with blocking waits (~10-20 s here), which would freeze the engine; and a daemon thread
        does not hold the process open at exit if the run ends first. Two processes sharing a Prefect
        home take turns (a file lock), or their servers race on one database's migrations."""
        from prefect.settings import PREFECT_API_URL, PREFECT_HOME

        if PREFECT_API_URL.value():
            return  # a real server: nothing to start
        from prefect.server.api.server import SubprocessASGIServer

        home = Path(PREFECT_HOME.value())
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def start() -> None:
            try:
                home.mkdir(parents=True, exist_ok=True)
                with open(home / ".ccm-ephemeral.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    server = SubprocessASGIServer()
                    _STARTING.append(server)
                    server.start()
                    _STARTING.remove(server)
                loop.call_soon_threadsafe(_settle, done, None)
            except BaseException as exc:  # handed to the waiting coroutine
                loop.call_soon_threadsafe(_settle, done, exc)

        threading.Thread(target=start, name="prefect-server", daemon=True).start()
        await done


_STARTING: list[object] = []
"""Prefect temporary servers still starting in a daemon thread (see :func:`leave`)."""


def leave(code: int) -> int:
    """End the command. If Prefect's temporary server is still starting (the run ended first), stop
    it and exit at once: its thread logs while it polls, and a daemon thread writing at interpreter
    shutdown aborts the process (SIGABRT) instead of exiting with ``code``."""
    if not _STARTING:
        return code
    for server in list(_STARTING):
        with contextlib.suppress(Exception):
            server.stop()  # type: ignore[attr-defined]
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


def _install_signal_handlers(run: CampaignRun) -> Callable[[], None]:
    """SIGINT/SIGTERM as the module docstring says; returns a function that removes them."""
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        engine = run.engine
        if signals > 1:
            print("\nStopping now: calls still live are left for the next run to confirm.", flush=True)
            engine.interrupt(f"stopped at once by a second {sig.name}")
        elif sig == signal.SIGTERM:
            print(f"\nSIGTERM: no new calls; following live calls for up to {DRAIN_SECONDS:g}s.", flush=True)
            engine.drain("cancelled (SIGTERM)", DRAIN_SECONDS)
        else:
            print("\nStopping: no new calls; following live calls to the end (Ctrl-C again to stop now).",
                  flush=True)
            engine.request_stop("interrupted by the operator")

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove
