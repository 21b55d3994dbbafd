"""The durable record (SQLAlchemy Core): SQLite by default, PostgreSQL for several machines."""

from ccm_tasks.ledger.ledger import Claim, CustomerRow, CustomerUpdate, Ledger, OpenAttempt
from ccm_tasks.ledger.states import (
    LIVE_ATTEMPT,
    MAY_HAVE_RUNG,
    OPEN_ATTEMPT,
    UNFINISHED_CUSTOMER,
    AttemptState,
    CustomerState,
)

__all__ = ["LIVE_ATTEMPT", "MAY_HAVE_RUNG", "OPEN_ATTEMPT", "UNFINISHED_CUSTOMER", "AttemptState", "Claim",
           "CustomerRow", "CustomerState", "CustomerUpdate", "Ledger", "OpenAttempt"]
