"""Dialer benchmark (issue 4). Prints figures; not a pass/fail test.

    .venv/bin/python bench/bench_dialer.py                 # (a), (b) and (c) with 100,000 customers
    .venv/bin/python bench/bench_dialer.py --only a,b      # just the polling runs
    .venv/bin/python bench/bench_dialer.py --only c --customers 20000

(a) 20 agents and (b) 200 agents on a 200 requests/min budget, 3-minute mean handling time, one
simulated hour, against the simulator in its own process, three ways: the engine with status
callbacks (the simulator POSTs them to a receiver in the engine's process), the engine polling
only, and a naive dialer. Figures in simulated seconds from the
simulator's dial log: agent utilisation, the gap between a call turning terminal and that agent's
next Make Call (median, p95), API requests per attempt, 429s, overlaps. Baseline in the same run:
a naive dialer (one loop per agent, a GET every 10 s, a plain token bucket at 200/min).

(c) 1,000 agents, near-zero call times: CPU per call and peak RSS of the engine process beside a
bare asyncio+httpx loop doing the same POST + GET against the same simulator.

(d) 4 campaigns in 4 processes sharing 200 agents and the account's budget through one ledger
(SQLite and PostgreSQL), beside (b)'s single process on the same load.

(e) ``--only e``: one polling campaign in real time while another process syncs 1,000,000
customers into the same SQLite ledger: how late the engine's event loop wakes and how long an
ended call waits for its agent's next call, with the ledger on its thread and on the event loop.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
HANDLING = {"talk_seconds": {"kind": "lognormal", "mean": 150, "sd": 60, "min": 10, "max": 900},
            "agent_ring_seconds": [3, 8], "customer_ring_seconds": [5, 20],
            "post_processing_seconds": [2, 5], "customer_answer_probability": 0.75}


def start_simulator(scenario: dict[str, Any]) -> tuple[subprocess.Popen[str], str, str | None]:
    """``ccm simulator`` in its own process: (process, base URL, its clock's CCM_SIM_CLOCK spec, None
    at time scale 1). Children share the clock through :func:`ccm_tasks.target.shared_clock`."""
    path = Path(tempfile.mkdtemp()) / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    proc = subprocess.Popen([sys.executable, "-m", "ccm_tasks.cli", "simulator", "--port", "0",
                             "--scenario", str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split("listening on ")[1].split()[0]
    exports = proc.stdout.readline()
    clock = exports.split("CCM_SIM_CLOCK=")[1].split()[0] if "CCM_SIM_CLOCK=" in exports else None
    return proc, url, clock


def child(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "_children.py"), kind, json.dumps(spec)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def sim_state(url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    log = httpx.get(f"{url}/_sim/dial-log", timeout=120).json()["calls"]
    stats = httpx.get(f"{url}/_sim/stats", timeout=30).json()
    per_minute = {int(k): v for k, v in stats["requests_per_minute"].items()}
    return log, {**stats["counters"], "per_minute": per_minute}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def analyse(
    log: list[dict[str, Any]], counters: dict[str, Any], agents: int, per_minute: int
) -> dict[str, Any]:
    gaps, answered_gaps, overlaps = [], [], 0
    agent_side = {"agent_unanswered", "agent_canceled", "agent_no_dial"}
    for a, b in _next_calls(log):
        gap = b["created"] - a["terminal"]
        overlaps += gap < 0
        gaps.append(gap)
        if a["call_status"] not in agent_side:  # the engine cools an agent down after these
            answered_gaps.append(gap)
    start = min(r["created"] for r in log)
    end = max(r["terminal"] for r in log)
    busy = sum(r["ended"] - r["created"] for r in log)
    talk = sum(r["talk_seconds"] for r in log)
    requests = counters.get("post_requests", 0) + counters.get("get_requests", 0)
    # "While calls are live": the whole simulated minutes between the first and the last Make Call.
    minutes = counters["per_minute"]
    live = [minutes.get(m, 0) for m in range(int(start // 60) + 1, int(max(r["created"] for r in log) // 60))]
    return {
        "calls": len(log),
        "completed": sum(r["call_status"] == "completed" for r in log),
        "utilisation_busy": busy / (agents * (end - start)),
        "utilisation_talk": talk / (agents * (end - start)),
        "gap_median_s": statistics.median(gaps) if gaps else float("nan"),
        "gap_p95_s": pct(gaps, 0.95),
        "gap_answered_median_s": statistics.median(answered_gaps) if answered_gaps else float("nan"),
        "gap_answered_p95_s": pct(answered_gaps, 0.95),
        "requests_per_attempt": requests / max(1, len(log)),
        "requests_per_completed": requests / max(1, sum(r["call_status"] == "completed" for r in log)),
        "rate_limited_429": counters.get("rate_limited", 0),
        "overlaps": overlaps,
        "budget_used": statistics.mean(live) / per_minute if live else float("nan"),
        "peak_minute": max(minutes.values()) if minutes else 0,
        "sim_seconds": end - start,
    }


def polling_run(name: str, agents: int, minutes: int, scale: float, per_minute: int = 200,
                wrap_up: float = 15.0) -> None:
    customers = agents * minutes  # never runs dry
    scenario = {"seed": 11, "time_scale": scale, "account": {"rate_limit_per_minute": per_minute},
                "agent_pool": {"count": agents, "user_id_prefix": "agent-"}, "behaviour": HANDLING}
    # The pool names agents agent-001..; the children use agent-0001.. for up to 9999 agents.
    scenario["agent_pool"]["user_id_prefix"] = "agent-0" if agents < 1000 else "agent-"
    rows = []
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("engine+callbacks", "engine", {"callbacks": True}),
        ("engine, polling", "engine", {}),
        ("naive 10 s poll", "bare", {"poll_every": 10.0}),
    ]
    for label, kind, extra in runs:
        proc, url, clock = start_simulator(scenario)
        try:
            t0 = time.perf_counter()
            res = child(kind, {"url": url, "clock": clock, "agents": agents, "customers": customers,
                               "per_minute": per_minute, "duration": minutes * 60, "wrap_up": wrap_up,
                               **extra})
            log, counters = sim_state(url)
        finally:
            proc.terminate()
        stats = analyse(log, counters, agents, per_minute)
        rows.append((label, stats, res, time.perf_counter() - t0))
    print(f"\n({name}) {agents} agents, {per_minute} requests/min, {minutes} simulated minutes "
          f"at {scale:g}x, wrap-up {wrap_up:g} s")
    print(f"{'':18} {'calls':>6} {'util busy':>9} {'util talk':>9} {'gap p50':>8} {'gap p95':>8} "
          f"{'p50*':>6} {'p95*':>6} "
          f"{'req/att':>8} {'req/compl':>9} {'budget':>7} {'peak/min':>8} {'429s':>5} {'overlap':>7}")
    for label, s, _res, _wall in rows:
        print(f"{label:18} {s['calls']:6d} {s['utilisation_busy']:9.1%} {s['utilisation_talk']:9.1%} "
              f"{s['gap_median_s']:7.1f}s {s['gap_p95_s']:7.1f}s {s['gap_answered_median_s']:5.1f}s "
              f"{s['gap_answered_p95_s']:5.1f}s {s['requests_per_attempt']:8.2f} "
              f"{s['requests_per_completed']:9.2f} {s['budget_used']:7.1%} {s['peak_minute']:8d} "
              f"{s['rate_limited_429']:5d} "
              f"{s['overlaps']:7d}")


def shared_run(minutes: int, scale: float, backends: list[str], per_minute: int = 200,
               wrap_up: float = 15.0, processes: int = 4) -> None:
    """(d) One account, ``processes`` campaigns in as many processes sharing 200 agents through one
    ledger (leases and the account's budget in it), callbacks on and off, on each backend."""
    agents = 200
    scenario = {"seed": 11, "time_scale": scale, "account": {"rate_limit_per_minute": per_minute},
                "agent_pool": {"count": agents, "user_id_prefix": "agent-0"}, "behaviour": HANDLING}
    print(f"\n(d) {processes} campaigns in {processes} processes sharing {agents} agents, one ledger, "
          f"{per_minute} requests/min, {minutes} simulated minutes at {scale:g}x, wrap-up {wrap_up:g} s")
    print(f"{'':28} {'calls':>6} {'util busy':>9} {'gap p50':>8} {'p50*':>6} {'req/att':>8} "
          f"{'budget':>7} {'busiest 60 s':>12} {'429s':>5} {'overlap':>7}")
    cluster = None
    try:
        for backend in backends:
            if backend == "postgresql" and cluster is None:
                sys.path.insert(0, str(ROOT))
                from tests.pg import start_cluster

                cluster = start_cluster()
            for callbacks in (True, False):
                ledger = (cluster.database() if backend == "postgresql" and cluster is not None
                          else str(Path(tempfile.mkdtemp()) / "shared.sqlite"))
                proc, url, clock = start_simulator(scenario)
                try:
                    spec = {"url": url, "clock": clock, "agents": agents, "customers": agents * minutes,
                            "per_minute": per_minute, "duration": minutes * 60, "wrap_up": wrap_up,
                            "ledger": ledger, "shared_budget": True, "callbacks": callbacks}
                    children = [subprocess.Popen(
                        [sys.executable, str(ROOT / "bench" / "_children.py"), "engine",
                         json.dumps({**spec, "campaign": f"c{i}", "customer_offset": i * 10**6})],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                        for i in range(processes)]
                    for c in children:
                        _out, err = c.communicate()
                        if c.returncode != 0:
                            raise RuntimeError(err[-3000:])
                    log, counters = sim_state(url)
                    busiest = httpx.get(f"{url}/_sim/stats", timeout=30).json()["busiest_60s"]
                finally:
                    proc.terminate()
                st = analyse(log, counters, agents, per_minute)
                label = f"{backend}, {'callbacks' if callbacks else 'polling'}"
                print(f"{label:28} {st['calls']:6d} {st['utilisation_busy']:9.1%} "
                      f"{st['gap_median_s']:7.1f}s {st['gap_answered_median_s']:5.1f}s "
                      f"{st['requests_per_attempt']:8.2f} {st['budget_used']:7.1%} "
                      f"{busiest:5d} ({busiest / per_minute:4.0%}) {st['rate_limited_429']:5d} "
                      f"{st['overlaps']:7d}")
    finally:
        if cluster is not None:
            cluster.stop()


def contention_run(seconds: int, bulk: int, agents: int = 50, start_after: float = 20.0) -> None:
    """(e) One polling campaign in real time while another process syncs ``bulk`` new customers
    into the same SQLite ledger: the engine's ledger calls on their thread (now) and on the event
    loop (before issue 12), each beside the same run without the other process."""
    scenario = {"seed": 5, "time_scale": 1, "account": {"rate_limit_per_minute": 600},
                "agent_pool": {"count": agents, "user_id_prefix": "agent-0"},
                "behaviour": {"agent_ring_seconds": [1, 3], "customer_ring_seconds": [2, 6],
                              "talk_seconds": [5, 20], "post_processing_seconds": [1, 2],
                              "customer_answer_probability": 0.75}}
    print(f"\n(e) {agents} agents polling, real time, {seconds} s; another process syncs {bulk:,} "
          f"customers into the same SQLite ledger from {start_after:g} s")
    print(f"{'':34} {'calls':>6} {'per s':>9} {'its sync':>9} {'loop late p50':>13} {'p99':>7} "
          f"{'max':>8} {'gap p50':>8} {'gap p95':>8} {'max':>8}")
    for on_loop in (False, True):
        for other in (False, True):
            ledger = str(Path(tempfile.mkdtemp()) / "shared.sqlite")
            proc, url, clock = start_simulator(scenario)
            start_at = time.time() + start_after
            inserter = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "_children.py"), "insert",
                 json.dumps({"ledger": ledger, "customers": bulk, "start_at": start_at})],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) if other else None
            try:
                res = child("engine", {"url": url, "clock": clock, "agents": agents,
                                       "customers": agents * seconds, "per_minute": 600,
                                       "duration": seconds, "ledger": ledger, "probe": True,
                                       "ledger_on_loop": on_loop})
                log, _counters = sim_state(url)
            finally:
                proc.terminate()
            window = (start_at, start_at + 15.0)  # alone: about as long as the other process writes
            sync = "-"
            if inserter is not None:
                out, err = inserter.communicate()
                if inserter.returncode != 0:
                    raise RuntimeError(err[-3000:])
                done = json.loads(out.strip().splitlines()[-1])
                window = (done["started"], done["ended"])
                sync = f"{done['ended'] - done['started']:.1f}s"
            lags = [lag for at, lag in res["lags"] if window[0] <= at <= window[1]]
            gaps = _gaps_after(log, window)
            label = (("ledger on the loop (before)" if on_loop else "ledger thread (now)")
                     + (", other process" if other else ", alone"))
            placed = sum(window[0] <= r["created"] <= window[1] for r in log)
            rate = placed / (window[1] - window[0])
            print(f"{label:34} {placed:6d} {rate:7.2f}/s {sync:>9} {pct(lags, 0.5) * 1000:11.1f}ms "
                  f"{pct(lags, 0.99) * 1000:5.0f}ms {max(lags, default=0) * 1000:6.0f}ms "
                  f"{pct(gaps, 0.5):7.2f}s {pct(gaps, 0.95):7.2f}s {max(gaps, default=0):7.2f}s")
    print("calls: Make Calls placed while the other process wrote (alone: 15 s from the same moment); "
          "loop late: how much later than asked a 10 ms sleep on the engine's event loop woke, in that "
          "span; gap: terminal -> that agent's next Make Call, for calls that ended in it.")


