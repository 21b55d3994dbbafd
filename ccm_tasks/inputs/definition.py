"""The campaign definition: one YAML file per campaign (``campaigns/example.yaml`` documents every key).

Every model forbids unknown keys, so a typo (``retyr:``) is an error, not a silently ignored
setting. :meth:`CampaignDefinition.from_file` turns pydantic's errors into a :class:`DefinitionError`
that names the file and each offending key as a dotted path (``retry.backoff``), with what is allowed
there. Relative paths in the file resolve against the file's folder.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ccm_tasks.exotel.models import CALL_STATUSES, SIP_RE, RecordingChannels, wav_url_problem
from ccm_tasks.inputs.errors import DefinitionError, DefinitionProblem
from ccm_tasks.inputs.phones import is_supported_region, normalise_phone
from ccm_tasks.inputs.yamlio import load_yaml_text

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Backoff = Literal["linear", "exponential"]

# A call can be retried for any outcome but "completed". Outcomes the dialer cannot know (a POST whose
# result is unknown) are not call statuses and are never retried automatically: see ARCHITECTURE.md.
RETRYABLE_STATUSES: tuple[str, ...] = tuple(s for s in CALL_STATUSES if s != "completed")
AGENT_SIDE_STATUSES: tuple[str, ...] = tuple(s for s in RETRYABLE_STATUSES if s.startswith("agent_"))

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_FULL_DAY_NAMES = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu",
    "friday": "fri", "saturday": "sat", "sunday": "sun",
}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _as_text(value: Any) -> Any:
    """YAML reads ``2024`` as a number; a sheet or column called 2024 is still a name."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text)]


def _resolve(value: Path, info: ValidationInfo) -> Path:
    """Relative paths are relative to the definition's folder (when loaded from a file)."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomerFile(_Strict):
    """One customer spreadsheet and which sheet(s) of it to read."""

    path: Path
    # None: the first sheet; "*": every sheet; else a sheet name (workbooks only).
    sheet: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("sheet")
    @classmethod
    def _sheet(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError('must be a sheet name, "*" for every sheet, or null for the first')
        return value.strip() if value is not None else None


class CustomerColumns(_Strict):
    """Which header holds each field; unmapped fields are found by their usual names."""

    phone: Text | None = None
    preferred_agent: Text | None = None


class CustomersSpec(_Strict):
    """Where the customers are and how to read them."""

    files: list[CustomerFile] = Field(min_length=1)
    columns: CustomerColumns = Field(default_factory=CustomerColumns)
    default_region: str = "IN"

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.strip().upper()
        if not is_supported_region(value):
            raise ValueError(f"{value!r} is not an ISO region code libphonenumber knows (e.g. IN)")
        return value


class CallOptions(_Strict):
    """Make Call options sent with every call of the campaign."""

    recording: bool = False
    recording_channels: RecordingChannels | None = None
    wait_audio_url: str | None = None
    max_time_limit: PositiveInt | None = None
    attempt_time_out: PositiveInt | None = None

    @field_validator("wait_audio_url")
    @classmethod
    def _wav(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = wav_url_problem(value)  # the rule MakeCallRequest applies
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _channels_need_recording(self) -> CallOptions:
        if self.recording_channels is not None and not self.recording:
            raise ValueError("recording_channels is only valid when recording is true")
        return self


class RetryPolicy(_Strict):
    """When an unsuccessful customer is tried again.

    ``backoff: linear`` waits ``interval_minutes`` before every retry (the same interval each time);
    ``exponential`` waits ``interval_minutes * 2**(n-1)`` before retry ``n`` (30, 60, 120... minutes).
    """

    max_attempts: int = Field(default=3, ge=1)
    interval_minutes: float = Field(default=30, gt=0)
    backoff: Backoff = "linear"
    retry_on: list[str] = Field(
        default_factory=lambda: ["customer_unanswered", "customer_no_dial"]
    )
    customer_no_dial_max_retries: int = Field(default=1, ge=0)
    max_agent_side_retries: int = Field(default=3, ge=0)

    @field_validator("retry_on")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in RETRYABLE_STATUSES]
        if unknown:
            raise ValueError(
                f"unknown call status {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(RETRYABLE_STATUSES)}"
            )
        return list(dict.fromkeys(value))

    def delay_before_retry(self, retry_number: int) -> timedelta:
        """The wait before retry ``retry_number`` (1 = the first retry, i.e. the second attempt)."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        minutes = self.interval_minutes
        if self.backoff == "exponential":
            minutes *= 2 ** (retry_number - 1)
        return timedelta(minutes=minutes)


