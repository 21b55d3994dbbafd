"""The simulator's wire errors, one class per answer the spec lists (moto's exceptions pattern).

Each class carries its HTTP status and Exotel code; its text comes from the client's error table
(:data:`ccm_tasks.exotel.errors.ERROR_TABLE`), so the simulator and the client cannot disagree::

    SimError
    ├── AuthenticationFailed        401/1010
    ├── AccountSidMissing           400/1001
    ├── BadRecordingChannels        400/1002
    ├── BadRequest                  400 (no code; the message says what)
    ├── AccountNotFound             404/1017
    ├── UserNotFound                404/10731
    ├── VirtualNumberNotFound       404/10716
    ├── NoDevice                    404/10806
    ├── CallNotFound                404/3043
    ├── VoipNotAllowed              405/10712
    ├── DeviceUnavailable           409/1012
    ├── DeviceUnverified            409/10705
    ├── DeviceBusy                  409/10706
    ├── RateLimited                 429 (Retry-After)
    └── ServerError                 500/<one of the spec's 500 codes>
"""

from __future__ import annotations

from typing import ClassVar

from ccm_tasks.exotel.errors import ERROR_TABLE

SERVER_ERROR_CODES: tuple[int, ...] = tuple(sorted(code for (status, code) in ERROR_TABLE if status == 500))
"""Every 500 code of the spec's tables (Make Call's and Get Call Details')."""
GET_SERVER_ERROR_CODES: tuple[int, ...] = (1100, 3042, 3046, 3075)
"""The 500 codes the spec's Get Call Details table lists."""


class SimError(Exception):
    """An error answer of the simulated API."""

    http_status: ClassVar[int] = 500
    code: int | None = None

    def __init__(self, description: str | None = None, *, retry_after: float | None = None) -> None:
        listed = ERROR_TABLE.get((self.http_status, self.code)) if self.code is not None else None
        self.description = description or (listed[1] if listed else "error")
        self.retry_after = retry_after
        super().__init__(f"{self.http_status}/{self.code}: {self.description}")


class AuthenticationFailed(SimError):
    """Wrong API key or token."""

    http_status, code = 401, 1010


class AccountSidMissing(SimError):
    """No account sid in the path."""

    http_status, code = 400, 1001


class BadRecordingChannels(SimError):
    """recording_channels is not single or dual."""

    http_status, code = 400, 1002


class BadRequest(SimError):
    """A body that is not a Make Call (no Exotel code)."""

    http_status = 400


class AccountNotFound(SimError):
    """Another account's sid."""

    http_status, code = 404, 1017


class UserNotFound(SimError):
    """No agent with that user_id or contact uri."""

    http_status, code = 404, 10731


class VirtualNumberNotFound(SimError):
    """Not one of the account's ExoPhones."""

    http_status, code = 404, 10716


class NoDevice(SimError):
    """The agent has no device."""

    http_status, code = 404, 10806


class CallNotFound(SimError):
    """No such call (or not one Make Call placed)."""

    http_status, code = 404, 3043


class VoipNotAllowed(SimError):
    """A SIP agent on an account without VOIP."""

    http_status, code = 405, 10712


class DeviceUnavailable(SimError):
    """The agent's device is off."""

    http_status, code = 409, 1012


class DeviceUnverified(SimError):
    """The agent's device is not verified."""

    http_status, code = 409, 10705


class DeviceBusy(SimError):
    """The agent's device is on a call."""

    http_status, code = 409, 10706


class RateLimited(SimError):
    """Over the account's requests per minute."""

    http_status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too Many Requests: API rate limit exceeded", retry_after=retry_after)


class ServerError(SimError):
    """An injected 500 with one of the spec's codes."""

    http_status = 500

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__()
