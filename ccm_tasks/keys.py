"""Names Prefect accepts, derived from campaign names (which may hold capitals and underscores)."""

from __future__ import annotations

import hashlib
import re


def artifact_key(campaign: str, suffix: str = "") -> str:
    """A Prefect artifact key for a campaign: lowercase letters, digits and dashes only.

    Names that had to change (``Run5_CampA`` -> ``run5-campa``) get a short hash of the original,
    so two campaigns that differ only in case or punctuation never share an artifact.
    """
    base = re.sub(r"[^a-z0-9]+", "-", campaign.lower()).strip("-") or "campaign"
    if base != campaign:
        base += "-" + hashlib.sha256(campaign.encode()).hexdigest()[:6]
    return f"{base}-{suffix}" if suffix else base
