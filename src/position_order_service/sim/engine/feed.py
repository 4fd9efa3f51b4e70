"""Price sources for the simulator: pure iterators of Decimal prices (the server drives them on a timer).

``RandomWalkFeed`` is deterministic given its seed on every platform: it draws integers only (no float).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from decimal import ROUND_HALF_EVEN, Decimal

from .decimals import DecimalLike, to_decimal

__all__ = ["RandomWalkFeed", "ReplayFeed", "round_to_tick"]

_U = 65535  # uniform draws are integers in [0, _U]
_HALF12 = 6 * _U
_DU = Decimal(_U)
_ONE = Decimal(1)


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Nearest multiple of ``tick`` (half-even, whatever the thread's decimal context says: ccxt changes it)."""
    return (price / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


class RandomWalkFeed(Iterator[Decimal]):
    """Multiplicative random walk on the tick grid.

    Each step: ``p = round_to_tick(p * (1 + drift + volatility * z))`` with ``z`` ~ N(0, 1) approximated by the
    sum of 12 integer uniforms (Irwin-Hall), floored at ``floor`` (default one tick). ``volatility`` is the
    standard deviation per step as a fraction (0.001 = 0.1 %). The first value yielded is the first step,
    not ``start``.
    """

    def __init__(
        self,
        start: DecimalLike,
        *,
        tick_size: DecimalLike,
        volatility: DecimalLike = "0.001",
        seed: int = 0,
        drift: DecimalLike = 0,
        floor: DecimalLike | None = None,
    ) -> None:
        self._tick = to_decimal(tick_size, "tick_size")
        if self._tick <= 0:
            raise ValueError("tick_size must be positive")
        self._vol = to_decimal(volatility, "volatility")
        if self._vol < 0:
            raise ValueError("volatility must not be negative")
        self._drift = to_decimal(drift, "drift")
        self._floor = self._tick if floor is None else to_decimal(floor, "floor")
        self._price = max(round_to_tick(to_decimal(start, "start"), self._tick), self._floor)
        self._rng = random.Random(seed)

    @property
    def current(self) -> Decimal:
        """The last price yielded (``start`` rounded to the tick before the first step)."""
        return self._price

    def __iter__(self) -> RandomWalkFeed:
        return self

    def __next__(self) -> Decimal:
        rnd = self._rng.randint
        total = 0
        for _ in range(12):
            total += rnd(0, _U)
        z = Decimal(total - _HALF12) / _DU
        p = round_to_tick(self._price * (_ONE + self._drift + self._vol * z), self._tick)
        p = max(p, self._floor)
        self._price = p
        return p


class ReplayFeed(Iterator[Decimal]):
    """Replays a fixed list of prices (Decimal, str or int), once or looping forever."""

    def __init__(self, prices: Iterable[DecimalLike], *, loop: bool = False) -> None:
        self._prices = [to_decimal(p, "price") for p in prices]
        if any(p <= 0 for p in self._prices):
            raise ValueError("prices must be positive")
        self._loop = loop
        self._i = 0

    def __iter__(self) -> ReplayFeed:
        return self

    def __len__(self) -> int:
        return len(self._prices)

    def __next__(self) -> Decimal:
        if self._i >= len(self._prices):
            if not self._loop or not self._prices:
                raise StopIteration
            self._i = 0
        p = self._prices[self._i]
        self._i += 1
        return p
