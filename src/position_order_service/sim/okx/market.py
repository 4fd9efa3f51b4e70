"""Session market statistics behind OKX's ticker fields (open24h, high24h, low24h, vol24h, lastSz).

The engine only knows the current price; these figures cover the time since the simulator first saw a
price for the instrument (a "session" rather than a rolling 24 h window), which is what a test needs.
Volume counts the simulated accounts' own fills, in contracts (OKX vol24h for swaps).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..engine import Fill, Ticker

__all__ = ["InstStats", "MarketStats"]

_ZERO = Decimal(0)


@dataclass(slots=True)
class InstStats:
    open: Decimal
    high: Decimal
    low: Decimal
    vol: Decimal = _ZERO  # contracts
    last_sz: Decimal = _ZERO


class MarketStats:
    def __init__(self) -> None:
        self._stats: dict[str, InstStats] = {}

    def get(self, inst_id: str) -> InstStats | None:
        return self._stats.get(inst_id)

    def on_ticker(self, ticker: Ticker) -> None:
        s = self._stats.get(ticker.inst_id)
        last = ticker.last
        if s is None:
            self._stats[ticker.inst_id] = InstStats(last, last, last)
            return
        if last > s.high:
            s.high = last
        elif last < s.low:
            s.low = last

    def on_fill(self, fill: Fill) -> None:
        s = self._stats.get(fill.inst_id)
        if s is None:
            s = self._stats[fill.inst_id] = InstStats(fill.px, fill.px, fill.px)
        s.vol += fill.sz
        s.last_sz = fill.sz
