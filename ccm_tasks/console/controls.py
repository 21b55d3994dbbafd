"""The console's one door to campaign controls and live status (``ccm_tasks.control``, issue 14).

Every page that pauses, resumes, stops or shows a campaign's state goes through these names, so
the console follows the library's interface in one place. Until ``ccm_tasks/control.py`` is on
this branch, a stand-in with the same names answers (status from the ledger; controls refuse).
"""

from __future__ import annotations

try:
    from ccm_tasks.control import (  # type: ignore[import-not-found, unused-ignore]
        AgentView,
        CampaignNotFound,
        CampaignStatus,
        ControlChange,
        ControlRefused,
        pause,
        resume,
        status,
        stop,
    )

    CONTROLS_AVAILABLE = True
    """Whether pause / resume / stop reach a running engine (the real control module is here)."""
except ImportError:  # pragma: no cover - depends on what main has merged
    from ccm_tasks.console._interim_control import (  # type: ignore[assignment, misc, unused-ignore]
        AgentView,
        CampaignNotFound,
        CampaignStatus,
        ControlChange,
        ControlRefused,
        pause,
        resume,
        status,
        stop,
    )

    CONTROLS_AVAILABLE = False

__all__ = ["CONTROLS_AVAILABLE", "AgentView", "CampaignNotFound", "CampaignStatus", "ControlChange",
           "ControlRefused", "pause", "resume", "status", "stop"]
