"""Instruments, price ticks, fills and order requests as the rest of the service sees them; rounding to
an instrument's tick and lot (stops rounded in the safe direction). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from .enums import OrderSide, OrderType, PositionSide, TimeInForce


class BelowMinimum(ValueError):
    """A size that rounds below what the exchange accepts."""


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """One instrument. Sizes here are in base currency; `contract_value` converts to the exchange's unit."""

    symbol: str  # the exchange's native id: BTC-USDT-SWAP, BTCUSDT
    unified: str  # ccxt's unified symbol: BTC/USDT:USDT
    base: str
    quote: str
    settle: str
    tick_size: Decimal
    lot_size: Decimal  # in base currency
    min_size: Decimal  # in base currency
    contract_value: Decimal = Decimal(1)
    min_notional: Decimal = Decimal(0)
    max_leverage: int = 125

    def round_price(self, price: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
        return (price / self.tick_size).to_integral_value(rounding=rounding) * self.tick_size

    def round_size(self, size: Decimal) -> Decimal:
        """Sizes round down: never trade more than asked."""
        return (size / self.lot_size).to_integral_value(rounding=ROUND_DOWN) * self.lot_size

    def checked_size(self, size: Decimal, price: Decimal | None = None) -> Decimal:
        rounded = self.round_size(size)
        if rounded < self.min_size or rounded <= 0:
            raise BelowMinimum(
                f"size {size} rounds to {rounded}, below the minimum {self.min_size} {self.base} for {self.symbol}"
            )
        if price is not None and self.min_notional and rounded * price < self.min_notional:
            raise BelowMinimum(
                f"notional {rounded * price} is below the minimum {self.min_notional} {self.quote} for {self.symbol}"
            )
        return rounded

    def stop_price(self, price: Decimal, protects: PositionSide) -> Decimal:
        """Round a stop-loss trigger so it protects at least as well as asked: up for a long's stop
        (it fires no later), down for a short's."""
        return self.round_price(price, ROUND_CEILING if protects is PositionSide.LONG else ROUND_FLOOR)

    def to_contracts(self, size: Decimal) -> Decimal:
        return size / self.contract_value

    def from_contracts(self, contracts: Decimal) -> Decimal:
        return contracts * self.contract_value


@dataclass(frozen=True, slots=True)
class PriceTick:
    exchange: str
    symbol: str
    last: Decimal
    bid: Decimal | None
    ask: Decimal | None
    mark: Decimal | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class FillReport:
    """One trade of one order, as the exchange reported it (deduplicated by trade_id)."""

    exchange: str
    symbol: str
    trade_id: str
    order_id: str
    client_order_id: str | None
    side: OrderSide
    price: Decimal
    size: Decimal  # base currency
    fee: Decimal  # positive = cost
    fee_currency: str | None
    liquidity: str | None  # maker | taker
    position_side: PositionSide | None
    timestamp: datetime
    # False: the exchange sent no time and ours stands in; such a fill never moves the account's fill mark
    # (the exchange's time of the last fill read back), which must never run ahead of the exchange's clock
    exchange_time: bool = True


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A command to place one order; sizes in base currency, already validated."""

    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    callback_rate: Decimal | None = None  # fraction (0.02 = 2%), for trailing stops
    activation_price: Decimal | None = None
    reduce_only: bool = False
    post_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTC
    position_side: PositionSide | None = None  # hedge mode
    extra: dict[str, Any] = field(default_factory=dict)
