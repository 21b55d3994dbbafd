"""Two campaigns at once in two ``ccm run`` processes sharing one ledger, some agents and some
numbers: agents get their wrap-up whichever campaign calls them next, and a number is never over its
contact limit nor in two live calls, across both campaigns.

The simulator's dial log is the witness (simulated time); both runs share the simulator's clock.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from ccm_tasks.inputs.definition import DialerSettings
from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.limits import NOT_RINGING_STATUSES
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, start_run, write_campaign

SCALE = 60.0
WRAP_UP = DialerSettings().wrap_up_seconds  # the default: the runs below do not set it
MAX_CALLS = 2
WINDOW_DAYS = 0.003  # 259.2 simulated seconds (4.3 s of real time): the limit binds and lapses in a run
WINDOW = WINDOW_DAYS * 86400.0
# A Make Call leaves right after its attempt's durable commit: 0.1-0.2 s of real time on this loaded
# machine at worst; more would be a Make Call held after its write (invariant 2).
MAX_LAG = 0.5 * SCALE
# The processes read one shared clock (CCM_SIM_CLOCK); a wrap-up starts when the runner learns the
# call is terminal, after it ended: no slack but the clocks' rounding.
CLOCK_SLACK = 0.01 * SCALE

AGENTS = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 7)]
SHARED = [f"+9199{i:08d}" for i in range(10)]  # in both campaigns
NORTH = SHARED + [f"+9199{i:08d}" for i in range(100, 106)]
SOUTH = SHARED + [f"+9199{i:08d}" for i in range(200, 206)]


@dataclass
class SharedRun:
    log: list[dict[str, Any]]
    campaign_of_uid: dict[str, str]  # attempt uid (the Make Call's custom_field) -> campaign
    written_at: dict[str, float]  # attempt uid -> when the runner wrote it (created_at)
    holds: int  # times a contact limit held a customer

    def campaign_of(self, row: dict[str, Any]) -> str:
        """Which campaign placed a call of the dial log."""
        return self.campaign_of_uid[row["custom_field"]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_run(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedRun]:
    """north (agents 1-4) and south (agents 3-6) at once, ten numbers in both."""
    tmp = tmp_path_factory.mktemp(f"shared-{request.param}")
    url = (str(tmp / "ledger.sqlite") if request.param == "sqlite"
           else str(request.getfixturevalue("pg_cluster").database()))
    world = Scenario.model_validate({
        "seed": 21, "time_scale": SCALE, "start_time": "2026-03-02T11:00:00+05:30",
        "account": {"rate_limit_per_minute": None},
        "agents": [{"user_id": u, "contact_uri": c} for u, c in AGENTS],
        "behaviour": {"talk_seconds": [20, 60], "agent_ring_seconds": [2, 6],
                      "customer_ring_seconds": [3, 12], "post_processing_seconds": [1, 4],
                      "agent_answer_probability": 0.9, "agent_cancel_probability": 0.1,
                      "customer_answer_probability": 0.3}})
    limits = {"max_calls_per_number": MAX_CALLS, "window_days": WINDOW_DAYS}
    retry = {"max_attempts": 3, "interval_minutes": 1}
    with SimulatorServer(world) as sim:
        env = ccm_env(sim, url, tmp / "reports")
        north = write_campaign(tmp / "north", "north", agents=AGENTS[:4], numbers=NORTH, limits=limits,
                               retry=retry)
        south = write_campaign(tmp / "south", "south", agents=AGENTS[2:], numbers=SOUTH, limits=limits,
                               retry=retry)
        procs = [start_run(north, env, tmp / "north.log"), start_run(south, env, tmp / "south.log")]
        codes = [p.wait(timeout=120) for p in procs]
        texts = [(tmp / f"{x}.log").read_text() for x in ("north", "south")]
        assert codes == [0, 0], "".join(x[-2000:] for x in texts)
        assert all("every customer has a final outcome" in x and "Traceback" not in x for x in texts)
        log = sim.dial_log()
    ledger = Ledger(url)
    with ledger.read() as conn:
        rows = conn.execute(select(t.attempts.c.uid, t.campaigns.c.name, t.attempts.c.created_at)
                            .join(t.campaigns, t.campaigns.c.id == t.attempts.c.campaign_id)).all()
        owners = {uid: name for uid, name, _ in rows}
        written = {uid: float(at) for uid, _, at in rows}
    holds = ledger.count("events", kind="contact_limit_hold")
    ledger.close()
    yield SharedRun(log, owners, written, holds)


def test_wrap_up_in_the_dial_log(shared_run: SharedRun) -> None:
    """An agent's next call, from either campaign, leaves no sooner than the wrap-up after the end of
    a call the agent answered (simulated time)."""
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in shared_run.log:
        by_agent[row["agent"]].append(row)
    gaps, crossed = [], 0
    for rows in by_agent.values():
        rows.sort(key=lambda r: r["created"])
        for before, after in itertools.pairwise(rows):
            if before["agent_answered"] is None:
                continue  # not answered by the agent: no wrap-up (a cool-down, tested elsewhere)
            gap = after["created"] - before["ended"]
            gaps.append(gap)
            crossed += shared_run.campaign_of(before) != shared_run.campaign_of(after)
            assert gap >= WRAP_UP - CLOCK_SLACK, (
                f"{before['agent']}: next call {gap:.1f}s after an answered {before['call_status']} call "
                f"ended (wrap-up {WRAP_UP:g}s)")
    assert WRAP_UP == 15 and len(gaps) >= 20
    assert crossed >= 1, "no shared agent went from one campaign's call to the other's"
    print(f"{len(gaps)} calls after an answered one ({crossed} across campaigns): "
          f"shortest gap {min(gaps):.1f}s, median {sorted(gaps)[len(gaps) // 2]:.1f}s")


def test_a_number_in_two_campaigns_is_never_over_its_limit_nor_in_two_live_calls(
        shared_run: SharedRun) -> None:
    """Per number, across both campaigns: each call starts after the previous one is terminal, and no
    rolling window holds more than the limit of calls that may have rung (refused Make Calls never
    reach the dial log; agent-side outcomes never rang the customer and do not count).

    The limit counts attempts by the time they were written, and each Make Call leaves right after
    its write: exact by write times, and by the dial log's times within that lag (measured here,
    bounded by MAX_LAG)."""
    log, written = shared_run.log, shared_run.written_at
    lag = max(r["created"] - written[r["custom_field"]] for r in log)
    assert 0 <= lag <= MAX_LAG, f"a Make Call left {lag:.1f} simulated seconds after its attempt was written"
    by_number: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in log:
        by_number[row["customer"]].append(row)
    worst = 0
    for number, rows in by_number.items():
        rows.sort(key=lambda r: r["created"])
        for before, after in itertools.pairwise(rows):
            assert after["created"] >= before["terminal"], f"{number} in two live calls at once"
        rang = [r for r in rows if r["call_status"] not in NOT_RINGING_STATUSES]
        worst = max(worst, most_in_a_window(sorted(written[r["custom_field"]] for r in rang), WINDOW))
        by_dial_log = most_in_a_window([r["created"] for r in rang], WINDOW - lag)
        assert worst <= MAX_CALLS and by_dial_log <= MAX_CALLS, f"{number} over its limit: " + "; ".join(
            f"{r['created']:.1f} (written {written[r['custom_field']]:.1f}) {r['call_status']} "
            f"{shared_run.campaign_of(r)}" for r in rows)
    both = [n for n in SHARED if {shared_run.campaign_of(r) for r in by_number[n]} == {"north", "south"}]
    assert len(both) >= 5, "the shared numbers were not dialled by both campaigns"
    assert shared_run.holds >= 1 and worst == MAX_CALLS, "the contact limit never bound: this proves nothing"
    print(f"{len(both)} numbers dialled by both campaigns; {shared_run.holds} contact-limit holds; "
          f"Make Calls up to {lag:.1f}s after their attempt was written")


def most_in_a_window(times: list[float], width: float) -> int:
    """The most of ``times`` (sorted) inside any half-open window ``[t, t + width)``."""
    return max((sum(1 for u in times[i:] if u < t + width) for i, t in enumerate(times)), default=0)
