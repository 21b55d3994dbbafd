"""The simulator's HTTP face: CCM paths and envelopes, faults, status callbacks, a control API.

API paths (Basic auth, counted against the account's rate limit)::

    POST /v2/accounts/{sid}/calls             Make Call
    GET  /v2/accounts/{sid}/calls/{call_sid}  Get Call Details

Control paths (no auth, not rate-limited; for tests and benchmarks)::

    GET  /_sim/health                 liveness and simulated time
    GET  /_sim/dial-log               every accepted Make Call with its timeline
    GET  /_sim/stats                  request and callback counters
    POST /_sim/agents/{user_id}       {"device": "on"|"off"|"unverified"|"missing"}
    POST /_sim/account                {"rate_limit_per_minute": 20} (null: no limit)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from ccm_tasks.clock import Clock
from ccm_tasks.exotel.models import LENIENT, MakeCallRequest
from ccm_tasks.simulator.errors import (
    GET_SERVER_ERROR_CODES,
    SERVER_ERROR_CODES,
    BadRecordingChannels,
    BadRequest,
    ServerError,
    SimError,
)
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.state import SimCall, SimulatedAccount

log = logging.getLogger("ccm.simulator")


def envelope(method: str, http_code: int, data: Any = None,
             error: SimError | None = None) -> dict[str, Any]:
    """The CCM response envelope, success or failure."""
    return {
        "request_id": uuid.uuid4().hex,
        "method": method,
        "http_code": http_code,
        "metadata": None,
        "response": {
            "code": http_code,
            "error_data": None if error is None else {
                "code": error.code,
                "description": error.description,
                "message": error.description,
            },
            "status": "success" if error is None else "failure",
            "data": data,
        },
    }


def _error_response(method: str, error: SimError) -> JSONResponse:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return JSONResponse(envelope(method, error.http_status, error=error),
                        status_code=error.http_status, headers=headers)


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    key, sep, token = decoded.partition(":")
    return (key, token) if sep else (None, None)


class _DropConnection(Response):
    """Start a response and stop mid-way: the server closes the socket, the client sees a broken
    connection after its request was sent."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")]})
        await send({"type": "http.response.body", "body": b'{"request_id": "', "more_body": True})
        # Returning without completing makes uvicorn close the transport.


