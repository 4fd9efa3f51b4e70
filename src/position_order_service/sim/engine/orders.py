"""Orders and fills.

Sizes are in the instrument's native unit (OKX contracts, Binance base currency). ``fee`` is a positive
number when the trader pays. Order objects handed out by the engine (in events and lookups) are copies.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from .decimals import ZERO
from .enums import (
    CancelSource,
    Liquidity,
    MarginMode,
    OrderState,
    OrdType,
    PosSide,
    Side,
    TriggerPxType,
)
from .serialize import slots_to_dict

__all__ = ["OPEN_STATES", "AttachedTpSl", "Fill", "Order"]

OPEN_STATES = frozenset({OrderState.LIVE, OrderState.PARTIALLY_FILLED})


@dataclass(slots=True, frozen=True)
class AttachedTpSl:
    """TP/SL attached to an order (OKX attachAlgoOrds). When the order is done (filled, or canceled with a
    partial fill) the engine places a reduce-only conditional/oco algo for the filled size on the
    opposite side. ``*_ord_px`` None = market (OKX "-1")."""

    sl_trigger_px: Decimal | None = None
    sl_ord_px: Decimal | None = None
    tp_trigger_px: Decimal | None = None
    tp_ord_px: Decimal | None = None
    trigger_px_type: TriggerPxType = TriggerPxType.LAST

    def to_dict(self) -> dict[str, Any]:
        return slots_to_dict(self, _ATTACHED_FIELDS)


_ATTACHED_FIELDS = tuple(f.name for f in fields(AttachedTpSl))


@dataclass(slots=True)
class Order:
    order_id: str  # numeric string from a deterministic counter
    client_order_id: str | None
    account_id: str
    inst_id: str
    side: Side
    pos_side: PosSide  # net in net mode; long/short in long_short mode
    ord_type: OrdType
    px: Decimal | None  # limit price (None for market)
    sz: Decimal  # order size (after a reduce-only cap)
    filled_sz: Decimal
    avg_px: Decimal | None  # average fill price, None until the first fill
    state: OrderState
    reduce_only: bool  # True also for hedge-mode closing orders (sell long / buy short)
    margin_mode: MarginMode
    leverage: int
    fee: Decimal  # accumulated fees, positive = paid
    fee_ccy: str
    pnl: Decimal  # accumulated realized PnL of this order's fills
    created_ms: int
    updated_ms: int
    tag: str | None = None
    algo_id: str | None = None  # the algo order that placed this order (OKX algoId)
    algo_client_id: str | None = None  # that algo's client id (OKX algoClOrdId)
    cancel_source: CancelSource | None = None  # set when state == canceled
    requested_sz: Decimal | None = None  # size as requested, before a reduce-only cap
    attach_tp_sl: AttachedTpSl | None = None
    last_fill_ms: int | None = None
    # Engine bookkeeping for margin reservation (not part of the wire state):
    margin_open_sz: Decimal = ZERO  # part of sz that opens exposure (reserves margin)
    margin_per_unit: Decimal = ZERO  # initial margin + fee reserved per unit of that part

    @property
    def remaining(self) -> Decimal:
        return self.sz - self.filled_sz

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def post_only(self) -> bool:
        return self.ord_type is OrdType.POST_ONLY

    @property
    def time_in_force(self) -> str:
        """Binance timeInForce: GTC, GTX (post only), IOC or FOK (GTC for market)."""
        return _TIF[self.ord_type]

    def reserved_margin(self) -> Decimal:
        """Margin this open order holds back from the available balance."""
        if self.margin_per_unit == 0:
            return ZERO
        rem = self.sz - self.filled_sz
        return (rem if rem < self.margin_open_sz else self.margin_open_sz) * self.margin_per_unit

    def copy(self) -> Order:
        return Order(*_ORDER_GETTER(self))

    def to_dict(self) -> dict[str, Any]:
        return slots_to_dict(self, _ORDER_PUBLIC_FIELDS)


_TIF = {
    OrdType.MARKET: "GTC",
    OrdType.LIMIT: "GTC",
    OrdType.POST_ONLY: "GTX",
    OrdType.IOC: "IOC",
    OrdType.FOK: "FOK",
}
_ORDER_FIELDS = tuple(f.name for f in fields(Order))
_ORDER_GETTER = attrgetter(*_ORDER_FIELDS)
_ORDER_PUBLIC_FIELDS = tuple(n for n in _ORDER_FIELDS if n not in ("margin_open_sz", "margin_per_unit"))


@dataclass(slots=True)
class Fill:
    """One execution (trade) of an order. Shared by events and the fill history: treat as read-only."""

    trade_id: str  # numeric string (OKX tradeId, Binance t)
    order_id: str
    client_order_id: str | None
    account_id: str
    inst_id: str
    side: Side
    pos_side: PosSide
    px: Decimal
    sz: Decimal
    fee: Decimal  # positive = paid (OKX fillFee is the negative of this)
    fee_ccy: str
    liquidity: Liquidity  # OKX execType T/M; Binance m
    realized_pnl: Decimal  # PnL realized by this fill (Binance rp)
    reduce_only: bool
    ts: int  # ms (OKX fillTime, Binance T)
    algo_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return slots_to_dict(self, _FILL_FIELDS)


_FILL_FIELDS = tuple(f.name for f in fields(Fill))
