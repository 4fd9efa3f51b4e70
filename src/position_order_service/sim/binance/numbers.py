"""Decimal -> Binance wire string (plain notation, at most 8 decimals) and enum spellings."""

from __future__ import annotations

from decimal import Decimal

from ..engine import OrderState, OrdType, PosSide, Side, TriggerPxType

__all__ = [
    "POS_SIDE",
    "POS_SIDE_IN",
    "SIDE",
    "SIDE_IN",
    "WORKING_TYPE",
    "fmt",
    "fmt_opt",
    "order_status",
    "order_type",
]

_Q8 = Decimal("1e-8")
_ZERO = Decimal(0)


def fmt(value: Decimal) -> str:
    """Plain decimal string, no exponent, no trailing zeros, rounded to 8 decimals."""
    if value == _ZERO:
        return "0"
    exp = value.as_tuple().exponent
    if isinstance(exp, int) and exp < -8:
        value = value.quantize(_Q8)
        if value == _ZERO:
            return "0"
    return format(value.normalize(), "f")


def fmt_opt(value: Decimal | None) -> str:
    return "0" if value is None else fmt(value)


SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}
SIDE_IN = {"BUY": Side.BUY, "SELL": Side.SELL}
POS_SIDE = {PosSide.NET: "BOTH", PosSide.LONG: "LONG", PosSide.SHORT: "SHORT"}
POS_SIDE_IN = {"BOTH": PosSide.NET, "LONG": PosSide.LONG, "SHORT": PosSide.SHORT}
WORKING_TYPE = {TriggerPxType.LAST: "CONTRACT_PRICE", TriggerPxType.MARK: "MARK_PRICE"}

_STATUS = {
    OrderState.LIVE: "NEW",
    OrderState.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderState.FILLED: "FILLED",
}


def order_status(state: OrderState, user_canceled: bool) -> str:
    """Binance order status; an engine cancel not asked for by the user (IOC/FOK/GTX rest, reduce-only
    cleanup) is EXPIRED on Binance."""
    if state is OrderState.CANCELED:
        return "CANCELED" if user_canceled else "EXPIRED"
    return _STATUS[state]


def order_type(ord_type: OrdType) -> str:
    return "MARKET" if ord_type is OrdType.MARKET else "LIMIT"
