"""The ledger: the durable record of campaigns, customers, attempts, leases and events.

It is the truth (invariant 4) and the lock (invariant 1). Its parts, one module each:

* ``base``: connection, transactions, retries of transient errors, the database clock, schema set-up
* ``holders``: the processes that hold leases, and whether each is alive
* ``campaigns``: campaigns, the one-runner lock, runs, controls, progress, customers, events
* ``attempts``: agent and number leases, attempts and their transitions, contact limits
* ``callbacks``: callback tokens and the callback inbox
* ``budget``: the account's API budget, shared by every process on the account
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.budget import BudgetStore


class Ledger(BudgetStore):
    """The durable record. One instance per process; safe to share across campaigns and threads."""

    def count(self, table: str, **where: Any) -> int:
        """Row count of a table, filtered by equality (for tests and summaries)."""
        tbl = t.metadata.tables[table]
        query = select(func.count()).select_from(tbl)
        for column, value in where.items():
            query = query.where(tbl.c[column] == value)
        with self.read() as conn:
            return int(conn.execute(query).scalar() or 0)
