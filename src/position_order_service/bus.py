"""The in-process message bus of typed domain events (domain/messages.py).

`publish` never awaits a subscriber: each subscriber has its own queue and its own supervised task, so an
account actor hands its events over and goes on with its next message, and a slow or failing subscriber
delays nobody else. Each subscriber sees events in the order they were published. A handler that raises is
logged and counted (`task_failures_total`), and the subscriber goes on with the next event.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .aio import cancel_requested
from .supervisor import Supervisor

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]
BACKLOG_WARNING = 10_000


@dataclass(eq=False)
class _Subscriber:
    name: str
    handler: Handler
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    warned: bool = False


class Bus:
    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor.scope("bus")
        self._by_type: dict[type, list[_Subscriber]] = {}
        self._subscribers: list[_Subscriber] = []

    def subscribe(self, name: str, handler: Handler, *types: type) -> None:
        """Deliver events of `types` to `handler`, one at a time, in its own task."""
        sub = _Subscriber(name, handler)
        self._subscribers.append(sub)
        for t in types:
            self._by_type.setdefault(t, []).append(sub)
        metrics.bus_backlog.labels(subscriber=name).set_function(sub.queue.qsize)
        self._supervisor.spawn(name, lambda: self._deliver(sub))

    def unsubscribe(self, name: str) -> None:
        for subs in self._by_type.values():
            subs[:] = [s for s in subs if s.name != name]

    def publish(self, event: object) -> None:
        for sub in self._by_type.get(type(event), ()):
            sub.queue.put_nowait(event)
            if sub.queue.qsize() > BACKLOG_WARNING and not sub.warned:
                sub.warned = True
                log.warning("bus subscriber %s is %d events behind", sub.name, sub.queue.qsize())

    async def idle(self) -> None:
        """Until every event published so far has been handled (tests, orderly shutdown)."""
        for sub in list(self._subscribers):
            await sub.queue.join()

    async def stop(self) -> None:
        await self._supervisor.stop()

    async def _deliver(self, sub: _Subscriber) -> None:
        while True:
            event = await sub.queue.get()
            try:
                result = sub.handler(event)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                metrics.task_failures.labels(task=f"bus/{sub.name}").inc()
                log.exception("bus subscriber %s failed on %s", sub.name, type(event).__name__)
            finally:
                sub.queue.task_done()
                if sub.warned and sub.queue.qsize() < BACKLOG_WARNING // 2:
                    sub.warned = False
