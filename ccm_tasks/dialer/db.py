"""The ledger, off the event loop: every call runs on one thread of its own, in order.

A long write by another process sharing the ledger (a big ``sync_customers``) makes our writes
wait for the database's lock; on this thread, that wait no longer freezes the event loop, so polls,
callbacks and heartbeats go on (measured: docs/benchmarks.md, dialer (e)). One thread keeps this
process's writes in the order the engine issued them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ccm_tasks.ledger import Ledger

P = ParamSpec("P")
T = TypeVar("T")


class LedgerThread:
    """Runs :class:`~ccm_tasks.ledger.Ledger` methods on a dedicated thread and awaits them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ccm-ledger")

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``await db(ledger.method, ...)``: the method's result, computed on the ledger thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

    async def settled(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Like calling it, but a cancellation waits for the write to finish first (and then
        propagates), so the caller always learns what the ledger now holds."""
        future = asyncio.ensure_future(self(fn, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    def close(self) -> None:
        """Wait for queued writes, then stop the thread."""
        self._thread.shutdown(wait=True)
