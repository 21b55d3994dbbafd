"""Logging for the ``ccm`` command: quiet Prefect, masked phone numbers, no secrets, ever.

``quiet_prefect_env`` must run before Prefect is imported: it turns off the server's telemetry
(which logs an error on machines without internet), routes our ``ccm`` loggers through Prefect's
handlers, and keeps records emitted outside a flow run from producing warnings.
"""

from __future__ import annotations

import logging
import os
import sys

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


__all__ = ["configure_logging", "quiet_prefect_env", "redact_all_handlers", "redaction_filter"]
