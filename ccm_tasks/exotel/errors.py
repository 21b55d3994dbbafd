"""One exception tree for everything the CCM client raises.

Every error carries a ``category``, which is what the dialer acts on::

    CCMError                              category
    ├── InvalidRequestError               invalid_request   nothing was sent
    ├── RequestNotSentError               not_sent          the caller's guard stopped it
    ├── ConnectError                      retry_later       never reached the server
    ├── RequestTimeoutError               retry_later       a GET timed out
    ├── OutcomeUnknownError               outcome_unknown   a POST was sent, its answer lost
    └── APIError                                            the server answered with an error
        ├── MalformedResponseError        retry_later       not JSON, truncated, not an envelope
        ├── RetryLaterError               retry_later
        │   ├── ServerError                                 5xx
        │   └── RateLimitError                              429 (keeps Retry-After)
        ├── AgentBusyError                agent_busy        10706
        ├── AgentUnavailableError         agent_unavailable 1012 10703 10806 10702
        ├── AgentInvalidError             agent_invalid     10705 10731
        ├── CampaignFatalError            campaign_fatal
        │   ├── AuthenticationError                         1010
        │   ├── AccountNotFoundError                        1017
        │   ├── VirtualNumberNotFoundError                  10716
        │   ├── VoipNotAllowedError                         10712
        │   └── BadRequestError                             1001 1002, unknown 4xx
        └── CallNotFoundError             call_not_found    1021 1022 3043 3044 3045

:func:`error_from_response` is the single place where an HTTP status and Exotel code become a class;
a code missing from the spec's tables still maps by HTTP status. No error's text ever contains the
API key or token: the client never puts them anywhere but the Authorization header.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any, Literal

Category = Literal[
    "invalid_request",
    "not_sent",
    "retry_later",
    "outcome_unknown",
    "agent_busy",
    "agent_unavailable",
    "agent_invalid",
    "campaign_fatal",
    "call_not_found",
]


class CCMError(Exception):
    """Base class of every error the CCM client raises."""

    category: Category = "retry_later"
    hint: str = ""
    """What an operator should check, in words (settings named), when the cause is on our side."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(CCMError, ValueError):
    """The request failed validation before anything was sent."""

    category: Category = "invalid_request"


class RequestNotSentError(CCMError):
    """The caller's last-moment guard refused to send (e.g. the calling window just closed)."""

    category: Category = "not_sent"


class ConnectError(CCMError):
    """The request never reached the server (connection refused, DNS, pool exhausted)."""

    category: Category = "retry_later"


class RequestTimeoutError(CCMError):
    """A safe (GET) request timed out or lost its connection; retrying is harmless."""

    category: Category = "retry_later"


