"""The dialer's pure parts: retry policy, calling window, API budget, queue and agent pool."""

from __future__ import annotations

import asyncio
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from ccm_tasks.clock import ManualClock
from ccm_tasks.dialer.agents import AgentPool, AgentSlot
from ccm_tasks.dialer.budget import ApiBudget
from ccm_tasks.dialer.policy import Counts, Policy, decide
from ccm_tasks.dialer.queue import CustomerEntry, CustomerQueue
from ccm_tasks.dialer.window import DialWindow

IST = ZoneInfo("Asia/Kolkata")


def ist(*args: int) -> float:
    return datetime(*args, tzinfo=IST).timestamp()


# ----------------------------------------------------------------------------- policy

P = Policy(max_attempts=3, interval_seconds=600, max_agent_side_retries=2)


def test_completed_is_final() -> None:
    d = decide("completed", Counts(), P, 0)
    assert d.final == "completed" and d.counts.attempts == 1


def test_customer_unanswered_retried_after_interval_until_max_attempts() -> None:
    counts = Counts()
    times = []
    for _ in range(3):
        d = decide("customer_unanswered", counts, P, 1000)
        counts = d.counts
        times.append(d.retry_at)
    assert times == [1600, 1600, None] and d.final == "customer_unanswered" and counts.attempts == 3


def test_exponential_backoff() -> None:
    p = Policy(max_attempts=4, interval_seconds=60, backoff="exponential")
    counts, delays = Counts(), []
    for _ in range(3):
        d = decide("customer_unanswered", counts, p, 0)
        delays.append(d.retry_at)
        counts = d.counts
    assert delays == [60, 120, 240]


@pytest.mark.parametrize("status", ["agent_unanswered", "agent_canceled", "agent_no_dial"])
def test_agent_side_outcomes_requeue_without_using_an_attempt(status: str) -> None:
    d1 = decide(status, Counts(), P, 50)
    assert d1.front and d1.retry_at == 50 and d1.agent_cooldown and d1.counts.attempts == 0
    d2 = decide(status, d1.counts, P, 60)
    assert d2.front and d2.counts.agent_side_retries == 2
    d3 = decide(status, d2.counts, P, 70)  # bound reached; not in retry_on -> final
    assert d3.final == status and d3.counts.attempts == 1


def test_agent_side_beyond_bound_retried_if_listed() -> None:
    p = Policy(max_attempts=2, max_agent_side_retries=0, interval_seconds=5,
               retry_on=frozenset({"agent_unanswered"}))
    d = decide("agent_unanswered", Counts(), p, 0)
    assert d.retry_at == 5 and not d.front and d.counts.attempts == 1


def test_customer_no_dial_retried_once() -> None:
    d1 = decide("customer_no_dial", Counts(), P, 0)
    assert d1.retry_at == 600 and d1.counts.attempts == 0
    d2 = decide("customer_no_dial", d1.counts, P, 0)
    assert d2.final == "customer_no_dial"


def test_status_not_in_retry_on_is_final_at_once() -> None:
    p = Policy(retry_on=frozenset())
    assert decide("customer_unanswered", Counts(), p, 0).final == "customer_unanswered"
    assert P.max_dials() == 3 + 2 + 1


# ----------------------------------------------------------------------------- window

def test_default_window_in_ist() -> None:
    w = DialWindow()
    assert not w.is_open(ist(2026, 11, 20, 8, 59))
    assert w.is_open(ist(2026, 11, 20, 9, 0)) and w.is_open(ist(2026, 11, 20, 20, 59, 59))
    assert not w.is_open(ist(2026, 11, 20, 21, 0))
    assert w.next_open(ist(2026, 11, 20, 22, 0)) == ist(2026, 11, 21, 9, 0)
    assert w.closes_at(ist(2026, 11, 20, 10, 0)) == ist(2026, 11, 20, 21, 0)
    # 09:00 IST is 03:30 UTC: the window is about the campaign's zone, not the machine's.
    assert w.is_open(datetime(2026, 11, 20, 3, 30, tzinfo=ZoneInfo("UTC")).timestamp())


