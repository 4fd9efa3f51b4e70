"""Small asyncio helpers shared by the background workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from tenacity import RetryCallState, wait_exponential_jitter
from tenacity.wait import wait_base

log = logging.getLogger(__name__)
T = TypeVar("T")


async def cancel_all(tasks: Iterable[asyncio.Task[Any] | None], within_s: float = 5.0) -> None:
    """Cancel tasks and wait for them, but never forever: a task that swallows its cancellation (Python 3.11's
    wait_for could) is cancelled again until `within_s` runs out, then left behind with a warning."""
    pending = {t for t in tasks if t is not None and not t.done()}
    deadline = asyncio.get_running_loop().time() + within_s
    while pending:
        for t in pending:
            t.cancel()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            log.warning(
                "%d background task(s) did not stop: %s", len(pending), [t.get_name() for t in pending]
            )
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.5, remaining))


def cancel_requested() -> bool:
    """True when someone asked the current task to stop. A library that turns the CancelledError into another
    exception (redis-py may raise ConnectionError from a cancelled read) must not keep a retry loop alive."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """Start a helper task owned by an object that awaits or cancels it (the store's group-commit flush, a
    stream's pumps). The only place besides the Supervisor where tasks are created: long-running background
    work goes through the Supervisor, which names, restarts and counts it."""
    return asyncio.create_task(coro, name=name)


_DEFAULT_WAIT = wait_exponential_jitter(multiplier=0.2, max=30, jitter=0.2)


class Backoff:
    """Delays between attempts from one tenacity wait strategy (exponential with jitter by default); `reset`
    after a success so the next failure starts small again."""

    def __init__(self, wait: wait_base | None = None) -> None:
        self._wait = wait or _DEFAULT_WAIT
        self._state: RetryCallState | None = None  # made at the first failure: most attempts succeed at once
        self.attempts = 0

    def next(self) -> float:
        self.attempts += 1
        if self._state is None:
            self._state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # (only the attempt number is read)
        self._state.attempt_number = self.attempts
        return float(self._wait(self._state))

    def reset(self) -> None:
        self.attempts = 0

    async def sleep(self) -> None:
        await asyncio.sleep(self.next())
