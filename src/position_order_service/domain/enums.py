"""Enumerations of the shared trading model (SPEC section 1).

Inputs also accept the spellings ccxt and the exchanges use ("canceled", "closed", "live", "buy"/"sell"
for positions, ...); `_missing_` maps them so a model can be built straight from an exchange payload.
"""

from __future__ import annotations

from enum import StrEnum


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"

    @classmethod
    def _missing_(cls, value: object) -> PositionSide | None:
        if isinstance(value, str):
            v = value.strip().lower()
            if v in ("long", "buy"):
                return cls.LONG
            if v in ("short", "sell"):
                return cls.SHORT
        return None

    @property
    def opposite(self) -> PositionSide:
        return PositionSide.SHORT if self is PositionSide.LONG else PositionSide.LONG

    @property
    def entry_order_side(self) -> OrderSide:
        """The order side that opens or adds to a position of this side."""
        return OrderSide.BUY if self is PositionSide.LONG else OrderSide.SELL

    @property
    def exit_order_side(self) -> OrderSide:
        """The order side that reduces or closes a position of this side."""
        return OrderSide.SELL if self is PositionSide.LONG else OrderSide.BUY


class PositionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    LIQUIDATED = "liquidated"

    @classmethod
    def _missing_(cls, value: object) -> PositionStatus | None:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None


class MarginMode(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"

    @classmethod
    def _missing_(cls, value: object) -> MarginMode | None:
        if isinstance(value, str):
            v = value.strip().lower()
            if v in ("crossed", "cross"):
                return cls.CROSS
            if v == "isolated":
                return cls.ISOLATED
        return None


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @classmethod
    def _missing_(cls, value: object) -> OrderSide | None:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TRIGGER = "trigger"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    TRAILING_STOP = "trailing_stop"

    @classmethod
    def _missing_(cls, value: object) -> OrderType | None:
        if isinstance(value, str):
            v = value.strip().lower().replace("-", "_")
            aliases = {
                "stop": cls.STOP_MARKET,
                "take_profit_market": cls.TAKE_PROFIT,
                "trailing_stop_market": cls.TRAILING_STOP,
                "move_order_stop": cls.TRAILING_STOP,
                "conditional": cls.STOP_LOSS,
            }
            if v in aliases:
                return aliases[v]
            return cls.__members__.get(v.upper())
        return None

    @property
    def is_algo(self) -> bool:
        """Orders the exchanges keep apart from regular orders (OKX order-algo, Binance algoOrder)."""
        return self not in (OrderType.MARKET, OrderType.LIMIT)

    @property
    def needs_price(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)

    @property
    def needs_trigger_price(self) -> bool:
        return self in (
            OrderType.STOP_MARKET,
            OrderType.STOP_LIMIT,
            OrderType.TRIGGER,
            OrderType.TAKE_PROFIT,
            OrderType.STOP_LOSS,
        )


class OrderStatus(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @classmethod
    def _missing_(cls, value: object) -> OrderStatus | None:
        if isinstance(value, str):
            v = value.strip().lower().replace("-", "_")
            aliases = {
                "canceled": cls.CANCELLED,
                "closed": cls.FILLED,
                "live": cls.OPEN,
                "new": cls.OPEN,
                "partially_filled": cls.PARTIALLY_FILLED,
                "partial": cls.PARTIALLY_FILLED,
                "effective": cls.FILLED,
                "order_failed": cls.REJECTED,
                "mmp_canceled": cls.CANCELLED,
            }
            if v in aliases:
                return aliases[v]
            return cls.__members__.get(v.upper())
        return None

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)

    @property
    def is_active(self) -> bool:
        return self in (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    POST_ONLY = "post_only"

    @classmethod
    def _missing_(cls, value: object) -> TimeInForce | None:
        if isinstance(value, str):
            v = value.strip().lower().replace("-", "_")
            if v in ("po", "gtx"):
                return cls.POST_ONLY
            return cls.__members__.get(v.upper())
        return None


class Exchange(StrEnum):
    OKX = "okx"
    BINANCE = "binance"
    BYBIT = "bybit"
    BITGET = "bitget"
    UPBIT = "upbit"

    @classmethod
    def _missing_(cls, value: object) -> Exchange | None:
        if isinstance(value, str):
            v = value.strip().lower()
            if v in ("binanceusdm", "binance_usdm", "binance-usdm"):
                return cls.BINANCE
            return cls.__members__.get(v.upper())
        return None