def _gaps_after(log: list[dict[str, Any]], window: tuple[float, float]) -> list[float]:
    """For each call that turned terminal inside ``window``: seconds until its agent's next call."""
    return [b["created"] - a["terminal"] for a, b in _next_calls(log)
            if window[0] <= a["terminal"] <= window[1]]


def _next_calls(log: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each call of the dial log with the same agent's next call."""
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in log:
        by_agent[row["agent"]].append(row)
    for rows in by_agent.values():
        rows.sort(key=lambda r: r["created"])
        yield from itertools.pairwise(rows)


GAP_NOTE = ("gap = a call turning terminal -> that agent's next Make Call (simulated s); p50*/p95*: "
            "after calls the agent answered\n(the engine cools an agent down 60 s after an agent-side "
            "outcome; the naive loop does not). budget: mean requests per minute / limit, over the "
            "minutes between the first and last Make Call.")


def cpu_run(agents: int, customers: int) -> None:
    scenario = {"seed": 3, "time_scale": 1, "account": {"rate_limit_per_minute": None},
                "agent_pool": {"count": agents, "user_id_prefix": "agent-" if agents >= 1000 else "agent-0"},
                "behaviour": {"dial_delay_seconds": 0, "agent_ring_seconds": 0, "customer_ring_seconds": 0,
                              "talk_seconds": {"kind": "fixed", "value": 0, "min": 0},
                              "post_processing_seconds": 0.05, "agent_answer_probability": 1,
                              "customer_answer_probability": 1, "agent_cancel_probability": 0}}
    print(f"\n(c) {agents} agents, {customers} customers, near-zero call times (POST + GET each)")
    print(f"{'':12} {'calls':>7} {'requests':>9} {'wall':>7} {'CPU':>7} {'CPU/call':>9} {'peak RSS':>9} "
          f"{'lost':>5}")
    results = {}
    for label, kind in (("bare loop", "bare"), ("engine", "engine")):
        proc, url, clock = start_simulator(scenario)
        try:
            res = child(kind, {"url": url, "clock": clock, "agents": agents, "customers": customers,
                               "per_minute": 10**9, "poll_every": 0.05, "max_pending_posts": 64})
        finally:
            proc.terminate()
        req = res["requests"]
        n_req = req.get("post_sent", req.get("post", 0)) + req.get("get_sent", req.get("get", 0))
        results[label] = res
        # Answers lost on a broken connection: POSTs whose outcome is unknown (never re-sent) and
        # GETs sent again.
        lost = sum(req.get(k, 0) for k in ("post_lost", "get_lost", "outcome_unknown", "get_retries"))
        print(f"{label:12} {res['placed']:7d} {n_req:9d} {res['wall']:6.1f}s {res['cpu']:6.1f}s "
              f"{1000 * res['cpu'] / max(1, res['placed']):7.2f}ms {res['maxrss_mib']:7.0f}MiB {lost:5d}")
    ratio = (results["engine"]["cpu"] / max(1, results["engine"]["placed"])) / (
        results["bare loop"]["cpu"] / max(1, results["bare loop"]["placed"]))
    print(f"engine CPU per call = {ratio:.2f}x the bare loop (target <= 2x); "
          f"peak RSS {results['engine']['maxrss_mib']:.0f} MiB (target < 500 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c,d")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--minutes", type=int, default=60)
    # 10x: with callbacks the gap is milliseconds of real work, which a higher scale magnifies (each
    # real ms is `scale` ms simulated), and at 30x the engine of (b) is CPU-bound on 2 cores: requests
    # granted in one simulated minute arrive in the next, which earned 429s (measured).
    parser.add_argument("--scale-a", type=float, default=10.0)
    parser.add_argument("--scale-b", type=float, default=10.0)
    # The product's default (dialer.wrap_up_seconds): an agent gets it after every call they
    # answered, in the engine and the naive loop alike; it is part of every p50*/p95* gap.
    parser.add_argument("--wrap-up", type=float, default=15.0)
    parser.add_argument("--scale-d", type=float, default=10.0)
    parser.add_argument("--backends", default="sqlite,postgresql", help="for (d)")
    parser.add_argument("--seconds", type=int, default=120, help="for (e): each run's length")
    parser.add_argument("--bulk", type=int, default=1_000_000, help="for (e): customers synced")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only & {"a", "b"}:
        print(GAP_NOTE)
    if "a" in only:
        polling_run("a", 20, args.minutes, args.scale_a, wrap_up=args.wrap_up)
    if "b" in only:
        polling_run("b", 200, args.minutes, args.scale_b, wrap_up=args.wrap_up)
    if "c" in only:
        cpu_run(1000, args.customers)
    if "d" in only:
        shared_run(args.minutes, args.scale_d, args.backends.split(","), wrap_up=args.wrap_up)
    if "e" in only:
        contention_run(args.seconds, args.bulk)


if __name__ == "__main__":
    main()
