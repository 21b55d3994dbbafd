"""Benchmark: campaign and daily reports from a large ledger, against a bare pandas dump of it.

    .venv/bin/python bench/bench_reports.py [--customers 100000] [--attempts 250000] [--repeat 3]

Builds a synthetic ledger once into bench/results/ (one campaign of ``--customers`` customers with
four extra spreadsheet columns, 60 agents, ``--attempts`` attempts over five days with a realistic
mix: most terminal with the six call statuses, ~2% refused Make Calls, a few unknown outcomes, stuck
and in-flight calls, pending retries and withdrawn customers; a small second campaign), in a child
process with bulk inserts. Then measures each step in a fresh subprocess, so peak RSS
(``resource.getrusage`` ``ru_maxrss`` in the child) belongs to that step alone:

* bare: ``pandas.read_sql`` of the whole attempts table + ``DataFrame.to_csv`` of it; and the same
  for both tables the reports are computed from (attempts and customers);
* campaign: ``build_campaign_report``; then each writer after it (outcomes CSV; outcomes XLSX with
  Summary + charts, Agents, By hour, Outcomes, Attempts, Runs, Glossary); then
  ``write_campaign_report`` whole;
* daily: ``build_daily_report`` for the busiest day; then ``write_daily_report``.

Times exclude interpreter start-up and imports (measured the same way for every step). Targets: all
files (campaign and daily) within 1.5x of the bare dump measured in the same run, and under 1 GiB.
This is not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DATA_VERSION = "3"  # bump to regenerate the ledger (3: wrap-up after answered calls)
T0 = 1_795_000_000.0  # 2026-11-18 (UTC), a Wednesday
ZONE = "Asia/Kolkata"
STATUSES = [("completed", 0.42), ("customer_unanswered", 0.33), ("agent_unanswered", 0.08),
            ("customer_no_dial", 0.06), ("agent_canceled", 0.06), ("agent_no_dial", 0.05)]


def ledger_path(customers: int, attempts: int) -> Path:
    """Where the benchmark ledger lives for these sizes."""
    return RESULTS / f"reports-ledger-{customers}-{attempts}-v{DATA_VERSION}.sqlite"


# --------------------------------------------------------------------------- synthetic ledger


def build_ledger(path: Path, n_customers: int, n_attempts: int) -> None:
    """Write the synthetic ledger with bulk inserts (one transaction per table chunk)."""
    from sqlalchemy import insert

    from ccm_tasks.ledger import Ledger
    from ccm_tasks.ledger import schema as t

    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    ledger = Ledger(tmp)
    rng = random.Random(7)
    holder = ledger.register_holder("bench")
    big = ledger.upsert_campaign("bench", definition_path="bench.yaml", timezone=ZONE, now=T0,
                                 input_summary={"rows_read": n_customers + 4000, "valid": n_customers,
                                                "rejected": 2500, "duplicates": 1200, "suppressed": 300,
                                                "agents": 60, "agents_rejected": 1})
    small = ledger.upsert_campaign("bench-small", definition_path="small.yaml", timezone=ZONE, now=T0)
    agents = [(f"agent-{i:03d}", f"Agent Number {i}") for i in range(1, 61)]
    cities = ["Bengaluru", "Chennai", "Delhi", "Mumbai", "Pune", "Kolkata", "=cmd|' /C calc'!A0"]
    statuses, weights = zip(*STATUSES, strict=True)

    with ledger.write() as conn:
        runs = []
        for day in range(5):
            for cid in (big, small):
                runs.append(conn.execute(insert(t.runs).values(
                    campaign_id=cid, holder_id=holder, started_at=T0 + day * 86400 - 7200,
                    ended_at=T0 + day * 86400 + 36000, status="completed")).inserted_primary_key[0])

    customers: list[dict[str, Any]] = []
    sizes = {big: n_customers, small: max(10, n_customers // 50)}
    for cid, size in sizes.items():
        for i in range(size):
            phone = f"+9199{cid:02d}{i:06d}"
            customers.append({
                "campaign_id": cid, "customer_key": phone, "phone": phone, "source_file": "customers.xlsx",
                "source_sheet": "Sheet1", "source_row": i + 2, "state": "pending", "attempts": 0,
                "agent_side_retries": 0, "no_dial_retries": 0, "updated_at": T0,
                "extra": {"name": f"Customer {i}", "city": rng.choice(cities), "loan_id": f"LN{i:08d}",
                          "note": rng.choice(["", "call after 6", "-prefers Hindi", "VIP"])}})
    _bulk(ledger, t.customers, customers)
    del customers

    # Attempts: customers get 1-5 attempts until the total is reached; the rest are never dialled.
    ids = {cid: list(range(1 + (0 if cid == big else n_customers),
                           1 + (0 if cid == big else n_customers) + size)) for cid, size in sizes.items()}
    plan: list[tuple[int, int, int]] = []  # (campaign, customer id, attempts)
    budget = n_attempts
    for cid in (small, big):
        for customer_id in ids[cid]:
            if budget <= 0:
                break
            k = min(budget, rng.choices((1, 2, 3, 4, 5), (25, 25, 25, 15, 10))[0])
            plan.append((cid, customer_id, k))
            budget -= k
    rng.shuffle(plan)
    attempts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    clock = T0 - 4 * 3600  # 09:30 IST on the first day
    step = 5 * 86400 * 0.5 / max(1, n_attempts)  # calls spread over ~12 of every 24 hours
    uid = 0
    for cid, customer_id, k in plan:
        last_status = None
        for n in range(1, k + 1):
            clock += step * 2 * rng.random()
            if int((clock - T0 + 4 * 3600) / 43200) % 2 == 1:
                clock += 43200  # night: no calls
            uid += 1
            agent, name = agents[rng.randrange(len(agents))]
            roll = rng.random()
            row: dict[str, Any] = {
                "uid": f"{uid:032x}", "campaign_id": cid, "customer_id": customer_id,
                "run_id": runs[min(len(runs) - 1, int((clock - T0 + 7200) / 86400) * 2 + (cid == small))],
                "holder_id": holder, "agent_key": agent, "agent_name": name, "attempt_no": n,
                "created_at": clock, "state": "terminal"}
            if roll < 0.02:
                row.update(state="rejected", terminal_at=clock + 0.4, error_category="agent_busy",
                           error_code=10706, error_message="Agent is busy on another call")
            elif roll < 0.023 and n == k:
                row.update(state="unknown", error_category="outcome_unknown",
                           error_message="read timeout after 30 s")
                last_status = "unknown"
            else:
                status = "completed" if n == k and rng.random() < 0.45 else rng.choices(statuses, weights)[0]
                if status == "completed" and n < k:
                    status = "customer_unanswered"
                duration = rng.randint(20, 600)
                talk = rng.randint(5, duration - 10) if status == "completed" else 0
                row.update(call_sid=f"CA{uid:030x}", placed_at=clock + 0.8, start_time=clock + 1.0,
                           end_time=clock + 1.0 + duration, terminal_at=clock + duration + 4.0,
                           call_status=status, agent_leg_status="completed",
                           customer_leg_status="completed" if status == "completed" else "no-answer",
                           total_talk_time=talk if rng.random() > 0.01 else None, total_duration=duration,
                           wrap_up_seconds=float(rng.randint(20, 120)) if talk else None,
                           recordings=[f"https://recordings.example/{uid}.mp3"] if talk else None,
                           resolved_by=rng.choice(("poll", "poll", "poll", "callback")))
                last_status = status
            attempts.append(row)
        state, final = "done", last_status
        if last_status is None:
            state, final = "pending", None
        elif last_status not in ("completed", "unknown") and rng.random() < 0.25:
            state, final = "pending", None
        updates.append({"b_id": customer_id, "b_state": state, "b_final": final, "b_last": last_status,
                        "b_attempts": k})
    # A few calls still open at the end: stuck ones and Make Calls in flight.
    for j, row in enumerate(attempts[-40:]):
        if row["state"] == "terminal":
            row.update(state="placed", call_status=None, end_time=None, terminal_at=None,
                       total_talk_time=None, stuck_at=row["created_at"] + 1800 if j % 2 else None)
            row.pop("recordings", None)
    _bulk(ledger, t.attempts, attempts)
    open_customers = {row["customer_id"] for row in attempts[-40:] if row["state"] == "placed"}
    for u in updates:
        if u["b_id"] in open_customers:
            u.update(b_state="calling", b_final=None)
    from sqlalchemy import bindparam, update

    with ledger.write() as conn:
        c = t.customers
        for start in range(0, len(updates), 20000):
            conn.execute(update(c).where(c.c.id == bindparam("b_id")).values(
                state=bindparam("b_state"), final_status=bindparam("b_final"),
                last_status=bindparam("b_last"), attempts=bindparam("b_attempts")),
                updates[start:start + 20000])
        # ~1% of those never dialled were withdrawn (added to the do-not-call list).
        conn.exec_driver_sql("UPDATE customers SET state='withdrawn' WHERE state='pending' AND attempts=0 "
                             "AND id % 97 = 0")
    ledger.close()
    tmp.rename(path)
    print(f"built {path.name}: {n_customers} customers, {len(attempts)} attempts in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)


def _bulk(ledger: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import insert

    columns = [c.name for c in table.columns if c.name != "id"]
    with ledger.write() as conn:
        for start in range(0, len(rows), 20000):
            chunk = [{c: r.get(c) for c in columns} for r in rows[start:start + 20000]]
            conn.execute(insert(table), chunk)


def generate(customers: int, attempts: int) -> Path:
    """The benchmark ledger, built once in a child (its peak RSS must not be inherited)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = ledger_path(customers, attempts)
    if not path.exists():
        subprocess.run([sys.executable, __file__, "--generate", str(customers), str(attempts)], check=True)
    return path


