"""Event-loop stalls and full GC pauses while a benchmark phase runs (shared by the bench scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any


class LoopPauses:
    """`lags`: how late a 1 ms sleeper wakes up; `gc2`: durations of full (generation 2) collections."""

    def __init__(self) -> None:
        self.gc2: list[float] = []
        self.lags: list[float] = []
        self._t = 0.0
        self._task: asyncio.Task[None] | None = None

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        elif info.get("generation") == 2:
            self.gc2.append(time.perf_counter() - self._t)

    async def _watch(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - t - 0.001)

    def start(self) -> None:
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._watch())

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()
