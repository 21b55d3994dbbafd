"""Launching campaigns from the console: never inside the web server's own event loop.

* With a Prefect server (``PREFECT_API_URL``) and a deployment ``run-campaign/campaign-<name>``
  (``ccm serve`` or ``prefect deploy``): a flow run of that deployment
  (``run_deployment(..., timeout=0)``); a worker or ``ccm serve`` runs it.
* Otherwise (the embedded default): ``ccm run <definition>`` as a child process in a session of
  its own (so a console restart does not kill it), its output in
  ``reports/<campaign>/console-runs/<time>-<user>.log``. It gets the console's ledger with
  ``--ledger``; a password in the ledger's URL goes in its environment (``PGPASSWORD``) instead.

One run per campaign: the ledger's runner lock decides (a second ``ccm run`` exits with "already
running"); the console also refuses to launch a campaign whose status shows a live run, and
serialises launches of one campaign inside this process, so a double click starts nothing twice.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url

from ccm_tasks.console import controls
from ccm_tasks.ledger import Ledger
from ccm_tasks.paths import campaign_reports_dir, ccm_home

LaunchHow = Literal["process", "prefect", "refused"]


@dataclass(frozen=True)
class LaunchResult:
    """What a launch did, in words for the page."""

    ok: bool
    how: LaunchHow
    message: str
    pid: int | None = None
    flow_run_id: str | None = None
    log_path: Path | None = None


def deployment_name(campaign: str) -> str:
    """The Prefect deployment that runs a campaign (``flows/schedules.py`` names it so)."""
    return f"run-campaign/campaign-{campaign}"


def prefect_server_url() -> str | None:
    """The Prefect server's API address when one is configured (not the temporary one)."""
    return os.environ.get("PREFECT_API_URL") or None


class Launcher:
    """Starts runs for the console; one instance per console app."""

    def __init__(self, ledger: Ledger, *, run_with_prefect: bool, wait_seconds: float) -> None:
        self.ledger = ledger
        self.run_with_prefect = run_with_prefect
        self.wait_seconds = wait_seconds
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._children: list[subprocess.Popen[bytes]] = []

    def live_run(self, name: str) -> str | None:
        """Where a live run of the campaign is, if there is one."""
        try:
            found = controls.status(self.ledger, name)
        except controls.CampaignNotFound:
            return None
        return found[0].runner if found else None

    def launch(self, name: str, definition: Path, *, by: str) -> LaunchResult:
        """Start one run of the campaign, unless one is live; waits until the run holds the lock."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            where = self.live_run(name)
            if where is not None:
                return LaunchResult(False, "refused", f"Campaign {name} is already running ({where}): "
                                                      "one run per campaign. Nothing was started.")
            if prefect_server_url():
                flow_run = _run_deployment_if_any(name, by)
                if flow_run is not None:
                    return LaunchResult(True, "prefect", f"Prefect flow run {flow_run} of deployment "
                                        f"{deployment_name(name)} was created; a worker (or ccm serve) "
                                        "runs it.", flow_run_id=flow_run)
            return self._spawn(name, definition, by)

    def _spawn(self, name: str, definition: Path, by: str) -> LaunchResult:
        folder = campaign_reports_dir(name) / "console-runs"
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{_safe(by)}.log"
        env = {**os.environ, "CCM_HOME": str(ccm_home().resolve()), "PYTHONUNBUFFERED": "1"}
        url = make_url(self.ledger.url)
        if url.password is not None:
            # Never on a command line (any local user can read those): psycopg reads PGPASSWORD.
            env["PGPASSWORD"] = str(url.password)
            url = url.set(password=None)
        command = [sys.executable, "-m", "ccm_tasks.cli", "run", str(definition),
                   "--ledger", url.render_as_string(hide_password=False)]
        if not self.run_with_prefect:
            command.append("--no-prefect")
        with log_path.open("ab") as log:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,  # noqa: S603
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=str(ccm_home()), env=env)
        self._children.append(child)
        # Reap it when it ends (the run itself is recorded in the ledger).
        threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            code = child.poll()
            if code is not None:
                last = _last_line(log_path)
                if code == 0:
                    return LaunchResult(True, "process", f"The run ended at once: {last}",
                                        pid=child.pid, log_path=log_path)
                return LaunchResult(False, "process", f"The run could not start: {last}",
                                    pid=child.pid, log_path=log_path)
            where = self.live_run(name)
            if where is not None and where.endswith(f"pid {child.pid}"):
                return LaunchResult(True, "process", f"Started `ccm run` as process {child.pid} on this "
                                    "machine (no Prefect server is set, so the console runs it itself).",
                                    pid=child.pid, log_path=log_path)
            time.sleep(0.2)
        return LaunchResult(True, "process", f"Started `ccm run` as process {child.pid}; it is still "
                            "loading the campaign's files.", pid=child.pid, log_path=log_path)

    def children(self) -> list[subprocess.Popen[bytes]]:
        """The runs this console started (tests end them by pid)."""
        return list(self._children)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40] or "user"


def _last_line(path: Path) -> str:
    """The line of a run's log that says why it ended (``ccm run: ...`` when there is one)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    for line in reversed(lines):
        if line.startswith(("ccm run:", "Campaign ")):
            return line
    return lines[-1] if lines else "(no output)"


def _run_deployment_if_any(name: str, by: str) -> str | None:
    """Create a flow run of the campaign's deployment (None when there is no such deployment)."""

    async def create() -> str | None:
        from prefect.client.orchestration import get_client
        from prefect.deployments.flow_runs import arun_deployment
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                await client.read_deployment_by_name(deployment_name(name))
            except ObjectNotFound:
                return None
        flow_run = await arun_deployment(deployment_name(name), timeout=0, tags=["console", f"by:{by}"])
        return str(flow_run.id)

    return asyncio.run(create())


def update_schedule(name: str, cron: str, timezone: str) -> str:
    """Put the schedule on the campaign's deployment when a Prefect server has one; says what it did."""
    if not prefect_server_url():
        return ("Saved in the definition. Schedules need a Prefect server: start one and run "
                "`ccm serve --campaigns campaigns` (it reads the schedule from the definition).")

    async def apply() -> str:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import DeploymentScheduleCreate
        from prefect.client.schemas.schedules import CronSchedule
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                deployment = await client.read_deployment_by_name(deployment_name(name))
            except ObjectNotFound:
                return ("Saved in the definition. The Prefect server has no deployment "
                        f"{deployment_name(name)} yet: run `ccm serve --campaigns campaigns` to serve it.")
            for existing in await client.read_deployment_schedules(deployment.id):
                await client.delete_deployment_schedule(deployment.id, existing.id)
            await client.create_deployment_schedules(deployment.id, [DeploymentScheduleCreate(
                schedule=CronSchedule(cron=cron, timezone=timezone), active=True)])
        return f"Saved in the definition and on deployment {deployment_name(name)}."

    return asyncio.run(apply())
