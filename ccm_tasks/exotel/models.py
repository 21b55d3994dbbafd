"""Wire models for Exotel CCM: Make Call, Get Call Details and status callbacks.

The request model rejects invalid combinations before anything is sent; response models accept
every example in the spec verbatim (placeholder numbers such as ``+9199531XXXXX`` included), keep
unknown extra fields, and are nullable wherever the spec says a field can be null.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

RequestKind = Literal["post", "get"]
"""The CCM API's two requests as the account's budget counts them: Make Call and Get Call Details."""

CallState = Literal["active", "terminal"]
CallStatus = Literal[
    "completed",
    "agent_unanswered",
    "customer_unanswered",
    "agent_canceled",
    "customer_no_dial",
    "agent_no_dial",
]
LegStatus = Literal["in-progress", "completed", "failed", "busy", "no-answer"]
Direction = Literal["inbound", "outbound"]
CallbackEvent = Literal["answered", "terminal"]
RecordingChannels = Literal["single", "dual"]

CALL_STATUSES: tuple[str, ...] = CallStatus.__args__  # type: ignore[attr-defined]
LEG_STATUSES: tuple[str, ...] = LegStatus.__args__  # type: ignore[attr-defined]

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
# Indian virtual numbers may also be given in local format (spec: "or local format").
LOCAL_INDIAN_RE = re.compile(r"^0?\d{10,11}$")
SIP_RE = re.compile(r"^sips?:[^@\s]+@[^@\s]+$", re.IGNORECASE)


LENIENT = {"lenient": True}
"""Validation context for parsing requests someone else wrote (the spec's examples, the simulator's
incoming bodies): shapes and combinations are checked, number formats are not. What we send is
always validated strictly."""


def _lenient(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("lenient"))


def _http_url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field} must be an http(s) URL")
    return value


def wav_url_problem(value: str) -> str | None:
    """Why ``value`` cannot be a ``wait_audio_url`` (None if it can): an http(s) URL whose file, if it
    has an extension, is a .wav (Exotel plays only WAV). Shared with the campaign definition."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    last = parts.path.rsplit("/", 1)[-1].lower()
    if "." in last and not last.endswith(".wav"):
        return "must point to a .wav file (the only format Exotel plays)"
    return None


class _Wire(BaseModel):
    """Base for response models: unknown fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- request


class CallFrom(BaseModel):
    """Leg 1, the agent: exactly one of ``user_id`` or ``user_contact_uri``."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    user_contact_uri: str | None = None

    @field_validator("user_id", "user_contact_uri")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None

    @field_validator("user_contact_uri")
    @classmethod
    def _e164_or_sip(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _lenient(info) and not (
            E164_RE.match(value) or SIP_RE.match(value)
        ):
            raise ValueError("must be a phone number in E.164 format (+919953123456) or a SIP URI")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> CallFrom:
        if (self.user_id is None) == (self.user_contact_uri is None):
            raise ValueError("from: give exactly one of user_id or user_contact_uri")
        return self


class CallTo(BaseModel):
    """Leg 2, the customer."""

    model_config = ConfigDict(extra="forbid")

    customer_contact_uri: str

    @field_validator("customer_contact_uri")
    @classmethod
    def _e164(cls, value: str, info: ValidationInfo) -> str:
        if not _lenient(info) and not E164_RE.match(value):
            raise ValueError("must be a phone number in E.164 format, e.g. +919953123456")
        return value


class StatusCallback(BaseModel):
    """One status-callback subscription."""

    model_config = ConfigDict(extra="forbid")

    event: CallbackEvent
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "status_callback.url")


