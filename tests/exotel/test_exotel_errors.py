"""The error table: every (status, code) pair in the spec maps to a class and a category."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ccm_tasks.exotel import errors as E

SPEC = Path("/work/shared/spec")

EXPECTED_CATEGORY = {
    10706: "agent_busy",
    **dict.fromkeys((1012, 10703, 10806, 10702), "agent_unavailable"),
    **dict.fromkeys((10705, 10731), "agent_invalid"),
    **dict.fromkeys((1010, 1017, 10716, 10712, 1001, 1002), "campaign_fatal"),
    **dict.fromkeys((1021, 1022, 3043, 3044, 3045), "call_not_found"),
}


def _body(code: int | None, message: str = "msg", request_id: str = "rid-1") -> bytes:
    return json.dumps({
        "request_id": request_id, "method": "POST", "http_code": 0, "metadata": None,
        "response": {"code": 0, "status": "failure", "data": None,
                     "error_data": {"code": code, "description": message, "message": message}},
    }).encode()


def spec_pairs() -> set[tuple[int, int]]:
    """Every (HTTP status, code) row in the two spec error tables, read from the spec text."""
    if not SPEC.exists():
        pytest.skip("spec folder not present")
    pairs: set[tuple[int, int]] = set()
    for path in SPEC.glob("*.txt"):
        text = path.read_text()
        pairs |= {(int(a), int(b)) for a, b in re.findall(r"^(\d{3})\s*\|?\s*(\d{4,5})\b", text, re.M)}
        pairs |= {(int(a), int(b)) for a, b in re.findall(r"^(\d{3}) (\d{4,5})$", text, re.M)}
    return pairs


def test_table_covers_every_pair_in_the_spec() -> None:
    pairs = spec_pairs()
    assert len(pairs) == 34  # 39 rows in the Make Call table, 409/10705 listed twice; GET adds none
    assert pairs == set(E.ERROR_TABLE), sorted(pairs ^ set(E.ERROR_TABLE))


@pytest.mark.parametrize(("status", "code"), sorted(E.ERROR_TABLE))
def test_each_pair_maps_to_its_class_and_category(status: int, code: int) -> None:
    err = E.error_from_response(http_status=status, body=_body(code, "described"), method="POST",
                                path="/v2/accounts/sid/calls")
    cls, _ = E.ERROR_TABLE[(status, code)]
    assert type(err) is cls
    assert (err.http_status, err.code, err.message, err.request_id) == (status, code, "described", "rid-1")
    expected = "retry_later" if status >= 500 else EXPECTED_CATEGORY[code]
    assert err.category == expected
    assert str(code) in str(err) and "rid-1" in str(err)


def test_busy_is_busy_under_both_statuses() -> None:
    for status in (404, 409):
        err = E.error_from_response(http_status=status, body=_body(10706), method="POST", path="/")
        assert isinstance(err, E.AgentBusyError)


@pytest.mark.parametrize(
    ("status", "method", "cls"),
    [
        (500, "POST", E.ServerError), (503, "GET", E.ServerError), (429, "POST", E.RateLimitError),
        (401, "GET", E.AuthenticationError), (403, "POST", E.AuthenticationError),
        (409, "POST", E.AgentUnavailableError), (404, "GET", E.CallNotFoundError),
        (404, "POST", E.BadRequestError), (400, "POST", E.BadRequestError),
        (422, "POST", E.BadRequestError),
    ],
)
def test_unknown_codes_map_by_status(status: int, method: str, cls: type[E.APIError]) -> None:
    err = E.error_from_response(http_status=status, body=_body(99999), method=method, path="/")
    assert type(err) is cls and err.code == 99999


def test_known_code_under_an_unlisted_status_keeps_its_meaning() -> None:
    err = E.error_from_response(http_status=400, body=_body(10731), method="POST", path="/")
    assert isinstance(err, E.AgentInvalidError)


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b'{"request_id": "ab',
                                  b"[1, 2]", b'{"response": "nope"}', b"\xff\xfe"])
def test_unreadable_error_bodies_are_errors_not_crashes(body: bytes) -> None:
    err = E.error_from_response(http_status=502, body=body, method="GET", path="/x")
    assert isinstance(err, E.ServerError) and err.code is None
    assert err.message == "Internal Server Error"


def test_rate_limit_keeps_retry_after() -> None:
    err = E.error_from_response(http_status=429, body=b"", method="GET", path="/", retry_after="7")
    assert isinstance(err, E.RateLimitError) and err.retry_after == 7.0
    assert err.category == "retry_later"


def test_retry_after_forms() -> None:
    assert E.parse_retry_after("3") == 3.0
    assert E.parse_retry_after("0.5") == 0.5
    assert E.parse_retry_after(None) is None and E.parse_retry_after("soon") is None
    assert E.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert E.parse_retry_after("-4") == 0.0


def test_categories_of_transport_errors() -> None:
    assert E.OutcomeUnknownError("x").category == "outcome_unknown"
    assert E.ConnectError("x").category == "retry_later"
    assert E.RequestTimeoutError("x").category == "retry_later"
    assert isinstance(E.InvalidRequestError("x"), ValueError)
