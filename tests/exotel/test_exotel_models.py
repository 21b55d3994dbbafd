"""Wire models: every spec example parses verbatim; invalid requests fail before sending."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ccm_tasks.exotel.models import (
    LENIENT,
    CallDetails,
    CallEnvelope,
    MakeCallRequest,
    StatusCallback,
    StatusCallbackPayload,
)
from tests.support import SPEC_FIXTURES, spec_example

ALL_EXAMPLES = sorted(p.stem for p in SPEC_FIXTURES.glob("*.json"))


def test_there_is_an_example_of_every_kind() -> None:
    kinds = {name.split("_", 2)[-1] for name in ALL_EXAMPLES}
    assert {"status_callback_request", "callback_answered", "callback_terminal",
            "make_call_request", "make_call_response", "get_call_details_response"} <= kinds


@pytest.mark.parametrize("name", [n for n in ALL_EXAMPLES if n.endswith("_response")])
def test_response_examples_parse_verbatim(name: str) -> None:
    envelope = CallEnvelope.model_validate(spec_example(name))
    assert envelope.response is not None and envelope.response.data is not None
    data = envelope.response.data
    assert data.call_sid and data.custom_field == "12130y124b2f142"
    assert data.direction == "outbound"
    if name.endswith("get_call_details_response"):
        assert data.is_terminal and data.call_status == "completed"
        assert data.total_talk_time == 7 and len(data.recording_urls) == 1
        assert data.agent_leg_status == "completed" and data.customer_leg_status == "completed"
        assert data.assigned_agent_details and data.assigned_agent_details.user_name == "Sarthak XXXX"
        assert data.start_time and data.start_time.utcoffset().total_seconds() == 5.5 * 3600  # type: ignore[union-attr]
    else:
        assert data.call_state == "active" and data.call_status is None and not data.is_terminal


CALLBACK_EXAMPLES = [n for n in ALL_EXAMPLES if n.endswith(("_callback_answered", "_callback_terminal"))]


@pytest.mark.parametrize("name", CALLBACK_EXAMPLES)
def test_callback_examples_parse_verbatim(name: str) -> None:
    payload = StatusCallbackPayload.model_validate(spec_example(name))
    assert payload.event_details.event_type in name
    assert payload.call_details.custom_field == "12130y124b2f142"


def test_terminal_callback_example_details() -> None:
    payload = StatusCallbackPayload.model_validate(spec_example("mc_03_callback_terminal"))
    d = payload.call_details
    assert d.is_terminal and d.call_status == "completed" and d.total_talk_time == 5
    assert d.recording_urls[0].endswith(".mp3")


@pytest.mark.parametrize("name", [n for n in ALL_EXAMPLES if n.endswith("_make_call_request")])
def test_request_examples_parse_verbatim_in_lenient_mode(name: str) -> None:
    """The spec's request examples use placeholder and local-format numbers: their shape parses;
    what we send is held to E.164."""
    request = MakeCallRequest.model_validate(spec_example(name), context=LENIENT)
    assert request.recording is True and request.custom_field == "12130y124b2f142"
    assert [cb.event for cb in request.status_callback or []] == ["answered", "terminal"]
    with pytest.raises(ValidationError):
        MakeCallRequest.model_validate(spec_example(name))


def test_status_callback_request_example_parses() -> None:
    subs = [StatusCallback.model_validate(x) for x in spec_example("mc_00_status_callback_request")
            if x["url"].startswith("http")] or None
    assert subs is None  # the example's url is the placeholder "<webhook-url>"
    raw = spec_example("mc_00_status_callback_request")
    assert [x["event"] for x in raw] == ["answered", "terminal"]


def _request(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "from": {"user_id": "agent-001"},
        "to": {"customer_contact_uri": "+919953123456"},
        "virtual_number": "+918045680000",
    }
    base.update(changes)
    return base


def test_wire_form_uses_from_and_drops_unset_options() -> None:
    request = MakeCallRequest.model_validate(_request(recording=True, recording_channels="dual",
                                                      custom_field="attempt-1"))
    assert request.to_wire() == {
        "from": {"user_id": "agent-001"},
        "to": {"customer_contact_uri": "+919953123456"},
        "virtual_number": "+918045680000",
        "recording": True,
        "recording_channels": "dual",
        "custom_field": "attempt-1",
    }


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"from": {}}, "from", "exactly one of user_id or user_contact_uri"),
        ({"from": {"user_id": "a", "user_contact_uri": "+919900000001"}}, "from", "exactly one"),
        ({"from": {"user_contact_uri": "9953123456"}}, "from.user_contact_uri", "E.164"),
        ({"to": {"customer_contact_uri": "09953123456"}}, "to.customer_contact_uri", "E.164"),
        ({"virtual_number": "exophone"}, "virtual_number", "ExoPhone"),
        ({"recording_channels": "stereo", "recording": True}, "recording_channels", "single"),
        ({"recording_channels": "dual"}, "recording_channels", "only valid when recording is true"),
        ({"max_time_limit": 0}, "max_time_limit", "greater than 0"),
        ({"attempt_time_out": -5}, "attempt_time_out", "greater than 0"),
        ({"wait_audio_url": "https://x.example/hold.mp3"}, "wait_audio_url", ".wav"),
        ({"wait_audio_url": "ftp://x.example/hold.wav"}, "wait_audio_url", "http"),
        ({"status_callback": [{"event": "ringing", "url": "https://x.example"}]},
         "status_callback.0.event", "answered"),
        ({"status_callback": [{"event": "terminal", "url": "x"}]}, "status_callback.0.url", "URL"),
        ({"status_callback": [{"event": "terminal", "url": "https://a.example"},
                              {"event": "terminal", "url": "https://b.example"}]},
         "status_callback", "same event twice"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
    ],
)
def test_invalid_requests_name_the_field(changes: dict[str, object], field: str, fragment: str) -> None:
    from ccm_tasks.exotel.client import validation_message

    with pytest.raises(ValidationError) as info:
        MakeCallRequest.model_validate(_request(**changes))
    message = validation_message(info.value)
    assert message.startswith(field) or f"; {field}" in message, message
    assert fragment in message, message


def test_sip_agent_and_local_virtual_number_are_accepted() -> None:
    request = MakeCallRequest.model_validate(
        _request(**{"from": {"user_contact_uri": "sip:asha@pbx.example.com"},
                    "virtual_number": "08045680000"}))
    assert request.from_.user_contact_uri == "sip:asha@pbx.example.com"


def test_unknown_response_fields_are_kept_and_leg_aliases_accepted() -> None:
    details = CallDetails.model_validate({
        "call_sid": "abc", "call_state": "terminal", "call_status": "customer_unanswered",
        "assigned_agent_details": {"name": "Asha", "call_status": "completed"},
        "customer_details": {"call_status": "no-answer"},
        "brand_new_field": {"x": 1},
    })
    assert details.model_extra == {"brand_new_field": {"x": 1}}
    assert details.assigned_agent_details and details.assigned_agent_details.user_name == "Asha"
    assert details.agent_leg_status == "completed" and details.customer_leg_status == "no-answer"


def test_everything_but_call_sid_may_be_null() -> None:
    details = CallDetails.model_validate({"call_sid": "abc", "call_state": None, "recordings": None})
    assert not details.is_terminal and details.recording_urls == []


def test_closed_sets_are_enforced() -> None:
    with pytest.raises(ValidationError, match="call_status"):
        CallDetails.model_validate({"call_sid": "x", "call_status": "ringing"})
    with pytest.raises(ValidationError, match="call_state"):
        CallDetails.model_validate({"call_sid": "x", "call_state": "done"})


def test_fixture_files_are_verbatim_copies_of_spec_text() -> None:
    spec_text = "".join(p.read_text() for p in Path("/work/shared/spec").glob("*.txt")) \
        if Path("/work/shared/spec").exists() else None
    if spec_text is None:
        pytest.skip("spec folder not present on this machine")
    for path in SPEC_FIXTURES.glob("*.json"):
        assert path.read_text().rstrip("\n") in spec_text, path.name
