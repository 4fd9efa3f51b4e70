"""Keeping ccxt.pro watch calls armed, and merging several into one stream.

ccxt resolves a watch future only when a message arrives while a future is pending; an update that lands
between two watch calls waits in ccxt's cache until the *next* message on that channel. A :class:`Pump`
therefore re-arms its watch as soon as one resolves and queues the results, so nothing is delayed and a
socket drop that happens while the consumer is busy is still reported on its next call.

A :class:`MergedStream` runs one pump per source (OKX: ``orders`` on /private and ``orders-algo`` on
/business) and hands out everything queued so far as one batch. When a source fails, the others get a short
grace period to fail too (an outage drops every socket at once), so a single disconnect surfaces as one error;
a failed pump restarts on the next call, which is when ccxt reconnects and re-subscribes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..aio import spawn

Source = Callable[[], Awaitable[Any]]


class MergedStream:
    def __init__(self, sources: Sequence[Source], *, grace_s: float = 0.3, conflate: bool = False) -> None:
        """``conflate``: keep only the newest result (tickers); otherwise every result is delivered in order."""
        self._sources = list(sources)
        self._grace_s = grace_s
        self._conflate = conflate
        self._tasks: list[asyncio.Task[None] | None] = [None] * len(self._sources)
        self._results: list[Any] = []
        self._errors: list[BaseException] = []
        self._wakeup = asyncio.Event()
        self._closed = False

    def _start(self) -> None:
        for i, task in enumerate(self._tasks):
            if task is None or task.done():
                self._tasks[i] = spawn(self._pump(i), name=f"ccxt-pump-{i}")

    async def _pump(self, index: int) -> None:
        source = self._sources[index]
        while True:
            try:
                result = await source()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._errors.append(exc)
                self._wakeup.set()
                return
            if self._conflate:
                self._results[:] = [result]
            else:
                self._results.append(result)
            self._wakeup.set()

    def _alive(self) -> list[asyncio.Task[None]]:
        return [t for t in self._tasks if t is not None and not t.done()]

    async def next(self) -> list[Any]:
        """Everything received since the last call (waits for at least one result). Raises the first source
        error (after the grace period), results received before it are delivered first."""
        if self._closed:
            raise RuntimeError("stream closed")
        if not self._errors:
            self._start()  # (re)arm every source, also the ones that failed last time
        while True:
            if self._results:
                out, self._results = self._results, []
                if not self._errors:
                    self._wakeup.clear()
                return out
            if self._errors:
                alive = self._alive()
                if alive:  # the other sockets usually drop at the same moment: report it as one disconnect
                    await asyncio.wait(alive, timeout=self._grace_s)
                error = self._errors[0]
                self._errors.clear()
                self._wakeup.clear()
                raise error
            self._start()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in self._tasks if t is not None]
        self._tasks = [None] * len(self._sources)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
