"""How one campaign dials: the engine's configuration, built from a campaign definition."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccm_tasks.dialer.policy import Policy
from ccm_tasks.dialer.window import DialWindow
from ccm_tasks.exotel.models import StatusCallback
from ccm_tasks.ledger import ContactLimit

if TYPE_CHECKING:
    from ccm_tasks.inputs.definition import CampaignDefinition

DEFAULT_RING_TIMEOUT = 60.0
"""Seconds a leg rings when Make Call gives no ``attempt_time_out`` (the simulator's default too)."""
DEFAULT_MAX_CALL = 3600.0
"""Longest conversation assumed when Make Call gives no ``max_time_limit``."""


@dataclass(frozen=True)
class EngineConfig:
    """How one campaign dials (built from its definition by :func:`config_from_definition`)."""

    campaign: str
    virtual_number: str
    policy: Policy = field(default_factory=Policy)
    window: DialWindow = field(default_factory=DialWindow)
    recording: bool = False
    recording_channels: str | None = None
    wait_audio_url: str | None = None
    max_time_limit: int | None = None
    attempt_time_out: int | None = None
    status_callbacks: tuple[StatusCallback, ...] = ()
    sticky_wait: float = 120.0
    agent_cooldown: float = 60.0
    agent_recheck: float = 300.0
    stuck_grace: float = 600.0
    wrap_up: float = 0.0
    contact_limit: ContactLimit | None = None
    lease_retry: float = 15.0
    max_pending_posts: int = 8
    wait_for_window: bool = True
    heartbeat_seconds: float = 1.0  # real seconds: progress and liveness written this often
    control_seconds: float = 0.5  # real seconds: operators' pause/resume/stop read this often
    talk_window: float = 300.0  # with callbacks: a live conversation is checked this often

    @property
    def callbacks(self) -> bool:
        """Status callbacks are requested (polling becomes the safety net)."""
        return bool(self.status_callbacks)

    @property
    def ring_window(self) -> float:
        """With callbacks: how long a phase may go without news before a safety poll."""
        return float(self.attempt_time_out or DEFAULT_RING_TIMEOUT) + 30.0

    @property
    def max_call_seconds(self) -> float:
        """The longest a call we place can last: talk limit plus both legs ringing."""
        ring = float(self.attempt_time_out or DEFAULT_RING_TIMEOUT)
        return float(self.max_time_limit or DEFAULT_MAX_CALL) + 2 * ring

    @property
    def stuck_after(self) -> float:
        """A call not terminal this long after it was placed is reported stuck."""
        return self.max_call_seconds + self.stuck_grace

    @property
    def unknown_quarantine(self) -> float:
        """How long an agent stays leased after a Make Call whose outcome is unknown."""
        return self.max_call_seconds + self.stuck_grace

    def attempt_no(self, attempts: int, agent_side: int, no_dial: int) -> int:
        """The 1-based number of the next Make Call for a customer with these counts."""
        return 1 + attempts + agent_side + no_dial


def config_from_definition(definition: CampaignDefinition, *,
                           status_callbacks: Sequence[StatusCallback] = (),
                           wait_for_window: bool = True) -> EngineConfig:
    """An :class:`EngineConfig` from a validated campaign definition."""
    d = definition
    window = DialWindow(start=d.window.start, end=d.window.end, timezone=d.window.timezone,
                        days=tuple(d.window.days),
                        start_at=d.start_at.timestamp() if d.start_at else None,
                        end_at=d.end_at.timestamp() if d.end_at else None)
    policy = Policy(max_attempts=d.retry.max_attempts, interval_seconds=d.retry.interval_minutes * 60,
                    backoff=d.retry.backoff, retry_on=frozenset(d.retry.retry_on),
                    customer_no_dial_max_retries=d.retry.customer_no_dial_max_retries,
                    max_agent_side_retries=d.retry.max_agent_side_retries)
    limits = d.limits
    limit = (ContactLimit(limits.max_calls_per_number, limits.window_days * 86400.0)
             if limits.max_calls_per_number else None)
    return EngineConfig(
        campaign=d.name, virtual_number=d.virtual_number, policy=policy, window=window,
        recording=d.call.recording, recording_channels=d.call.recording_channels,
        wait_audio_url=d.call.wait_audio_url, max_time_limit=d.call.max_time_limit,
        attempt_time_out=d.call.attempt_time_out, status_callbacks=tuple(status_callbacks),
        sticky_wait=d.dialer.sticky_wait_seconds, agent_cooldown=d.dialer.agent_cooldown_seconds,
        agent_recheck=d.dialer.agent_recheck_seconds, stuck_grace=d.dialer.stuck_grace_seconds,
        wrap_up=d.dialer.wrap_up_seconds, contact_limit=limit,
        wait_for_window=wait_for_window)
