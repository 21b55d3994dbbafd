"""The campaign definition: defaults, errors that point at keys, paths, YAML pitfalls."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccm_tasks.inputs import (
    RETRYABLE_STATUSES,
    CampaignDefinition,
    DefinitionError,
    load_definition,
)
from ccm_tasks.inputs.definition import check_cron

REPO = Path(__file__).resolve().parents[2]
MINIMAL: dict[str, Any] = {
    "name": "spring-sale",
    "customers": {"files": [{"path": "customers.csv"}]},
    "agents": "agents.csv",
    "virtual_number": "+918045680000",
}


def _write(tmp_path: Path, data: dict[str, Any] | str, name: str = "campaign.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _error(tmp_path: Path, **changes: Any) -> DefinitionError:
    data = {**MINIMAL, **changes}
    with pytest.raises(DefinitionError) as info:
        load_definition(_write(tmp_path, data))
    return info.value


def test_minimal_definition_gets_the_documented_defaults(tmp_path: Path) -> None:
    definition = load_definition(_write(tmp_path, MINIMAL))
    assert definition.virtual_number == "+918045680000"
    assert definition.customers.files[0].sheet is None
    assert definition.customers.default_region == "IN"
    assert definition.call.recording is False
    assert definition.retry.max_attempts == 3
    assert definition.retry.interval_minutes == 30
    assert definition.retry.backoff == "linear"
    assert definition.retry.retry_on == ["customer_unanswered", "customer_no_dial"]
    assert definition.retry.customer_no_dial_max_retries == 1
    assert definition.retry.max_agent_side_retries == 3
    assert (definition.window.start, definition.window.end) == (time(9), time(21))
    assert definition.window.timezone == "Asia/Kolkata"
    assert len(definition.window.days) == 7
    assert definition.api_budget_per_minute is None  # the account limit (EXOTEL_REQUESTS_PER_MINUTE)
    assert definition.dialer.wrap_up_seconds == 15
    assert (definition.limits.max_calls_per_number, definition.limits.window_days) == (3, 1)
    assert definition.dialer.sticky_wait_seconds == 120
    assert definition.dialer.agent_cooldown_seconds == 60
    assert definition.dialer.agent_recheck_seconds == 300
    assert definition.dialer.stuck_grace_seconds == 600
    assert definition.dialer.average_handling_seconds == 180
    assert definition.callbacks.enabled is False
    assert definition.do_not_call == []
    assert definition.schedule is None and definition.ledger is None


def test_a_ledger_url_stays_a_url(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ccm:secret@db.example.com:5432/ccm"
    definition = load_definition(_write(tmp_path, {**MINIMAL, "ledger": url}))
    assert definition.ledger == url


def test_relative_paths_resolve_against_the_definition_folder(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns" / "spring"
    folder.mkdir(parents=True)
    data = {**MINIMAL, "do_not_call": "../dnc.csv", "ledger": "state/ledger.sqlite",
            "customers": {"files": ["customers.csv", {"path": "/abs/c.xlsx", "sheet": "*"}]}}
    definition = load_definition(_write(folder, data))
    assert definition.customers.files[0].path == folder / "customers.csv"
    assert definition.customers.files[1].path == Path("/abs/c.xlsx")
    assert definition.agents == folder / "agents.csv"
    assert definition.do_not_call == [folder / "../dnc.csv"]
    assert definition.ledger == str(folder / "state" / "ledger.sqlite")
    assert definition.source_path == folder / "campaign.yaml"
    assert definition.display_path(folder / "customers.csv") == "customers.csv"


@pytest.mark.parametrize(
    ("changes", "key", "text"),
    [
        ({"window": {"start": "25:00"}}, "window.start", "not a time of day"),
        ({"retry": {"backoff": "cubic"}}, "retry.backoff", "'linear' or 'exponential'"),
        ({"retyr": {}}, "retyr", "did you mean 'retry'?"),
        ({"retry": {"backof": "linear"}}, "retry.backof", "allowed here: max_attempts"),
        ({"retry": {"retry_on": ["completed"]}}, "retry.retry_on", "allowed: "),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts", "greater than or equal to 1"),
        ({"retry": {"interval_minutes": 0}}, "retry.interval_minutes", "greater than 0"),
        ({"window": {"start": "10:00", "end": "09:00"}}, "window", "after window.start"),
        ({"window": {"timezone": "India/Delhi"}}, "window.timezone", "not an IANA time zone"),
        ({"window": {"days": ["mon", "funday"]}}, "window.days[1]", "'mon', 'tue'"),
        ({"call": {"recording_channels": "dual"}}, "call", "only valid when recording is true"),
        ({"call": {"wait_audio_url": "https://x.example/a.mp3"}}, "call.wait_audio_url", ".wav"),
        ({"call": {"max_time_limit": -5}}, "call.max_time_limit", "greater than 0"),
        ({"name": "spring sale"}, "name", "letters, digits"),
        ({"virtual_number": "12345"}, "virtual_number", "not a valid phone number"),
        ({"customers": {"files": []}}, "customers.files", "at least 1 item"),
        ({"customers": {"files": ["c.csv"], "columns": {"mobile": "x"}}},
         "customers.columns.mobile", "allowed here: phone, preferred_agent"),
        ({"customers": {"files": ["c.csv"], "default_region": "XX"}},
         "customers.default_region", "ISO region"),
        ({"schedule": {"cron": "0 10 * *"}}, "schedule.cron", "5 fields"),
        ({"schedule": {"cron": "0 25 * * *"}}, "schedule.cron", "hour: 25 is outside 0-23"),
        ({"callbacks": {"enabled": True, "listen": "8780"}}, "callbacks.listen", "host:port"),
        ({"callbacks": {"public_url": "http://ccm.example.com"}}, "callbacks.public_url", "https"),
        ({"api_budget_per_minute": 0}, "api_budget_per_minute", "greater than 0"),
        ({"dialer": {"average_handling_seconds": 0}}, "dialer.average_handling_seconds",
         "greater than 0"),
        ({"start_at": "2026-02-01T10:00:00+05:30", "end_at": "2026-01-01T10:00:00+05:30"},
         "", "end_at must be after start_at"),
    ],
)
def test_errors_point_at_the_key_and_name_the_file(
    tmp_path: Path, changes: dict[str, Any], key: str, text: str
) -> None:
    error = _error(tmp_path, **changes)
    assert error.path == tmp_path / "campaign.yaml"
    assert str(error).startswith(str(tmp_path / "campaign.yaml") + ": ")
    assert [p.key for p in error.problems] == [key]
    assert text in error.problems[0].message


def test_missing_required_keys_are_all_listed(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as info:
        load_definition(_write(tmp_path, {"name": "x"}))
    keys = {p.key for p in info.value.problems}
    assert keys == {"customers", "agents", "virtual_number"}
    assert all(p.message == "required key is missing" for p in info.value.problems)


def test_unquoted_times_and_numbers_are_read_as_written(tmp_path: Path) -> None:
    text = (
        "name: demo\ncustomers: {files: [c.csv]}\nagents: a.csv\n"
        "virtual_number: +918045680000\n"  # unquoted: not an integer
        "window: {start: 9:30, end: 21:00}\n"  # unquoted: not base-60 integers
    )
    definition = load_definition(_write(tmp_path, text))
    assert (definition.window.start, definition.window.end) == (time(9, 30), time(21, 0))
    assert definition.virtual_number == "+918045680000"


def test_local_format_virtual_number_becomes_e164(tmp_path: Path) -> None:
    definition = load_definition(_write(tmp_path, {**MINIMAL, "virtual_number": "080 4568 0000"}))
    assert definition.virtual_number == "+918045680000"


def test_yaml_problems_are_definition_errors(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"not valid YAML at line 2"):
        load_definition(_write(tmp_path, "name: x\n  bad: [unclosed\n"))
    with pytest.raises(DefinitionError, match=r"duplicate key 'name'"):
        load_definition(_write(tmp_path, "name: x\nname: y\n"))
    with pytest.raises(DefinitionError, match=r"must be a YAML mapping"):
        load_definition(_write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(DefinitionError, match=r"nope.yaml: file not found"):
        load_definition(tmp_path / "nope.yaml")


def test_naive_start_at_is_read_in_the_window_timezone(tmp_path: Path) -> None:
    data = {**MINIMAL, "start_at": "2026-01-05T10:00:00", "end_at": "2026-01-06T10:00:00Z"}
    definition = load_definition(_write(tmp_path, data))
    assert definition.start_at is not None and definition.end_at is not None
    assert definition.start_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert definition.end_at.tzinfo is not None


def test_retry_delays_linear_and_exponential() -> None:
    linear = CampaignDefinition.model_validate(MINIMAL).retry
    assert [linear.delay_before_retry(n) for n in (1, 2, 3)] == [timedelta(minutes=30)] * 3
    exponential = CampaignDefinition.model_validate(
        {**MINIMAL, "retry": {"backoff": "exponential", "interval_minutes": 10}}).retry
    assert [exponential.delay_before_retry(n).total_seconds() / 60 for n in (1, 2, 3)] == [10, 20, 40]


def test_retry_on_accepts_every_status_but_completed() -> None:
    assert "completed" not in RETRYABLE_STATUSES
    definition = CampaignDefinition.model_validate(
        {**MINIMAL, "retry": {"retry_on": list(RETRYABLE_STATUSES)}})
    assert definition.retry.retry_on == list(RETRYABLE_STATUSES)


def test_window_contains_uses_local_time_and_days() -> None:
    window = CampaignDefinition.model_validate(
        {**MINIMAL, "window": {"start": "09:00", "end": "21:00", "days": ["Monday", "tue"]}}).window
    assert window.days == ["mon", "tue"]
    monday_0330_utc = datetime(2026, 1, 5, 3, 30, tzinfo=UTC)  # 09:00 in Kolkata
    assert window.contains(monday_0330_utc)
    assert not window.contains(monday_0330_utc - timedelta(minutes=1))
    assert not window.contains(datetime(2026, 1, 5, 15, 30, tzinfo=UTC))  # 21:00: end exclusive
    assert not window.contains(datetime(2026, 1, 7, 6, 0, tzinfo=UTC))  # a Wednesday
    assert window.hours_per_day == 12


@pytest.mark.parametrize("cron", ["0 10 * * 1-5", "*/15 9-20 * * *", "0 9 1,15 jan-jun mon-fri",
                                  "30 18 * * 0,7"])
def test_valid_cron(cron: str) -> None:
    assert check_cron(cron) == cron


@pytest.mark.parametrize("cron", ["0 10 * *", "60 * * * *", "0 10 * * 1-8", "0 10 5-1 * *",
                                  "*/0 * * * *", "@daily", "0 10 * * * 2026"])
def test_invalid_cron(cron: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        check_cron(cron)


def test_example_and_demo_definitions_are_valid() -> None:
    example = load_definition(REPO / "campaigns" / "example.yaml")
    assert example.name == "example"
    demo = load_definition(REPO / "campaigns" / "demo" / "demo.yaml")
    assert demo.call.recording is True
    assert (demo.window.start, demo.window.end) == (time(0, 0), time(23, 59))
    assert demo.retry == CampaignDefinition.model_validate(MINIMAL).retry
    assert demo.api_budget_per_minute == 200
    assert demo.virtual_number == "+918045680000"
