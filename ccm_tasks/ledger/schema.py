"""The ledger's tables (SQLAlchemy Core): portable between SQLite and PostgreSQL.

Times are seconds since the Unix epoch (float) on the campaign's clock: wall time in production,
simulated time against a time-scaled simulator, so a ledger and the simulator's dial log agree.
Holder heartbeats and run progress stamps are the database's clock (machines may disagree).
JSON columns hold what varies (carried-through spreadsheet
columns, raw call details).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

SCHEMA_VERSION = 4
MIGRATIONS: dict[int, list[str]] = {
    # v1 -> v2: status callbacks (the callback_events table is created by create_all).
    2: ["ALTER TABLE campaigns ADD COLUMN callback_token VARCHAR(64)",
        "CREATE UNIQUE INDEX IF NOT EXISTS ix_campaigns_callback_token ON campaigns (callback_token)"],
    # v2 -> v3: campaign controls, live progress of runs, agent wrap-up, numbers across campaigns.
    3: ["ALTER TABLE campaigns ADD COLUMN control VARCHAR(16)",
        "ALTER TABLE campaigns ADD COLUMN control_reason TEXT",
        "ALTER TABLE campaigns ADD COLUMN control_by VARCHAR(200)",
        "ALTER TABLE campaigns ADD COLUMN control_at DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN progress JSON",
        "ALTER TABLE runs ADD COLUMN progress_at DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN flow_run_id VARCHAR(64)",
        "ALTER TABLE attempts ADD COLUMN wrap_up_seconds DOUBLE PRECISION",
        "CREATE INDEX IF NOT EXISTS ix_customers_key ON customers (customer_key)",
        "ALTER TABLE holders ADD COLUMN boot_id VARCHAR(64)",
        "ALTER TABLE holders ADD COLUMN journal TEXT",
        "ALTER TABLE agent_leases ADD COLUMN available_at DOUBLE PRECISION"],
    # v3 -> v4: an account's overload episode (one back-off step per episode, not per expired pause).
    4: ["ALTER TABLE api_budgets ADD COLUMN episode_at DOUBLE PRECISION"],
}

meta = Table(
    "ledger_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

holders = Table(
    "holders",
    metadata,
    Column("holder_id", String(32), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_started", String(32)),  # /proc start time, so a reused pid is not mistaken for us
    Column("started_at", Double, nullable=False),
    Column("heartbeat_at", Double, nullable=False),  # the database's clock
    Column("label", String(255)),
    # The kernel's boot id: a dead holder's send journal is trusted only if the machine did not
    # restart since (the journal is not fsynced; a process crash keeps it, a power cut may not).
    Column("boot_id", String(64)),
    Column("journal", Text),  # path of its send journal (ccm_tasks.dialer.journal)
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("definition_path", Text),
    Column("timezone", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("runner_holder", String(32)),  # who is dialling it now (one runner per campaign)
    Column("status", String(32), nullable=False, default="new"),
    Column("status_reason", Text),
    Column("updated_at", Double, nullable=False),
    Column("input_summary", JSON),  # rejected / duplicates / suppressed counts of the last load
    Column("callback_token", String(64), unique=True),  # secret path segment of the callback URL
    # What operators asked for (ccm pause/resume/stop, the console): NULL or "run", "pause", "stop".
    # The running engine reads it within a second; who, why and when are kept with it and as events.
    Column("control", String(16)),
    Column("control_reason", Text),
    Column("control_by", String(200)),
    Column("control_at", Double),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("holder_id", String(32), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("ended_at", Double),
    Column("status", String(32), nullable=False),
    Column("reason", Text),
    Column("summary", JSON),
    Column("progress", JSON),  # the engine's latest snapshot while it runs (status, console)
    Column("progress_at", Double),  # when it was written (wall time)
    Column("flow_run_id", String(64)),  # the Prefect flow run that tracks it, if any
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("customer_key", String(64), nullable=False),  # the E.164 number
    Column("phone", String(64), nullable=False),
    Column("preferred_agent", String(200)),
    Column("source_file", Text),
    Column("source_sheet", String(200)),
    Column("source_row", Integer),
    Column("extra", JSON),
    # A CustomerState (ccm_tasks.ledger.states).
    Column("state", String(16), nullable=False, default="pending"),
    Column("final_status", String(32)),
    Column("last_status", String(32)),
    Column("attempts", Integer, nullable=False, default=0),  # customer attempts used
    Column("agent_side_retries", Integer, nullable=False, default=0),
    Column("no_dial_retries", Integer, nullable=False, default=0),
    Column("next_attempt_at", Double),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("campaign_id", "customer_key", name="uq_customer_per_campaign"),
)
Index("ix_customers_campaign_state", customers.c.campaign_id, customers.c.state)
Index("ix_customers_key", customers.c.customer_key)  # one number across campaigns (contact limits)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(32), nullable=False, unique=True),  # travels in custom_field
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("holder_id", String(32), nullable=False),
    Column("agent_key", String(200), nullable=False),
    Column("agent_name", String(200)),
    Column("attempt_no", Integer, nullable=False),  # 1-based count of this customer's attempts
    Column("state", String(16), nullable=False),  # an AttemptState (ccm_tasks.ledger.states)
    Column("call_sid", String(64)),
    Column("created_at", Double, nullable=False),
    Column("placed_at", Double),
    Column("terminal_at", Double),
    Column("stuck_at", Double),
    Column("call_status", String(32)),
    Column("agent_leg_status", String(32)),
    Column("customer_leg_status", String(32)),
    Column("start_time", Double),
    Column("end_time", Double),
    Column("total_talk_time", Integer),
    Column("total_duration", Integer),
    Column("recordings", JSON),
    Column("error_category", String(32)),
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("details", JSON),  # the last call details seen, raw
    Column("resolved_by", String(32)),  # poll | callback | recovery | operator
    # After-call work given to the agent once this call ended (seconds; 0 or NULL: none).
    Column("wrap_up_seconds", Double),
)
Index("ix_attempts_campaign_state", attempts.c.campaign_id, attempts.c.state)
Index("ix_attempts_customer", attempts.c.customer_id)
Index("ix_attempts_call_sid", attempts.c.call_sid)
Index("ix_attempts_end_time", attempts.c.end_time)

agent_leases = Table(
    "agent_leases",
    metadata,
    Column("agent_key", String(200), primary_key=True),
    Column("holder_id", String(32), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id")),
    Column("attempt_id", Integer, ForeignKey("attempts.id")),
    Column("call_sid", String(64)),
    Column("acquired_at", Double, nullable=False),
    # While set and in the future the lease holds even if its holder dies: the agent may be on a
    # call we cannot look up (Make Call outcome unknown).
    Column("quarantine_until", Double),
    # Set when the call is over but the agent is in after-call work (wrap-up) until this time: the
    # lease still holds, across campaigns, and anyone may take it once the time has passed.
    Column("available_at", Double),
)

number_leases = Table(
    "number_leases",
    metadata,
    # One live call per number across every campaign in the ledger: taken with the agent's lease in
    # the claim transaction, released with the attempt. Stale once no agent lease names its attempt.
    Column("customer_key", String(64), primary_key=True),
    Column("attempt_id", Integer, ForeignKey("attempts.id"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("acquired_at", Double, nullable=False),
)

api_budgets = Table(
    "api_budgets",
    metadata,
    # One row per account ("<sid>@<base url>"): the token bucket every process on it draws from
    # (ccm_tasks.ledger.budget). Times are the budget's clock (the database's, or a simulator's).
    Column("account", String(400), primary_key=True),
    Column("per_minute", Integer, nullable=False),
    Column("tokens", Double, nullable=False),
    Column("get_tokens", Double, nullable=False),
    Column("refilled_at", Double, nullable=False),
    Column("factor", Double, nullable=False),
    Column("blocked_until", Double, nullable=False),
    Column("last_429_at", Double, nullable=False),
    Column("episode_at", Double),  # when the current overload episode began (null: never)
    Column("post_waiting_until", Double, nullable=False),
    Column("window_start", Double, nullable=False),  # grants counted per minute, for status pages
    Column("window_count", Integer, nullable=False),
    Column("last_window_count", Integer, nullable=False),
    Column("rate_limited", Integer, nullable=False),  # 429s heard, in all
)

callback_events = Table(
    "callback_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("attempt_id", Integer, ForeignKey("attempts.id")),
    Column("call_sid", String(64)),
    Column("event_type", String(16), nullable=False),
    # The same delivery repeated has the same key and is recorded once.
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("received_at", Double, nullable=False),
    Column("payload", JSON, nullable=False),
)
Index("ix_callback_events_campaign", callback_events.c.campaign_id, callback_events.c.id)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id")),
    Column("attempt_id", Integer, ForeignKey("attempts.id")),
    Column("at", Double, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("agent_key", String(200)),
    Column("data", JSON),
)
Index("ix_events_campaign", events.c.campaign_id, events.c.kind)

console_users = Table(
    "console_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # operator | manager | admin
    Column("password_hash", Text, nullable=False),  # argon2id, with its parameters and salt
    Column("created_at", Double, nullable=False),  # wall time, as every console column
    Column("disabled_at", Double),
    # Sessions issued before this moment are void (sign-out ends every session of the user).
    Column("sessions_after", Double, nullable=False, default=0.0),
    Column("last_sign_in_at", Double),
)
