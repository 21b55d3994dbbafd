"""Where the product keeps its files, overridable by environment.

``CCM_HOME`` (default: the current directory) holds ``var/ledger.sqlite`` and ``reports/``.
``CCM_LEDGER`` and ``CCM_REPORTS`` override each. Every campaign run in the same place shares one
ledger, which is what keeps an agent shared by two campaigns to one call at a time.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path


def ccm_home() -> Path:
    """The product's working folder."""
    return Path(os.environ.get("CCM_HOME") or Path.cwd())


def default_ledger_path() -> Path:
    """The shared ledger (SQLite)."""
    override = os.environ.get("CCM_LEDGER")
    return Path(override) if override else ccm_home() / "var" / "ledger.sqlite"


def reports_dir() -> Path:
    """Where reports are written."""
    override = os.environ.get("CCM_REPORTS")
    return Path(override) if override else ccm_home() / "reports"


def campaign_reports_dir(campaign: str, day: date | None = None) -> Path:
    """``reports/<campaign>/`` (the rejects file), or ``reports/<campaign>/<day>/`` (a run's files)."""
    folder = reports_dir() / safe_name(campaign)
    return folder / day.isoformat() if day is not None else folder


def safe_name(text: str) -> str:
    """A folder name from a campaign name: no separators, no ``..`` (names come from the ledger)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip(".")
    return cleaned or "_"
