"""The ledger: the durable record of campaigns, customers, attempts, agent leases and events.

It is the truth (invariant 4) and the lock (invariant 1):

* An agent is leased in ``agent_leases`` before its Make Call and released only when the call is
  confirmed terminal. A lease whose holder process is dead can be taken over only after the old
  call is confirmed terminal (or, when the old call's sid was never learned, after a quarantine
  long enough for any such call to have ended).
* An attempt row is written before its Make Call (invariant 2); its ``uid`` travels in
  ``custom_field`` so a callback or a later look-up ties the call back to it.

SQLite (WAL) by default; every write runs in ``BEGIN IMMEDIATE`` so two processes sharing the file
serialise their lease decisions. The SQL is portable: PostgreSQL needs only a different URL.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url

from ccm_tasks.ledger import schema as t

HOLDER_TTL_SECONDS = 30.0
"""A holder on another machine is presumed dead after this long without a heartbeat (wall time)."""


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class CustomerUpdate:
    """A customer's state after a decision, written together with the attempt that caused it."""

    state: str
    final_status: str | None
    last_status: str | None
    attempts: int
    agent_side_retries: int
    no_dial_retries: int
    next_attempt_at: float | None

    def values(self, now: float) -> dict[str, Any]:
        """Column values for an UPDATE."""
        return {"state": self.state, "final_status": self.final_status, "last_status": self.last_status,
                "attempts": self.attempts, "agent_side_retries": self.agent_side_retries,
                "no_dial_retries": self.no_dial_retries, "next_attempt_at": self.next_attempt_at,
                "updated_at": now}


@dataclass(frozen=True)
class Claim:
    """The result of trying to lease an agent and open an attempt in one transaction."""

    ok: bool
    attempt_id: int | None = None
    attempt_uid: str | None = None
    # When not ok: who holds the agent and what we know of its call.
    holder_id: str | None = None
    holder_alive: bool = True
    old_attempt_id: int | None = None
    old_call_sid: str | None = None
    quarantine_until: float | None = None


@dataclass(frozen=True)
class OpenAttempt:
    """An attempt that is not finished: to be followed again or resolved."""

    id: int
    uid: str
    campaign_id: int
    customer_id: int
    agent_key: str
    holder_id: str
    state: str
    call_sid: str | None
    created_at: float
    placed_at: float | None
    stuck_at: float | None


@dataclass(frozen=True)
class CustomerRow:
    """A customer's durable state, as the dialer loads it."""

    id: int
    customer_key: str
    phone: str
    preferred_agent: str | None
    state: str
    final_status: str | None
    last_status: str | None
    attempts: int
    agent_side_retries: int
    no_dial_retries: int
    next_attempt_at: float | None


