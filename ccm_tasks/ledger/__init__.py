"""The durable record (SQLAlchemy Core): SQLite by default, PostgreSQL-ready."""

from ccm_tasks.ledger.ledger import Claim, CustomerRow, CustomerUpdate, Ledger, OpenAttempt

__all__ = ["Claim", "CustomerRow", "CustomerUpdate", "Ledger", "OpenAttempt"]
