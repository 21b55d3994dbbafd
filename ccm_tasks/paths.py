"""Where the product keeps its files, from :class:`~ccm_tasks.settings.PathSettings`.

``CCM_HOME`` (default: the current directory) holds ``var/ledger.sqlite`` and ``reports/``.
``CCM_LEDGER`` (a SQLite path or a database URL such as ``postgresql+psycopg://...``) and
``CCM_REPORTS`` override each. Every campaign run against the same ledger shares it, which is what
keeps an agent shared by two campaigns to one call at a time.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from ccm_tasks.settings import PathSettings


def ccm_home() -> Path:
    """The product's working folder."""
    home = PathSettings().home
    return Path(home).expanduser() if home else Path.cwd()


def default_ledger() -> str:
    """The shared ledger: ``CCM_LEDGER`` (a path or a URL), else ``$CCM_HOME/var/ledger.sqlite``."""
    return PathSettings().ledger or str(ccm_home() / "var" / "ledger.sqlite")


def resolve_ledger(given: str | Path | None = None) -> str:
    """The ledger a command uses: what it was given, else the default. URLs stay URLs."""
    return str(given) if given else default_ledger()


def ledger_exists(location: str) -> bool:
    """A URL is taken to exist (its server says otherwise); a SQLite path must be a file already:
    reading commands and previews never create an empty ledger."""
    return "://" in location or Path(location).expanduser().exists()


def journal_dir() -> Path:
    """Where running processes keep their send journals (ccm_tasks.dialer.journal)."""
    return ccm_home() / "var" / "journals"


def reports_dir() -> Path:
    """Where reports are written."""
    reports = PathSettings().reports
    return Path(reports).expanduser() if reports else ccm_home() / "reports"


def campaign_reports_dir(campaign: str, day: date | None = None) -> Path:
    """``reports/<campaign>/`` (the rejects file), or ``reports/<campaign>/<day>/`` (a run's files)."""
    folder = reports_dir() / safe_name(campaign)
    return folder / day.isoformat() if day is not None else folder


def safe_name(text: str) -> str:
    """A folder name from a campaign name: no separators, no ``..`` (names come from the ledger)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip(".")
    return cleaned or "_"
