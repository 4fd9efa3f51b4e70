"""Push faults of one socket: lost, duplicated and reordered pushes while the socket stays up.

One :class:`PushShaper` sits in front of each outgoing push stream: an OKX connection, a Binance
connection, or an account's (or a symbol's) in-process stream of the paper gateway. It asks the venue's
:class:`~.engine.faults.FaultSet` what happens to each data push (acks, replies and pongs never pass through
it) and delivers accordingly:

- drop: the push is never delivered;
- duplicate: delivered twice in a row (``deliver_again`` sends the second copy as its own frame);
- reorder: held back and delivered after 1..window later pushes of the same socket, each push reordered at
  most once; held pushes are flushed after ``FLUSH_AFTER_S`` even if nothing follows.

With no push fault set and nothing held, ``send`` is one attribute check and the delivery.
"""

from __future__ import annotations

import asyncio
import random
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

    def send(self, item: T, names: frozenset[str]) -> None:
        faults = self._faults
        if not self._held and not faults.pushes_faulty:
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
        self._emit(item, verdict.duplicate)
        self._count_down()

    def _emit(self, item: T, duplicate: bool) -> None:
        self._deliver(item)
        if duplicate:
            self._again(item)

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
        """The socket is gone: held pushes are lost with it."""
        self._cancel_timer()
        self._held = []
