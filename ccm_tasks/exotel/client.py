"""Async client for the Exotel CCM API (Make Call, Get Call Details).

Retries live here and only where they are safe:

* Get Call Details is retried on 5xx, 429, timeouts, broken connections and unreadable bodies,
  at most ``max_retries`` times, with exponential back-off that honours ``Retry-After``.
* Make Call is retried only when the request provably never reached the server (connect error,
  connect timeout, no free connection in the pool). A timeout or broken connection after the request
  was sent raises :class:`OutcomeUnknownError`: a retry could ring the customer twice.

Every request first passes a :class:`RequestGate` (the account-wide API budget of the dialer); a
429 is reported to the gate so it can shrink. Credentials only ever travel in the Authorization
header; they are not in URLs, reprs, logs or exception text.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from ccm_tasks.clock import Clock, SystemClock
from ccm_tasks.exotel.errors import (
    APIError,
    CCMError,
    ConnectError,
    InvalidRequestError,
    MalformedResponseError,
    OutcomeUnknownError,
    RateLimitError,
    RequestNotSentError,
    RequestTimeoutError,
    RetryLaterError,
    error_from_response,
)
from ccm_tasks.exotel.models import CallDetails, CallEnvelope, MakeCallRequest, RequestKind
from ccm_tasks.exotel.wire import corked_transport
from ccm_tasks.settings import ExotelSettings

log = logging.getLogger("ccm.exotel")

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=30.0)


class RequestGate(Protocol):
    """Admits each HTTP request against the account's API budget."""

    async def acquire(self, kind: RequestKind) -> None:
        """Wait until one request of this kind may be sent."""
        ...

    def on_rate_limited(self, retry_after: float | None) -> None:
        """The server answered 429: the budget is smaller than believed."""
        ...


class OpenGate:
    """A gate that admits everything (no budget)."""

    async def acquire(self, kind: RequestKind) -> None:
        return None

    def on_rate_limited(self, retry_after: float | None) -> None:
        return None


class _SendHook(httpx.AsyncBaseTransport):
    """Calls a request's ``ccm.on_send`` hook at the last moment before its bytes are written
    (the dialer's send journal, ccm_tasks.dialer.journal).

    On a real connection that moment is httpcore's ``send_request_headers`` trace event: after the
    pool handed out a connection and after any TCP connect or TLS handshake, so a request that
    waited for a connection, or failed to connect, is provably not sent. The connection is corked
    (ccm_tasks.exotel.wire): headers and body then go out in one socket write with nothing that
    waits between the hook and that write. A transport without
    sockets (the tests' mocks) has no such event; for those the hook runs just before it.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self._traced = isinstance(inner, httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hook = request.extensions.get("ccm.on_send")
        if hook is not None:
            if self._traced:
                request.extensions = {**request.extensions, "trace": _send_trace(hook,
                                                                                 request.extensions.get("trace"))}
            else:
                hook()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _send_trace(hook: Callable[[], None], outer: Any) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore trace callback that calls ``hook`` as the request's headers start to go out."""
    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".send_request_headers.started"):
            hook()
        if outer is not None:
            await outer(event, info)
    return trace


class _BasicAuth(httpx.Auth):
    """HTTP Basic auth whose secret never shows in a repr."""

    def __init__(self, api_key: SecretStr, api_token: SecretStr) -> None:
        raw = f"{api_key.get_secret_value()}:{api_token.get_secret_value()}".encode()
        self._header = SecretStr("Basic " + base64.b64encode(raw).decode("ascii"))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return "_BasicAuth(**********)"


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming its field: ``from: give exactly one of ...``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__") or "request"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}{loc}: {msg}")
    return "; ".join(lines)


