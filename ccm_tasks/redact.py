"""Keep secrets and phone numbers out of logs.

Phone numbers are masked to their last four digits (``******3456``) by default; credentials are
replaced wherever they appear. :func:`install_log_redaction` puts both on the handlers that matter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# A phone-like run: optional +, then 8-15 digits possibly split by spaces, dashes or dots, not part
# of a longer alphanumeric token (call sids and request ids are hex and must stay readable).
_PHONE_RE = re.compile(r"(?<![\w.\-])(\+?\d(?:[\s\-.]?\d){7,14})(?![\w\-])")  # not inside ids (uuid groups)
_SIP_RE = re.compile(r"\bsips?:[^@\s]+@[^\s,;\"']+")


def mask_phone(number: str | None) -> str:
    """``+919953123456`` -> ``********3456``; SIP URIs keep only the domain."""
    if not number:
        return ""
    text = str(number)
    if text.lower().startswith(("sip:", "sips:")):
        return "sip:****@" + text.split("@", 1)[-1] if "@" in text else "sip:****"
    digits = re.sub(r"\D", "", text)
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_phones_in(text: str) -> str:
    """Mask every phone-number-looking run and SIP URI in free text."""
    text = _SIP_RE.sub(lambda m: mask_phone(m.group(0)), text)
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(1)), text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message: known secrets become ``***``, phone numbers are masked."""

    def __init__(self, secrets: Iterable[str] = (), mask_phones: bool = True) -> None:
        super().__init__("ccm-redact")
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._mask_phones = mask_phones

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Also redact these values from now on."""
        merged = set(self._secrets) | {s for s in secrets if s and len(s) >= 4}
        self._secrets = sorted(merged, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """Apply the filter's rules to a string."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return mask_phones_in(text) if self._mask_phones else text

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            # exc_info=True with no exception in flight would print "NoneType: None" (Prefect
            # logs a task that *returned* a Failed state this way).
            record.exc_info = None
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            return True
        redacted = self.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = self.redact(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def redaction_filter() -> RedactingFilter:
    """The process-wide filter (one instance, so secrets added later apply everywhere)."""
    return _FILTER


def install_log_redaction(
    secrets: Iterable[str] = (),
    logger_names: Iterable[str] = ("", "ccm", "prefect", "httpx", "httpcore", "uvicorn"),
    mask_phones: bool = True,
) -> RedactingFilter:
    """Attach the redacting filter to the named loggers and all their current handlers."""
    _FILTER._mask_phones = mask_phones
    _FILTER.add_secrets(secrets)
    for name in logger_names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    return _FILTER
