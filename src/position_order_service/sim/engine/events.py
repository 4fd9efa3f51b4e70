"""Typed events emitted by every mutating engine call (returned and delivered to subscribers).

Every event has ``seq`` (engine-wide, strictly increasing, gap-free) and ``ts`` (ms from the engine clock).
Objects inside events (order, algo, position) are snapshots: later engine changes do not alter them.
Events and fills are plain (non-frozen, for speed) slots dataclasses shared by every subscriber and by
the engine's fill history: treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from .algos import AlgoOrder
from .enums import AlgoEventKind, OrderEventKind, PositionMode, PosSide
from .orders import Fill, Order
from .positions import Position
from .prices import Ticker

__all__ = [
    "AccountConfigEvent",
    "AlgoEvent",
    "BalanceEvent",
    "Event",
    "EventBatch",
    "OrderEvent",
    "PositionEvent",
    "TickerEvent",
]


@dataclass(slots=True)
class TickerEvent:
    seq: int
    ts: int
    ticker: Ticker

    def to_dict(self) -> dict[str, Any]:
        return {"type": "ticker", "seq": self.seq, "ts": self.ts, "ticker": self.ticker.to_dict()}


@dataclass(slots=True)
class OrderEvent:
    """Order state after the change. ``kind`` trade carries the ``fill``; kind canceled has
    ``order.cancel_source`` (user / ioc / fok / reduce_only)."""

    seq: int
    ts: int
    account_id: str
    kind: OrderEventKind
    order: Order
    fill: Fill | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "order",
            "seq": self.seq,
            "ts": self.ts,
            "account_id": self.account_id,
            "kind": self.kind.value,
            "order": self.order.to_dict(),
            "fill": None if self.fill is None else self.fill.to_dict(),
        }


@dataclass(slots=True)
class AlgoEvent:
    """Algo order state after the change; on kind triggered ``algo.order_id`` is the child order."""

    seq: int
    ts: int
    account_id: str
    kind: AlgoEventKind
    algo: AlgoOrder

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "algo",
            "seq": self.seq,
            "ts": self.ts,
            "account_id": self.account_id,
            "kind": self.kind.value,
            "algo": self.algo.to_dict(),
        }


@dataclass(slots=True)
class PositionEvent:
    """Full position state after a fill (or leverage change); a close gives a flat position (qty 0)."""

    seq: int
    ts: int
    account_id: str
    position: Position

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "position",
            "seq": self.seq,
            "ts": self.ts,
            "account_id": self.account_id,
            "position": self.position.to_dict(),
        }


@dataclass(slots=True)
class BalanceEvent:
    """Wallet balance of one currency changed (fee, realized PnL, deposit).

    balance: wallet balance (Binance wb/cw, OKX cashBal); frozen: margin used by positions plus margin
    reserved by open orders; available = balance - frozen; upl: unrealized PnL of positions settled in ccy;
    equity = balance + upl. ``delta`` is the change of ``balance`` (= realized_pnl - fee for a fill).
    """

    seq: int
    ts: int
    account_id: str
    ccy: str
    balance: Decimal
    available: Decimal
    frozen: Decimal
    upl: Decimal
    equity: Decimal
    delta: Decimal
    reason: str  # "trade" | "deposit" | "set_balance"
    trade_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "balance",
            "seq": self.seq,
            "ts": self.ts,
            "account_id": self.account_id,
            "ccy": self.ccy,
            "balance": str(self.balance),
            "available": str(self.available),
            "frozen": str(self.frozen),
            "upl": str(self.upl),
            "equity": str(self.equity),
            "delta": str(self.delta),
            "reason": self.reason,
            "trade_id": self.trade_id,
        }


@dataclass(slots=True)
class AccountConfigEvent:
    """Leverage or position-mode change (Binance ACCOUNT_CONFIG_UPDATE)."""

    seq: int
    ts: int
    account_id: str
    kind: str  # "leverage" | "position_mode"
    position_mode: PositionMode
    inst_id: str | None = None
    pos_side: PosSide | None = None
    leverage: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "account_config",
            "seq": self.seq,
            "ts": self.ts,
            "account_id": self.account_id,
            "kind": self.kind,
            "position_mode": self.position_mode.value,
            "inst_id": self.inst_id,
            "pos_side": None if self.pos_side is None else self.pos_side.value,
            "leverage": self.leverage,
        }


_E = TypeVar("_E")

Event = TickerEvent | OrderEvent | AlgoEvent | PositionEvent | BalanceEvent | AccountConfigEvent


class EventBatch(list[Event]):
    """The events of one call, in order. ``order`` / ``algo``: final state of the order or algo the call
    created or targeted (None when it has none)."""

    order: Order | None = None
    algo: AlgoOrder | None = None

    def of_type(self, cls: type[_E]) -> list[_E]:
        return [e for e in self if isinstance(e, cls)]
