"""The several-machine topology on one machine, separate homes standing in for machines.

A Prefect server on PostgreSQL; a process work pool; two workers, each with its own checkout
(``CCM_WORKDIR``), ``CCM_HOME`` and Prefect home; one PostgreSQL ledger; deployments from a
``prefect.yaml`` built from the repository's own (its pull step, work pool and job variables), put in
by ``prefect deploy --all`` from a third folder. Two campaigns that share four agents run at once,
one on each worker, against one simulator whose account allows fewer requests a minute than the
two would like: zero agent overlaps, one final outcome per customer, no 429, and the account's
busiest minute under its limit.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccm_tasks.inputs import load_definition
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, write_campaign
from tests.dialer.harness import check_dial_log
from tests.dialer.test_processes import FINAL, ledger_finals
from tests.flows.prefect_server import (
    PrefectServer,
    child,
    eventually,
    prefect_cli,
    read_run,
    runner_pid,
    start_deployment_run,
    start_prefect_server,
    tail,
)
from tests.support import needs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).parents[2]
LIMIT = 60
"""The simulated account's requests a minute (simulated time): less than two campaigns would use."""
CAMPAIGNS = {  # name: (agents, first customer number, work queue = machine)
    "east": (range(1, 9), 0, "machine-a"),
    "west": (range(5, 13), 100, "machine-b"),
}


