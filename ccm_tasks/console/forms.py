"""The campaign settings form: a definition shown as form fields, and form fields back to a definition.

Every key of the YAML a person may set has a field here (the ledger location stays the console's
own). Validation is the definition's: the form's values are put in a mapping and checked by
:meth:`CampaignDefinition.from_mapping`; each :class:`DefinitionProblem` is shown next to its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccm_tasks.dialer.window import WEEKDAYS
from ccm_tasks.inputs import DefinitionError
from ccm_tasks.inputs.definition import RETRYABLE_STATUSES

# Form field -> the definition key it sets (dotted, as DefinitionProblem names it).
FIELD_KEYS: dict[str, str] = {
    "description": "description",
    "default_region": "customers.default_region",
    "phone_column": "customers.columns.phone",
    "agent_column": "customers.columns.preferred_agent",
    "virtual_number": "virtual_number",
    "recording": "call.recording",
    "recording_channels": "call.recording_channels",
    "wait_audio_url": "call.wait_audio_url",
    "max_time_limit": "call.max_time_limit",
    "attempt_time_out": "call.attempt_time_out",
    "max_attempts": "retry.max_attempts",
    "interval_minutes": "retry.interval_minutes",
    "backoff": "retry.backoff",
    "retry_on": "retry.retry_on",
    "customer_no_dial_max_retries": "retry.customer_no_dial_max_retries",
    "max_agent_side_retries": "retry.max_agent_side_retries",
    "window_start": "window.start",
    "window_end": "window.end",
    "timezone": "window.timezone",
    "days": "window.days",
    "start_at": "start_at",
    "end_at": "end_at",
    "api_budget_per_minute": "api_budget_per_minute",
    "sticky_wait_seconds": "dialer.sticky_wait_seconds",
    "agent_cooldown_seconds": "dialer.agent_cooldown_seconds",
    "agent_recheck_seconds": "dialer.agent_recheck_seconds",
    "stuck_grace_seconds": "dialer.stuck_grace_seconds",
    "average_handling_seconds": "dialer.average_handling_seconds",
    "wrap_up_seconds": "dialer.wrap_up_seconds",
    "max_calls_per_number": "limits.max_calls_per_number",
    "limit_window_days": "limits.window_days",
    "callbacks_enabled": "callbacks.enabled",
    "callbacks_public_url": "callbacks.public_url",
    "callbacks_listen": "callbacks.listen",
}
_KEY_FIELDS = {key: name for name, key in FIELD_KEYS.items()}
CHECKBOXES = ("recording", "callbacks_enabled")
MULTI = ("retry_on", "days")


@dataclass
class FormState:
    """Values to show in the settings form and problems to show next to fields."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)  # problems with no field of their own


