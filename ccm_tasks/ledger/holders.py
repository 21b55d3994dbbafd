"""Lease holders: the processes that dial, and whether each is still alive.

A holder on this machine is alive while its pid runs with the same start time (so a SIGKILLed run is
noticed at once and a reused pid is not mistaken for it); a holder elsewhere is alive while its
heartbeat, stamped with the database's clock, is younger than ``HOLDER_TTL_SECONDS``.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select, update

from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.base import LedgerBase, transaction_retry

HOLDER_TTL_SECONDS = 30.0
"""A holder on another machine is presumed dead after this long without a heartbeat."""


def boot_id() -> str | None:
    """This machine's boot id (changes at every restart), if the kernel tells it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def proc_start_time(pid: int) -> str | None:
    """Linux process start time (clock ticks since boot), to tell a reused pid from ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, started: str | None) -> bool:
    """Whether ``pid`` is the same running (not zombie) process that started at ``started``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if started is not None:
        current = proc_start_time(pid)
        if current is not None and current != started:
            return False  # the pid was reused by another process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False  # killed, not yet reaped: dead for our purposes
    except (OSError, IndexError):
        pass
    return True


class HolderStore(LedgerBase):
    """Registering, heartbeating and retiring holders; telling the living from the dead."""

    @transaction_retry
    def register_holder(self, label: str = "", *, journal: str | None = None) -> str:
        """Record this process as a lease holder; returns its id."""
        holder_id = uuid.uuid4().hex
        pid = os.getpid()
        with self.write() as conn:
            now = self.db_time(conn)
            conn.execute(insert(t.holders).values(
                holder_id=holder_id, hostname=socket.gethostname(), pid=pid,
                pid_started=proc_start_time(pid), started_at=now, heartbeat_at=now, label=label[:255],
                boot_id=boot_id(), journal=journal))
        return holder_id

    @transaction_retry
    def heartbeat(self, holder_id: str) -> None:
        """Tell other machines this holder is alive (the database's clock)."""
        with self.write() as conn:
            conn.execute(update(t.holders).where(t.holders.c.holder_id == holder_id)
                         .values(heartbeat_at=self.now_expr()))

    @transaction_retry
    def retire_holder(self, holder_id: str) -> None:
        """This holder's run is over: its remaining leases (stuck calls, quarantines) now follow the
        dead-holder rules, even though the process may go on running other campaigns."""
        with self.write() as conn:
            conn.execute(delete(t.holders).where(t.holders.c.holder_id == holder_id))

    def holder_alive(self, holder_id: str | None, conn: Connection | None = None) -> bool:
        """Whether a holder's process still runs: pid check on this machine, heartbeat elsewhere."""
        if holder_id is None:
            return False
        if conn is None:
            with self.read() as c:
                return self.holder_alive(holder_id, c)
        row = conn.execute(select(t.holders, self.now_expr().label("db_now"))
                           .where(t.holders.c.holder_id == holder_id)).mappings().first()
        if row is None:
            return False
        if row["hostname"] == socket.gethostname() and row["boot_id"] in (None, boot_id()):
            return pid_alive(int(row["pid"]), row["pid_started"])
        return bool(float(row["db_now"]) - float(row["heartbeat_at"]) < HOLDER_TTL_SECONDS)

    def dead_holder_journal(self, holder_id: str) -> Path | None:
        """The send journal of a dead holder, if it can be trusted: same machine, same boot, on disk.

        Trusted only then: the journal is written without fsync, which survives the death of the
        process but not of the machine.
        """
        with self.read() as conn:
            row = conn.execute(select(t.holders).where(t.holders.c.holder_id == holder_id)).mappings().first()
        if row is None or not row["journal"] or row["hostname"] != socket.gethostname():
            return None
        if row["boot_id"] is None or row["boot_id"] != boot_id():
            return None
        path = Path(str(row["journal"]))
        return path if path.exists() else None

    def holders(self) -> list[dict[str, object]]:
        """Every registered holder with whether it is alive (for ``ccm status``)."""
        with self.read() as conn:
            rows = [dict(r) for r in conn.execute(select(t.holders)).mappings()]
            for r in rows:
                r["alive"] = self.holder_alive(str(r["holder_id"]), conn)
            return rows