@pytest.fixture(scope="module")
def prefect_on_pg(pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` with its database on the session's PostgreSQL cluster."""
    url = pg_cluster.database().replace("postgresql+psycopg://", "postgresql+asyncpg://")
    try:
        server = start_prefect_server(tmp_path_factory.mktemp("prefect-pg"), database_url=url, timeout=240)
    except (OSError, RuntimeError) as exc:
        pytest.skip(needs("prefect-server", str(exc)[-1500:]))
    yield server
    server.stop()


def _runner(ledger: str, campaign: str) -> int | None:
    try:
        return runner_pid(ledger, campaign)
    except AssertionError:
        return None  # not dialling yet


async def _async(value: Any) -> Any:
    return value


def parent_of(pid: int) -> int:
    """A process's parent pid (from /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def agent(i: int) -> tuple[str, str]:
    return f"agent-{i:03d}", f"+91980000{i:04d}"


def write_campaigns(folder: Path) -> None:
    for name, (agents, first, _) in CAMPAIGNS.items():
        write_campaign(folder / name, name, agents=[agent(i) for i in agents],
                       numbers=[f"+9199{i:08d}" for i in range(first, first + 40)],
                       schedule={"cron": "0 0 1 1 *", "timezone": "UTC"}, retry={"max_attempts": 3})


def checkout(folder: Path) -> Path:
    """A machine's copy of what runs need: flows/ and campaigns/."""
    shutil.copytree(REPO / "flows", folder / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    write_campaigns(folder / "campaigns")
    return folder


def deployer_yaml(folder: Path) -> None:
    """The repository's prefect.yaml with one deployment per campaign, cloned from its campaign
    entry (same pull step, pool, job variables and limit), each on one machine's work queue."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    template = next(d for d in spec["deployments"] if d["name"].startswith("pool-campaign-"))
    spec["deployments"] = []
    for name, (_, _, queue) in CAMPAIGNS.items():
        d = copy.deepcopy(template)
        d.update(name=f"pool-campaign-{name}", parameters={"definition": f"campaigns/{name}/{name}.yaml"},
                 description=f"Campaign {name}")
        d["work_pool"]["work_queue_name"] = queue
        spec["deployments"].append(d)
    (folder / "prefect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


async def test_two_campaigns_sharing_agents_on_two_workers_with_one_ledger(
        prefect_on_pg: PrefectServer, pg_cluster: Any, make_simulator: Callable[..., SimulatorServer],
        tmp_path: Path) -> None:
    server = prefect_on_pg
    sim = make_simulator(time_scale=30, agents=[{"user_id": u, "contact_uri": c}
                                                for u, c in (agent(i) for i in range(1, 13))],
                         account={"rate_limit_per_minute": LIMIT},
                         behaviour={"talk_seconds": [20, 60], "agent_ring_seconds": [1, 3],
                                    "customer_ring_seconds": [1, 5], "post_processing_seconds": [1, 3]})
    ledger = pg_cluster.database()
    deployer = checkout(tmp_path / "deployer")
    deployer_yaml(deployer)
    admin = server.client_env(home=tmp_path / "deployer-prefect")
    await prefect_cli(admin, "work-pool", "create", "ccm-pool", "--type", "process", "--overwrite")
    await prefect_cli(admin, "--no-prompt", "deploy", "--all", cwd=deployer)
    shutil.rmtree(deployer)  # the deployments must not need the deploying machine's files

    prefect = str(Path(sys.executable).with_name("prefect"))
    homes, workers = {}, {}
    with contextlib.ExitStack() as stack:
        for machine, queue in (("a", "machine-a"), ("b", "machine-b")):
            root = tmp_path / f"machine-{machine}"
            work = checkout(root / "checkout")
            homes[queue] = root / "home"
            env = server.client_env(ccm_env(sim, ledger, homes[queue] / "reports"), home=root / "prefect")
            env.update({"CCM_WORKDIR": str(work), "EXOTEL_REQUESTS_PER_MINUTE": str(LIMIT)})
            workers[queue] = stack.enter_context(child(
                [prefect, "worker", "start", "--pool", "ccm-pool", "--work-queue", queue, "--name",
                 f"worker-{machine}"], env, root / "worker.log", cwd=root))
        runs = {name: await start_deployment_run(server.url, f"run-campaign/pool-campaign-{name}")
                for name in CAMPAIGNS}
        logs = "\n".join(tail(tmp_path / f"machine-{m}" / "worker.log") for m in "ab")
        # Each flow process is its worker's own child, so it notices the worker's death (getppid)
        # and drains instead of dialling on (tests/flows/test_prefect_kills.py kills `ccm serve`).
        for name, (_, _, queue) in CAMPAIGNS.items():
            pid = await eventually(lambda n=name: _async(_runner(ledger, n)), 120, every=0.5,
                                   what=f"{name} dialling\n{logs}")
            assert parent_of(pid) == workers[queue].pid, (name, pid)

        async def both_ended() -> list[Any] | None:
            current = [await read_run(server.url, r.id) for r in runs.values()]
            return current if all(r.state.is_final() for r in current) else None

        final = await eventually(both_ended, 240, what=f"both campaign runs to end\n{logs}")
    for run in final:
        assert run.state.is_completed(), (run.state, logs)
    calls = sim.dial_log()
    policy = load_definition(tmp_path / "machine-a" / "checkout" / "campaigns" / "east" / "east.yaml").retry
    report = check_dial_log(calls, max_dials=policy.policy().max_dials())
    assert report["overlaps"] == [] and report["too_many"] == {}, report
    sent = [r["custom_field"] for r in calls]
    assert len(sent) == len(set(sent)), "an attempt was POSTed twice"
    # The four shared agents really worked for both campaigns.
    east = {f"+9199{i:08d}" for i in range(40)}
    by_agent: dict[str, set[str]] = defaultdict(set)
    for r in calls:
        by_agent[r["agent"]].add("east" if r["customer"] in east else "west")
    assert all(by_agent[agent(i)[0]] == {"east", "west"} for i in range(5, 9)), dict(by_agent)
    # One final outcome per customer, and nobody is called again after a completed call.
    finals = ledger_finals(ledger)
    assert {name: len(v) for name, v in finals.items()} == {"east": 40, "west": 40}
    assert all(set(v.values()) <= FINAL for v in finals.values()), finals
    completed_at: dict[str, float] = {}
    for r in sorted(calls, key=lambda r: r["created"]):
        assert r["customer"] not in completed_at, f"{r['customer']} called after a completed call"
        if r["call_status"] == "completed":
            completed_at[r["customer"]] = r["created"]
    # One budget for the account, across both machines.
    per_minute = sim.call_soon(lambda: dict(sim.account.requests_per_minute))
    counters = sim.counters()
    busiest = max(per_minute.values())
    print(f"{len(calls)} calls; busiest simulated minute {busiest} requests (limit {LIMIT}); "
          f"429s {counters.get('rate_limited', 0)}")
    assert counters.get("rate_limited", 0) == 0
    assert busiest <= LIMIT
    # Each run ran on its machine: in its checkout, writing to its home.
    for name, (_, _, queue) in CAMPAIGNS.items():
        assert list((homes[queue] / "reports" / name).rglob("outcomes.csv")), (name, queue)
        other = next(h for q, h in homes.items() if q != queue)
        assert not (other / "reports" / name).exists()
