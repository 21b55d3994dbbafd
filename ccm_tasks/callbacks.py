"""The status-callback receiver: Exotel POSTs ``answered`` and ``terminal`` events here.

``POST /v1/callbacks/{token}``: the token is the campaign's unguessable secret (kept in the ledger),
so only Exotel, which got the URL in Make Call, can post. The receiver answers fast (Exotel allows
15 s and retries twice), and every request either changes nothing or records exactly one event:

* 413 body over 64 KiB, 408 a body that takes longer than ``BODY_SECONDS`` to arrive, 404 wrong
  token, 400 not JSON (nesting too deep included), 422 not a status-callback payload, 404 a call
  that is not one of this campaign's, 409 a payload that contradicts what the ledger knows of the
  call (its sid, customer, agent, virtual number or time): nothing recorded.
* 200: the event is recorded in the ledger once (a repeated delivery has the same key and changes
  nothing), then the dialer is woken: directly when it runs in this process (:class:`CallbackHub`),
  through the ledger otherwise (the engine reads new events every fraction of a second).

The token never appears in logs: the access log is off and the token is added to the redaction
filter. Under abuse the receiver stays small: connections are bounded (uvicorn answers 503 past
``MAX_CONNECTIONS``), bodies must arrive within ``BODY_SECONDS``, rejections are logged at most once
per reason every few seconds with a count, and the dialer keeps its descriptors (the process's
open-file limit is raised to its hard limit). The URL token is the main protection, as in Exotel's
model; the contradiction check is defence in depth (docs/dialer.md says what it cannot stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ccm_tasks.clock import Clock, SystemClock
from ccm_tasks.errors import CampaignCannotRun
from ccm_tasks.exotel.models import CallDetails, StatusCallback, StatusCallbackPayload
from ccm_tasks.inputs.definition import CallbackSettings
from ccm_tasks.ledger import Ledger
from ccm_tasks.logs import RateLimitedLog
from ccm_tasks.redact import redaction_filter
from ccm_tasks.simulator.server import BackgroundServer

log = logging.getLogger("ccm.callbacks")

MAX_BODY = 64 * 1024
BODY_SECONDS = 5.0
MAX_CONNECTIONS = 256
CALLBACK_PATH = "/v1/callbacks"
CLOCK_SLACK = 300.0  # seconds a payload's times may lie outside its attempt's (clock skew)


@dataclass(frozen=True)
class CallbackEvent:
    """A recorded status callback, as the dialer consumes it."""

    campaign_id: int
    event_id: int
    attempt_id: int
    event_type: str
    details: CallDetails


Subscriber = Callable[[CallbackEvent], None]


class CallbackHub:
    """Delivers recorded events to dialers running in this process, on their own event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[int, list[tuple[asyncio.AbstractEventLoop, Subscriber]]] = {}

    def subscribe(self, campaign_id: int, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn`` (on the caller's loop) for each new event of the campaign; returns unsubscribe."""
        entry = (asyncio.get_running_loop(), fn)
        with self._lock:
            self._subs.setdefault(campaign_id, []).append(entry)

        def unsubscribe() -> None:
            with self._lock:
                subs = self._subs.get(campaign_id, [])
                if entry in subs:
                    subs.remove(entry)

        return unsubscribe

    def publish(self, event: CallbackEvent) -> None:
        """Hand an event to the campaign's subscribers (thread-safe)."""
        with self._lock:
            subs = list(self._subs.get(event.campaign_id, []))
        for loop, fn in subs:
            if not loop.is_closed():
                loop.call_soon_threadsafe(fn, event)


def dedupe_key(payload: StatusCallbackPayload) -> str:
    """Identical deliveries share a key; the two ``answered`` events of a call do not."""
    d = payload.call_details
    parts = (d.call_sid, payload.event_details.event_type, d.call_state, d.call_status,
             d.agent_leg_status, d.customer_leg_status, d.updated_time.isoformat() if d.updated_time else "")
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def callback_url(base: str, token: str) -> str:
    """The URL given to Exotel in Make Call's status_callback."""
    return f"{base.rstrip('/')}{CALLBACK_PATH}/{token}"


class _Rejected(Exception):
    """A delivery answered with a 4xx; nothing changes."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


class CallbackReceiver:
    """What the receiver does with one delivery: read, authenticate, parse, check, record, wake."""

    def __init__(self, ledger: Ledger, hub: CallbackHub | None, clock: Clock, max_body: int) -> None:
        self.ledger, self.hub, self.clock, self.max_body = ledger, hub, clock, max_body
        self._tokens: dict[str, int] = {}
        self._refreshed = 0.0
        self._warn = RateLimitedLog(log, every=5.0)

    def campaign_for(self, token: str) -> int | None:
        """The campaign whose secret this is (compared in constant time)."""
        tokens = self._tokens
        if not tokens or (token not in tokens and time.monotonic() - self._refreshed > 1.0):
            # New campaigns get tokens while we run; re-read at most once a second so wrong tokens
            # cannot hammer the ledger.
            tokens.clear()
            tokens.update(self.ledger.callback_tokens())
            redaction_filter().add_secrets(tokens)
            self._refreshed = time.monotonic()
        for known, cid in tokens.items():
            if hmac.compare_digest(known, token):
                return cid
        return None

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _Rejected(413, "body too large")
        body = bytearray()
        try:
            async with asyncio.timeout(BODY_SECONDS):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > self.max_body:
                        raise _Rejected(413, "body too large")
        except TimeoutError:
            raise _Rejected(408, "body too slow") from None
        return bytes(body)

    @staticmethod
    def _parse(body: bytes) -> tuple[Any, StatusCallbackPayload]:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _Rejected(400, "body is not JSON") from None
        try:
            return data, StatusCallbackPayload.model_validate(data)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise _Rejected(422, "not a status callback payload: " + ", ".join(fields[:5])) from None
        except RecursionError:
            raise _Rejected(400, "body nests too deeply") from None

    async def receive(self, token: str, request: Request) -> JSONResponse:
        """Answer one delivery (fast: Exotel allows 15 s)."""
        try:
            body = await self._body(request)
            campaign_id = self.campaign_for(token)
            if campaign_id is None:
                raise _Rejected(404, "unknown callback path")
            data, payload = self._parse(body)
            return await self._record(campaign_id, data, payload)
        except _Rejected as r:
            self._warn.warning(f"rejected-{r.status}", "status callback rejected (%d): %s", r.status, r.why)
            return JSONResponse({"ok": False, "error": r.why}, status_code=r.status)

    async def _record(self, campaign_id: int, data: Any, payload: StatusCallbackPayload) -> JSONResponse:
        details, ledger = payload.call_details, self.ledger
        attempt = await asyncio.to_thread(ledger.attempt_for_callback, campaign_id, details.custom_field,
                                          details.call_sid)
        if attempt is None:
            raise _Rejected(404, f"call {details.call_sid} is not one of this campaign's")
        contradiction = contradicts(attempt, details, now=self.clock.time())
        if contradiction is not None:
            raise _Rejected(409, f"call {details.call_sid} contradicts attempt {attempt['id']}: "
                                 f"{contradiction}")
        event_type = payload.event_details.event_type
        event_id = await asyncio.to_thread(
            ledger.record_callback, campaign_id=campaign_id, attempt_id=int(attempt["id"]),
            call_sid=details.call_sid, event_type=event_type, dedupe_key=dedupe_key(payload),
            payload=_jsonable(data), now=self.clock.time())
        if event_id is None:
            log.debug("repeated %s callback for call %s ignored", event_type, details.call_sid)
            return JSONResponse({"ok": True, "duplicate": True})
        log.debug("%s callback for call %s (attempt %s)", event_type, details.call_sid, attempt["id"])
        if self.hub is not None:
            self.hub.publish(CallbackEvent(campaign_id, event_id, int(attempt["id"]), event_type, details))
        return JSONResponse({"ok": True, "duplicate": False})


def create_receiver_app(ledger: Ledger, hub: CallbackHub | None = None, *, clock: Clock | None = None,
                        max_body: int = MAX_BODY) -> FastAPI:
    """The receiver app for every campaign in ``ledger``."""
    receiver = CallbackReceiver(ledger, hub, clock or SystemClock(), max_body)
    app = FastAPI(title="CCM status callbacks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/v1/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.add_api_route(CALLBACK_PATH + "/{token}", receiver.receive, methods=["POST"])
    return app


def _number(value: str | None) -> str | None:
    """A phone number's last ten digits, or None when it cannot be compared (masked, partial)."""
    text = (value or "").strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) < 10 or any(ch not in "+-() 0123456789" for ch in text):
        return None
    return digits[-10:]


def _differ(a: str | None, b: str | None) -> bool:
    """Two numbers that can both be compared and are not the same number."""
    x, y = _number(a), _number(b)
    return x is not None and y is not None and x != y


def contradicts(attempt: dict[str, Any], details: CallDetails, *, now: float) -> str | None:
    """Why a payload cannot be about this attempt, or None. Only facts both sides state are
    compared (unanswered calls omit fields), numbers by their last ten digits (formats differ)."""
    if attempt.get("call_sid") and details.call_sid != attempt["call_sid"]:
        return "another call_sid"
    customer = details.customer_details.contact_uri if details.customer_details else None
    if _differ(customer, attempt.get("customer_phone")):
        return "another customer"
    agent = details.assigned_agent_details
    key = str(attempt.get("agent_key") or "")
    if agent is not None and key:
        if key.startswith("+"):
            if _differ(agent.contact_uri, key):
                return "another agent"
        elif not key.startswith("sip:") and agent.user_id and agent.user_id != key:
            return "another agent"
    placed = attempt.get("details") or {}
    ours = placed.get("virtual_number") if isinstance(placed, dict) else None
    if _differ(ours, details.virtual_number):
        return "another virtual number"
    created = float(attempt["created_at"])
    if details.created_time is not None and details.created_time.timestamp() < created - CLOCK_SLACK:
        return "created before its attempt was written"
    ended = details.end_time or details.updated_time
    if ended is not None and ended.timestamp() > now + CLOCK_SLACK:
        return "ends in the future"
    return None


def event_from_row(row: dict[str, Any]) -> CallbackEvent | None:
    """A stored callback event (the ledger inbox) as a :class:`CallbackEvent`."""
    try:
        payload = StatusCallbackPayload.model_validate(row["payload"])
    except ValidationError:
        return None
    return CallbackEvent(int(row["campaign_id"]), int(row["id"]), int(row["attempt_id"]),
                         str(row["event_type"]), payload.call_details)


def _jsonable(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {"payload": data}


@dataclass
class RunReceiver:
    """A run's status-callback receiver (when its definition enables callbacks)."""

    server: BackgroundServer | None
    hub: CallbackHub
    urls: list[StatusCallback]
    unsubscribe: Callable[[], None] | None = None

    def attach(self, campaign_id: int, deliver: Subscriber) -> None:
        """Deliver the campaign's events to the engine on the caller's event loop."""
        self.unsubscribe = self.hub.subscribe(campaign_id, deliver)

    def close(self) -> None:
        """Stop listening."""
        if self.unsubscribe is not None:
            self.unsubscribe()
        if self.server is not None:
            self.server.stop()


def start_run_receiver(settings: CallbackSettings, ledger: Ledger, campaign_id: int, *, clock: Clock,
                       simulated: bool) -> RunReceiver:
    """Listen for a campaign's callbacks and build the status_callback list for its Make Calls."""
    token = ledger.callback_token(campaign_id)
    redaction_filter().add_secrets([token])
    hub = CallbackHub()
    server = None
    if settings.listen:
        raise_open_file_limit()
        host, _, port = settings.listen.rpartition(":")
        server = BackgroundServer(create_receiver_app(ledger, hub, clock=clock), host, int(port),
                                  limit_concurrency=MAX_CONNECTIONS).start()
    base = settings.public_url
    if base is None:
        if not simulated:
            raise CampaignCannotRun("callbacks.enabled needs callbacks.public_url (an https address Exotel "
                                    "can reach) to dial for real")
        if server is None:
            raise CampaignCannotRun("callbacks.enabled needs callbacks.public_url or callbacks.listen")
        base = server.base_url  # the simulator runs here and can reach the receiver directly
    url = callback_url(base, token)
    return RunReceiver(server, hub, [StatusCallback(event="answered", url=url),
                                     StatusCallback(event="terminal", url=url)])


def raise_open_file_limit() -> None:
    """Raise this process's open-file limit to its hard limit: a flood of connections to the
    receiver must not take the descriptors the dialer needs for its own requests."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve_receiver(host: str, port: int, ledger_path: str | None = None) -> int:
    """``ccm callbacks``: the receiver alone, for every campaign in the ledger (foreground)."""
    from ccm_tasks.paths import resolve_ledger
    from ccm_tasks.settings import SimSettings
    from ccm_tasks.simulator.server import bind_socket, make_server
    from ccm_tasks.target import shared_clock

    raise_open_file_limit()
    ledger = Ledger(resolve_ledger(ledger_path))
    app = create_receiver_app(ledger, clock=shared_clock(SimSettings().clock))
    sock = bind_socket(host, port)
    server = make_server(app, log_level="warning", limit_concurrency=MAX_CONNECTIONS)
    bound = sock.getsockname()
    print(f"Receiving status callbacks on http://{bound[0]}:{bound[1]}{CALLBACK_PATH}/<campaign token> "
          f"(ledger {ledger}); Ctrl-C to stop", flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    return 0
