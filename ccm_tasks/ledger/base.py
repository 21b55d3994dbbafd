"""The ledger's connection, transactions, clock and schema set-up, shared by its parts.

SQLite (WAL) on one machine; PostgreSQL for several. Every write runs in ``BEGIN IMMEDIATE`` on
SQLite, so two processes sharing the file serialise their decisions; on PostgreSQL (READ
COMMITTED) every race is decided by a constraint or a conditional UPDATE whose row count decides,
never by a read followed by a write. Liveness and the account budget read the database's clock, so
machines whose clocks disagree still agree on time.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Table,
    TextClause,
    bindparam,
    create_engine,
    event,
    insert,
    inspect,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from ccm_tasks.ledger import schema as t

log = logging.getLogger("ccm.ledger")

P = ParamSpec("P")
T = TypeVar("T")

SCHEMA_LOCK = 7_402_115_431
"""PostgreSQL advisory lock taken while the schema is created or migrated (one process at a time)."""

# SQLSTATEs worth a retry on PostgreSQL: serialization failure, deadlock, connection trouble,
# the server shutting down or starting up.
_TRANSIENT_PG = ("40001", "40P01", "08000", "08003", "08006", "08001", "57P01", "57P03")


def ledger_url(path_or_url: str | Path) -> str:
    """A SQLAlchemy URL from a path (SQLite) or a URL (anything with ``://``)."""
    text = str(path_or_url)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def display_url(url: str) -> str:
    """A ledger URL fit to print: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def _transient(exc: BaseException) -> bool:
    """A database error that a retry of the whole transaction can cure."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is not None:
        return str(code) in _TRANSIENT_PG
    # SQLite: "database is locked" after the busy timeout (another process held the lock for long).
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


def transaction_retry(fn: Callable[P, T]) -> Callable[P, T]:
    """Retry a ledger method whose transaction failed for a transient reason (bounded, jittered).

    Each decorated method runs its whole transaction again, so it must be safe to repeat: every
    write is conditional (a compare-and-set, ``ON CONFLICT DO NOTHING``) or idempotent by a key
    the caller chose (the attempt uid).
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        delay = 0.05
        for attempt in range(6):
            try:
                return fn(*args, **kwargs)
            except DBAPIError as exc:
                if attempt == 5 or not _transient(exc):
                    raise
                log.warning("ledger: %s failed (%s); retrying in %.2fs", fn.__name__,
                            type(getattr(exc, "orig", exc)).__name__, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 3, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


class LedgerBase:
    """Connection pool, transactions, the database clock and schema set-up."""

    def __init__(self, url: str | Path, *, echo: bool = False) -> None:
        self.url = ledger_url(url)
        self.backend = make_url(self.url).get_backend_name()
        self.is_sqlite = self.backend == "sqlite"
        self.engine: Engine = create_engine(
            self.url, echo=echo,
            **({"connect_args": {"timeout": 60}} if self.is_sqlite else {"pool_pre_ping": True}))
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._insert_ignore: dict[tuple[str, ...], TextClause] = {}
        self._set_up_schema()

    def __repr__(self) -> str:
        return f"Ledger({display_url(self.url)!r})"

    @property
    def display_url(self) -> str:
        """Where this ledger is, password masked (printed by every run)."""
        return display_url(self.url)

    def close(self) -> None:
        """Dispose of pooled connections."""
        self.engine.dispose()

    @transaction_retry
    def _set_up_schema(self) -> None:
        with self.write() as conn:
            if not self.is_sqlite:
                # Two processes creating a fresh database at once would race on CREATE TABLE.
                conn.execute(select(literal_column(f"pg_advisory_xact_lock({SCHEMA_LOCK})")))
            # In the write transaction: two processes opening a new SQLite ledger at once would
            # otherwise both read "no tables" and one would fail to upgrade its lock.
            fresh = not inspect(conn).has_table("ledger_meta")
            existing = None if fresh else conn.execute(
                select(t.meta.c.value).where(t.meta.c.key == "schema_version")).scalar()
            version = int(existing) if existing is not None else t.SCHEMA_VERSION
            if version > t.SCHEMA_VERSION:
                raise RuntimeError(f"ledger {display_url(self.url)} has schema {version}, newer than "
                                   f"this code ({t.SCHEMA_VERSION}); upgrade ccm")
            for step in range(version + 1, t.SCHEMA_VERSION + 1):
                for statement in t.MIGRATIONS.get(step, []):
                    altered = re.match(r"ALTER TABLE (\w+)", statement)
                    if altered and not inspect(conn).has_table(altered.group(1)):
                        continue  # a table newer than this ledger: create_all makes it whole
                    conn.exec_driver_sql(statement)
            t.metadata.create_all(conn)
            if existing is None:
                conn.execute(insert(t.meta).values(key="schema_version", value=str(t.SCHEMA_VERSION)))
            elif version != t.SCHEMA_VERSION:
                conn.execute(update(t.meta).where(t.meta.c.key == "schema_version")
                             .values(value=str(t.SCHEMA_VERSION)))

    @contextmanager
    def write(self, durable: bool = False) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite: the write lock is taken up front).

        ``durable``: the commit survives power loss too (fsync), not only a process crash.
        PostgreSQL commits are always durable.
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

    def now_expr(self) -> ColumnElement[float]:
        """The database's clock in seconds since the epoch, as an SQL expression."""
        if self.is_sqlite:
            return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)
        return literal_column("EXTRACT(EPOCH FROM clock_timestamp())", Float)

    def db_time(self, conn: Connection | None = None) -> float:
        """The database's clock now (wall time every machine sharing the ledger agrees on)."""
        if conn is None:
            with self.read() as c:
                return self.db_time(c)
        return float(conn.execute(select(self.now_expr())).scalar_one())

    def insert_ignore(self, conn: Connection, table: Table, values: Mapping[str, Any]) -> bool:
        """``INSERT ... ON CONFLICT DO NOTHING``; True if the row went in (the database decides)."""
        key = (table.name, *values)
        statement = self._insert_ignore.get(key)
        if statement is None:
            statement = self._insert_ignore[key] = self._insert_ignore_statement(table, list(values))
        return conn.execute(statement, dict(values)).first() is not None

    def _insert_ignore_statement(self, table: Table, columns: list[str]) -> TextClause:
        """The INSERT ... ON CONFLICT DO NOTHING RETURNING <key> of :meth:`insert_ignore`, compiled
        once into a text statement.

        SQLAlchemy does not cache the dialects' ON CONFLICT constructs (``inherit_cache = False``:
        every execution compiles afresh, ~0.15 ms of CPU) and the claim runs two per call; a text
        statement is cached by its SQL. The SQL is the dialect's own, rendered with named
        parameters; values are bound with their column's type. RETURNING, not rowcount: with
        implicit RETURNING psycopg reports rowcount -1.
        """
        dialect = sqlite if self.is_sqlite else postgresql
        statement = (dialect.insert(table).values({c: bindparam(c) for c in columns})
                     .on_conflict_do_nothing().returning(*table.primary_key.columns))
        sql = str(statement.compile(dialect=dialect.dialect(paramstyle="named")))
        # PostgreSQL casts some binds (``:input_summary::JSON``): text() needs those colons escaped.
        sql = sql.replace("::", r"\:\:")
        return text(sql).bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


def pk(result: Any) -> int:
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
