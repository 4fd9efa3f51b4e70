"""Pure rules for folding what the exchange reports into what the service already knows.

The exchange is the truth about an order's or position's state (DESIGN invariant 7); the service owns its own
annotations (our id, metadata, grid level, SL/TP prices, the intent a command recorded). These functions keep
both, so a stream update, a REST snapshot and a command's own write all converge on the same record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from .enums import PositionSide, PositionStatus
from .models import Order, Position
from .pnl import unrealized_pnl

# Fields the exchange owns on an order; everything else is ours.
_ORDER_EXCHANGE_FIELDS = (
    "exchange_order_id",
    "status",
    "filled_qty",
    "avg_fill_price",
    "fee",
    "fee_currency",
    "price",
    "trigger_price",
    "quantity",
    "updated_at",
)
_POSITION_EXCHANGE_FIELDS = (
    "size",
    "entry_price",
    "current_price",
    "leverage",
    "margin_mode",
    "liquidation_price",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class Intent:
    """What a command recorded before sending an order (keyed by client order id)."""

    client_order_id: str
    order_type: str | None = None
    grid_level: int | None = None
    metadata: dict[str, Any] | None = None


def merge_order(known: Order | None, incoming: Order, intent: Intent | None = None) -> Order:
    """The order as it now stands. An order we neither placed nor knew is adopted as external."""
    if known is None:
        if intent is None:
            return incoming.model_copy(update={"external": True})
        update: dict[str, Any] = {"external": False}
        if intent.grid_level is not None:
            update["grid_level"] = intent.grid_level
        if intent.metadata:
            update["metadata"] = {**intent.metadata, **incoming.metadata}
        return incoming.model_copy(update=update)
    update = {f: getattr(incoming, f) for f in _ORDER_EXCHANGE_FIELDS}
    update["fee"] = max(incoming.fee, known.fee)  # a REST view without fees must not erase them
    if incoming.client_order_id and not known.client_order_id:
        update["client_order_id"] = incoming.client_order_id
    # a later report never shrinks what has filled (a stale REST view cannot undo a fill)
    if incoming.filled_qty < known.filled_qty and not incoming.status.is_terminal:
        return known
    # every value comes from a validated Order (incoming or known): no need to validate the copy again
    return known.model_copy(update=update)


def merge_position(known: Position | None, incoming: Position, now: datetime) -> Position:
    """Fold an exchange position report into the stored one (size 0 closes it)."""
    if incoming.size == 0:
        if known is None or not known.is_open:
            return known or incoming.model_copy(update={"status": PositionStatus.CLOSED, "closed_at": now})
        return close_position(known, now, exit_price=incoming.current_price)
    if known is None or not known.is_open:
        opened = incoming.model_copy(update={"status": PositionStatus.OPEN, "closed_at": None})
        if known is not None:  # the same slot reopened: a new position
            opened = opened.model_copy(update={"created_at": incoming.updated_at})
        return opened
    update: dict[str, Any] = {f: getattr(incoming, f) for f in _POSITION_EXCHANGE_FIELDS}
    update["pnl"] = known.pnl.model_copy(
        update={
            "unrealized": incoming.pnl.unrealized,
            "realized": incoming.pnl.realized if incoming.pnl.realized != 0 else known.pnl.realized,
            "fees": max(incoming.pnl.fees, known.pnl.fees),
        }
    )
    return known.model_copy(update=update)


def close_position(known: Position, now: datetime, exit_price: Decimal | None = None) -> Position:
    return known.model_copy(
        update={
            "size": Decimal(0),
            "status": PositionStatus.CLOSED,
            "exit_price": exit_price or known.current_price,
            "closed_at": now,
            "updated_at": max(now, known.updated_at),
            "pnl": known.pnl.model_copy(update={"unrealized": Decimal(0)}),
        }
    )


def positions_gone(stored_open: Iterable[Position], reported: Iterable[Position]) -> list[Position]:
    """Open positions a full exchange snapshot no longer shows: closed while we were not looking."""
    seen = {(p.symbol, p.side) for p in reported if p.size > 0}
    return [p for p in stored_open if p.is_open and (p.symbol, p.side) not in seen]


def flipped_side(incoming: Position, stored_open: Iterable[Position], hedged: bool) -> Position | None:
    """In one-way mode, the stored open position of the other side that `incoming` replaces."""
    if hedged or incoming.size == 0:
        return None
    other = PositionSide.SHORT if incoming.side is PositionSide.LONG else PositionSide.LONG
    for p in stored_open:
        if p.symbol == incoming.symbol and p.side is other and p.is_open:
            return p
    return None


def marked(position: Position, price: Decimal, at: datetime) -> Position:
    """The position valued at a new mark price."""
    upnl = unrealized_pnl(position.side, position.size, position.entry_price, price)
    return position.model_copy(
        update={
            "current_price": price,
            "pnl": position.pnl.model_copy(update={"unrealized": upnl}),
            "updated_at": max(at, position.updated_at),
        }
    )
