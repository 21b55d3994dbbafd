"""The Exotel CCM API: wire models, the HTTP client and the error tree."""

from ccm_tasks.exotel.client import CCMClient, OpenGate, RequestGate
from ccm_tasks.exotel.errors import (
    APIError,
    CCMError,
    OutcomeUnknownError,
    error_from_response,
)
from ccm_tasks.exotel.models import CallDetails, MakeCallRequest, StatusCallbackPayload

__all__ = [
    "APIError",
    "CCMClient",
    "CCMError",
    "CallDetails",
    "MakeCallRequest",
    "OpenGate",
    "OutcomeUnknownError",
    "RequestGate",
    "StatusCallbackPayload",
    "error_from_response",
]