class MakeCallRequest(BaseModel):
    """Body of ``POST /v2/accounts/<sid>/calls`` (agent first, then customer)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: CallFrom = Field(alias="from")
    to: CallTo
    virtual_number: str
    recording: bool | None = None
    recording_channels: RecordingChannels | None = None
    wait_audio_url: str | None = None
    max_time_limit: PositiveInt | None = None
    attempt_time_out: PositiveInt | None = None
    custom_field: str | None = None
    status_callback: list[StatusCallback] | None = None

    @field_validator("virtual_number")
    @classmethod
    def _virtual_number(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not _lenient(info) and not (E164_RE.match(value) or LOCAL_INDIAN_RE.match(value)):
            raise ValueError("must be an ExoPhone in E.164 format (or Indian local format)")
        return value

    @field_validator("wait_audio_url")
    @classmethod
    def _wav(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or _lenient(info):
            return value
        problem = wav_url_problem(value)
        if problem:
            raise ValueError(f"wait_audio_url {problem}")
        return value

    @field_validator("status_callback")
    @classmethod
    def _one_per_event(cls, value: list[StatusCallback] | None) -> list[StatusCallback] | None:
        if value is not None:
            events = [cb.event for cb in value]
            if len(events) != len(set(events)):
                raise ValueError("status_callback lists the same event twice")
        return value

    @field_validator("recording_channels")
    @classmethod
    def _channels_need_recording(
        cls, value: RecordingChannels | None, info: ValidationInfo
    ) -> RecordingChannels | None:
        # The API ignores recording_channels without recording; we refuse to send a request that
        # asks for something it will not get.
        if value is not None and not _lenient(info) and info.data.get("recording") is not True:
            raise ValueError("recording_channels is only valid when recording is true")
        return value

    def to_wire(self) -> dict[str, Any]:
        """The JSON body, with ``from`` spelled as on the wire and unset options left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --------------------------------------------------------------------------- responses


class AgentDetails(_Wire):
    """``assigned_agent_details``: the agent leg (leg 1 for Make Call)."""

    user_id: str | None = None
    # The spec's table says "name" and "call_status"; its JSON examples say "user_name", "status".
    user_name: str | None = Field(default=None, validation_alias=AliasChoices("user_name", "name"))
    contact_uri: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    status: LegStatus | None = Field(
        default=None, validation_alias=AliasChoices("status", "call_status")
    )


class CustomerDetails(_Wire):
    """``customer_details``: the customer leg (leg 2 for Make Call)."""

    contact_name: str | None = None
    contact_uri: str | None = None
    status: LegStatus | None = Field(
        default=None, validation_alias=AliasChoices("status", "call_status")
    )


class Recording(_Wire):
    """One recording of the conversation."""

    url: str


class CallDetails(_Wire):
    """The ``data`` block of Make Call and Get Call Details, and a callback's ``call_details``."""

    call_sid: str
    direction: Direction | None = None
    virtual_number: str | None = None
    call_state: CallState | None = None
    call_status: CallStatus | None = None
    assigned_agent_details: AgentDetails | None = None
    customer_details: CustomerDetails | None = None
    created_time: datetime | None = None
    updated_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_duration: int | None = None
    total_talk_time: int | None = None
    custom_field: str | None = None
    app_id: str | None = None
    app_name: str | None = None
    digits: str | None = None
    recordings: list[Recording] | None = None

    @property
    def is_terminal(self) -> bool:
        """True only when ``call_state`` is terminal; a non-null call_status alone is not enough."""
        return self.call_state == "terminal"

    @property
    def agent_leg_status(self) -> LegStatus | None:
        """Status of the agent leg, if known."""
        return self.assigned_agent_details.status if self.assigned_agent_details else None

    @property
    def customer_leg_status(self) -> LegStatus | None:
        """Status of the customer leg, if known."""
        return self.customer_details.status if self.customer_details else None

    @property
    def recording_urls(self) -> list[str]:
        """Playable recording URLs (empty when none)."""
        return [r.url for r in self.recordings or []]


class ErrorData(_Wire):
    """``error_data``: Exotel's error code, description and message."""

    code: int | None = None
    description: str | None = None
    message: str | None = None


T = TypeVar("T")


class ResponseBlock(_Wire, Generic[T]):
    """The ``response`` block of the envelope."""

    code: int | None = None
    error_data: ErrorData | None = None
    status: str | None = None
    data: T | None = None


class Envelope(_Wire, Generic[T]):
    """Every CCM response: request id, method, http code, metadata and the response block."""

    request_id: str | None = None
    method: str | None = None
    http_code: int | None = None
    metadata: Any = None
    response: ResponseBlock[T] | None = None


class CallEnvelope(Envelope[CallDetails]):
    """An envelope whose data is one call."""


class EventDetails(_Wire):
    """What happened: the callback's event type."""

    event_type: CallbackEvent


class StatusCallbackPayload(_Wire):
    """The body Exotel POSTs to a status_callback URL."""

    event_details: EventDetails
    call_details: CallDetails
