"""Event payloads published on the seed's channels and appended to each user's stream (SPEC section 3).

One JSON object per event: event_type, event_id, seq, timestamp, user_id, exchange, metadata and the fields
of its kind. Decimals travel as strings. `seq` is assigned by the store when the event is written, so the
builders here produce everything but it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .enums import OrderStatus
from .models import Order, Position, new_id, utc_now

PositionEventType = Literal["position.opened", "position.updated", "position.closed"]
OrderEventType = Literal[
    "order.created",
    "order.updated",
    "order.partially_filled",
    "order.filled",
    "order.cancelled",
    "order.rejected",
    "order.failed",
]
TrailingStopEventType = Literal[
    "trailing_stop.created",
    "trailing_stop.activated",
    "trailing_stop.updated",
    "trailing_stop.triggered",
    "trailing_stop.executed",
    "trailing_stop.failed",
    "trailing_stop.cancelled",
]
ConditionalEventType = Literal[
    "conditional.created",
    "conditional.triggered",
    "conditional.executed",
    "conditional.failed",
    "conditional.deleted",
]


def dec(value: Decimal | None) -> str | None:
    """Canonical plain spelling (59475.0 -> "59475"): an event never differs from another by spelling alone."""
    if value is None:
        return None
    if value == 0:
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class BaseEvent(BaseModel):
    """Fields every event carries. Consumers ignore fields they do not know (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: str
    event_id: str = Field(default_factory=new_id)
    seq: int | None = None
    timestamp: datetime = Field(default_factory=utc_now)
    user_id: str | None = None
    exchange: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class PositionEvent(BaseEvent):
    position_id: str
    symbol: str
    side: str
    size: Decimal
    entry_price: Decimal
    current_price: Decimal | None = None
    unrealized_pnl: Decimal = Decimal("0")
    realized_pnl: Decimal = Decimal("0")
    leverage: int = 1
    grid_level: int | None = None
    status: str = "open"


class OrderEvent(BaseEvent):
    order_id: str
    client_order_id: str | None = None
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    filled_qty: Decimal = Decimal("0")
    avg_fill_price: Decimal | None = None
    status: str
    reduce_only: bool = False
    position_side: str | None = None
    grid_level: int | None = None


class PriceEvent(BaseEvent):
    symbol: str
    price: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    source: str = "ticker"


class TrailingStopEvent(BaseEvent):
    symbol: str
    side: str
    activation_price: Decimal | None = None
    callback_rate: Decimal
    extreme_price: Decimal | None = None
    stop_price: Decimal | None = None
    order_id: str | None = None
    state: str | None = None
    reason: str | None = None


class ConditionalRuleEvent(BaseEvent):
    rule_id: str
    trigger_order_id: str
    cancel_order_ids: list[str]
    condition: str
    cancelled_ids: list[str] = Field(default_factory=list)
    already_closed_ids: list[str] = Field(default_factory=list)
    failed_ids: list[str] = Field(default_factory=list)
    state: str | None = None


EVENT_CLASSES: dict[str, type[BaseEvent]] = {
    "position": PositionEvent,
    "order": OrderEvent,
    "price": PriceEvent,
    "trailing_stop": TrailingStopEvent,
    "conditional": ConditionalRuleEvent,
}


def parse_event(payload: dict[str, Any]) -> BaseEvent:
    """Build the typed event for a decoded payload, by the prefix of its event_type."""
    kind = str(payload.get("event_type", "")).split(".", 1)[0]
    cls = EVENT_CLASSES.get(kind, BaseEvent)
    return cls.model_validate(payload)


def envelope(
    user_id: str | None, exchange: str | None, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The common fields of a payload, minus event_type and seq (the store fills both in)."""
    return {
        "event_id": new_id(),
        "timestamp": utc_now().isoformat(),
        "user_id": user_id,
        "exchange": exchange,
        "metadata": metadata or {},
    }


def position_fields(p: Position) -> dict[str, Any]:
    return {
        "position_id": p.id,
        "symbol": p.symbol,
        "side": p.side.value,
        "size": dec(p.size),
        "entry_price": dec(p.entry_price),
        "current_price": dec(p.current_price),
        "unrealized_pnl": dec(p.pnl.unrealized),
        "realized_pnl": dec(p.pnl.realized),
        "leverage": p.leverage,
        "grid_level": p.grid_level,
        "status": p.status.value,
        "exit_price": dec(p.exit_price),
        "fees": dec(p.pnl.fees),
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "closed_at": p.closed_at.isoformat() if p.closed_at else None,
    }


def order_fields(o: Order, spelled: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`spelled`: the order's fields as the store encodes them (the same canonical spellings: numbers by
    `dec`, times ISO-8601, enums their value, None absent), reused instead of formatting them again."""
    if spelled is not None:
        get = spelled.get
        return {
            "order_id": o.order_id,
            "client_order_id": o.client_order_id,
            "symbol": o.symbol,
            "side": get("side"),
            "order_type": get("order_type"),
            "quantity": get("quantity"),
            "price": get("price"),
            "trigger_price": get("trigger_price"),
            "filled_qty": get("filled_qty"),
            "avg_fill_price": get("avg_fill_price"),
            "status": get("status"),
            "reduce_only": o.reduce_only,
            "position_side": get("position_side"),
            "grid_level": o.grid_level,
            "fee": get("fee"),
            "created_at": get("created_at"),
            "updated_at": get("updated_at"),
        }
    return {
        "order_id": o.order_id,
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "order_type": o.order_type.value,
        "quantity": dec(o.quantity),
        "price": dec(o.price),
        "trigger_price": dec(o.trigger_price),
        "filled_qty": dec(o.filled_qty),
        "avg_fill_price": dec(o.avg_fill_price),
        "status": o.status.value,
        "reduce_only": o.reduce_only,
        "position_side": o.position_side.value if o.position_side else None,
        "grid_level": o.grid_level,
        "fee": dec(o.fee),
        "created_at": o.created_at.isoformat(),
        "updated_at": o.updated_at.isoformat(),
    }


def order_event_type(o: Order) -> OrderEventType:
    """The event type an order's state calls for, when it is not the first sight of it."""
    match o.status:
        case OrderStatus.FILLED:
            return "order.filled"
        case OrderStatus.PARTIALLY_FILLED:
            return "order.partially_filled"
        case OrderStatus.CANCELLED | OrderStatus.EXPIRED:
            return "order.cancelled"
        case OrderStatus.REJECTED:
            return "order.rejected"
        case _:
            return "order.updated"
