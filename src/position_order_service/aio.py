"""Small asyncio helpers shared by the background workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


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