def test_days_start_and_end() -> None:
    w = DialWindow(start=time(8), end=time(19), days=("mon", "tue", "wed", "thu", "fri"),
                   start_at=ist(2026, 11, 20, 12, 0), end_at=ist(2026, 11, 24, 10, 0))
    assert not w.is_open(ist(2026, 11, 20, 11, 0))  # before start_at
    assert w.next_open(ist(2026, 11, 20, 11, 0)) == ist(2026, 11, 20, 12, 0)
    assert w.next_open(ist(2026, 11, 20, 19, 30)) == ist(2026, 11, 23, 8, 0)  # Fri evening -> Mon
    assert w.closes_at(ist(2026, 11, 24, 9, 0)) == ist(2026, 11, 24, 10, 0)  # end_at cuts the day
    assert w.ended(ist(2026, 11, 24, 10, 0)) and w.next_open(ist(2026, 11, 24, 10, 0)) is None
    assert "opens" in w.describe(ist(2026, 11, 21, 12, 0))


# ----------------------------------------------------------------------------- budget

async def test_budget_never_exceeds_the_limit_in_any_minute() -> None:
    clock = ManualClock(0.0)
    budget = ApiBudget(200, clock)
    stamps: list[float] = []

    async def user(kind: str, n: int) -> None:
        for _ in range(n):
            await budget.acquire(kind)  # type: ignore[arg-type]
            stamps.append(clock.time())

    await asyncio.gather(user("post", 300), user("get", 500), user("get", 200))
    stamps.sort()
    j = 0
    worst = 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 60:
            j += 1
        worst = max(worst, i - j + 1)
    assert len(stamps) == 1000
    assert worst <= 0.95 * 200
    assert stamps[-1] >= (1000 - 3) / budget.rate - 1  # and no faster than the rate


async def test_posts_first_but_gets_not_starved() -> None:
    clock = ManualClock(0.0)
    budget = ApiBudget(60, clock, burst=1)
    order: list[str] = []

    async def one(kind: str) -> None:
        await budget.acquire(kind)  # type: ignore[arg-type]
        order.append(kind)

    await budget.acquire("get")  # spend the burst
    tasks = [asyncio.create_task(one("get")) for _ in range(10)]
    tasks += [asyncio.create_task(one("post")) for _ in range(10)]
    await asyncio.gather(*tasks)
    first_ten = order[:10]
    assert first_ten.count("post") >= 7 and "get" in first_ten


async def test_429_shrinks_and_pauses() -> None:
    clock = ManualClock(0.0)
    budget = ApiBudget(120, clock)
    rate = budget.rate
    budget.on_rate_limited(5.0)
    assert budget.rate == pytest.approx(rate * 0.8) and budget.rate_limited == 1
    start = clock.time()
    await budget.acquire("get")
    assert clock.time() - start >= 5.0


def test_429s_of_one_episode_shrink_the_rate_once() -> None:
    # Requests already in flight when the window filled all come back 429, and a server that says
    # Retry-After: 1 refuses again when the pause ends: one overload, one shrink.
    clock = ManualClock(0.0)
    budget = ApiBudget(120, clock)
    rate = budget.rate
    for _ in range(9):
        budget.on_rate_limited(5.0)
    assert budget.rate == pytest.approx(rate * 0.8) and budget.rate_limited == 9
    clock.advance(6.0)  # the pause is over, but 6 s after the first 429: the same overload
    budget.on_rate_limited(1.0)
    assert budget.rate == pytest.approx(rate * 0.8)
    clock.advance(5.0)  # 11 s after the episode began, and not paused: a new episode
    budget.on_rate_limited(1.0)
    assert budget.rate == pytest.approx(rate * 0.8 * 0.8)


# ----------------------------------------------------------------------------- queue and pool

def test_sticky_customer_waits_for_its_agent_then_goes_to_anyone() -> None:
    q = CustomerQueue(sticky_wait=60, sticky_agents={"a1", "a2"})
    sticky = CustomerEntry(1, "+911", "a2")
    plain = CustomerEntry(2, "+912", None)
    q.add(sticky, 0)
    q.add(plain, 0)
    assert q.pop_for("a1") is plain  # a1 skips a2's customer
    assert q.pop_for("a1") is None
    q.promote(61)
    assert q.pop_for("a1") is sticky  # waited long enough
    q.add(CustomerEntry(3, "+913", "a2"), 100)
    assert q.pop_for("a2").id == 3  # type: ignore[union-attr]


