"""Current price of an instrument: last, bid, ask and mark (no book depth)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["Ticker"]


@dataclass(slots=True, frozen=True)
class Ticker:
    """Price state of one instrument. ``bid``/``ask`` default to last -/+ one tick, ``mark`` to last."""

    inst_id: str
    last: Decimal
    bid: Decimal
    ask: Decimal
    mark: Decimal
    ts: int  # ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "inst_id": self.inst_id,
            "last": str(self.last),
            "bid": str(self.bid),
            "ask": str(self.ask),
            "mark": str(self.mark),
            "ts": self.ts,
        }