class CallbackDispatcher:
    """Delivers status callbacks at each event's simulated time, like Exotel would."""

    def __init__(self, account: SimulatedAccount, clock: Clock) -> None:
        self.account = account
        self.clock = clock
        self.settings = account.scenario.callbacks
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, call: SimCall) -> None:
        """Start delivering this call's subscribed events."""
        if not call.status_callback:
            return
        task = asyncio.get_running_loop().create_task(self._run(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, call: SimCall) -> None:
        urls: dict[str, str] = {}
        for sub in call.status_callback:
            if isinstance(sub, dict) and sub.get("event") in ("answered", "terminal"):
                urls.setdefault(sub["event"], str(sub.get("url")))
        rng = self.account.callback_rng
        counters = self.account.counters
        for when, event in call.events():
            url = urls.get(event)
            if url is None:
                continue
            await self.clock.sleep(when - self.clock.time())
            delay = self.settings.delay_seconds.sample(rng)
            if delay > 0:
                await self.clock.sleep(delay)
            if rng.random() < self.settings.drop_rate:
                counters["callbacks_dropped"] += 1
                continue
            strip = event == "terminal" and rng.random() < self.settings.terminal_without_recordings_rate
            payload = {"event_details": {"event_type": event},
                       "call_details": call.details(when, include_recordings=not strip)}
            await self._deliver(url, payload)
            if rng.random() < self.settings.repeat_rate:
                counters["callbacks_repeated"] += 1
                await self._deliver(url, payload)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_seconds)
        counters = self.account.counters
        for attempt in range(self.settings.max_retries + 1):
            try:
                response = await self._client.post(url, json=payload)
                if 200 <= response.status_code < 300:
                    counters["callbacks_delivered"] += 1
                    return
                counters[f"callbacks_http_{response.status_code}"] += 1
            except httpx.HTTPError:
                counters["callbacks_failed_attempts"] += 1
            if attempt < self.settings.max_retries:
                await asyncio.sleep(0.05 * (attempt + 1))
        counters["callbacks_undelivered"] += 1

    async def aclose(self) -> None:
        """Stop pending deliveries and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()


def create_app(scenario: Scenario, clock: Clock) -> FastAPI:
    """A FastAPI app simulating one CCM account described by ``scenario``."""
    routes = _Routes(scenario, clock)
    app = FastAPI(title="CCM simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.account = routes.account
    app.state.dispatcher = routes.dispatcher
    app.state.clock = clock
    app.router.add_event_handler("shutdown", routes.dispatcher.aclose)
    app.add_api_route("/v2/accounts/{sid}/calls", routes.make_call, methods=["POST"])
    app.add_api_route("/v2/accounts//calls", routes.make_call_without_sid, methods=["POST"])
    app.add_api_route("/v2/accounts/{sid}/calls/{call_sid}", routes.get_call, methods=["GET"])
    app.add_api_route("/_sim/health", routes.health, methods=["GET"])
    app.add_api_route("/_sim/dial-log", routes.dial_log, methods=["GET"])
    app.add_api_route("/_sim/stats", routes.stats, methods=["GET"])
    app.add_api_route("/_sim/agents/{user_id}", routes.set_agent, methods=["POST"])
    app.add_api_route("/_sim/account", routes.set_account, methods=["POST"])
    return app


class _Routes:
    """The simulator's endpoints over one account: the API paths and the control paths."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario, self.clock = scenario, clock
        self.account = SimulatedAccount(scenario, clock)
        self.dispatcher = CallbackDispatcher(self.account, clock)
        self.faults = scenario.faults

    async def _api(self, request: Request, method: str, sid: str,
                   handler: Callable[[], Awaitable[Response]]) -> Response:
        """Authenticate, check the account, count against the rate limit, inject faults, answer."""
        account, faults = self.account, self.faults
        counters = account.counters
        counters[f"{method.lower()}_requests"] += 1
        try:
            account.authenticate(*_basic_credentials(request))
            account.check_account(sid)
            account.admit()
        except SimError as err:
            counters[f"http_{err.http_status}"] += 1
            return _error_response(method, err)
        if method in faults.methods:
            rng = account.fault_rng
            latency = faults.latency_seconds.sample(rng)
            if latency > 0:
                await asyncio.sleep(latency)
            if rng.random() < faults.server_error_rate:
                counters["injected_5xx"] += 1
                codes = SERVER_ERROR_CODES if method == "POST" else GET_SERVER_ERROR_CODES
                return _error_response(method, ServerError(rng.choice(codes)))
            roll = rng.random()
            if roll < faults.drop_connection_rate + faults.hang_rate:
                # The request is processed (a POST places its call), then the answer is lost.
                await handler()
                if roll < faults.drop_connection_rate:
                    counters["injected_drops"] += 1
                    return _DropConnection()
                counters["injected_hangs"] += 1
                await asyncio.sleep(faults.hang_seconds)
        return await handler()

    async def make_call(self, sid: str, request: Request) -> Response:
        """POST /v2/accounts/{sid}/calls."""
        try:
            raw = await request.body()
        except ClientDisconnect:  # the client went away before its body arrived: nothing to act on
            self.account.counters["make_calls_cut_short"] += 1
            return Response(status_code=400)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        field = body.get("custom_field") if isinstance(body, dict) else None
        self.account.received_make_calls.append(field if isinstance(field, str) else None)

        async def handler() -> Response:
            if not isinstance(body, dict):
                return _error_response("POST", BadRequest("Request body must be JSON"))
            try:
                call = self.account.make_call(parse_make_call(body))
            except SimError as err:
                self.account.counters[f"http_{err.http_status}"] += 1
                return _error_response("POST", err)
            self.dispatcher.schedule(call)
            return JSONResponse(envelope("POST", 200, call.details(self.clock.time())))

        return await self._api(request, "POST", sid, handler)

    async def make_call_without_sid(self, request: Request) -> Response:
        """POST /v2/accounts//calls: 400/1001."""
        return await self._api(request, "POST", "", _never)

    async def get_call(self, sid: str, call_sid: str, request: Request) -> Response:
        """GET /v2/accounts/{sid}/calls/{call_sid}."""
        async def handler() -> Response:
            try:
                call = self.account.get_call(call_sid)
            except SimError as err:
                self.account.counters[f"http_{err.http_status}"] += 1
                return _error_response("GET", err)
            return JSONResponse(envelope("GET", 200, call.details(self.clock.time())))

        return await self._api(request, "GET", sid, handler)

    async def health(self) -> dict[str, Any]:
        """Liveness and simulated time (for tests; the product never asks)."""
        return {"ok": True, "time": self.clock.time(), "time_scale": self.scenario.time_scale}

    async def dial_log(self) -> dict[str, Any]:
        """Every accepted Make Call with its timeline."""
        return {"time_scale": self.scenario.time_scale, "now": self.clock.time(),
                "calls": self.account.dial_log()}

    async def stats(self) -> dict[str, Any]:
        """Request and callback counters, and requests per simulated minute."""
        per_minute = {str(k): v for k, v in sorted(self.account.requests_per_minute.items())}
        return {"now": self.clock.time(), "counters": dict(self.account.counters),
                "requests_per_minute": per_minute, "busiest_60s": self.account.busiest_60s}

    async def set_account(self, request: Request) -> Response:
        """Change the account's rate limit: ``{"rate_limit_per_minute": 20}`` (null: none)."""
        body = await request.json()
        limit = body.get("rate_limit_per_minute", "missing") if isinstance(body, dict) else "missing"
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
            return JSONResponse({"error": "rate_limit_per_minute must be a positive integer or null"}, 400)
        self.account.set_rate_limit(limit)
        return JSONResponse({"rate_limit_per_minute": limit})

    async def set_agent(self, user_id: str, request: Request) -> Response:
        """Turn an agent's device on or off."""
        body = await request.json()
        device = body.get("device") if isinstance(body, dict) else None
        if device not in ("on", "off", "unverified", "missing"):
            return JSONResponse({"error": "device must be on, off, unverified or missing"}, 400)
        try:
            self.account.set_device(user_id, device)
        except KeyError:
            return JSONResponse({"error": f"unknown agent {user_id}"}, 404)
        return JSONResponse({"user_id": user_id, "device": device})


def parse_make_call(body: dict[str, Any]) -> MakeCallRequest:
    """Parse an incoming Make Call as the API would: 400/1002 for bad recording_channels, 400 for
    any other missing or malformed field."""
    try:
        return MakeCallRequest.model_validate(body, context=LENIENT)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        if any(f.startswith("recording_channels") for f in fields):
            raise BadRecordingChannels() from None
        raise BadRequest(f"Invalid or missing: {', '.join(fields)}") from None


async def _never() -> Response:  # pragma: no cover - the sid check always answers first
    raise AssertionError("unreachable")
