"""Races decided by the database, on SQLite and PostgreSQL: many threads (and processes) at once.

Each test starts its contenders together on a barrier and checks that exactly one wins and that
every loser gets an answer (never an exception): a lost race is "taken", not an internal error.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import update

from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger import schema as t

T = TypeVar("T")


def race(n: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(i)`` in ``n`` threads released at the same moment; their results (or raise)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    return results


def campaign_with_customers(ledger: Ledger, n: int) -> tuple[int, list[int]]:
    cid = ledger.upsert_campaign("c", definition_path="-", timezone="UTC", now=1.0)
    people = [{"customer_key": f"+9199{i:08d}", "phone": f"+9199{i:08d}"} for i in range(n)]
    ledger.sync_customers(cid, people, 1.0)
    return cid, [r.id for r in ledger.customer_rows(cid)]


def test_a_fresh_ledger_opened_by_many_processes_at_once(ledger_url: str) -> None:
    code = "import sys; from ccm_tasks.ledger import Ledger; Ledger(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, ledger_url], stderr=subprocess.PIPE)
             for _ in range(6)]
    outcomes = [(p.wait(60), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert all(rc == 0 for rc, _ in outcomes), [err[-500:] for _, err in outcomes]


def test_one_agent_claimed_by_many_runs_at_once(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    cid, customers = campaign_with_customers(ledger, 8)
    holders = [ledger.register_holder(f"h{i}") for i in range(8)]
    claims = race(8, lambda i: ledger.claim(agent_key="agent-1", agent_name=None, holder_id=holders[i],
                                           campaign_id=cid, run_id=None, customer_id=customers[i],
                                           attempt_no=1, now=2.0))
    assert sum(c.ok for c in claims) == 1
    assert {c.refusal for c in claims if not c.ok} == {"agent_leased"}
    assert ledger.count("agent_leases") == 1 and ledger.count("attempts") == 1


def test_one_number_is_never_in_two_live_calls(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    cids = [ledger.upsert_campaign(f"c{i}", definition_path="-", timezone="UTC", now=1.0) for i in range(6)]
    rows = []
    for cid in cids:
        ledger.sync_customers(cid, [{"customer_key": "+919900000001", "phone": "+919900000001"}], 1.0)
        rows.append(ledger.customer_rows(cid)[0].id)
    holders = [ledger.register_holder(f"h{i}") for i in range(6)]
    claims = race(6, lambda i: ledger.claim(agent_key=f"agent-{i}", agent_name=None, holder_id=holders[i],
                                           campaign_id=cids[i], run_id=None, customer_id=rows[i],
                                           attempt_no=1, now=2.0, customer_key="+919900000001"))
    assert sum(c.ok for c in claims) == 1
    assert {c.refusal for c in claims if not c.ok} == {"number_busy"}
    assert ledger.count("agent_leases") == 1  # the losers' agent leases were rolled back


def test_a_pause_and_claims_at_once_no_attempt_after_the_pause(ledger_url: str) -> None:
    """Claims racing ``set_control("pause")``: those ordered before it write their attempt, every one
    after it is refused, and none is lost or half-written (the pause is exact at the database)."""
    ledger = Ledger(ledger_url)
    cid, customers = campaign_with_customers(ledger, 16)
    holder = ledger.register_holder("h")

    def contender(i: int) -> str:
        if i == 8:
            assert ledger.set_control(cid, "pause", by="alice", reason="race", now=2.0) is not None
            return "pause"
        k = i if i < 8 else i - 1
        claim = ledger.claim(agent_key=f"agent-{k}", agent_name=None, holder_id=holder, campaign_id=cid,
                             run_id=None, customer_id=customers[k], attempt_no=1, now=2.0)
        assert claim.ok or claim.refusal == "campaign_held", claim
        return "ok" if claim.ok else "held"

    outcomes = race(17, contender)
    assert outcomes.count("ok") == ledger.count("attempts") == ledger.count("agent_leases")
    assert outcomes.count("ok") + outcomes.count("held") == 16
    refused = ledger.claim(agent_key="agent-x", agent_name=None, holder_id=holder, campaign_id=cid,
                           run_id=None, customer_id=customers[15], attempt_no=2, now=3.0)
    assert not refused.ok and refused.refusal == "campaign_held"
    ledger.set_control(cid, "run", by="alice", reason="go on", now=4.0)
    assert ledger.claim(agent_key="agent-x", agent_name=None, holder_id=holder, campaign_id=cid,
                        run_id=None, customer_id=customers[15], attempt_no=2, now=5.0).ok


def test_one_runner_per_campaign_however_many_start_at_once(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    cid, _ = campaign_with_customers(ledger, 1)
    holders = [ledger.register_holder(f"h{i}") for i in range(8)]
    answers = race(8, lambda i: ledger.claim_campaign(cid, holders[i], 2.0))
    assert answers.count(None) == 1


def test_a_dead_runner_is_replaced_by_exactly_one(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    cid, _ = campaign_with_customers(ledger, 1)
    dead = ledger.register_holder("dead")
    assert ledger.claim_campaign(cid, dead, 2.0) is None
    with ledger.write() as conn:  # its process is gone: another machine, no heartbeat for long
        conn.execute(update(t.holders).where(t.holders.c.holder_id == dead)
                     .values(hostname="elsewhere", heartbeat_at=ledger.db_time(conn) - 600))
    holders = [ledger.register_holder(f"h{i}") for i in range(6)]
    answers = race(6, lambda i: ledger.claim_campaign(cid, holders[i], 3.0))
    assert answers.count(None) == 1


def test_a_callback_delivered_to_two_receivers_at_once_is_recorded_once(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    cid, customers = campaign_with_customers(ledger, 1)
    holder = ledger.register_holder("h")
    claim = ledger.claim(agent_key="a", agent_name=None, holder_id=holder, campaign_id=cid, run_id=None,
                         customer_id=customers[0], attempt_no=1, now=2.0)
    assert claim.attempt_id is not None
    ids = race(10, lambda i: ledger.record_callback(campaign_id=cid, attempt_id=claim.attempt_id or 0,
                                                    call_sid="s1", event_type="terminal", dedupe_key="same",
                                                    payload={"n": i}, now=3.0))
    assert sum(i is not None for i in ids) == 1 and ledger.count("callback_events") == 1


def test_liveness_elsewhere_is_judged_by_the_database_clock(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    holder = ledger.register_holder("remote")

    def heartbeat_age(seconds: float) -> None:
        with ledger.write() as conn:
            conn.execute(update(t.holders).where(t.holders.c.holder_id == holder)
                         .values(hostname="another-machine", heartbeat_at=ledger.db_time(conn) - seconds))

    heartbeat_age(10)
    assert ledger.holder_alive(holder)
    heartbeat_age(40)
    assert not ledger.holder_alive(holder)
    ledger.heartbeat(holder)  # stamped with the database's clock, whatever this machine's says
    assert ledger.holder_alive(holder)


def test_the_account_budget_is_one_bucket_for_every_process(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    # 8 contenders ask for grants at the same simulated moment: together they get the burst, no more.
    grants = race(8, lambda i: ledger.take_budget("acct@x", 200, "post", 3, now=1000.0).granted)
    assert sum(grants) == 3
    later = ledger.take_budget("acct@x", 200, "post", 3, now=1060.0)
    assert later.granted == 3  # refilled, capped at the burst
    ledger.budget_rate_limited("acct@x", 200, 5.0, now=1060.5)
    assert ledger.take_budget("acct@x", 200, "get", 1, now=1061.0).granted == 0  # everyone pauses
    usage = ledger.budget_usage("acct@x")
    assert usage is not None and usage["rate_limited"] == 1


def test_two_syncs_of_the_same_customers_at_once(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    cid = ledger.upsert_campaign("c", definition_path="-", timezone="UTC", now=1.0)
    people = [{"customer_key": f"+9199{i:08d}", "phone": f"+9199{i:08d}"} for i in range(3000)]
    race(4, lambda i: ledger.sync_customers(cid, people, 1.0, chunk=500))
    assert ledger.count("customers") == 3000


def test_a_v2_ledger_is_upgraded_in_place(tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:  # turn it back into a v2 ledger: drop what v3 added
        for table in ("number_leases", "api_budgets"):
            db.execute(f"DROP TABLE {table}")
        for table, column in (("campaigns", "control"), ("runs", "progress"), ("attempts", "wrap_up_seconds"),
                              ("holders", "boot_id"), ("agent_leases", "available_at")):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("DROP INDEX ix_customers_key")
        db.execute("UPDATE ledger_meta SET value = '2' WHERE key = 'schema_version'")
    with sqlite3.connect(path) as db:
        for table, column in (("campaigns", "control_reason"), ("campaigns", "control_by"),
                              ("campaigns", "control_at"), ("runs", "progress_at"), ("runs", "flow_run_id"),
                              ("holders", "journal")):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    ledger = Ledger(path)
    holder = ledger.register_holder("after upgrade")
    cid = ledger.upsert_campaign("c", definition_path="-", timezone="UTC", now=1.0)
    ledger.set_control(cid, "pause", by="me", reason="test", now=2.0)
    assert ledger.control(cid).action == "pause" and ledger.holder_alive(holder)


def test_a_v3_ledger_gains_the_overload_episode(tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "v3.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE api_budgets DROP COLUMN episode_at")
        db.execute("UPDATE ledger_meta SET value = '3' WHERE key = 'schema_version'")
    ledger = Ledger(path)
    assert ledger.take_budget("acct@x", 200, "post", 1, now=1000.0).granted == 1
    ledger.budget_rate_limited("acct@x", 200, 1.0, now=1001.0)
    ledger.budget_rate_limited("acct@x", 200, 1.0, now=1003.0)  # the same episode: one step
    assert ledger.budget_usage("acct@x")["factor"] == 0.8  # type: ignore[index]
    ledger.close()