# --------------------------------------------------------------------------- children


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def busiest_day(path: Path) -> date:
    """The date (Asia/Kolkata) on which most calls ended."""
    import sqlite3
    from datetime import datetime
    from zoneinfo import ZoneInfo

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT CAST((COALESCE(end_time, terminal_at) + 19800) / 86400 AS INTEGER) d, "
                            "COUNT(*) FROM attempts WHERE state='terminal' GROUP BY d ORDER BY 2 DESC LIMIT 1"
                            ).fetchall()
    if not rows:
        return date(2026, 11, 18)
    return datetime.fromtimestamp(rows[0][0] * 86400, tz=ZoneInfo("UTC")).date()


def child(mode: str, path: Path, out_dir: Path) -> dict[str, Any]:
    """Run one measurement in this (fresh) process."""
    import pandas as pd

    from ccm_tasks.ledger import Ledger
    from ccm_tasks.reports import (
        build_campaign_report,
        build_daily_report,
        write_campaign_report,
        write_daily_report,
    )
    from ccm_tasks.reports.files import write_csv
    from ccm_tasks.reports.xlsx import write_workbook

    ledger = Ledger(path)
    out: dict[str, Any] = {"mode": mode, "rss_before_mib": _peak_rss_mib()}
    timings: dict[str, float] = {}
    cpu = _cpu_seconds()
    started = time.perf_counter()
    if mode in ("bare", "bare-both"):
        tables = ("attempts",) if mode == "bare" else ("attempts", "customers")
        with ledger.engine.connect() as conn:
            frames = {name: pd.read_sql(f"SELECT * FROM {name}", conn) for name in tables}
        timings["read_sql"] = time.perf_counter() - started
        for name, frame in frames.items():
            frame.to_csv(out_dir / f"bare-{name}.csv", index=False)
        out["rows"] = sum(len(f) for f in frames.values())
    elif mode.startswith("campaign"):
        report = build_campaign_report(ledger, "bench")
        timings["build"] = time.perf_counter() - started
        out["rows"] = len(report.attempts)
        folder = out_dir / "campaign"
        if mode == "campaign-csv":
            write_csv(report.outcomes_table(), folder / "outcomes.csv")
        elif mode == "campaign-xlsx":
            from ccm_tasks.reports.campaign import workbook_sheets

            write_workbook(folder / "outcomes.xlsx", workbook_sheets(report))
        elif mode == "campaign-all":
            out["files"] = {p.name: p.stat().st_size for p in write_campaign_report(report, folder)}
    elif mode.startswith("daily"):
        report_day = busiest_day(path)
        daily = build_daily_report(ledger, report_day)
        timings["build"] = time.perf_counter() - started
        out["rows"] = daily.calls_placed
        if mode == "daily-all":
            out["files"] = {p.name: p.stat().st_size for p in write_daily_report(daily, out_dir / "daily")}
    out["seconds"] = time.perf_counter() - started
    out["cpu_seconds"] = _cpu_seconds() - cpu
    out["write_seconds"] = out["seconds"] - timings.get("build", timings.get("read_sql", 0.0))
    out.update(timings)
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def run_child(mode: str, path: Path, out_dir: Path) -> dict[str, Any]:
    """One measurement in a fresh subprocess."""
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(out_dir)],
                          check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_all(steps: dict[str, str], path: Path, out_dir: Path, repeat: int) -> dict[str, dict[str, Any]]:
    """Each step ``repeat`` times, round by round (every step once per round, so load from other work
    on the machine falls on the baseline and the reports alike); the best time of each (peak RSS:
    the largest seen)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, mode in steps.items():
            runs[name].append(run_child(mode, path, out_dir))
    results = {}
    for name, seen in runs.items():
        best = min(seen, key=lambda r: r["seconds"])
        best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in seen)
        results[name] = best
    return results


def main() -> None:
    """Generate, measure, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of every measurement (best time of each)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "LEDGER", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        build_ledger(ledger_path(*args.generate), *args.generate)
        return
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), Path(args.child[2]))))
        return

    path = generate(args.customers, args.attempts)
    out_dir = RESULTS / "reports-out"
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = {
        "bare read_sql+to_csv": "bare",
        "bare, both tables": "bare-both",
        "campaign: compute": "campaign",
        "campaign: + CSV": "campaign-csv",
        "campaign: + XLSX": "campaign-xlsx",
        "campaign: all files": "campaign-all",
        "daily: compute": "daily",
        "daily: all files": "daily-all",
    }
    load_before = os.getloadavg()[0]
    results = measure_all(steps, path, out_dir, args.repeat)
    print(f"ledger: {path.name} ({path.stat().st_size / 2**20:.0f} MiB); Python {sys.version.split()[0]}")
    print(f"{'step':<22} {'rows':>8} {'total s':>8} {'compute s':>10} {'write s':>8} {'CPU s':>6} "
          f"{'peak RSS MiB':>13}")
    for name, r in results.items():
        compute = r.get("build", r.get("read_sql", 0.0))
        print(f"{name:<22} {r['rows']:>8} {r['seconds']:>8.2f} {compute:>10.2f} {r['write_seconds']:>8.2f} "
              f"{r['cpu_seconds']:>6.2f} {r['peak_rss_mib']:>13.0f}")
    for name in ("campaign: all files", "daily: all files"):
        files = results[name].get("files", {})
        print(f"{name}: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in files.items()))
    total = results["campaign: all files"]["seconds"] + results["daily: all files"]["seconds"]
    peak = max(results["campaign: all files"]["peak_rss_mib"], results["daily: all files"]["peak_rss_mib"])
    bare = results["bare read_sql+to_csv"]
    cpu = results["campaign: all files"]["cpu_seconds"] + results["daily: all files"]["cpu_seconds"]
    print(f"load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs "
          "(other work on the machine slows wall time, not CPU time)")
    print(f"all report files: {total:.1f} s ({cpu:.1f} CPU s), peak RSS {peak:.0f} MiB; "
          f"bare dump of the attempts table: {bare['seconds']:.1f} s ({bare['cpu_seconds']:.1f} CPU s), "
          f"{bare['peak_rss_mib']:.0f} MiB")
    both = results["bare, both tables"]
    print(f"ratio to the bare attempts dump: {total / bare['seconds']:.2f}x wall, "
          f"{cpu / bare['cpu_seconds']:.2f}x CPU; to the bare dump of both tables ({both['seconds']:.1f} s): "
          f"{total / both['seconds']:.2f}x wall, {cpu / both['cpu_seconds']:.2f}x CPU "
          f"(targets: <= 1.5x, peak RSS < 1024 MiB)")


if __name__ == "__main__":
    main()
