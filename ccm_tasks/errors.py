"""Errors the product's own layers raise to the commands (the CCM API's errors: ccm_tasks.exotel.errors)."""

from __future__ import annotations


class CampaignCannotRun(Exception):
    """The campaign cannot start: the message says why and what to do."""