def form_values(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The settings form's values for a definition mapping (see :func:`definitions.to_mapping`)."""
    call = mapping.get("call") or {}
    retry = mapping.get("retry") or {}
    window = mapping.get("window") or {}
    dialer = mapping.get("dialer") or {}
    limits = mapping.get("limits") or {}
    callbacks = mapping.get("callbacks") or {}
    customers = mapping.get("customers") or {}
    columns = customers.get("columns") or {}
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return {
        "description": text(mapping.get("description")),
        "default_region": text(customers.get("default_region", "IN")),
        "phone_column": text(columns.get("phone")),
        "agent_column": text(columns.get("preferred_agent")),
        "sheets": [f.get("sheet") for f in customers.get("files") or []],
        "virtual_number": text(mapping.get("virtual_number")),
        "recording": bool(call.get("recording", False)),
        "recording_channels": text(call.get("recording_channels")),
        "wait_audio_url": text(call.get("wait_audio_url")),
        "max_time_limit": text(call.get("max_time_limit")),
        "attempt_time_out": text(call.get("attempt_time_out")),
        "max_attempts": text(retry.get("max_attempts", 3)),
        "interval_minutes": text(retry.get("interval_minutes", 30)),
        "backoff": text(retry.get("backoff", "linear")),
        "retry_on": list(retry.get("retry_on", ["customer_unanswered", "customer_no_dial"])),
        "customer_no_dial_max_retries": text(retry.get("customer_no_dial_max_retries", 1)),
        "max_agent_side_retries": text(retry.get("max_agent_side_retries", 3)),
        "window_start": text(window.get("start", "09:00")),
        "window_end": text(window.get("end", "21:00")),
        "timezone": text(window.get("timezone", "Asia/Kolkata")),
        "days": list(window.get("days", list(WEEKDAYS))),
        "start_at": _local_input(mapping.get("start_at")),
        "end_at": _local_input(mapping.get("end_at")),
        "api_budget_per_minute": text(mapping.get("api_budget_per_minute")),
        "sticky_wait_seconds": text(dialer.get("sticky_wait_seconds", 120)),
        "agent_cooldown_seconds": text(dialer.get("agent_cooldown_seconds", 60)),
        "agent_recheck_seconds": text(dialer.get("agent_recheck_seconds", 300)),
        "stuck_grace_seconds": text(dialer.get("stuck_grace_seconds", 600)),
        "average_handling_seconds": text(dialer.get("average_handling_seconds", 180)),
        "wrap_up_seconds": text(dialer.get("wrap_up_seconds", 15)),
        "max_calls_per_number": text(limits.get("max_calls_per_number", 3)),
        "limit_window_days": text(limits.get("window_days", 1)),
        "callbacks_enabled": bool(callbacks.get("enabled", False)),
        "callbacks_public_url": text(callbacks.get("public_url")),
        "callbacks_listen": text(callbacks.get("listen", "127.0.0.1:8780")),
    }


def _local_input(value: Any) -> str:
    """An ISO datetime as ``<input type=datetime-local>`` shows it (its offset is the window's)."""
    if not value:
        return ""
    return str(value)[:16]


class _Form:
    """Read a submitted form: stripped text, optional text, and multi-valued fields."""

    def __init__(self, form: Mapping[str, Any]) -> None:
        self.form = form

    def get(self, name: str) -> str:
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def optional(self, name: str) -> str | None:
        return self.get(name) or None

    def many(self, name: str) -> list[str]:
        value = self.form.get(name)
        return [str(v) for v in value] if isinstance(value, list) else ([value] if value else [])

    def flag(self, name: str) -> bool:
        return bool(self.form.get(name))


def apply_form(base: Mapping[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (the current definition mapping) with the form's values put in.

    ``form`` maps field names to a string, or to a list of strings for :data:`MULTI` fields and
    ``sheet`` (one per customer file, in order). Blank optional fields mean "not set".
    """
    f = _Form(form)
    out = {k: v for k, v in base.items()}
    out["customers"] = _customers_from(out.get("customers") or {}, f)
    out["description"] = f.get("description")
    out["virtual_number"] = f.get("virtual_number")
    out["call"] = {
        "recording": f.flag("recording"),
        "recording_channels": f.optional("recording_channels"),
        "wait_audio_url": f.optional("wait_audio_url"),
        "max_time_limit": f.optional("max_time_limit"),
        "attempt_time_out": f.optional("attempt_time_out"),
    }
    out["retry"] = {
        "max_attempts": f.get("max_attempts"), "interval_minutes": f.get("interval_minutes"),
        "backoff": f.get("backoff") or "linear",
        "retry_on": [s for s in f.many("retry_on") if s in RETRYABLE_STATUSES],
        "customer_no_dial_max_retries": f.get("customer_no_dial_max_retries"),
        "max_agent_side_retries": f.get("max_agent_side_retries"),
    }
    out["window"] = {"start": f.get("window_start"), "end": f.get("window_end"),
                     "timezone": f.get("timezone"), "days": f.many("days")}
    for key in ("start_at", "end_at", "api_budget_per_minute"):
        value = f.optional(key)
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    out["dialer"] = {name: f.get(name) for name in (
        "sticky_wait_seconds", "agent_cooldown_seconds", "agent_recheck_seconds",
        "stuck_grace_seconds", "average_handling_seconds", "wrap_up_seconds")}
    out["limits"] = {"max_calls_per_number": f.get("max_calls_per_number"),
                     "window_days": f.get("limit_window_days")}
    out["callbacks"] = {"enabled": f.flag("callbacks_enabled"),
                        "public_url": f.optional("callbacks_public_url"),
                        "listen": f.optional("callbacks_listen")}
    return out


def _customers_from(base: Mapping[str, Any], f: _Form) -> dict[str, Any]:
    """The ``customers`` block: the sheet chosen per file, the column mapping, the region."""
    customers = dict(base)
    files = [dict(entry) for entry in customers.get("files") or []]
    sheets = f.many("sheet")
    for i, entry in enumerate(files):
        if i < len(sheets):
            entry["sheet"] = sheets[i] or None
    customers["files"] = files
    columns = {k: v for k, v in {"phone": f.optional("phone_column"),
                                 "preferred_agent": f.optional("agent_column")}.items() if v}
    customers.pop("columns", None)
    if columns:
        customers["columns"] = columns
    customers["default_region"] = f.get("default_region") or "IN"
    return customers


def problems_by_field(error: DefinitionError) -> tuple[dict[str, str], list[str]]:
    """A definition error's problems placed on form fields; the rest stay general."""
    by_field: dict[str, str] = {}
    general: list[str] = []
    for problem in error.problems:
        key = problem.key
        name = _KEY_FIELDS.get(key) or _KEY_FIELDS.get(key.split("[", 1)[0])
        if name is None and key.startswith("customers.files"):
            general.append(f"customer files: {problem.message}")
        elif name is None:
            general.append(str(problem))
        else:
            by_field[name] = f"{by_field[name]}; {problem.message}" if name in by_field else problem.message
    return by_field, general