class OutcomeUnknownError(CCMError):
    """A Make Call was sent but its answer was lost: the call may or may not exist.

    Never retried: a second POST could ring the customer twice. The caller records the attempt as
    unknown and resolves it when evidence (a callback carrying its custom_field) arrives.
    """

    category: Category = "outcome_unknown"

    def __init__(self, message: str, *, method: str = "POST", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class APIError(CCMError):
    """The CCM API answered, with an error status or a body we cannot use."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        code: int | None = None,
        description: str | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.description = description
        self.request_id = request_id
        self.method = method
        self.path = path

    def __str__(self) -> str:
        code = f"/{self.code}" if self.code is not None else ""
        rid = f" (request_id {self.request_id})" if self.request_id else ""
        where = f" on {self.method} {self.path}" if self.method else ""
        return f"HTTP {self.http_status}{code}: {self.message}{where}{rid}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(http_status={self.http_status}, code={self.code}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class MalformedResponseError(APIError):
    """The body was not JSON, was truncated, or was not a CCM envelope."""

    category: Category = "retry_later"


class RetryLaterError(APIError):
    """A transient failure (5xx, 429): try again after a back-off."""

    category: Category = "retry_later"


class ServerError(RetryLaterError):
    """HTTP 5xx."""


class RateLimitError(RetryLaterError):
    """HTTP 429: the account's request budget is spent; ``retry_after`` seconds is the hint."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class AgentBusyError(APIError):
    """The agent's device is on another call (10706), e.g. a manual call."""

    category: Category = "agent_busy"


class AgentUnavailableError(APIError):
    """The agent's device is off, missing or unavailable (1012, 10703, 10806, 10702)."""

    category: Category = "agent_unavailable"


class AgentInvalidError(APIError):
    """The agent cannot be used: unknown user or unverified device (10731, 10705)."""

    category: Category = "agent_invalid"


class CampaignFatalError(APIError):
    """Nothing in this campaign can be dialled until an operator fixes the setup."""

    category: Category = "campaign_fatal"


class AuthenticationError(CampaignFatalError):
    """Bad API key or token (401/1010)."""

    hint = ("check EXOTEL_API_KEY and EXOTEL_API_TOKEN, that they belong to EXOTEL_ACCOUNT_SID, and "
            "EXOTEL_REGION (or EXOTEL_BASE_URL): an account lives in one region")


class AccountNotFoundError(CampaignFatalError):
    """Unknown account sid (404/1017)."""

    hint = "check EXOTEL_ACCOUNT_SID and EXOTEL_REGION (or EXOTEL_BASE_URL): an account lives in one region"


class VirtualNumberNotFoundError(CampaignFatalError):
    """The virtual number (ExoPhone) is not in the account (404/10716)."""

    hint = "check virtual_number in the campaign definition: it must be an ExoPhone of this account"


class VoipNotAllowedError(CampaignFatalError):
    """VOIP (SIP) calls are not enabled on the account (405/10712)."""

    hint = "agents with sip: contact URIs need VOIP enabled on the account (ask Exotel), or use phone numbers"


class BadRequestError(CampaignFatalError):
    """The API rejected the request itself (1001, 1002, or an unlisted 4xx)."""


class CallNotFoundError(APIError):
    """No such call, or a call this API does not cover (1021, 1022, 3043, 3044, 3045)."""

    category: Category = "call_not_found"


_ISE = "Internal Server Error"
_CNF = "Call not found / unsupported in this API"

# Every (HTTP status, Exotel code) pair in the spec's two error tables (Make Call, Get Call Details).
ERROR_TABLE: dict[tuple[int, int], tuple[type[APIError], str]] = {
    (401, 1010): (AuthenticationError, "Authentication failed"),
    (404, 10731): (AgentInvalidError, "User not found"),
    (409, 1012): (AgentUnavailableError, "User device is unavailable"),
    (409, 10705): (AgentInvalidError, "User device is unverified"),
    (409, 10706): (AgentBusyError, "User device is currently busy"),
    (404, 10706): (AgentBusyError, "User device is currently busy"),
    (404, 10806): (AgentUnavailableError, "No device found for user"),
    (404, 1017): (AccountNotFoundError, "AccountSid not found"),
    (404, 10702): (AgentUnavailableError, "User Device not found"),
    (404, 1021): (CallNotFoundError, _CNF),
    (404, 1022): (CallNotFoundError, _CNF),
    (400, 1001): (BadRequestError, "account_sid is mandatory"),
    (400, 1002): (BadRequestError, "Valid values for RecordingChannels are single, dual"),
    (404, 10703): (AgentUnavailableError, "Device is currently unavailable (turned off)"),
    (405, 10712): (VoipNotAllowedError, "VOIP calls are not allowed"),
    (404, 3043): (CallNotFoundError, _CNF),
    (404, 3044): (CallNotFoundError, _CNF),
    (404, 3045): (CallNotFoundError, _CNF),
    (404, 10716): (VirtualNumberNotFoundError, "Given virtual_number not found"),
    **{
        (500, code): (ServerError, _ISE)
        for code in (1100, 1101, 1200, 1203, 1300, 1500, 1600, 1601, 1800,
                     3040, 3042, 3046, 3075, 3080, 4060)
    },
}

# A code the spec does not list, under a known status, still maps by code when the code is known
# under another status (10706 appears under both 404 and 409), else by status.
_BY_CODE: dict[int, type[APIError]] = {code: cls for (_, code), (cls, _) in ERROR_TABLE.items()}


def _class_for_status(http_status: int, method: str) -> type[APIError]:
    if http_status == 429:
        return RateLimitError
    if http_status >= 500:
        return ServerError
    if http_status in (401, 403):
        return AuthenticationError
    if http_status == 409:
        return AgentUnavailableError
    if http_status == 404 and method.upper() == "GET":
        return CallNotFoundError
    # Any other 4xx on Make Call: stop and tell an operator rather than burn through customers.
    return BadRequestError


def error_class_for(http_status: int, code: int | None, method: str = "POST") -> type[APIError]:
    """The exception class for an error answer (the one mapping, used by :func:`error_from_response`)."""
    if code is not None:
        if (http_status, code) in ERROR_TABLE:
            return ERROR_TABLE[(http_status, code)][0]
        if code in _BY_CODE and http_status < 500:
            return _BY_CODE[code]
    return _class_for_status(http_status, method)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


def error_from_response(
    *,
    http_status: int,
    body: bytes,
    method: str,
    path: str,
    retry_after: str | None = None,
) -> APIError:
    """Build the right :class:`APIError` for an error answer; an unreadable body is not a crash."""
    request_id: str | None = None
    code: int | None = None
    description: str | None = None
    message: str | None = None
    try:
        payload = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, dict):
        request_id = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
        response = payload.get("response")
        error_data = response.get("error_data") if isinstance(response, dict) else None
        if isinstance(error_data, dict):
            raw_code = error_data.get("code")
            try:
                code = int(raw_code) if raw_code is not None else None
            except (TypeError, ValueError):
                code = None
            description = _str_or_none(error_data.get("description"))
            message = _str_or_none(error_data.get("message"))
    cls = error_class_for(http_status, code, method)
    if not message:
        listed = ERROR_TABLE.get((http_status, code)) if code is not None else None
        message = description or (listed[1] if listed else None) or _default_message(http_status)
    kwargs: dict[str, Any] = dict(
        http_status=http_status,
        code=code,
        description=description,
        request_id=request_id,
        method=method.upper(),
        path=path,
    )
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=parse_retry_after(retry_after), **kwargs)
    return cls(message, **kwargs)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _default_message(http_status: int) -> str:
    return {
        400: "Bad request",
        401: "Authentication failed",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict",
        429: "Too many requests",
    }.get(http_status, "Internal Server Error" if http_status >= 500 else f"HTTP {http_status}")
