"""Run the simulator: in-process on a background thread (tests, the embedded default) or in the
foreground (``ccm simulator``). Either way it is a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import httpx
import uvicorn

from ccm_tasks.clock import Clock, ScaledClock, SystemClock
from ccm_tasks.simulator.app import create_app
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.state import SimulatedAccount

T = TypeVar("T")


class _QuietInjectedFaults(logging.Filter):
    """uvicorn logs an error for every connection we drop on purpose; those are not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def clock_for(scenario: Scenario) -> Clock:
    """The clock a scenario asks for: real time, or simulated time at ``time_scale``."""
    origin = scenario.start_time.timestamp() if scenario.start_time else None
    if scenario.time_scale == 1.0 and origin is None:
        return SystemClock()
    return ScaledClock(scenario.time_scale, origin)


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket (port 0 picks a free port)."""
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it every small response waits ~40 ms for a delayed ACK (measured: 44 ms per GET).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, log_level: str = "warning", limit_concurrency: int | None = None) -> uvicorn.Server:
    """A uvicorn server for ``app`` that does not install signal handlers or print access logs.

    ``limit_concurrency``: past this many connections, answer 503 at once (bounded under a flood).
    """
    config = uvicorn.Config(app, http="h11", lifespan="on", log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=2, log_config=None, limit_concurrency=limit_concurrency,
                            timeout_keep_alive=5)
    logging.getLogger("uvicorn.error").addFilter(_QuietInjectedFaults())
    return uvicorn.Server(config)


class BackgroundServer:
    """Any ASGI app served by uvicorn on a background thread with its own event loop."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 limit_concurrency: int | None = None) -> None:
        self.app = app
        self._sock = bind_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = make_server(app, limit_concurrency=limit_concurrency)
        # uvicorn only captures signals on the main thread, so this server leaves them alone.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns once the server accepts connections."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def serve() -> None:
                task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
                while not self._server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
                    await asyncio.sleep(0.005)
                ready.set()
                await task

            try:
                loop.run_until_complete(serve())
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name=f"server-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(15)
        if not self._server.started:
            raise RuntimeError(f"the server on port {self.port} did not start")
        return self

    def call_soon(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (thread-safe access to live state); return its result."""
        if self._loop is None or not self._loop.is_running():
            return fn()
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # pragma: no cover - passed to the caller
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=10)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatorServer(BackgroundServer):
    """A simulator on a background thread: real HTTP on loopback, state readable from tests.

    >>> with SimulatorServer(Scenario()) as sim:
    ...     sim.base_url  # doctest: +SKIP
    """

    def __init__(self, scenario: Scenario | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: Clock | None = None) -> None:
        self.scenario = scenario or Scenario()
        self.clock = clock or clock_for(self.scenario)
        super().__init__(create_app(self.scenario, self.clock), host, port)

    @property
    def account(self) -> SimulatedAccount:
        """The simulated account (read it through :meth:`call_soon` while the server runs)."""
        account: SimulatedAccount = self.app.state.account
        return account

    def client_settings(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~ccm_tasks.exotel.client.CCMClient` to talk to this server."""
        acc = self.scenario.account
        return {"base_url": self.base_url, "api_key": acc.api_key, "api_token": acc.api_token,
                "account_sid": acc.sid}

    def start(self) -> SimulatorServer:
        """Start serving; returns once the server accepts connections."""
        super().start()
        return self

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def dial_log(self) -> list[dict[str, Any]]:
        """Every accepted Make Call so far."""
        return self.call_soon(self.account.dial_log)

    def received_make_calls(self) -> list[str | None]:
        """The ``custom_field`` of every complete Make Call request received so far, answered with a
        call or not (a 429, a refusal): what may have reached the server."""
        return self.call_soon(lambda: list(self.account.received_make_calls))

    def counters(self) -> dict[str, int]:
        """Request and callback counters so far."""
        return self.call_soon(lambda: dict(self.account.counters))


def clock_spec(clock: Clock) -> str | None:
    """What ``CCM_SIM_CLOCK`` must say for another process to share this simulator's clock."""
    return clock.spec if isinstance(clock, ScaledClock) else None


def serve_forever(scenario: Scenario, host: str, port: int,
                  on_ready: Callable[[str, Clock], None] | None = None) -> None:
    """Run the simulator in the foreground until interrupted (``ccm simulator``)."""
    clock = clock_for(scenario)
    app = create_app(scenario, clock)
    sock = bind_socket(host, port)
    server = make_server(app, log_level="info")

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.01)
        if on_ready and server.started:
            bound_host, bound_port = sock.getsockname()[:2]
            on_ready(f"http://{bound_host}:{bound_port}", clock)
        await task

    asyncio.run(main())


async def fetch_dial_log(base_url: str) -> list[dict[str, Any]]:
    """The dial log of a simulator running anywhere (e.g. in another process)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        response = await client.get("/_sim/dial-log")
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls
