"""The console's one door to campaign controls and live status (:mod:`ccm_tasks.control`).

Every page that pauses, resumes, stops or shows a campaign's state goes through these names.
"""

from __future__ import annotations

from ccm_tasks.control import (
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

__all__ = ["AgentView", "CampaignNotFound", "CampaignStatus", "ControlChange", "ControlRefused", "pause",
           "resume", "status", "stop"]
