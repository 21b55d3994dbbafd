"""A real SMTP server on loopback for mail tests (aiosmtpd), recording what it is sent."""

from __future__ import annotations

import email
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Mailbox:
    """What the server received, and how it answers: ``fail_first`` DATA commands get ``fail_reply``."""

    fail_first: int = 0
    fail_reply: str = "451 4.3.0 try again later"
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    attempts: int = 0
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return self.fail_reply
        message = email.message_from_bytes(envelope.original_content, policy=default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(mailbox: Mailbox, *, password: str | None = None) -> Iterator[tuple[str, int]]:
    """Serve ``mailbox`` on 127.0.0.1; with ``password``, require AUTH (user ``reports``) over plain
    text, which only a loopback test may do."""

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, secret = auth_data.login.decode(), auth_data.password.decode()
            mailbox.logins.append((user, secret))
            # handled=False: aiosmtpd answers (235 or 535) itself
            return AuthResult(success=user == "reports" and secret == password, handled=False)
        return AuthResult(success=False, handled=False)

    port = free_port()
    kwargs: dict[str, Any] = {}
    if password is not None:
        # PLAIN only: smtplib falls back from a refused PLAIN to LOGIN, which aiosmtpd then leaves waiting.
        kwargs = {"authenticator": authenticate, "auth_required": True, "auth_require_tls": False,
                  "auth_exclude_mechanism": ["LOGIN"]}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "AUTH without TLS": on loopback, on purpose
        controller.start()
    try:
        yield "127.0.0.1", port
    finally:
        controller.stop()
