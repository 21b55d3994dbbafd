"""A Make Call reaches the socket whole, in one write, with nothing waiting between the send
journal's hook and that write (ccm_tasks.exotel.wire)."""

# ruff: noqa: ASYNC109  (httpcore's backend interface takes timeout arguments)

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import httpcore
import httpx

from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.wire import CorkedBackend, corked_transport
from ccm_tasks.simulator.server import SimulatorServer

MAKE_CALL = {"from": {"user_id": "agent-001"}, "to": {"customer_contact_uri": "+919953123456"},
             "virtual_number": "+918045680000", "custom_field": "attempt-7f3a"}

# The worst moment to die: the journal hook schedules the process's exit for the event loop's next
# turn. Whatever the client writes before it next waits has reached the socket; anything after
# it never leaves. Before the connection was corked, that was the headers without the body.
CHILD = textwrap.dedent("""
    import asyncio, json, os, sys
    from ccm_tasks.exotel.client import CCMClient

    async def main():
        client = CCMClient(base_url=sys.argv[1], account_sid="acc", api_key="k", api_token="t")
        loop = asyncio.get_running_loop()
        await client.make_call(json.loads(sys.argv[2]), on_send=lambda: loop.call_soon(os._exit, 3))

    asyncio.run(main())
""")


def test_a_process_killed_at_the_next_turn_after_its_journal_write_has_sent_the_whole_make_call() -> None:
    """A raw TCP server (no HTTP framework, which might drop a body whose sender vanished) reads
    until the connection closes: it holds the complete request, headers and body."""
    received: list[bytes] = []

    async def main() -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.read(-1))  # until EOF: the child died
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, f"http://127.0.0.1:{port}", json.dumps(MAKE_CALL),
            cwd=Path(__file__).parents[2], stderr=subprocess.PIPE)
        _, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 3, err.decode()
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        server.close()
        return len(received)

    assert asyncio.run(main()) == 1
    head, _, body = received[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v2/accounts/acc/calls HTTP/1.1")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    assert len(body) == length > 0
    assert json.loads(body)["custom_field"] == "attempt-7f3a"


class CountingBackend(httpcore.AsyncNetworkBackend):
    """Counts the writes that reach the real socket streams."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner
        self.writes: list[int] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Any = None) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                              socket_options=socket_options)
        backend = self
        original = stream.write

        async def write(buffer: bytes, timeout: float | None = None) -> None:
            backend.writes.append(len(buffer))
            await original(buffer, timeout=timeout)

        stream.write = write  # type: ignore[method-assign]
        return stream

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def test_every_request_is_one_socket_write(simulator: SimulatorServer) -> None:
    transport = corked_transport(httpx.Limits(max_connections=2, max_keepalive_connections=2))
    corked = transport._pool._network_backend
    assert isinstance(corked, CorkedBackend)
    counting = CountingBackend(corked._inner)
    corked._inner = counting
    client = CCMClient(**simulator.client_settings(), transport=transport)
    try:
        placed = [await client.make_call({**MAKE_CALL, "from": {"user_id": agent}, "custom_field": agent})
                  for agent in ("agent-001", "agent-002", "agent-003")]
        for details in placed:
            await client.get_call_details(details.call_sid)
    finally:
        await client.aclose()
    assert len(counting.writes) == 6  # three Make Calls (headers and body together), three GETs
    assert all(size > 200 for size in counting.writes[:3])
