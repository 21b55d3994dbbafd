"""One socket write per request: what makes the send journal exact.

httpcore writes an HTTP/1.1 request in pieces: the headers, then each body chunk, and between the
two writes its anyio stream yields to the event loop (``cancel_shielded_checkpoint``). A Make Call
journalled as started (ccm_tasks.dialer.journal) whose process is killed in that gap has sent
its headers but not its body: the server saw a request that it can never act on, yet the attempt
is (rightly, from the client's side) ``unknown``, the customer final and the agent quarantined.
Under load that gap is one turn of a busy event loop, milliseconds; CI's crash test hit it.

:class:`CorkedBackend` wraps httpcore's network backend so that each connection's writes are held
("corked", as Linux's ``TCP_CORK``) until the connection next reads, which HTTP/1.1 does only
once the whole request has been written. The request then leaves in one ``write``: headers and
body reach the socket together or not at all. Between the journal write and that socket write
nothing waits (no ``await`` in between suspends), so the window left is a few microseconds.
Works the same under TLS (the TLS stream is corked too) and costs one syscall less per request.
"""

# httpcore's stream and backend interfaces take ``timeout`` arguments; these classes implement them.
# ruff: noqa: ASYNC109

from __future__ import annotations

import ssl
import typing

import httpcore
import httpx

_Sockopts = typing.Iterable[tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                            | tuple[int, int, None, int]]


class CorkedStream(httpcore.AsyncNetworkStream):
    """A network stream whose writes are held until the next read, then sent as one."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._held: list[bytes] = []
        self._timeout: float | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._held.append(buffer)
            self._timeout = timeout

    async def flush(self) -> None:
        """Send what is held, as one write."""
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            await self._inner.write(data, timeout=self._timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self.flush()
        return await self._inner.read(max_bytes, timeout=timeout)

    async def aclose(self) -> None:
        self._held.clear()  # a request abandoned before its answer was read: never sent
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        await self.flush()
        tls = await self._inner.start_tls(ssl_context, server_hostname=server_hostname, timeout=timeout)
        return CorkedStream(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class CorkedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with every stream corked (:class:`CorkedStream`)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: _Sockopts | None = None) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                               socket_options=socket_options)
        return CorkedStream(stream)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: _Sockopts | None = None) -> httpcore.AsyncNetworkStream:
        return CorkedStream(await self._inner.connect_unix_socket(path, timeout=timeout,
                                                                  socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def corked_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, its connection pool given a :class:`CorkedBackend`.

    httpx does not take a network backend as an argument, so the pool's is replaced before any
    connection exists; the attribute is checked so that an httpx or httpcore upgrade that renames
    it fails here, at start-up, rather than silently losing the one-write guarantee.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = transport._pool
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore's connection pool has no _network_backend: "
                           "check the pinned httpx and httpcore")
    pool._network_backend = CorkedBackend(pool._network_backend)
    return transport
