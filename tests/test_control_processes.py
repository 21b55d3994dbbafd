"""Pause, resume and stop from a second process while ``ccm run`` dials the simulator.

The campaign runs as a real ``ccm run --no-prefect`` child; the controls are the real ``ccm pause``,
``ccm resume`` and ``ccm stop`` commands in other child processes, sharing only the ledger. The
simulator's dial log is the witness of what reached the API, and when (simulated time); the ledger
records who asked for each control, why and when (wall time, converted here to simulated time).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, start_run, write_campaign

SCALE = 20.0
AGENTS = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 5)]
NUMBERS = [f"+9199{i:08d}" for i in range(14)]
# The control's time is taken by the ccm command, an attempt's by the runner, each on its own clock
# a few milliseconds from its commit: 0.05 s of real time between them is no call after the pause.
CLOCK_SLACK = 0.05 * SCALE
# A Make Call leaves right after its attempt's durable commit (0.1-0.2 s of real time at worst on
# this loaded machine): one after the pause must belong to an attempt written before it.
MAX_LAG = 0.5 * SCALE


def ccm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A ``ccm`` command in its own process (as an operator at another terminal runs it)."""
    return subprocess.run([sys.executable, "-m", "ccm_tasks.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sim_time(sim: SimulatorServer, wall: float) -> float:
    """The simulator's clock at wall time ``wall``."""
    return sim.clock.time() - (time.time() - wall) * SCALE


class LedgerView:
    """What the test reads from the shared ledger (read-only)."""

    def __init__(self, url: str, name: str) -> None:
        self.ledger = Ledger(url)
        self.name = name

    @property
    def cid(self) -> int:
        cid = self.ledger.campaign_id(self.name)
        assert cid is not None
        return cid

    def attempts(self) -> list[dict[str, Any]]:
        a = t.attempts.c
        with self.ledger.read() as conn:
            return [dict(r) for r in conn.execute(
                select(a.uid, a.state, a.created_at, a.terminal_at).order_by(a.id)).mappings()]

    def open_attempts(self) -> int:
        return sum(1 for r in self.attempts() if r["state"] in ("created", "placed"))

    def retries(self) -> dict[str, float]:
        """Pending customers that were called already: their next-attempt times."""
        c = t.customers.c
        with self.ledger.read() as conn:
            rows = conn.execute(select(c.customer_key, c.next_attempt_at).where(
                c.state == "pending", c.attempts + c.agent_side_retries + c.no_dial_retries > 0))
            return {k: float(v) for k, v in rows if v is not None}

    def close(self) -> None:
        self.ledger.close()


WORLD = {
    "seed": 11, "time_scale": SCALE,
    "start_time": "2026-03-02T11:00:00+05:30",  # a Monday morning, far from the window's edges
    "account": {"rate_limit_per_minute": None},
    "agents": [{"user_id": u, "contact_uri": c} for u, c in AGENTS],
    "behaviour": {"talk_seconds": [20, 50], "agent_ring_seconds": [2, 5], "customer_ring_seconds": [3, 10],
                  "post_processing_seconds": [1, 3], "agent_answer_probability": 1.0,
                  "customer_answer_probability": 0.5},
}


def test_pause_resume_stop_from_other_processes(tmp_path: Path, ledger_url: str) -> None:
    with SimulatorServer(Scenario.model_validate(WORLD)) as sim:
        env = ccm_env(sim, ledger_url, tmp_path / "reports")
        definition = write_campaign(tmp_path / "c", "shift", agents=AGENTS, numbers=NUMBERS,
                                    retry={"max_attempts": 3, "interval_minutes": 2})
        run = start_run(definition, env, tmp_path / "run.log")
        view = LedgerView(ledger_url, "shift")
        try:
            wait_for("retries scheduled and calls live",
                     lambda: len(view.retries()) >= 2 and view.open_attempts() >= 2, 60)
            paused_at, retries = pause_and_check(sim, view, run, env)
            resume_and_check(sim, view, env, paused_at, retries)
            stop_and_check(sim, view, run, env)
        finally:
            if run.poll() is None:
                run.kill()
            view.close()
    out = (tmp_path / "run.log").read_text()
    assert "Traceback" not in out
    assert "Campaign paused by alice: supervisor briefing" in out and "Campaign resumed by alice" in out
    check_report(tmp_path / "reports" / "shift")


def pause_and_check(sim: SimulatorServer, view: LedgerView, run: subprocess.Popen[bytes],
                    env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """``ccm pause``: no attempt written and no Make Call after it, live calls followed to the end,
    retries and pending customers held with their times."""
    out = ccm("pause", "shift", "--by", "alice", "--reason", "supervisor briefing", env=env)
    assert out.returncode == 0, out.stderr
    assert "paused: no new calls" in out.stdout
    control = view.ledger.control(view.cid)
    assert (control.action, control.by, control.reason) == ("pause", "alice", "supervisor briefing")
    paused_at = sim_time(sim, float(control.at or 0))
    retries, live = view.retries(), view.open_attempts()
    wait_for("the live calls to end", lambda: view.open_attempts() == 0, 30)
    status = ccm("status", "shift", env=env).stdout
    assert re.search(r"^shift\s+paused\s", status, re.M) and "pause by alice at" in status, status
    time.sleep(3.0)  # a minute of simulated time paused: retries fall due, nothing is dialled
    assert run.poll() is None, "the run ended while paused"
    late = [r["created_at"] - paused_at for r in view.attempts() if r["created_at"] > paused_at + CLOCK_SLACK]
    assert late == [], f"attempts written {late} simulated seconds after the pause"
    log = sim.dial_log()
    assert calls_after(log, view, paused_at) == [], "a Make Call after the pause"
    assert len(log) == len(view.attempts()), "a Make Call without an attempt, or one not sent"
    assert all(r["terminal"] <= sim.clock.time() for r in log), "a call still live while paused"
    still = view.retries()
    assert {k: still.get(k) for k in retries} == retries, "a retry time moved while paused"
    print(f"paused with {live} live calls and {len(retries)} retries held")
    return paused_at, retries


def resume_and_check(sim: SimulatorServer, view: LedgerView, env: dict[str, str], paused_at: float,
                     retries: dict[str, float]) -> None:
    """``ccm resume``: dialling restarts, and a held retry still waits for its own time."""
    out = ccm("resume", "shift", "--by", "alice", "--reason", "briefing over", env=env)
    assert out.returncode == 0 and "resumed: dialling restarts" in out.stdout, out.stdout + out.stderr
    resumed_at = sim_time(sim, float(view.ledger.control(view.cid).at or 0))
    wait_for("dialling after the resume", lambda: len([r for r in sim.dial_log()
                                                       if r["created"] >= resumed_at]) >= 3, 15)
    wait_for("a held retry dialled", lambda: {r["customer"] for r in sim.dial_log()
                                              if r["created"] > paused_at} & set(retries), 30)
    for row in sim.dial_log():
        if row["created"] > paused_at and row["customer"] in retries:
            assert row["created"] >= retries[row["customer"]] - CLOCK_SLACK, "a retry dialled early"


def stop_and_check(sim: SimulatorServer, view: LedgerView, run: subprocess.Popen[bytes],
                   env: dict[str, str]) -> None:
    """``ccm stop``: no new call, the run ends once its live calls are over; who, why and when shown."""
    wait_for("calls live to stop", lambda: view.open_attempts() >= 1, 15)
    out = ccm("stop", "shift", "--by", "bob", "--reason", "end of shift", env=env)
    assert out.returncode == 0 and "stopping: no new calls" in out.stdout, out.stdout + out.stderr
    stopped_at = sim_time(sim, float(view.ledger.control(view.cid).at or 0))
    assert run.wait(timeout=30) == 0
    log = sim.dial_log()
    assert [r for r in view.attempts() if r["created_at"] > stopped_at + CLOCK_SLACK] == []
    assert calls_after(log, view, stopped_at) == [], "a Make Call after the stop"
    assert view.open_attempts() == 0 and len(log) == len(view.attempts())
    assert all(r["terminal"] <= sim.clock.time() for r in log)
    states = {r.state for r in view.ledger.customer_rows(view.cid)}
    assert "pending" in states and "calling" not in states  # the rest wait for a later run
    status = ccm("status", "shift", env=env).stdout
    assert re.search(r"^shift\s+stopped\s.*stopped by bob: end of shift", status, re.M), status
    assert re.search(r"last control: stop by bob at 2\d{3}-\d\d-\d\d \d\d:\d\d:\d\d IST: end of shift",
                     status), status


def calls_after(log: list[dict[str, Any]], view: LedgerView, at: float) -> list[dict[str, Any]]:
    """Make Calls that reached the simulator after ``at`` without their attempt written before it
    (within the clocks' slack); every Make Call leaves within MAX_LAG of its write."""
    written = {r["uid"]: float(r["created_at"]) for r in view.attempts()}
    assert all(0 <= r["created"] - written[r["custom_field"]] <= MAX_LAG for r in log)
    return [r for r in log if r["created"] > at and written[r["custom_field"]] > at + CLOCK_SLACK]


def check_report(folder: Path) -> None:
    """The report the run wrote at its end: the run stopped by bob, and every control with its time."""
    import openpyxl

    (xlsx,) = folder.glob("*/outcomes.xlsx")
    book = openpyxl.load_workbook(xlsx, read_only=True)
    runs = [r for r in book["Runs"].iter_rows(min_row=2, values_only=True) if r[0] is not None]
    assert runs[-1][3:6] == ("Stopped by an operator", "stopped", "stopped by bob: end of shift"), runs
    controls = [r for r in book["Controls"].iter_rows(min_row=2, values_only=True) if r[0] is not None]
    assert [(r[1], r[2], r[3]) for r in controls] == [
        ("paused", "alice", "supervisor briefing"), ("resumed", "alice", "briefing over"),
        ("stopped", "bob", "end of shift")]
    assert all(isinstance(r[0], datetime) for r in controls)