def _parse_time(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('write the time as "HH:MM" in quotes')
    if isinstance(value, str):
        match = _TIME_RE.match(value.strip())
        if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
            return time(int(match.group(1)), int(match.group(2)))
        raise ValueError(f'{value!r} is not a time of day "HH:MM" (00:00 to 23:59)')
    return value


class CallingWindow(_Strict):
    """When calls may be placed: [start, end) local time, on the listed days.

    The end is exclusive and must be after the start (no overnight windows in v1).
    """

    start: Annotated[time, BeforeValidator(_parse_time)] = time(9, 0)
    end: Annotated[time, BeforeValidator(_parse_time)] = time(21, 0)
    timezone: str = "Asia/Kolkata"
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("days", mode="before")
    @classmethod
    def _day_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                _FULL_DAY_NAMES.get(d.strip().lower(), d.strip().lower()) if isinstance(d, str) else d
                for d in value
            ]
        return value

    @field_validator("days")
    @classmethod
    def _unique_days(cls, value: list[Weekday]) -> list[Weekday]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _order(self) -> CallingWindow:
        if self.end <= self.start:
            raise ValueError(
                "window.end must be after window.start (the end is exclusive; "
                "overnight windows are not supported)"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The window's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def hours_per_day(self) -> float:
        """Length of one day's window in hours."""
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        return (end - start) / 60

    def contains(self, moment: datetime) -> bool:
        """Whether calls may be placed at ``moment`` (an aware datetime)."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        local = moment.astimezone(self.zone)
        day = WEEKDAYS[local.weekday()]
        return day in self.days and self.start <= local.time().replace(tzinfo=None) < self.end


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Kolkata)") from exc
    return value


_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun",
                      "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


def check_cron(expression: str) -> str:
    """Validate a standard 5-field cron expression (lists, ranges, steps, month/day names).

    croniter is only vendored inside prefect here and cronsim is only a transitive dependency, so
    this is our own strict check of the standard syntax; Prefect parses it again when scheduling.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            _check_cron_item(item.lower(), what, low, high, names)
    return " ".join(fields)


def _check_cron_item(item: str, what: str, low: int, high: int, names: tuple[str, ...]) -> None:
    def number(token: str) -> int:
        if token in names:
            return names.index(token) + (1 if what == "month" else 0)
        if not token.isdigit():
            raise ValueError(f"cron {what}: {token!r} is not a number")
        value = int(token)
        if not low <= value <= high:
            raise ValueError(f"cron {what}: {value} is outside {low}-{high}")
        return value

    body, _, step = item.partition("/")
    if step and (not step.isdigit() or int(step) < 1):
        raise ValueError(f"cron {what}: step {step!r} must be a positive number")
    if body == "*":
        return
    first, dash, last = body.partition("-")
    if not first:
        raise ValueError(f"cron {what}: empty value")
    start = number(first)
    if dash and number(last) < start:
        raise ValueError(f"cron {what}: range {body!r} runs backwards")


class Schedule(_Strict):
    """When Prefect starts the campaign by itself (needs a real Prefect server to fire)."""

    cron: str
    timezone: str = "Asia/Kolkata"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class DialerSettings(_Strict):
    """Pacing knobs of the dialer (seconds)."""

    sticky_wait_seconds: float = Field(default=120, ge=0)
    agent_cooldown_seconds: float = Field(default=60, ge=0)
    agent_recheck_seconds: float = Field(default=300, gt=0)
    stuck_grace_seconds: float = Field(default=600, ge=0)
    average_handling_seconds: float = Field(default=180, gt=0)
    # After-call work: an agent who answered gets this long before the next call (0 allowed).
    wrap_up_seconds: float = Field(default=15, ge=0, le=3600)


class ContactLimits(_Strict):
    """How often one number may be rung, across every campaign sharing the ledger.

    RBI's fair-practice rule for recovery calls forbids "persistent calling"; a cap per number over
    a rolling window is how dialers (VICIdial, Amazon Connect) make that checkable. Make Calls that
    may have rung count; refused ones, and agent-side outcomes where the customer never rang, do not.
    """

    max_calls_per_number: int = Field(default=3, ge=0)  # 0: no limit
    window_days: float = Field(default=1, gt=0, le=30)


class CallbackSettings(_Strict):
    """Status callbacks: where Exotel can reach ``ccm callbacks``."""

    enabled: bool = False
    public_url: str | None = None
    # Where this process's receiver listens ("host:port"); null when `ccm callbacks` runs apart.
    listen: str | None = "127.0.0.1:8780"

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if not parts.hostname or parts.scheme not in ("http", "https"):
            raise ValueError("must be an https URL, e.g. https://ccm.example.com/callbacks")
        # Exotel calls from the internet, so https; plain http only for a local simulator.
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError("must be https (http is only allowed for localhost)")
        return value.rstrip("/")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError('must be "host:port", e.g. "0.0.0.0:8780" (port 0 picks a free one)')
        return value

    # public_url is required only to dial for real (checked when the run starts): against the
    # built-in simulator the receiver's own local address is used.


class CampaignDefinition(_Strict):
    """One campaign: who to call, who calls, from which number, when, and how hard to retry."""

    name: Text
    description: str = ""
    customers: CustomersSpec
    agents: Path
    do_not_call: list[Path] = Field(default_factory=list)
    virtual_number: Text
    call: CallOptions = Field(default_factory=CallOptions)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    window: CallingWindow = Field(default_factory=CallingWindow)
    start_at: datetime | None = None
    end_at: datetime | None = None
    # Optional cap for this campaign; the account's limit is EXOTEL_REQUESTS_PER_MINUTE (200).
    api_budget_per_minute: PositiveInt | None = None
    schedule: Schedule | None = None
    dialer: DialerSettings = Field(default_factory=DialerSettings)
    limits: ContactLimits = Field(default_factory=ContactLimits)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    # A SQLite path (relative to this file) or a database URL (postgresql+psycopg://...).
    ledger: str | None = None

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "use only letters, digits, '_' and '-' (it names ledger rows and report folders)"
            )
        return value

    @field_validator("agents")
    @classmethod
    def _paths(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "://" in value:
            return value
        return str(_resolve(Path(value), info))

    @field_validator("do_not_call", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str | Path) else value

    @field_validator("do_not_call")
    @classmethod
    def _dnc_paths(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [_resolve(v, info) for v in value]

    @field_validator("virtual_number")
    @classmethod
    def _virtual_number(cls, value: str) -> str:
        text = value.strip()
        if SIP_RE.match(text):
            raise ValueError("must be an ExoPhone number, not a SIP URI")
        # ExoPhones are written in E.164 or in Indian local format (080 4568 0000).
        result = normalise_phone(text, "IN")
        if result.e164 is None:
            raise ValueError(f"{value!r} is not a valid phone number ({result.reason})")
        return result.e164

    @model_validator(mode="after")
    def _dates(self) -> CampaignDefinition:
        zone = ZoneInfo(self.window.timezone)
        # Frozen model: object.__setattr__ is how pydantic's own validators adjust fields.
        for field in ("start_at", "end_at"):
            moment = getattr(self, field)
            if moment is not None and moment.tzinfo is None:
                object.__setattr__(self, field, moment.replace(tzinfo=zone))
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self

    @property
    def source_path(self) -> Path | None:
        """The YAML file this definition was read from, if any."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against."""
        return self._source.parent if self._source is not None else Path.cwd()

    def display_path(self, path: Path) -> str:
        """A path as people should see it in reports: relative to the definition's folder if inside."""
        try:
            return path.relative_to(self.base_dir).as_posix()
        except ValueError:
            return str(path)

    @classmethod
    def from_mapping(
        cls, data: Any, *, base_dir: Path | None = None, source: Path | None = None
    ) -> CampaignDefinition:
        """Validate already-parsed data; errors become a :class:`DefinitionError`."""
        if not isinstance(data, dict):
            raise DefinitionError(source, [DefinitionProblem("", "the file must be a YAML mapping "
                                                            "(key: value lines), e.g. name: demo")])
        try:
            definition = cls.model_validate(data, context={"base_dir": base_dir})
        except ValidationError as exc:
            raise DefinitionError(source, _problems(exc)) from None
        definition._source = source
        return definition

    @classmethod
    def from_file(cls, path: str | Path) -> CampaignDefinition:
        """Read and validate a definition file; errors name the file and the dotted key."""
        path = Path(path).expanduser().absolute()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise DefinitionError(path, [DefinitionProblem("", "file not found")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DefinitionError(path, [DefinitionProblem("", f"cannot read: {exc}")]) from None
        try:
            data = load_yaml_text(text)
        except yaml.YAMLError as exc:
            raise DefinitionError(path, [DefinitionProblem("", _yaml_message(exc))]) from None
        return cls.from_mapping(data, base_dir=path.parent, source=path)


def load_definition(path: str | Path) -> CampaignDefinition:
    """Read a campaign definition (YAML); raises :class:`DefinitionError` naming file and key."""
    return CampaignDefinition.from_file(path)


# --------------------------------------------------------------------------- error messages


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"not valid YAML: {problem}"


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``loc`` (to list its allowed keys)."""
    model: type[BaseModel] | None = CampaignDefinition
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _problems(exc: ValidationError) -> list[DefinitionProblem]:
    problems: list[DefinitionProblem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if p not in ("function-before", "function-after"))
        # Union branches add their type name to the location; keep only real keys and indexes.
        loc = tuple(p for p in loc if isinstance(p, int) or "[" not in p)
        kind = error["type"]
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = list(parent.model_fields) if parent is not None else []
            key = str(loc[-1])
            message = "unknown key"
            close = difflib.get_close_matches(key, allowed, n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            if allowed:
                message += f"; allowed here: {', '.join(allowed)}"
        elif kind == "missing":
            message = "required key is missing"
        elif "input" in error and kind not in ("value_error", "assertion_error"):
            message += f" (got {error['input']!r})"
        problems.append(DefinitionProblem(_dotted(loc), message))
    return problems
