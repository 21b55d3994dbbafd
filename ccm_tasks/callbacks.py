"""The status-callback receiver: Exotel POSTs ``answered`` and ``terminal`` events here.

``POST /v1/callbacks/{token}``: the token is the campaign's unguessable secret (kept in the ledger),
so only Exotel, which got the URL in Make Call, can post. The receiver answers fast (Exotel allows
15 s and retries twice), and every request either changes nothing or records exactly one event:

* 413 body over 64 KiB, 404 wrong token, 400 not JSON, 422 not a status-callback payload,
  404 a call that is not one of this campaign's, 409 a call_sid that contradicts the attempt named
  by custom_field: nothing recorded.
* 200: the event is recorded in the ledger once (a repeated delivery has the same key and changes
  nothing), then the dialer is woken: directly when it runs in this process (:class:`CallbackHub`),
  through the ledger otherwise (the engine reads new events every fraction of a second).

The token never appears in logs: the access log is off and the token is added to the redaction
filter.
"""

from __future__ import annotations

import asyncio
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
from ccm_tasks.exotel.models import CallDetails, StatusCallbackPayload
from ccm_tasks.ledger import Ledger
from ccm_tasks.redact import redaction_filter

log = logging.getLogger("ccm.callbacks")

MAX_BODY = 64 * 1024
CALLBACK_PATH = "/v1/callbacks"


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


def create_receiver_app(ledger: Ledger, hub: CallbackHub | None = None, *, clock: Clock | None = None,
                        max_body: int = MAX_BODY) -> FastAPI:
    """The receiver app for every campaign in ``ledger``."""
    clock = clock or SystemClock()
    app = FastAPI(title="CCM status callbacks", docs_url=None, redoc_url=None, openapi_url=None)
    tokens: dict[str, int] = {}
    refreshed = [0.0]

    def campaign_for(token: str) -> int | None:
        if not tokens or (token not in tokens and time.monotonic() - refreshed[0] > 1.0):
            # New campaigns get tokens while we run; re-read at most once a second so wrong tokens
            # cannot hammer the ledger.
            tokens.clear()
            tokens.update(ledger.callback_tokens())
            redaction_filter().add_secrets(tokens)
            refreshed[0] = time.monotonic()
        for known, cid in tokens.items():
            if hmac.compare_digest(known, token):
                return cid
        return None

    def reject(status: int, why: str) -> JSONResponse:
        log.warning("status callback rejected (%d): %s", status, why)
        return JSONResponse({"ok": False, "error": why}, status_code=status)

    @app.get("/v1/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post(CALLBACK_PATH + "/{token}")
    async def receive(token: str, request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return reject(413, "body too large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return reject(413, "body too large")
        campaign_id = campaign_for(token)
        if campaign_id is None:
            return reject(404, "unknown callback path")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return reject(400, "body is not JSON")
        try:
            payload = StatusCallbackPayload.model_validate(data)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            return reject(422, "not a status callback payload: " + ", ".join(fields[:5]))
        details = payload.call_details
        attempt = ledger.attempt_for_callback(campaign_id, details.custom_field, details.call_sid)
        if attempt is None:
            return reject(404, f"call {details.call_sid} is not one of this campaign's")
        if attempt["call_sid"] and details.call_sid != attempt["call_sid"]:
            return reject(409, f"call {details.call_sid} does not match attempt {attempt['id']}")
        event_type = payload.event_details.event_type
        event_id = ledger.record_callback(
            campaign_id=campaign_id, attempt_id=int(attempt["id"]), call_sid=details.call_sid,
            event_type=event_type, dedupe_key=dedupe_key(payload), payload=_jsonable(data),
            now=clock.time())
        if event_id is None:
            log.debug("repeated %s callback for call %s ignored", event_type, details.call_sid)
            return JSONResponse({"ok": True, "duplicate": True})
        log.debug("%s callback for call %s (attempt %s)", event_type, details.call_sid, attempt["id"])
        if hub is not None:
            hub.publish(CallbackEvent(campaign_id, event_id, int(attempt["id"]), event_type, details))
        return JSONResponse({"ok": True, "duplicate": False})

    return app


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


def serve_receiver(host: str, port: int, ledger_path: str | None = None) -> int:
    """``ccm callbacks``: the receiver alone, for every campaign in the ledger (foreground)."""
    from ccm_tasks.paths import default_ledger_path
    from ccm_tasks.simulator.server import bind_socket, make_server

    ledger = Ledger(ledger_path or default_ledger_path())
    app = create_receiver_app(ledger)
    sock = bind_socket(host, port)
    server = make_server(app, log_level="warning")
    bound = sock.getsockname()
    print(f"Receiving status callbacks on http://{bound[0]}:{bound[1]}{CALLBACK_PATH}/<campaign token> "
          f"(ledger {ledger}); Ctrl-C to stop", flush=True)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    return 0
