"""Defaults that several layers share (the CLI, the flows, the reports), in one light module."""

from __future__ import annotations

DAILY_TIMEZONE = "Asia/Kolkata"
"""The daily report's zone unless told otherwise (its day runs from local midnight to midnight)."""
DAILY_CRON = "30 21 * * *"
"""When the daily report runs by itself (after the default 09:00-21:00 window has closed)."""
HEARTBEAT_SECONDS = 30
"""Seconds between a deployed flow run's heartbeat events (Prefect's minimum; its default is 180)."""
ZOMBIE_AFTER_SECONDS = 90.0
"""Silence after which a deployed run is presumed dead and marked Crashed: three heartbeats missed
(flows/automations.py)."""
