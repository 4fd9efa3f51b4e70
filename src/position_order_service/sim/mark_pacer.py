"""When a front pushes mark prices, per stream key (an OKX instId, a Binance stream name).

- On change: at once, unless the key was pushed less than ``min_gap_s`` ago; then at the end of the gap,
  with the value current at that time (OKX pushes mark-price at most every 200 ms while it changes).
- Unchanged: every ``idle_s(key)`` (OKX: 10 s; Binance ``@markPrice``: 3 s, ``@markPrice@1s``: 1 s), so a new
  subscriber hears the mark price soon even in a still market.

One timer per front, running only while some key has subscribers (``keys()`` is asked on every tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

__all__ = ["MarkPacer"]

log = logging.getLogger(__name__)

TICK_S = 0.1


class MarkPacer:
    def __init__(
        self,
        push: Callable[[str], None],
        keys: Callable[[], Iterable[str]],
        *,
        min_gap_s: float,
        idle_s: Callable[[str], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._push = push
        self._keys = keys
        self.min_gap_s = min_gap_s
        self._idle_s = idle_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    def _send(self, key: str, now: float) -> None:
        self._last[key] = now
        try:
            self._push(key)
        except Exception:  # one failed push must not stop the pacer
            log.exception("mark price push failed for %s", key)

    def pushed(self, key: str) -> None:
        """The front pushed ``key`` by itself (the snapshot after a subscription)."""
        self._last[key] = self._clock()
        self.start()

    def changed(self, key: str) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is None or now - last >= self.min_gap_s:
            self._pending.discard(key)
            self._send(key, now)
        else:
            self._pending.add(key)
        self.start()

    def start(self) -> None:
        if self._timer is not None:
            return
        with contextlib.suppress(RuntimeError):  # no loop (setup code): nobody can be subscribed yet
            self._timer = asyncio.get_running_loop().call_later(TICK_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        keys = set(self._keys())
        now = self._clock()
        for key in keys:
            since = now - self._last.get(key, float("-inf"))
            if key in self._pending:
                if since >= self.min_gap_s:
                    self._pending.discard(key)
                    self._send(key, now)
            elif since >= self._idle_s(key):
                self._send(key, now)
        self._pending &= keys
        for gone in [k for k in self._last if k not in keys]:
            del self._last[gone]
        if keys:
            self.start()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