def _proc_start_time(pid: int) -> str | None:
    """Linux process start time (clock ticks since boot), to tell a reused pid from ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if started is not None:
        current = _proc_start_time(pid)
        if current is not None and current != started:
            return False  # the pid was reused by another process
    # A zombie (killed, not yet reaped) is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def ledger_url(path_or_url: str | Path) -> str:
    """A SQLAlchemy URL from a path (SQLite) or a URL (anything)."""
    text = str(path_or_url)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class Ledger:
    """The durable record. One instance per process; safe to share across campaigns."""

    def __init__(self, url: str | Path, *, echo: bool = False) -> None:
        self.url = ledger_url(url)
        self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        self.engine: Engine = create_engine(self.url, echo=echo, future=True,
                                            **({"connect_args": {"timeout": 60}} if self.is_sqlite else {}))
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        with self.write() as conn:
            # In the write transaction: two processes opening a new ledger at once would otherwise
            # both read "no tables" and one would fail to upgrade its lock ("database is locked").
            fresh = not inspect(conn).has_table("ledger_meta")
            existing = None if fresh else conn.execute(
                select(t.meta.c.value).where(t.meta.c.key == "schema_version")).scalar()
            version = int(existing) if existing is not None else t.SCHEMA_VERSION
            if version > t.SCHEMA_VERSION:
                raise RuntimeError(f"ledger {self.url} has schema {version}, newer than this code "
                                   f"({t.SCHEMA_VERSION}); upgrade ccm")
            for step in range(version + 1, t.SCHEMA_VERSION + 1):
                for statement in t.MIGRATIONS.get(step, []):
                    conn.exec_driver_sql(statement)
            t.metadata.create_all(conn)
            if existing is None:
                conn.execute(insert(t.meta).values(key="schema_version", value=str(t.SCHEMA_VERSION)))
            elif version != t.SCHEMA_VERSION:
                conn.execute(update(t.meta).where(t.meta.c.key == "schema_version")
                             .values(value=str(t.SCHEMA_VERSION)))

    def __repr__(self) -> str:
        return f"Ledger({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Dispose of pooled connections."""
        self.engine.dispose()

    @contextmanager
    def write(self, durable: bool = False) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite: the write lock is taken up front).

        ``durable``: the commit survives power loss too (fsync), not only a process crash.
        """
        with self.engine.connect() as conn:
            conn.info["immediate"] = True
            # Straight to the driver: through SQLAlchemy the pragma would begin a transaction, and
            # SQLite refuses to change the safety level inside one.
            raw = conn.connection.driver_connection if durable and self.is_sqlite else None
            if raw is not None:
                raw.execute("PRAGMA synchronous=FULL")
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info["immediate"] = False
                if raw is not None:
                    raw.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # ------------------------------------------------------------------ holders

    def register_holder(self, label: str = "") -> str:
        """Record this process as a lease holder; returns its id."""
        holder_id = uuid.uuid4().hex
        now = time.time()
        pid = os.getpid()
        with self.write() as conn:
            conn.execute(insert(t.holders).values(
                holder_id=holder_id, hostname=socket.gethostname(), pid=pid,
                pid_started=_proc_start_time(pid), started_at=now, heartbeat_at=now, label=label))
        return holder_id

    def heartbeat(self, holder_id: str) -> None:
        """Tell other processes this holder is alive (wall time)."""
        with self.write() as conn:
            conn.execute(update(t.holders).where(t.holders.c.holder_id == holder_id)
                         .values(heartbeat_at=time.time()))

    def retire_holder(self, holder_id: str) -> None:
        """This holder's run is over: its remaining leases (stuck calls, quarantines) now follow the
        dead-holder rules, even though the process may go on running other campaigns."""
        with self.write() as conn:
            conn.execute(delete(t.holders).where(t.holders.c.holder_id == holder_id))

    def holder_alive(self, holder_id: str | None, conn: Connection | None = None) -> bool:
        """Whether a holder's process still runs: pid check on this host, heartbeat elsewhere."""
        if holder_id is None:
            return False
        if conn is None:
            with self.read() as c:
                return self.holder_alive(holder_id, c)
        row = conn.execute(select(t.holders).where(t.holders.c.holder_id == holder_id)).mappings().first()
        if row is None:
            return False
        if row["hostname"] == socket.gethostname():
            return _pid_alive(int(row["pid"]), row["pid_started"])
        return bool(time.time() - float(row["heartbeat_at"]) < HOLDER_TTL_SECONDS)

    # ------------------------------------------------------------------ campaigns and runs

    def upsert_campaign(self, name: str, *, definition_path: str, timezone: str, now: float,
                        input_summary: Mapping[str, Any] | None = None) -> int:
        """The campaign's id, creating its row on first use."""
        with self.write() as conn:
            cid = conn.execute(select(t.campaigns.c.id).where(t.campaigns.c.name == name)).scalar()
            values = {"definition_path": definition_path, "timezone": timezone, "updated_at": now,
                      "input_summary": dict(input_summary or {})}
            if cid is None:
                cid = _pk(conn.execute(insert(t.campaigns).values(name=name, created_at=now, status="new",
                                                                  **values)))
            else:
                conn.execute(update(t.campaigns).where(t.campaigns.c.id == cid).values(**values))
            return int(cid)

    def campaign_id(self, name: str) -> int | None:
        """The id of a campaign by name, if it exists."""
        with self.read() as conn:
            cid = conn.execute(select(t.campaigns.c.id).where(t.campaigns.c.name == name)).scalar()
            return int(cid) if cid is not None else None

    def claim_campaign(self, campaign_id: int, holder_id: str, now: float) -> str | None:
        """Become the campaign's only runner. Returns None on success, else the live runner's id."""
        with self.write() as conn:
            current = conn.execute(select(t.campaigns.c.runner_holder)
                                   .where(t.campaigns.c.id == campaign_id)).scalar()
            if current and current != holder_id and self.holder_alive(current, conn):
                return str(current)
            conn.execute(update(t.campaigns).where(t.campaigns.c.id == campaign_id)
                         .values(runner_holder=holder_id, status="running", status_reason=None,
                                 updated_at=now))
            return None

    def release_campaign(self, campaign_id: int, holder_id: str, status: str, reason: str | None,
                         now: float) -> None:
        """Stop being the campaign's runner, recording how the run ended."""
        with self.write() as conn:
            conn.execute(update(t.campaigns)
                         .where(t.campaigns.c.id == campaign_id, t.campaigns.c.runner_holder == holder_id)
                         .values(runner_holder=None, status=status, status_reason=reason, updated_at=now))

    def start_run(self, campaign_id: int, holder_id: str, now: float) -> int:
        """Open a run record."""
        with self.write() as conn:
            result = conn.execute(insert(t.runs).values(campaign_id=campaign_id, holder_id=holder_id,
                                                        started_at=now, status="running"))
            return _pk(result)

    def finish_run(self, run_id: int, status: str, reason: str | None, summary: Mapping[str, Any],
                   now: float) -> None:
        """Close a run record with its summary."""
        with self.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(
                ended_at=now, status=status, reason=reason, summary=json.loads(json.dumps(summary))))

    # ------------------------------------------------------------------ customers

    def sync_customers(
        self, campaign_id: int, rows: Iterable[Mapping[str, Any]], now: float
    ) -> dict[str, int]:
        """Insert customers not yet known; withdraw pending ones that are no longer in the inputs.

        Known customers keep their state (attempts, retries), so re-running resumes.
        """
        rows = list(rows)
        keys = {r["customer_key"] for r in rows}
        inserted = withdrawn = restored = 0
        with self.write() as conn:
            existing = dict(conn.execute(
                select(t.customers.c.customer_key, t.customers.c.state)
                .where(t.customers.c.campaign_id == campaign_id)).all())
            optional = ("preferred_agent", "source_file", "source_sheet", "source_row", "extra")
            new = [{**dict.fromkeys(optional), **r, "campaign_id": campaign_id, "state": "pending",
                    "attempts": 0, "agent_side_retries": 0, "no_dial_retries": 0, "updated_at": now}
                   for r in rows if r["customer_key"] not in existing]
            for start in range(0, len(new), 5000):
                conn.execute(insert(t.customers), new[start:start + 5000])
            inserted = len(new)
            gone = [k for k, state in existing.items() if k not in keys and state == "pending"]
            for start in range(0, len(gone), 500):
                withdrawn += conn.execute(
                    update(t.customers)
                    .where(t.customers.c.campaign_id == campaign_id,
                           t.customers.c.customer_key.in_(gone[start:start + 500]))
                    .values(state="withdrawn", updated_at=now)).rowcount
            back = [k for k, state in existing.items() if k in keys and state == "withdrawn"]
            for start in range(0, len(back), 500):
                restored += conn.execute(
                    update(t.customers)
                    .where(t.customers.c.campaign_id == campaign_id,
                           t.customers.c.customer_key.in_(back[start:start + 500]))
                    .values(state="pending", updated_at=now)).rowcount
        return {"inserted": inserted, "withdrawn": withdrawn, "restored": restored,
                "kept": len(existing) - withdrawn}

    def customer_rows(self, campaign_id: int) -> list[CustomerRow]:
        """Every customer of a campaign with its durable state."""
        c = t.customers.c
        with self.read() as conn:
            result = conn.execute(select(
                c.id, c.customer_key, c.phone, c.preferred_agent, c.state, c.final_status,
                c.last_status, c.attempts, c.agent_side_retries, c.no_dial_retries, c.next_attempt_at,
            ).where(c.campaign_id == campaign_id).order_by(c.id))
            return [CustomerRow(*row) for row in result]

    # ------------------------------------------------------------------ leases and attempts

    def claim(self, *, agent_key: str, agent_name: str | None, holder_id: str, campaign_id: int,
              run_id: int | None, customer_id: int, attempt_no: int, now: float) -> Claim:
        """Lease the agent and write the attempt, in one transaction (before any POST).

        Durable against power loss: a Make Call must never leave without its attempt on disk.
        """
        uid = uuid.uuid4().hex
        with self.write(durable=True) as conn:
            lease = conn.execute(select(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key)
                                 ).mappings().first()
            if lease is not None:
                old_holder = str(lease["holder_id"])
                alive = old_holder == holder_id or self.holder_alive(old_holder, conn)
                return Claim(ok=False, holder_id=old_holder, holder_alive=alive,
                             old_attempt_id=lease["attempt_id"], old_call_sid=lease["call_sid"],
                             quarantine_until=lease["quarantine_until"])
            attempt_id = _pk(conn.execute(insert(t.attempts).values(
                uid=uid, campaign_id=campaign_id, customer_id=customer_id, run_id=run_id,
                holder_id=holder_id, agent_key=agent_key, agent_name=agent_name, attempt_no=attempt_no,
                state="created", created_at=now)))
            conn.execute(insert(t.agent_leases).values(
                agent_key=agent_key, holder_id=holder_id, campaign_id=campaign_id, attempt_id=attempt_id,
                acquired_at=now))
            conn.execute(update(t.customers).where(t.customers.c.id == customer_id)
                         .values(state="calling", updated_at=now))
        return Claim(ok=True, attempt_id=int(attempt_id), attempt_uid=uid)

    def take_over_lease(self, agent_key: str, *, from_holder: str, holder_id: str, now: float) -> bool:
        """Remove a dead holder's lease once its call is confirmed over (compare-and-delete)."""
        with self.write() as conn:
            if self.holder_alive(from_holder, conn):
                return False
            deleted = conn.execute(delete(t.agent_leases).where(
                t.agent_leases.c.agent_key == agent_key, t.agent_leases.c.holder_id == from_holder))
            if deleted.rowcount:
                conn.execute(insert(t.events).values(at=now, kind="lease_taken_over", agent_key=agent_key,
                                                     data={"from": from_holder, "by": holder_id}))
            return bool(deleted.rowcount)

    def adopt_lease(self, agent_key: str, *, from_holder: str, holder_id: str) -> bool:
        """Move a dead holder's lease (and its open attempt) to us, to keep following its call."""
        with self.write() as conn:
            if self.holder_alive(from_holder, conn):
                return False
            moved = conn.execute(update(t.agent_leases).where(
                t.agent_leases.c.agent_key == agent_key, t.agent_leases.c.holder_id == from_holder
            ).values(holder_id=holder_id))
            return bool(moved.rowcount)

    def mark_placed(self, attempt_id: int, *, agent_key: str, call_sid: str, details: Mapping[str, Any],
                    now: float) -> None:
        """The API accepted the call: remember its sid (the lease now points at the call)."""
        with self.write() as conn:
            conn.execute(update(t.attempts).where(t.attempts.c.id == attempt_id).values(
                state="placed", call_sid=call_sid, placed_at=now, details=dict(details)))
            conn.execute(update(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key,
                                                      t.agent_leases.c.attempt_id == attempt_id)
                         .values(call_sid=call_sid))

    def mark_rejected(self, attempt_id: int, *, agent_key: str, holder_id: str, customer_id: int,
                      customer: CustomerUpdate, category: str, code: int | None, message: str,
                      now: float) -> None:
        """The API refused the POST (nothing rang): close the attempt and free the agent."""
        with self.write() as conn:
            conn.execute(update(t.attempts).where(t.attempts.c.id == attempt_id).values(
                state="rejected", terminal_at=now, error_category=category, error_code=code,
                error_message=message[:2000]))
            _set_customer(conn, customer_id, customer, now)
            conn.execute(delete(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key,
                                                      t.agent_leases.c.holder_id == holder_id))
            _attempt_event(conn, attempt_id, now, f"post_{category}", agent_key=agent_key,
                           data={"code": code, "message": message[:500]})

    def mark_unknown(self, attempt_id: int, *, agent_key: str, customer_id: int | None,
                     customer: CustomerUpdate | None, message: str, quarantine_until: float,
                     now: float) -> None:
        """The POST's outcome is unknown: never re-dial it; hold the agent until a call would be over."""
        with self.write() as conn:
            conn.execute(update(t.attempts).where(t.attempts.c.id == attempt_id).values(
                state="unknown", error_category="outcome_unknown", error_message=message[:2000]))
            _set_customer(conn, customer_id, customer, now)
            conn.execute(update(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key,
                                                      t.agent_leases.c.attempt_id == attempt_id)
                         .values(quarantine_until=quarantine_until))
            _attempt_event(conn, attempt_id, now, "outcome_unknown", agent_key=agent_key,
                           data={"message": message[:500], "quarantine_until": quarantine_until})

    def complete_attempt(self, attempt_id: int, *, details: Mapping[str, Any], summary: Mapping[str, Any],
                         customer_id: int | None, customer: CustomerUpdate | None, agent_key: str,
                         release: bool, now: float, resolved_by: str = "poll") -> bool:
        """Record a terminal call, the customer's next state, and free the agent, atomically.

        Idempotent: an attempt already terminal is left alone (returns False).
        """
        with self.write() as conn:
            done = conn.execute(update(t.attempts).where(
                t.attempts.c.id == attempt_id, t.attempts.c.state.in_(("created", "placed", "unknown"))
            ).values(state="terminal", terminal_at=now, details=dict(details), resolved_by=resolved_by,
                     **summary))
            if not done.rowcount:
                return False
            _set_customer(conn, customer_id, customer, now)
            if release:
                conn.execute(delete(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key,
                                                          t.agent_leases.c.attempt_id == attempt_id))
            return True

    def mark_stuck(self, attempt_id: int, now: float) -> None:
        """Flag a call that should long have ended; its agent stays leased."""
        with self.write() as conn:
            conn.execute(update(t.attempts)
                         .where(t.attempts.c.id == attempt_id, t.attempts.c.stuck_at.is_(None))
                         .values(stuck_at=now))
            _attempt_event(conn, attempt_id, now, "call_stuck")

    def release_lease(self, agent_key: str, holder_id: str) -> None:
        """Free an agent we hold (e.g. after a quarantine ends)."""
        with self.write() as conn:
            conn.execute(delete(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key,
                                                      t.agent_leases.c.holder_id == holder_id))

    def force_release(self, agent_key: str, now: float, reason: str) -> bool:
        """Operator action: free an agent whatever holds it (a stuck call confirmed by hand)."""
        with self.write() as conn:
            lease = conn.execute(select(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key)
                                 ).mappings().first()
            if lease is None:
                return False
            conn.execute(delete(t.agent_leases).where(t.agent_leases.c.agent_key == agent_key))
            conn.execute(insert(t.events).values(
                campaign_id=lease["campaign_id"], attempt_id=lease["attempt_id"], at=now,
                kind="lease_released_by_operator", agent_key=agent_key, data={"reason": reason}))
            return True

    def leases(self) -> list[dict[str, Any]]:
        """Every current lease, with whether its holder is alive."""
        with self.read() as conn:
            rows = [dict(r) for r in conn.execute(select(t.agent_leases)).mappings()]
            for r in rows:
                r["holder_alive"] = self.holder_alive(r["holder_id"], conn)
            return rows

    def open_attempts(self, campaign_id: int) -> list[OpenAttempt]:
        """Attempts of a campaign not yet terminal: created, placed or unknown."""
        a = t.attempts.c
        with self.read() as conn:
            result = conn.execute(select(
                a.id, a.uid, a.campaign_id, a.customer_id, a.agent_key, a.holder_id, a.state, a.call_sid,
                a.created_at, a.placed_at, a.stuck_at,
            ).where(a.campaign_id == campaign_id, a.state.in_(("created", "placed", "unknown")))
                .order_by(a.id))
            return [OpenAttempt(*row) for row in result]

    def attempt_by_uid(self, uid: str) -> dict[str, Any] | None:
        """An attempt by the uid carried in custom_field."""
        with self.read() as conn:
            row = conn.execute(select(t.attempts).where(t.attempts.c.uid == uid)).mappings().first()
            return dict(row) if row else None

    def last_attempt(self, customer_id: int) -> dict[str, Any] | None:
        """A customer's most recent attempt."""
        with self.read() as conn:
            row = conn.execute(select(t.attempts).where(t.attempts.c.customer_id == customer_id)
                               .order_by(t.attempts.c.id.desc()).limit(1)).mappings().first()
            return dict(row) if row else None

    def update_customer(self, customer_id: int, customer: CustomerUpdate, now: float) -> None:
        """Write a customer's state (recovery paths; normal paths update it with the attempt)."""
        with self.write() as conn:
            _set_customer(conn, customer_id, customer, now)

    def attempt(self, attempt_id: int) -> dict[str, Any] | None:
        """An attempt by id."""
        with self.read() as conn:
            row = conn.execute(select(t.attempts).where(t.attempts.c.id == attempt_id)).mappings().first()
            return dict(row) if row else None

    def add_event(self, kind: str, now: float, *, campaign_id: int | None = None,
                  attempt_id: int | None = None, agent_key: str | None = None,
                  data: Mapping[str, Any] | None = None) -> None:
        """Append to the audit trail."""
        with self.write() as conn:
            conn.execute(insert(t.events).values(campaign_id=campaign_id, attempt_id=attempt_id, at=now,
                                                 kind=kind, agent_key=agent_key,
                                                 data=dict(data) if data else None))

    # ------------------------------------------------------------------ status callbacks

    def callback_token(self, campaign_id: int) -> str:
        """The campaign's secret callback path segment, created on first use."""
        import secrets

        with self.write() as conn:
            token = conn.execute(select(t.campaigns.c.callback_token)
                                 .where(t.campaigns.c.id == campaign_id)).scalar()
            if token is None:
                token = secrets.token_urlsafe(32)
                conn.execute(update(t.campaigns).where(t.campaigns.c.id == campaign_id)
                             .values(callback_token=token))
            return str(token)

    def callback_tokens(self) -> dict[str, int]:
        """Every campaign's callback token -> campaign id."""
        with self.read() as conn:
            rows = conn.execute(select(t.campaigns.c.callback_token, t.campaigns.c.id)
                                .where(t.campaigns.c.callback_token.is_not(None)))
            return {str(token): int(cid) for token, cid in rows}

    def attempt_for_callback(self, campaign_id: int, uid: str | None,
                             call_sid: str | None) -> dict[str, Any] | None:
        """The campaign's attempt a callback is about: by the uid we put in custom_field, else by
        call_sid. None if it is not one of this campaign's calls."""
        with self.read() as conn:
            a = t.attempts.c
            row = None
            if uid:
                row = conn.execute(select(t.attempts).where(a.uid == uid, a.campaign_id == campaign_id)
                                   ).mappings().first()
            if row is None and call_sid:
                row = conn.execute(select(t.attempts).where(a.call_sid == call_sid,
                                                            a.campaign_id == campaign_id)
                                   .order_by(a.id.desc()).limit(1)).mappings().first()
            return dict(row) if row else None

    def record_callback(self, *, campaign_id: int, attempt_id: int, call_sid: str | None, event_type: str,
                        dedupe_key: str, payload: Mapping[str, Any], now: float) -> int | None:
        """Store a callback once; a repeated delivery (same key) changes nothing and returns None."""
        with self.write() as conn:
            seen = conn.execute(select(t.callback_events.c.id)
                                .where(t.callback_events.c.dedupe_key == dedupe_key)).scalar()
            if seen is not None:
                return None
            return _pk(conn.execute(insert(t.callback_events).values(
                campaign_id=campaign_id, attempt_id=attempt_id, call_sid=call_sid, event_type=event_type,
                dedupe_key=dedupe_key, received_at=now, payload=dict(payload))))

    def callback_events_since(
        self, campaign_id: int, after_id: int, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Callback events of a campaign recorded after ``after_id`` (the dialer's inbox)."""
        c = t.callback_events.c
        with self.read() as conn:
            rows = conn.execute(select(t.callback_events).where(c.campaign_id == campaign_id, c.id > after_id)
                                .order_by(c.id).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def pending_terminal_callbacks(self, campaign_id: int) -> list[dict[str, Any]]:
        """Terminal callbacks recorded for attempts still open or unknown (replayed on resume)."""
        c, a = t.callback_events.c, t.attempts.c
        with self.read() as conn:
            rows = conn.execute(select(t.callback_events)
                                .join(t.attempts, a.id == c.attempt_id)
                                .where(c.campaign_id == campaign_id, c.event_type == "terminal",
                                       a.state.in_(("created", "placed", "unknown")))
                                .order_by(c.id)).mappings()
            return [dict(r) for r in rows]

    def last_callback_id(self, campaign_id: int) -> int:
        """The newest callback event id of a campaign (0 if none)."""
        with self.read() as conn:
            value = conn.execute(select(func.max(t.callback_events.c.id))
                                 .where(t.callback_events.c.campaign_id == campaign_id)).scalar()
            return int(value or 0)

    def count(self, table: str, **where: Any) -> int:
        """Row count of a table, filtered by equality (for tests and summaries)."""
        tbl = t.metadata.tables[table]
        query = select(func.count()).select_from(tbl)
        for column, value in where.items():
            query = query.where(tbl.c[column] == value)
        with self.read() as conn:
            return int(conn.execute(query).scalar() or 0)


def _set_customer(conn: Connection, customer_id: int | None, customer: CustomerUpdate | None,
                  now: float) -> None:
    """Write a customer's new state, if there is one (inside the caller's transaction)."""
    if customer is not None and customer_id is not None:
        conn.execute(update(t.customers).where(t.customers.c.id == customer_id)
                     .values(**customer.values(now)))


def _attempt_event(conn: Connection, attempt_id: int, now: float, kind: str, *,
                   agent_key: str | None = None, data: Mapping[str, Any] | None = None) -> None:
    """Append an event about an attempt to the audit trail, under the attempt's campaign."""
    conn.execute(insert(t.events).values(
        campaign_id=select(t.attempts.c.campaign_id).where(t.attempts.c.id == attempt_id).scalar_subquery(),
        attempt_id=attempt_id, at=now, kind=kind, agent_key=agent_key, data=dict(data) if data else None))


def _pk(result: Any) -> int:
    """The primary key an INSERT produced."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a generous busy timeout, and transactions we begin ourselves (IMMEDIATE for writes)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not emit its own BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: commits survive a crash of the process, not a power loss. The one write
        # that must survive power loss, the attempt before its Make Call, runs with FULL (durable()),
        # which also makes everything committed before it durable.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")
