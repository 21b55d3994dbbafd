"""Phone numbers masked, secrets removed, in log records."""

from __future__ import annotations

import logging

import pytest

from ccm_tasks.redact import RedactingFilter, mask_phone, mask_phones_in


@pytest.mark.parametrize(("raw", "masked"), [
    ("+919953123456", "********3456"), ("099-5312-3456", "*******3456"),
    ("sip:asha@pbx.example.com", "sip:****@pbx.example.com"), ("", ""), ("12", "**")])
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_mask_phones_in_text_keeps_ids_readable() -> None:
    text = ("dialled +91 99531 23456 and 9953123457 for call 906960925ec65c4bf46b90101b98156u "
            "attempt 42 request_id 9e5761038e104704b684d6791178481c at 2021-06-30T02:43:13+05:30")
    out = mask_phones_in(text)
    assert "99531" not in out and "3456" in out and "3457" in out
    assert "906960925ec65c4bf46b90101b98156u" in out and "9e5761038e104704b684d6791178481c" in out
    assert "attempt 42" in out and "2021-06-30T02:43:13+05:30" in out


def test_filter_rewrites_messages_args_and_tracebacks() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test.redact")
    handler = Keep()
    handler.addFilter(RedactingFilter(secrets=["s3cr3t-token"]))
    logger.addHandler(handler)
    try:
        logger.warning("calling %s with %s", "+919953123456", "s3cr3t-token")
        try:
            raise RuntimeError("boom s3cr3t-token +919953123456")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = records
    assert first.getMessage() == "calling ********3456 with ***"
    assert "s3cr3t-token" not in (second.exc_text or "") and "9953123456" not in (second.exc_text or "")


def test_ids_with_digit_groups_are_not_taken_for_phone_numbers() -> None:
    flow_run = "bac4b5db-2f4a-4899-1234-567890123456"
    assert mask_phones_in(f"flow run {flow_run}") == f"flow run {flow_run}"
