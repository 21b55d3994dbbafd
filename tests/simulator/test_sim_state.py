"""The simulated account as a pure state machine on a manual clock."""

from __future__ import annotations

from typing import Any

import pytest

from ccm_tasks.clock import ManualClock
from ccm_tasks.exotel.models import LENIENT, CallDetails, MakeCallRequest
from ccm_tasks.simulator.errors import SimError
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.state import SimulatedAccount, normalise_virtual_number
from tests.support import spec_example

CUSTOMER = "+919953123456"


def account(**scenario: Any) -> tuple[SimulatedAccount, ManualClock]:
    clock = ManualClock()
    return SimulatedAccount(Scenario.model_validate(scenario), clock), clock


def request(agent: str = "agent-001", customer: str = CUSTOMER, **extra: Any) -> MakeCallRequest:
    return MakeCallRequest.model_validate({"from": {"user_id": agent},
                                           "to": {"customer_contact_uri": customer},
                                           "virtual_number": "+918045680000", **extra}, context=LENIENT)


def test_timeline_of_a_completed_call() -> None:
    acc, _ = account(numbers={CUSTOMER: "answers"}, behaviour={
        "dial_delay_seconds": 1, "agent_ring_seconds": 5, "customer_ring_seconds": 10,
        "talk_seconds": 60, "post_processing_seconds": 4})
    call = acc.make_call(request(recording=True))
    t0 = call.created

    def at(offset: float) -> CallDetails:
        return CallDetails.model_validate(call.details(t0 + offset))

    assert (at(0).call_state, at(0).call_status, at(0).agent_leg_status) == ("active", None, None)
    assert at(6).agent_leg_status == "in-progress" and at(6).customer_leg_status is None
    assert at(16).customer_leg_status == "in-progress"
    ended = at(76)
    assert ended.call_status == "completed" and ended.call_state == "active"  # post-processing
    assert ended.end_time is not None and ended.recordings is None
    final = at(80)
    assert final.is_terminal and final.total_talk_time == 60 and final.total_duration == 75
    assert final.recording_urls == [f"https://recordings.simulator.invalid/{call.call_sid}.mp3"]
    assert [e for _, e in call.events()] == ["answered", "answered", "terminal"]


def test_details_have_exactly_the_spec_keys() -> None:
    acc, _ = account()
    call = acc.make_call(request())
    example = spec_example("gcd_00_get_call_details_response")["response"]["data"]
    got = call.details(call.terminal)
    assert set(got) == set(example)
    assert set(got["assigned_agent_details"]) == set(example["assigned_agent_details"])
    assert set(got["customer_details"]) == set(example["customer_details"])
    assert got["created_time"].endswith("+05:30")


def test_agent_is_busy_until_hang_up_not_until_terminal() -> None:
    acc, clock = account(numbers={CUSTOMER: "never_answers"},
                         behaviour={"post_processing_seconds": 30})
    call = acc.make_call(request())
    with pytest.raises(SimError) as info:
        acc.make_call(request(customer="+919953000001"))
    assert (info.value.http_status, info.value.code) == (409, 10706)
    clock.set(call.ended + 0.1)  # hung up, still post-processing
    assert acc.make_call(request(customer="+919953000001")).agent.user_id == "agent-001"
    assert acc.counters["agent_busy_api"] == 1


def test_manual_busy_periods() -> None:
    acc, clock = account(agents=[{"user_id": "a", "contact_uri": "+919800000001",
                                  "busy_periods": [[10, 20]]}])
    clock.advance(12)
    with pytest.raises(SimError, match="busy"):
        acc.make_call(request("a"))
    clock.advance(10)
    acc.make_call(request("a"))
    assert acc.counters["agent_busy_manual"] == 1


@pytest.mark.parametrize(("device", "status", "code"), [
    ("off", 409, 1012), ("unverified", 409, 10705), ("missing", 404, 10806)])
def test_device_states(device: str, status: int, code: int) -> None:
    acc, _ = account(agents=[{"user_id": "a", "contact_uri": "+919800000001", "device": device}])
    with pytest.raises(SimError) as info:
        acc.make_call(request("a"))
    assert (info.value.http_status, info.value.code) == (status, code)
    acc.set_device("a", "on")
    acc.make_call(request("a"))


def test_lookup_errors_and_checks() -> None:
    acc, _ = account()
    with pytest.raises(SimError, match="10731"):
        acc.make_call(request("nobody"))
    with pytest.raises(SimError, match="10716"):
        acc.make_call(request(virtual_number="+919999999999"))
    with pytest.raises(SimError, match="3043"):
        acc.get_call("nope")
    with pytest.raises(SimError, match="1010"):
        acc.authenticate("sim-key", "wrong")
    with pytest.raises(SimError, match="1017"):
        acc.check_account("other")
    with pytest.raises(SimError, match="1001"):
        acc.check_account("")


