"""Clocks: the engine reads time only through a ``Callable[[], int]`` returning epoch milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "wall_clock_ms"]

Clock = Callable[[], int]

DEFAULT_START_MS = 1_700_000_000_000


def wall_clock_ms() -> int:
    """Real time in ms, for servers that want live timestamps (``SimEngine(..., clock=wall_clock_ms)``)."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """Deterministic clock (the engine's default): stays put until ``advance``/``set`` is called."""

    __slots__ = ("_ms",)

    def __init__(self, start_ms: int = DEFAULT_START_MS) -> None:
        self._ms = start_ms

    def __call__(self) -> int:
        return self._ms

    def advance(self, ms: int = 1) -> int:
        self._ms += ms
        return self._ms

    def set(self, ms: int) -> None:
        self._ms = ms
