"""Defaults that several layers share (the CLI, the flows, the reports), in one light module."""

from __future__ import annotations

DAILY_TIMEZONE = "Asia/Kolkata"
"""The daily report's zone unless told otherwise (its day runs from local midnight to midnight)."""
DAILY_CRON = "30 21 * * *"
"""When the daily report runs by itself (after the default 09:00-21:00 window has closed)."""
