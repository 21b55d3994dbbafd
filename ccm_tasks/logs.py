"""Logging for the ``ccm`` command: quiet Prefect, masked phone numbers, no secrets, ever.

``quiet_prefect_env`` must run before Prefect is imported: it turns off the server's telemetry
(which logs an error on machines without internet), routes our ``ccm`` loggers through Prefect's
handlers, and keeps records emitted outside a flow run from producing warnings.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from ccm_tasks.redact import RedactingFilter, install_log_redaction, redaction_filter

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "ccm",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}

NOISY = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "uvicorn": logging.WARNING,
    "uvicorn.error": logging.WARNING,
    "uvicorn.access": logging.WARNING,
    # Prefect's events client warns while draining at interpreter exit; nothing is lost.
    "EventsWorker": logging.ERROR,
}


class RateLimitedLog:
    """A logger that says the same kind of thing at most once every ``every`` seconds, with how
    many were held back (a flood of bad requests must not flood the log)."""

    def __init__(self, logger: logging.Logger, every: float = 5.0) -> None:
        self.logger, self.every = logger, every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        """Log ``msg`` unless one of this ``key`` was logged in the last ``every`` seconds."""
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        suffix = f" ({held} more like it in the last {self.every:g}s not logged)" if held else ""
        self.logger.warning(msg + suffix, *args)


class OncePerInterval(logging.Filter):
    """Let a record with the same message start through at most once per interval, saying how many
    were held back since the last one (asyncio's "socket.accept() out of system resource" errors and
    uvicorn's "Exceeded concurrency limit.", one per connection under a flood)."""

    def __init__(self, prefixes: tuple[str, ...], every: float = 10.0) -> None:
        super().__init__()
        self.prefixes, self.every = prefixes, every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        for prefix in self.prefixes:
            if message.startswith(prefix):
                now = time.monotonic()
                if now - self._last.get(prefix, -1e9) < self.every:
                    self._held[prefix] = self._held.get(prefix, 0) + 1
                    return False
                self._last[prefix] = now
                held = self._held.pop(prefix, 0)
                if held:
                    record.msg = f"{record.msg} ({held} more like it since the last such line)"
        return True


def quiet_prefect_env() -> None:
    """Defaults for Prefect's settings (an explicit environment variable still wins)."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def configure_logging(level: int = logging.INFO, secrets: tuple[str, ...] = (),
                      with_prefect: bool = True) -> RedactingFilter:
    """Console logging for the CLI, redacted on every handler. Prefect is not imported here (it
    costs ~2 s); call :func:`redact_all_handlers` again once it is."""
    if with_prefect:
        quiet_prefect_env()
    ccm = logging.getLogger("ccm")
    ccm.setLevel(level)
    if not ccm.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s",
                                               "%H:%M:%S"))
        ccm.addHandler(handler)
        ccm.propagate = False
    return redact_all_handlers(secrets)


def redact_all_handlers(secrets: tuple[str, ...] = ()) -> RedactingFilter:
    """Put the redacting filter on every handler of every logger that exists now, and quiet the
    noisy ones (run again after importing Prefect, whose handlers appear on import)."""
    for name, lvl in NOISY.items():
        logging.getLogger(name).setLevel(lvl)
    names = ["", *logging.root.manager.loggerDict]
    return install_log_redaction(secrets, logger_names=names)


logging.getLogger("asyncio").addFilter(OncePerInterval(("socket.accept() out of system resource",)))
# The callback receiver's bound (callbacks.MAX_CONNECTIONS): uvicorn logs each refused connection.
logging.getLogger("uvicorn.error").addFilter(OncePerInterval(("Exceeded concurrency limit",)))

__all__ = ["OncePerInterval", "RateLimitedLog", "configure_logging", "quiet_prefect_env",
           "redact_all_handlers", "redaction_filter"]
