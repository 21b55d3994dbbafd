"""Real processes: two campaigns sharing agents, and a runner killed with SIGKILL again and again.

Each child is the real ``ccm run --no-prefect`` dialling a simulator over HTTP, with one SQLite
ledger file shared by all of them. The simulator's dial log is the witness.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, start_run, write_campaign
from tests.dialer.harness import check_dial_log

FINAL = {"completed", "customer_unanswered", "agent_unanswered", "agent_canceled", "agent_no_dial",
         "customer_no_dial", "unknown"}


def numbers(start: int, n: int) -> list[str]:
    return [f"+9199{i:08d}" for i in range(start, start + n)]


def agents(first: int, last: int) -> list[tuple[str, str]]:
    return [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(first, last + 1)]


def scenario(time_scale: float = 600, seed: int = 4, **behaviour: float) -> Scenario:
    return Scenario.model_validate({
        "seed": seed, "time_scale": time_scale,
        "account": {"rate_limit_per_minute": None},
        "agents": [{"user_id": u, "contact_uri": c} for u, c in agents(1, 12)],
        "behaviour": {"talk_seconds": [20, 100], "agent_ring_seconds": [2, 6],
                      "customer_ring_seconds": [3, 15], "post_processing_seconds": [1, 4], **behaviour},
    })


def ledger_finals(ledger_path: Path | str) -> dict[str, dict[str, str | None]]:
    from sqlalchemy import select

    from ccm_tasks.ledger import schema as t

    ledger = Ledger(ledger_path)
    out: dict[str, dict[str, str | None]] = defaultdict(dict)
    with ledger.read() as conn:
        rows = conn.execute(select(t.campaigns.c.name, t.customers.c.customer_key, t.customers.c.state,
                                   t.customers.c.final_status)
                            .join(t.customers, t.customers.c.campaign_id == t.campaigns.c.id))
        for name, key, state, final in rows:
            out[name][key] = final if state == "done" else state
    ledger.close()
    return out


def attempt_uids(ledger_path: Path | str) -> dict[str, str]:
    from sqlalchemy import select

    from ccm_tasks.ledger import schema as t

    ledger = Ledger(ledger_path)
    with ledger.read() as conn:
        uids = dict(conn.execute(select(t.attempts.c.uid, t.attempts.c.state)).all())
    ledger.close()
    return uids


def witness(sim: SimulatorServer, ledger_path: Path | str, max_dials: int) -> list[dict]:
    log = sim.dial_log()
    report = check_dial_log(log, max_dials=max_dials)
    assert report["overlaps"] == [], report["overlaps"][:5]
    assert report["too_many"] == {}, report["too_many"]
    assert sim.counters().get("agent_busy_api", 0) == 0
    sent = [r["custom_field"] for r in log]
    assert len(sent) == len(set(sent)), "one attempt was POSTed twice"
    assert set(sent) <= set(attempt_uids(ledger_path)), "a call placed before its attempt was written"
    return log


def test_two_campaigns_in_two_processes_share_agents(tmp_path: Path, ledger_url: str) -> None:
    ledger = ledger_url
    with SimulatorServer(scenario(customer_answer_probability=0.6)) as sim:
        env = ccm_env(sim, ledger, tmp_path / "reports")
        a = write_campaign(tmp_path / "a", "north", agents=agents(1, 6), numbers=numbers(0, 40))
        b = write_campaign(tmp_path / "b", "south", agents=agents(3, 9), numbers=numbers(1000, 40))
        procs = [start_run(a, env, tmp_path / "a.log"), start_run(b, env, tmp_path / "b.log")]
        codes = [p.wait(timeout=240) for p in procs]
        logs = "".join((tmp_path / f"{x}.log").read_text()[-2000:] for x in "ab")
        assert codes == [0, 0], logs
        log = witness(sim, ledger, max_dials=3 + 3 + 1)
    finals = ledger_finals(ledger)
    assert set(finals) == {"north", "south"}
    for name in ("north", "south"):
        assert len(finals[name]) == 40 and set(finals[name].values()) <= FINAL
    shared = {f"agent-{i:03d}" for i in range(3, 7)}
    by_campaign = defaultdict(set)
    for row in log:
        by_campaign["north" if row["customer"] in set(numbers(0, 40)) else "south"].add(row["agent"])
    # The shared agents really worked for both campaigns, one call at a time.
    assert by_campaign["north"] & by_campaign["south"] & shared


@pytest.mark.slow
# SQLite only: the same kill-and-resume runs on PostgreSQL in tests/dialer/test_crash_recovery.py.
@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_sigkill_at_random_points_then_resume(tmp_path: Path, ledger_url: str) -> None:
    rng = random.Random(20261120)
    ledger = ledger_url
    kills = 0
    # Sized so that twelve kill cycles cannot finish it (~25 s of dialling at 120x).
    with SimulatorServer(scenario(time_scale=120, customer_answer_probability=0.5,
                                  agent_cancel_probability=0.05)) as sim:
        env = ccm_env(sim, ledger, tmp_path / "reports")
        definition = write_campaign(tmp_path / "c", "crashy", agents=agents(1, 6), numbers=numbers(0, 150))
        while kills < 12:
            proc = start_run(definition, env, tmp_path / "run.log")
            if kills % 4 == 3:  # now and then during start-up (resume, recovery)
                time.sleep(rng.uniform(0.3, 1.5))
            else:  # mostly while calls are live: start-up takes longer on a busy machine
                before = len(sim.dial_log())
                deadline = time.monotonic() + 30
                while len(sim.dial_log()) == before and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 1.5))
            if proc.poll() is not None:
                break  # finished before we could kill it
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        for _ in range(5):  # then let it finish, resuming after every kill
            proc = start_run(definition, env, tmp_path / "run.log")
            if proc.wait(timeout=240) == 0 and all(
                    v in FINAL for v in ledger_finals(ledger)["crashy"].values()):
                break
        log = witness(sim, ledger, max_dials=3 + 3 + 1)
    finals = ledger_finals(ledger)["crashy"]
    assert kills >= 10
    assert len(finals) == 150 and set(finals.values()) <= FINAL, Counter(finals.values())
    # Customers whose Make Call outcome became unknown in a crash were never dialled after it.
    uids = attempt_uids(ledger)
    for number, final in finals.items():
        calls = sorted((r for r in log if r["customer"] == number), key=lambda r: r["created"])
        unknown_at = [r["created"] for r in calls if uids.get(r["custom_field"]) == "unknown"]
        if unknown_at:
            assert final == "unknown" and calls[-1]["created"] == unknown_at[-1]
    text = (tmp_path / "run.log").read_text()
    assert "Traceback" not in text
    assert "resuming: confirming call" in text  # the kills did land while calls were live


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)  # about time zones, not the ledger
def test_recipients_outside_their_own_hours_are_never_dialled(tmp_path: Path, ledger_url: str) -> None:
    """``ccm run`` (a real child sharing the simulator's clock) with the window 09:00-20:00
    Asia/Kolkata, started at 19:00 IST: Indian numbers at once, New York numbers only from 09:00 in
    New York (19:30 IST), Los Angeles numbers never (their 09:00 comes after 20:00 IST, when the
    run ends with them waiting). 120x: the child's start-up (a few real seconds) stays well before
    New York opens."""
    from datetime import UTC, datetime

    start = datetime(2026, 12, 2, 13, 30, tzinfo=UTC)  # 19:00 IST, 08:30 in New York, 05:30 in LA
    ny_opens = datetime(2026, 12, 2, 14, 0, tzinfo=UTC).timestamp()
    closes = datetime(2026, 12, 2, 14, 30, tzinfo=UTC).timestamp()  # 20:00 IST
    india, new_york = numbers(0, 6), [f"+1212555{i:04d}" for i in range(4)]
    los_angeles = [f"+1310555{i:04d}" for i in range(3)]
    world = Scenario.model_validate({
        "seed": 3, "time_scale": 120, "start_time": start.isoformat(),
        "account": {"rate_limit_per_minute": None},
        "agents": [{"user_id": u, "contact_uri": c} for u, c in agents(1, 3)],
        "behaviour": {"talk_seconds": [30, 60], "customer_answer_probability": 1.0,
                      "agent_answer_probability": 1.0, "agent_cancel_probability": 0.0}})
    with SimulatorServer(world) as sim:
        env = ccm_env(sim, ledger_url, tmp_path / "reports")
        definition = write_campaign(tmp_path / "c", "zones", agents=agents(1, 3),
                                    numbers=india + new_york + los_angeles,
                                    customers={"countries": ["IN", "US"]},
                                    window={"start": "09:00", "end": "20:00", "timezone": "Asia/Kolkata"},
                                    dialer={"wrap_up_seconds": 0})
        proc = start_run(definition, env, tmp_path / "run.log")
        assert proc.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-3000:]
        log = sim.dial_log()
    text = (tmp_path / "run.log").read_text()
    first = {n: min((r["created"] for r in log if r["customer"] == n), default=None)
             for n in india + new_york}
    assert all(first[n] is not None and first[n] < ny_opens for n in india[:3]), text[-2000:]  # at once
    assert all(first[n] is not None and first[n] >= ny_opens for n in new_york), first  # from their 09:00
    assert not [r for r in log if r["customer"] in los_angeles]  # never outside their own hours
    assert all(r["created"] < closes for r in log)  # nobody after 20:00 IST
    ledger = Ledger(ledger_url)
    pending = {r.customer_key for r in ledger.customer_rows(ledger.campaign_id("zones") or 0)
               if r.state == "pending"}
    ledger.close()
    assert set(los_angeles) <= pending  # waiting, not failed