def test_front_beats_ready_and_retries_wait() -> None:
    q = CustomerQueue(sticky_wait=0, sticky_agents=set())
    a, b, c = (CustomerEntry(i, f"+91{i}", None) for i in range(3))
    q.add(a, 0)
    q.schedule(b, 100, 0)
    q.put_back_front(c, 0)
    assert q.waiting == 3 and q.next_wake() == 100
    assert q.pop_for("x") is c and q.pop_for("x") is a and q.pop_for("x") is None
    q.promote(100)
    assert q.pop_for("x") is b and q.waiting == 0


def test_longest_idle_agent_first() -> None:
    agents = [AgentSlot(f"a{i}", f"a{i}", None, None) for i in range(3)]
    pool = AgentPool(agents, now=100)
    assert pool.pop_longest_idle().key == "a0"  # type: ignore[union-attr]
    pool.set_idle(agents[0], 200)
    assert pool.pop_longest_idle().key == "a1"  # type: ignore[union-attr]
    pool.set_timed(agents[2], "cooldown", 300)
    assert pool.pop_longest_idle().key == "a0"  # type: ignore[union-attr]
    assert pool.next_wake() == 300 and pool.wake(300)[0][0].key == "a2"
    pool.drop(agents[1], "invalid")
    assert pool.counts().dropped == 1 and pool.usable()


def test_many_processes_can_open_a_new_ledger_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    code = ("import sys; from ccm_tasks.ledger import Ledger; "
            "l = Ledger(sys.argv[1]); l.register_holder('x'); print('ok')")
    path = tmp_path / "new.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o[0].strip() for o in outs] == ["ok"] * 6, [o[1][-300:] for o in outs]


def test_operator_lists_and_releases_a_stuck_agent(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from ccm_tasks.cli import main
    from ccm_tasks.ledger import Ledger

    ledger = Ledger(tmp_path / "l.sqlite")
    holder = ledger.register_holder("t")
    cid = ledger.upsert_campaign("c", definition_path="-", timezone="Asia/Kolkata", now=1.0)
    ledger.sync_customers(cid, [{"customer_key": "+911", "phone": "+911"}], 1.0)
    claim = ledger.claim(agent_key="agent-007", agent_name=None, holder_id=holder, campaign_id=cid,
                         run_id=None, customer_id=ledger.customer_rows(cid)[0].id, attempt_no=1, now=2.0)
    ledger.mark_placed(claim.attempt_id or 0, agent_key="agent-007", call_sid="sid-9", details={}, now=3.0)
    assert main(["agents", "--ledger", str(tmp_path / "l.sqlite")]) == 0
    assert "agent-007" in capsys.readouterr().out
    assert main(["agents", "release", "agent-007", "--ledger", str(tmp_path / "l.sqlite")]) == 2  # no reason
    assert main(["agents", "release", "agent-007", "--reason", "call ended, confirmed with Exotel support",
                 "--ledger", str(tmp_path / "l.sqlite")]) == 0
    assert ledger.leases() == [] and ledger.count("events", kind="lease_released_by_operator") == 1


def test_the_progress_line_names_each_reason_an_agent_is_not_taking_calls() -> None:
    """Cooling down, unavailable, held by another run and quarantined are counted apart (not one
    "paused" count), from the agents' own states."""
    from ccm_tasks.dialer.progress import AgentCounts, Progress, RequestCounts

    clock = ManualClock(1000.0)
    agents = [AgentSlot(f"a{i}", f"a{i}", None, None) for i in range(7)]
    pool = AgentPool(agents, clock.time())
    pool.set_calling(agents[0])
    pool.set_timed(agents[1], "wrap_up", 1015.0, "after-call work")
    pool.set_timed(agents[2], "cooldown", 1060.0, "busy (10706)")
    pool.set_timed(agents[3], "paused", 1300.0, "device off (1012)")
    pool.set_timed(agents[4], "elsewhere", 1100.0)
    pool.set_timed(agents[5], "quarantined", 1600.0)
    counts = pool.counts()
    assert counts == AgentCounts(busy=1, idle=1, wrap_up=1, cooling_down=1, unavailable=1, elsewhere=1,
                                 quarantined=1)
    line = Progress(campaign="c", phase="dialling", detail="", total=10, done=3, live_calls=1, placed=4,
                    outcomes={"completed": 3}, agents=counts, requests=RequestCounts(), stuck=0, unknown=0,
                    time=clock.time()).line()
    assert line == ("3/10 final | 1 live | agents 1 busy, 1 idle, 1 wrap-up, 1 cooling down, 1 unavailable, "
                    "1 held by another run, 1 quarantined | completed 3")
