"""A real ``prefect server start`` and real ``ccm serve`` / ``prefect worker`` processes for the tests.

Prefect's test harness runs no scheduler service, so what depends on the scheduler (cron schedules),
on a runner's cancellation (``prefect flow-run cancel``) or on automations is tested here against the
real server, started as a subprocess with its own ``PREFECT_HOME`` on a free loopback port. The
scheduler's loops are shortened (settings that exist in prefect 3.8.8) so a run a minute ahead is
created within seconds of its deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ccm_tasks.simulator.server import SimulatorServer

T = TypeVar("T")

SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    # The scheduler visits deployments every 60 s by default, recently changed ones every 5 s.
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}
CLIENT_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # `ccm serve` and workers look for due runs every 10 s (runner) / 10 s (worker) by default.
    "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "ccm",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file (for assertion messages)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


@dataclass
class PrefectServer:
    """A running ``prefect server start``; :meth:`client_env` is what a process needs to use it."""

    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client_env(self, base: Mapping[str, str] | None = None, *,
                   home: Path | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment without PREFECT_*) pointed at this server,
        with a Prefect home of its own and short polling intervals."""
        source = os.environ if base is None else base
        env = {k: v for k, v in source.items() if not k.startswith("PREFECT_")}
        client_home = home or self.home.parent / f"client-{os.getpid()}"
        client_home.mkdir(parents=True, exist_ok=True)
        env.update(CLIENT_SETTINGS)
        env.update({"PREFECT_API_URL": self.url, "PREFECT_HOME": str(client_home)})
        return env

    def stop(self) -> None:
        """Stop the server (its whole process group)."""
        stop_group(self.process, grace=15)


def start_prefect_server(home: Path, *, database_url: str | None = None,
                         timeout: float = 120.0) -> PrefectServer:
    """Start ``prefect server start`` on a free loopback port and wait until it answers.
    Raises RuntimeError (with the server's log) if it does not come up within ``timeout``."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(SERVER_SETTINGS)
    env["PREFECT_HOME"] = str(home)
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = home / "server.log"
    prefect = Path(sys.executable).with_name("prefect")
    with log.open("ab") as out:
        process = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port",
                                    str(port), "--no-ui"], env=env, cwd=home, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = PrefectServer(url=f"http://127.0.0.1:{port}/api", home=home, process=process, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"prefect server did not answer within {timeout:g}s:\n{tail(log)}")


def stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM a child's process group, SIGKILL it after ``grace`` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def child(args: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None,
          ) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in a session of its own (so it and its children are stopped together)."""
    with log.open("ab") as out:
        process = subprocess.Popen(args, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        stop_group(process)


def ccm_serve(campaigns: Path, env: Mapping[str, str], log: Path, *extra: str,
              ) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``ccm serve --campaigns DIR ...`` as a child process."""
    return child([sys.executable, "-m", "ccm_tasks.cli", "serve", "--campaigns", str(campaigns), *extra],
                 env, log)


def minute_ahead(margin: float = 20.0) -> datetime:
    """The first whole UTC minute at least ``margin`` seconds from now."""
    soon = datetime.now(UTC) + timedelta(seconds=margin)
    return soon.replace(second=0, microsecond=0) + timedelta(minutes=1)


def cron_at(moment: datetime) -> str:
    """A cron line (UTC) that fires once, at ``moment``'s minute (this year)."""
    return f"{moment.minute} {moment.hour} {moment.day} {moment.month} *"


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float, every: float = 1.0,
                     what: str = "condition") -> T:
    """Call ``probe`` until it returns something other than None (or fail after ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:g}s")
        await asyncio.sleep(every)


async def deployment_runs(api: str, name: str) -> list[Any]:
    """Every flow run of the deployment ``flow/deployment`` at ``api`` (none until it exists)."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound

    async with PrefectClient(api=api) as client:
        try:
            deployment = await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return []  # not registered yet
        return list(await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))))


async def read_run(api: str, run_id: Any) -> Any:
    """One flow run, fresh from the server."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api) as client:
        return await client.read_flow_run(run_id)


def slow_calls(make_simulator: Callable[..., SimulatorServer], agents: int) -> SimulatorServer:
    """A simulator at 30x whose calls last 2-4 real seconds (so some are live when a test acts)."""
    return make_simulator(time_scale=30, agents=[{"user_id": u, "contact_uri": c}
                                                 for u, c in all_agents(agents)],
                          behaviour={"talk_seconds": [60, 120], "agent_ring_seconds": [1, 3],
                                     "customer_ring_seconds": [1, 3], "agent_answer_probability": 1.0,
                                     "customer_answer_probability": 1.0, "agent_cancel_probability": 0.0})


def all_agents(n: int) -> list[tuple[str, str]]:
    """(user_id, contact_uri) of agent-001 ... agent-<n>, as the simulator's pool numbers them."""
    return [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, n + 1)]


NEVER = {"cron": "0 0 1 1 *", "timezone": "UTC"}
"""A schedule that does not fire during a test (the deployment is run by hand)."""


async def start_deployment_run(api: str, name: str) -> Any:
    """A flow run of the deployment ``flow/deployment``, due now (as ``prefect deployment run``)."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api) as client:
        deployment = await client.read_deployment_by_name(name)
        return await client.create_flow_run_from_deployment(deployment.id)


async def prefect_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    """Run the ``prefect`` command (as an operator would); its output; fails on a non-zero exit."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("prefect")), *args, env=env, cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


async def deployment_exists(api: str, name: str) -> bool | None:
    """True once the deployment is registered, else None (for :func:`eventually`)."""
    from prefect.client.orchestration import PrefectClient
    from prefect.exceptions import ObjectNotFound

    async with PrefectClient(api=api) as client:
        try:
            await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
    return True


def live_calls(sim: SimulatorServer) -> int:
    """Calls the simulator has not ended yet (a call's fate is drawn when it is placed)."""
    now = sim.clock.time()
    return sum(1 for r in sim.dial_log() if r["terminal"] > now)


def runner_pid(ledger: Path | str, campaign: str) -> int:
    """The pid of the live process dialling ``campaign`` (its holder in the ledger)."""
    from ccm_tasks.ledger import Ledger

    book = Ledger(ledger)
    try:
        alive = [h for h in book.holders() if str(h["label"]).startswith(f"ccm run {campaign} ")
                 and h["alive"]]
    finally:
        book.close()
    assert len(alive) == 1, alive
    return int(str(alive[0]["pid"]))


def pid_gone(pid: int) -> bool:
    """Whether no process (or only a zombie waiting for its parent) has this pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True
