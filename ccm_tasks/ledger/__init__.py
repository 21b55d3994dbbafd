"""The durable record (SQLAlchemy Core): SQLite on one machine, PostgreSQL for several."""

from ccm_tasks.ledger.attempts import Claim, OpenAttempt
from ccm_tasks.ledger.base import display_url, ledger_url
from ccm_tasks.ledger.budget import Bucket, Grant
from ccm_tasks.ledger.campaigns import Control, CustomerRow, CustomerUpdate
from ccm_tasks.ledger.holders import HOLDER_TTL_SECONDS
from ccm_tasks.ledger.ledger import Ledger
from ccm_tasks.ledger.limits import ContactLimit
from ccm_tasks.ledger.states import (
    LIVE_ATTEMPT,
    MAY_HAVE_RUNG,
    OPEN_ATTEMPT,
    UNFINISHED_CUSTOMER,
    AttemptState,
    CustomerState,
)

__all__ = ["HOLDER_TTL_SECONDS", "LIVE_ATTEMPT", "MAY_HAVE_RUNG", "OPEN_ATTEMPT", "UNFINISHED_CUSTOMER",
           "AttemptState", "Bucket", "Claim", "ContactLimit", "Control", "CustomerRow", "CustomerState",
           "CustomerUpdate", "Grant", "Ledger", "OpenAttempt", "display_url", "ledger_url"]
