"""Push faults of one socket: lost, duplicated, reordered and delayed pushes while the socket stays up.

One :class:`PushShaper` sits in front of each outgoing push stream: an OKX connection, a Binance
connection, or an account's (or a symbol's) in-process stream of the paper gateway. It asks the venue's
:class:`~.engine.faults.FaultSet` what happens to each data push (acks, replies and pongs never pass through
it) and delivers accordingly:

- drop: the push is never delivered;
- duplicate: delivered twice in a row (``deliver_again`` sends the second copy as its own frame);
- reorder: held back and delivered after 1..window later pushes of the same socket, each push reordered at
  most once; held pushes are flushed after ``FLUSH_AFTER_S`` even if nothing follows;
- delay: delivered ``delay_ms`` later, and every later push of the same socket waits behind it (a slow
  socket: the order of its pushes is kept, only the other sockets' pushes overtake them).

With no push fault set and nothing held or delayed, ``send`` is one attribute check and the delivery.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .engine.faults import FaultSet

__all__ = ["FLUSH_AFTER_S", "PushShaper"]

T = TypeVar("T")

FLUSH_AFTER_S = 0.5


@dataclass(slots=True)
class _Held(Generic[T]):
    item: T
    left: int
    duplicate: bool


class PushShaper(Generic[T]):
    def __init__(
        self,
        faults: FaultSet,
        identity: str,
        deliver: Callable[[T], None],
        deliver_again: Callable[[T], None] | None = None,
    ) -> None:
        self._faults = faults
        self._identity = identity
        self._deliver = deliver
        self._again = deliver_again or deliver
        self._held: list[_Held[T]] = []
        self._rng: random.Random | None = None
        self._epoch = -1
        self._timer: asyncio.TimerHandle | None = None
        self._delayed: deque[tuple[float, T, bool]] = deque()  # (due on the loop's clock, item, duplicate)
        self._delay_timer: asyncio.TimerHandle | None = None

    def send(self, item: T, names: frozenset[str]) -> None:
        faults = self._faults
        if not self._held and not self._delayed and not faults.pushes_faulty:
            self._deliver(item)
            return
        if self._rng is None or self._epoch != faults.epoch:
            self._rng, self._epoch = faults.push_rng(self._identity), faults.epoch
        verdict = faults.judge_push(names, self._rng)
        if verdict.drop:
            return
        if verdict.hold_for and self._arm_timer():
            self._held.append(_Held(item, verdict.hold_for, verdict.duplicate))
            return
        self._emit(item, verdict.duplicate, verdict.delay_ms)
        self._count_down()

    def _emit(self, item: T, duplicate: bool, delay_ms: int = 0) -> None:
        if (delay_ms or self._delayed) and self._delay(item, duplicate, delay_ms):
            return
        self._deliver(item)
        if duplicate:
            self._again(item)

    def _delay(self, item: T, duplicate: bool, delay_ms: int) -> bool:
        """Queue ``item`` behind the socket's delayed pushes, due ``delay_ms`` from now at the earliest; False
        outside an event loop (no delaying)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._delayed.append((loop.time() + delay_ms / 1000, item, duplicate))
        if self._delay_timer is None:
            self._delay_timer = loop.call_at(self._delayed[0][0], self._release)
        return True

    def _release(self) -> None:
        """Deliver the delayed pushes that are due, in order, up to the first that is not."""
        self._delay_timer = None
        loop = asyncio.get_running_loop()
        while self._delayed and self._delayed[0][0] <= loop.time():
            _, item, duplicate = self._delayed.popleft()
            self._deliver(item)
            if duplicate:
                self._again(item)
        if self._delayed:
            self._delay_timer = loop.call_at(self._delayed[0][0], self._release)

    def _count_down(self) -> None:
        if not self._held:
            return
        for held in self._held:
            held.left -= 1
        due = [h for h in self._held if h.left <= 0]
        if due:
            self._held = [h for h in self._held if h.left > 0]
            for h in due:
                self._emit(h.item, h.duplicate)
            if not self._held:
                self._cancel_timer()

    def _arm_timer(self) -> bool:
        """Make sure held pushes go out within FLUSH_AFTER_S; False outside an event loop (no holding)."""
        if self._timer is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._timer = loop.call_later(FLUSH_AFTER_S, self.flush)
        return True

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def flush(self) -> None:
        """Deliver every held push now, oldest first."""
        self._timer = None
        held, self._held = self._held, []
        for h in held:
            self._emit(h.item, h.duplicate)

    def close(self) -> None:
        """The socket is gone: held and delayed pushes are lost with it."""
        self._cancel_timer()
        self._held = []
        if self._delay_timer is not None:
            self._delay_timer.cancel()
            self._delay_timer = None
        self._delayed.clear()
