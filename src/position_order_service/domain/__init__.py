"""Pure domain: models, enums, events, PnL math. No I/O."""

from .enums import (
    Exchange,
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    PositionStatus,
    TimeInForce,
)
from .models import Order, PnLInfo, Position

__all__ = [
    "Exchange",
    "MarginMode",
    "Order",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "PnLInfo",
    "Position",
    "PositionSide",
    "PositionStatus",
    "TimeInForce",
]