def test_first_agent_wins_for_a_shared_contact_uri() -> None:
    acc, _ = account(agents=[{"user_id": "first", "contact_uri": "+919800000001"},
                             {"user_id": "second", "contact_uri": "+919800000001"}])
    req = MakeCallRequest.model_validate({"from": {"user_contact_uri": "+919800000001"},
                                          "to": {"customer_contact_uri": CUSTOMER},
                                          "virtual_number": "08045680000"})
    assert acc.make_call(req).agent.user_id == "first"


def test_rate_limit_is_a_sliding_minute() -> None:
    acc, clock = account(account={"rate_limit_per_minute": 3})
    for _ in range(3):
        acc.admit()
        clock.advance(10)
    with pytest.raises(SimError) as info:
        acc.admit()
    assert info.value.http_status == 429 and info.value.retry_after == pytest.approx(30.0)
    clock.advance(30.01)
    acc.admit()
    assert acc.busiest_60s == 3  # the most accepted in any sliding minute (what 429s guard)


@pytest.mark.parametrize(("behaviour", "status"), [
    ("answers", "completed"), ("never_answers", "customer_unanswered"),
    ("busy", "customer_unanswered"), ("failed", "customer_unanswered"),
    ("no_dial", "customer_no_dial"), ("agent_cancels", "agent_canceled")])
def test_per_number_overrides(behaviour: str, status: str) -> None:
    acc, _ = account(numbers={CUSTOMER: behaviour}, behaviour={"agent_answer_probability": 1.0})
    assert acc.make_call(request()).call_status == status


def test_attempt_time_out_cuts_ringing_and_max_time_limit_cuts_talk() -> None:
    acc, _ = account(numbers={CUSTOMER: "answers"}, behaviour={
        "agent_answer_probability": 1, "agent_ring_seconds": 20, "talk_seconds": 500})
    assert acc.make_call(request(attempt_time_out=10)).call_status == "agent_unanswered"
    call = acc.make_call(request("agent-002", max_time_limit=45))
    assert call.call_status == "completed" and call.talk_seconds == 45


def test_fates_are_reproducible_whatever_the_order() -> None:
    customers = [f"+9199530000{i:02d}" for i in range(20)]

    def fates(order: list[str]) -> dict[str, tuple[str, int]]:
        acc, _ = account(seed=5, agent_pool={"count": 40})
        out = {}
        for c in order:  # each customer keeps its agent; only the arrival order changes
            call = acc.make_call(request(f"agent-{customers.index(c) + 1:03d}", c))
            out[c] = (call.call_status, call.talk_seconds)
        return out

    forward = fates(customers)
    assert forward == fates(list(reversed(customers)))
    assert len({s for s, _ in forward.values()}) > 1  # not degenerate


def test_outcome_shares_follow_the_probabilities() -> None:
    acc, clock = account(seed=9, agent_pool={"count": 1}, behaviour={
        "agent_answer_probability": 0.9, "customer_answer_probability": 0.5,
        "agent_cancel_probability": 0.0})
    statuses = []
    for i in range(2000):
        call = acc.make_call(request("agent-001", f"+9199{i:08d}"))
        statuses.append(call.call_status)
        clock.set(call.ended + 1)
    share = {s: statuses.count(s) / len(statuses) for s in set(statuses)}
    assert share["agent_unanswered"] == pytest.approx(0.1, abs=0.03)
    assert share["completed"] == pytest.approx(0.45, abs=0.04)


def test_virtual_number_formats() -> None:
    assert normalise_virtual_number("08045680000") == "+918045680000"
    assert normalise_virtual_number("8045680000") == "+918045680000"
    assert normalise_virtual_number("+91 80456 80000") == "+918045680000"


def test_dial_log_rows() -> None:
    acc, _ = account()
    call = acc.make_call(request(custom_field="att-1"))
    (row,) = acc.dial_log()
    assert row["agent"] == "agent-001" and row["customer"] == CUSTOMER
    assert row["custom_field"] == "att-1" and row["call_sid"] == call.call_sid
    assert row["created"] <= row["start"] <= row["ended"] <= row["terminal"]


def test_every_wire_error_class_speaks_the_clients_table() -> None:
    """The simulator's errors take their text from the client's table: the two cannot disagree."""
    from ccm_tasks.exotel.errors import ERROR_TABLE, error_class_for
    from ccm_tasks.simulator import errors as E

    classes = [c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.SimError)
               and c.code is not None]
    assert classes
    for cls in classes:
        err = cls()
        assert err.description == ERROR_TABLE[(cls.http_status, cls.code)][1]
        assert error_class_for(cls.http_status, cls.code) is ERROR_TABLE[(cls.http_status, cls.code)][0]
    assert set(E.GET_SERVER_ERROR_CODES) <= set(E.SERVER_ERROR_CODES)
    assert all((500, c) in ERROR_TABLE for c in E.SERVER_ERROR_CODES)
