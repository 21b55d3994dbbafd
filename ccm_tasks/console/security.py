"""Sessions, CSRF tokens, sign-in throttling, security headers and the upload size limit.

* **Session**: one cookie, signed (itsdangerous, HMAC-SHA1 over a timestamped payload) with the
  console's secret, ``HttpOnly``, ``SameSite=Lax``, ``Secure`` over https. It holds the user id,
  when the user signed in, and the CSRF token; nothing secret. A session issued before the user's
  ``sessions_after`` (sign-out, disable, password change) is void.
* **CSRF**: every visitor gets a token in the session (before signing in too, so the sign-in form
  is protected); every POST must send it back as the ``csrf_token`` field or ``X-CSRF-Token``.
* **Throttle**: failed sign-ins are counted per name and per client address in this process.
* **Headers**: a CSP without inline script or style, ``frame-ancestors 'none'``, ``nosniff``...
* **Body limit**: a request body over the limit is refused with 413 before any handler reads it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "ccm_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


@dataclass(frozen=True)
class Session:
    """What the session cookie says: who (if signed in), since when, and the CSRF token."""

    csrf: str
    user_id: int | None = None
    signed_in_at: float | None = None

    @classmethod
    def fresh(cls) -> Session:
        """An anonymous session with a new CSRF token."""
        return cls(csrf=secrets.token_urlsafe(32))

    def signed_in(self, user_id: int) -> Session:
        """A new session for ``user_id`` (new CSRF token: nothing carries over from before)."""
        return replace(Session.fresh(), user_id=user_id, signed_in_at=time.time())


class SessionCodec:
    """Signs sessions into cookie values and reads them back (``None`` when forged or expired)."""

    def __init__(self, secret: str, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="ccm-console-session")
        self.max_age_seconds = max_age_seconds

    def dumps(self, session: Session) -> str:
        """The cookie value."""
        return str(self._serializer.dumps(
            {"c": session.csrf, "u": session.user_id, "t": session.signed_in_at}))

    def loads(self, value: str | None) -> Session | None:
        """The session in a cookie value, if it is genuine and not too old."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=int(self.max_age_seconds))
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user, at = data.get("u"), data.get("t")
        return Session(csrf=data["c"], user_id=user if isinstance(user, int) else None,
                       signed_in_at=float(at) if isinstance(at, int | float) else None)


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())


class SignInThrottle:
    """Failed sign-ins per name and per address; too many within the window refuses more tries."""

    def __init__(self, attempts: int, window_seconds: float) -> None:
        self.attempts = attempts
        self.window_seconds = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> float:
        """Seconds until another try is allowed for any of ``keys`` (0: allowed now)."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.attempts:
                    wait = max(wait, times[0] + self.window_seconds - now)
        return wait

    def failed(self, *keys: str) -> None:
        """Count a failed sign-in against each key."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        """A correct sign-in clears the name's failures (not the address's)."""
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        return times


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` (and no-store for pages) to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in
                           {name for name, _ in SECURITY_HEADERS}]
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 page, unread by the app.

    A body announced too large (Content-Length) is refused before it is parsed; one that grows too
    large while arriving (chunked) is cut off there. Up to ``drain`` bytes are read and dropped
    first, so a browser still sending its file sees the page instead of a reset connection.
    """

    def __init__(self, app: ASGIApp, limit: int, page: bytes, drain: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.page = page
        self.drain = drain if drain is not None else 4 * limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(receive, send, already=0, more=declared <= self.drain)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(receive, send, already=received, more=True)

    async def _refuse(self, receive: Receive, send: Send, *, already: int, more: bool) -> None:
        read = already
        while more and read <= self.drain:
            message = await receive()
            if message["type"] != "http.request":
                break
            read += len(message.get("body", b""))
            more = bool(message.get("more_body"))
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(self.page)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": self.page})


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers") or []
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
