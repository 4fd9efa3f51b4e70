"""The plumbing of our own push parsing: ccxt.pro keeps the connection, we keep the data.

A :class:`Subscription` keeps one ccxt.pro watch call armed (``client.watch_orders()`` and the like). That call
is how ccxt connects, logs in, subscribes, pings and, after a drop, reconnects and re-subscribes. Because the
venue client's push tap hands the channel's frames to our parser instead of ccxt's, the watch call itself never
returns data: it stays pending for as long as the connection lives and fails when the socket drops or the
venue refuses the subscription. Keeping it pending the whole time (rather than resolving it per frame) also
means there is no gap between two watch calls in which a drop could go unnoticed.

A :class:`Feed` collects the domain objects the parser produced for one consumer (orders, fills, positions,
the ticks of one symbol) and the failures of the subscriptions it depends on, in arrival order: items that
arrived before a drop are delivered first, then the drop is raised once (a drop that takes several sockets at
once, OKX /private and /business, is folded into one report), and the next call re-arms the subscriptions.

A consumer may also give a feed a *sink* (:meth:`Feed.set_sink`): while the consumer is parked in
:meth:`Feed.next` with nothing queued, :meth:`Feed.put` hands the items to the sink inside ccxt's receive
callback instead of waking the consumer's task (a push then costs no task hop). Anything that must keep its
place behind queued items or a failure, or that the sink declines, takes the queue as before, so the order
above holds either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from ..aio import spawn

log = logging.getLogger(__name__)

T = TypeVar("T")
Watch = Callable[[], Awaitable[Any]]
PushHandler = Callable[[dict[str, Any]], None]
Sink = Callable[[list[Any]], bool]
"""Takes a batch on the consumer's behalf (True), or declines it (False: the batch is queued for next())."""


def deliver(handler: PushHandler, message: dict[str, Any]) -> None:
    """Run a push handler inside ccxt's receive callback. An exception must not escape: it would stop ccxt's
    receive loop and leave the socket silently deaf, so a frame that cannot be handled is logged and skipped."""
    try:
        handler(message)
    except Exception:
        log.exception("a push could not be handled and was skipped: %s", _brief(message))


class _Failure:
    """A subscription's failure, queued in a feed between the items that arrived before and after it."""

    __slots__ = ("error", "in_flight")

    def __init__(self, error: BaseException, in_flight: list[asyncio.Future[None]]) -> None:
        self.error = error
        self.in_flight = in_flight  # the feed's other subscriptions still running when this one failed


class Subscription:
    """One ccxt.pro watch call kept armed; its failure is told to every feed that depends on it."""

    def __init__(self, name: str, watch: Watch) -> None:
        self.name = name
        self._watch = watch
        self._task: asyncio.Future[None] | None = None
        self._feeds: list[Feed[Any]] = []
        self._closed = False

    def attach(self, feed: Feed[Any]) -> None:
        self._feeds.append(feed)

    @property
    def task(self) -> asyncio.Future[None] | None:
        return self._task if self._task is not None and not self._task.done() else None

    def ensure_running(self) -> None:
        if self._closed or self.task is not None:
            return
        self._task = spawn(self._run(), name=f"push-subscription-{self.name}")

    async def _run(self) -> None:
        while True:
            try:
                await self._watch()  # returns only if ccxt resolved it itself (a frame we did not tap)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                for feed in self._feeds:
                    feed.fail(exc, self)
                return
            await asyncio.sleep(0)  # never spin, whatever ccxt hands back

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Feed(Generic[T]):
    """Parsed pushes for one consumer. ``conflate``: keep only the newest item (tickers, mark prices)."""

    def __init__(
        self, subscriptions: Sequence[Subscription], *, conflate: bool = False, grace_s: float = 0.3
    ) -> None:
        self._subs = list(subscriptions)
        self._conflate = conflate
        self._grace_s = grace_s
        self._queue: list[T | _Failure] = []
        self._failures = 0  # failures queued and not yet reported
        self._wakeup = asyncio.Event()
        self._sink: Sink | None = None
        self._parked = False  # the consumer is waiting inside next(): nothing it was handed is in flight
        for sub in self._subs:
            sub.attach(self)

    def set_sink(self, sink: Sink | None) -> None:
        self._sink = sink

    def put(self, items: list[T]) -> None:
        if not items:
            return
        # straight to the sink only when nothing is ahead of these items: not a queued item or failure, and
        # not a batch next() returned that the consumer has not dealt with yet (it is back in next() then)
        if self._parked and not self._queue and self._sink is not None and self._sink(items):
            return
        if self._conflate:
            self._queue = [x for x in self._queue if isinstance(x, _Failure)]
            self._queue.append(items[-1])
        else:
            self._queue.extend(items)
        self._wakeup.set()

    def fail(self, error: BaseException, source: Subscription) -> None:
        in_flight = [t for s in self._subs if s is not source and (t := s.task) is not None]
        self._queue.append(_Failure(error, in_flight))
        self._failures += 1
        self._wakeup.set()

    async def next(self) -> list[T]:
        """Everything received since the last call (waits for at least one item); raises a subscription's
        failure after the items that arrived before it."""
        self._parked = True
        try:
            return await self._next()
        finally:
            self._parked = False

    async def _next(self) -> list[T]:
        while True:
            if not self._failures:  # (re)arm: the first call, and every call after a failure was reported
                for sub in self._subs:
                    sub.ensure_running()
            if self._queue:
                head = self._queue[0]
                if isinstance(head, _Failure):
                    raise await self._take_failure(head)
                if not self._failures:
                    out, self._queue = self._queue, []
                    self._wakeup.clear()
                    return out  # type: ignore[return-value]
                i = next(i for i, x in enumerate(self._queue) if isinstance(x, _Failure))
                out, self._queue = self._queue[:i], self._queue[i:]
                return out  # type: ignore[return-value]
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _take_failure(self, head: _Failure) -> BaseException:
        pending = [t for t in head.in_flight if not t.done()]
        if pending:  # the other sockets usually drop at the same moment: report it as one disconnect
            await asyncio.wait(pending, timeout=self._grace_s)
        # every failure queued by now is covered by this report (the consumer reconciles after it)
        self._queue = [x for x in self._queue if not isinstance(x, _Failure)]
        self._failures = 0
        if not self._queue:
            self._wakeup.clear()
        return head.error


def _brief(message: dict[str, Any]) -> str:
    return repr(message)[:300]