class CCMClient:
    """Exotel CCM API client. One instance (one connection pool) per process and account."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr | str,
        api_token: SecretStr | str,
        account_sid: str,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 120.0,
        clock: Clock | None = None,
        gate: RequestGate | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not account_sid:
            raise InvalidRequestError("account_sid is required (EXOTEL_ACCOUNT_SID)")
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        token = api_token if isinstance(api_token, SecretStr) else SecretStr(api_token)
        if not key.get_secret_value() or not token.get_secret_value():
            raise InvalidRequestError("API key and token are required (EXOTEL_API_KEY, EXOTEL_API_TOKEN)")
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.clock: Clock = clock or SystemClock()
        self.gate: RequestGate = gate or OpenGate()
        self.stats: Counter[str] = Counter()
        self._random = random.Random()
        self._calls_path = f"/v2/accounts/{quote(account_sid, safe='')}/calls"
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # Requests wait for a connection here, not in httpcore's pool: its queue is rescanned in
        # full on every connection event (each scan asks every idle socket whether it is readable),
        # so 1,000 queued polls cost more CPU than the requests themselves (docs/benchmarks.md (c)).
        self._slots = asyncio.Semaphore(max_connections)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=_BasicAuth(key, token),
            timeout=timeout,
            transport=_SendHook(transport or corked_transport(limits)),
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     "User-Agent": "ccm-campaign-runner"},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: ExotelSettings | None = None, **kwargs: Any) -> CCMClient:
        """A client for the account in ``settings`` (read from the environment by default)."""
        settings = settings or ExotelSettings()
        if not settings.has_credentials:
            raise InvalidRequestError(
                "Exotel credentials are incomplete; set " + ", ".join(settings.missing())
            )
        assert settings.api_key and settings.api_token and settings.account_sid
        return cls(
            base_url=settings.resolved_base_url,
            api_key=settings.api_key,
            api_token=settings.api_token,
            account_sid=settings.account_sid,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"CCMClient(base_url={self.base_url!r}, account_sid={self.account_sid!r})"

    async def __aenter__(self) -> CCMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------ API

    async def make_call(self, request: MakeCallRequest | dict[str, Any], *,
                        guard: Callable[[], str | None] | None = None, admitted: bool = False,
                        on_send: Callable[[], None] | None = None) -> CallDetails:
        """Place a call: the agent leg rings first, the customer only after the agent answers.

        A 200 does not mean the call happened; follow it with :meth:`get_call_details` or callbacks.
        Raises :class:`OutcomeUnknownError` if the request was sent but its answer was lost.
        ``guard`` runs after the request gate admits it, just before sending: a returned reason
        raises :class:`RequestNotSentError` and nothing is sent. ``admitted``: the caller already
        holds the gate's grant for the first try (the dialer takes it before writing the attempt).
        ``on_send`` is called at the last moment before each try's bytes go to a connection.
        """
        if not isinstance(request, MakeCallRequest):
            try:
                request = MakeCallRequest.model_validate(request)
            except ValidationError as exc:
                raise InvalidRequestError(validation_message(exc)) from None
        return await self._call("POST", self._calls_path, request.to_wire(), guard=guard,
                                admitted=admitted, on_send=on_send)

    async def get_call_details(self, call_sid: str) -> CallDetails:
        """Current details of a call placed with Make Call."""
        if not call_sid or not call_sid.strip():
            raise InvalidRequestError("call_sid: must not be blank")
        return await self._call("GET", f"{self._calls_path}/{quote(call_sid.strip(), safe='')}")

    # ------------------------------------------------------------------ internals

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    guard: Callable[[], str | None] | None = None, admitted: bool = False,
                    on_send: Callable[[], None] | None = None) -> CallDetails:
        kind: RequestKind = "post" if method == "POST" else "get"
        attempt = 0
        extensions = {"ccm.on_send": on_send} if on_send is not None else None
        while True:
            retry_after: float | None = None
            if not (admitted and attempt == 0):
                await self.gate.acquire(kind)
            refusal = guard() if guard is not None else None
            if refusal:
                raise RequestNotSentError(f"{method} {path} not sent: {refusal}")
            self.stats[f"{kind}_tries"] += 1
            self.stats[f"{kind}_sent"] += 1  # taken back below if it never reached a socket
            try:
                async with self._slots:
                    response = await self._http.request(method, path, json=body, extensions=extensions)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request was never written to a socket: safe to retry, even a POST. It was not
                # sent, so it is not counted as sent.
                self.stats[f"{kind}_sent"] -= 1
                self.stats[f"{kind}_not_connected"] += 1
                error: CCMError = ConnectError(f"{method} {path}: could not connect ({type(exc).__name__})")
                error.__cause__ = exc
                retryable = True
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if method == "POST":
                    self.stats["outcome_unknown"] += 1
                    raise OutcomeUnknownError(
                        f"Make Call was sent but no answer came back ({type(exc).__name__}); "
                        "the call may exist and must not be placed again",
                        method=method,
                        path=path,
                    ) from exc
                error = RequestTimeoutError(f"{method} {path}: {type(exc).__name__}")
                error.__cause__ = exc
                retryable = True
            else:
                try:
                    return self._parse(method, path, response)
                except OutcomeUnknownError:
                    self.stats["outcome_unknown"] += 1
                    raise
                except APIError as exc:
                    error = exc
                    self.stats[f"http_{exc.http_status}"] += 1
                    if isinstance(exc, RateLimitError):
                        retry_after = exc.retry_after
                        self.gate.on_rate_limited(retry_after)
                    retryable = method == "GET" and isinstance(exc, RetryLaterError | MalformedResponseError)
            if not retryable or attempt >= self.max_retries:
                raise error
            delay = self._backoff(attempt, retry_after)
            log.warning("%s retry %d/%d in %.2fs after %s", method, attempt + 1, self.max_retries,
                        delay, error)
            self.stats[f"{kind}_retries"] += 1
            await self.clock.sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and 0 <= retry_after <= self.max_retry_after:
            return retry_after
        base = min(self.backoff_max, self.backoff_base * (2.0**attempt))
        return base * (0.5 + self._random.random() / 2)

    def _parse(self, method: str, path: str, response: httpx.Response) -> CallDetails:
        status = response.status_code
        if status >= 300:
            raise error_from_response(
                http_status=status, body=response.content, method=method, path=path,
                retry_after=response.headers.get("Retry-After"),
            )
        try:
            envelope = CallEnvelope.model_validate_json(response.content)
        except ValidationError as exc:
            problem = validation_message(exc)
            raise self._unreadable(method, path, status, f"unreadable response body: {problem}") from None
        block = envelope.response
        if block is not None and (block.error_data is not None or (block.code or 200) >= 400):
            raise error_from_response(
                http_status=block.code or status, body=response.content, method=method, path=path
            )
        if block is None or block.data is None:
            raise self._unreadable(method, path, status, "response has no data block",
                                   envelope.request_id)
        log.debug("%s %s -> %d request_id=%s call_sid=%s", method, path, status,
                  envelope.request_id, block.data.call_sid)
        return block.data

    @staticmethod
    def _unreadable(
        method: str, path: str, status: int, detail: str, request_id: str | None = None
    ) -> CCMError:
        if method == "POST":
            # The server said 2xx: the call was probably placed, but we cannot read its sid.
            return OutcomeUnknownError(
                f"Make Call answered HTTP {status} but {detail}; the call may exist",
                method=method, path=path,
            )
        return MalformedResponseError(detail, http_status=status, request_id=request_id,
                                      method=method, path=path)
