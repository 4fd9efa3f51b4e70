"""Pure rules for folding one exchange report into the one record the service keeps of it.

The exchange is the truth about an order's or position's state (DESIGN invariant 7); the service owns its
annotations (our id, metadata, grid level, SL/TP prices, the intent a command recorded). Versions come from
the exchange alone (invariant 8): an order moves forward by status rank, then fill, then its update time; a
position by its update time. Our clock never advances a version. Numbers compare by value (59475 == 59475.0).
One exchange change, one event: these rules also say which event a change calls for, or none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .enums import OrderStatus, PositionSide, PositionStatus
from .events import order_event_type
from .models import Order, Position
from .pnl import unrealized_pnl

PROVISIONAL = "provisional"  # metadata flag of an order built from a command reply (no exchange version)
SIZE_UNKNOWN = "size_unknown"
"""Metadata flag of a close-all algo whose report carries no size (OKX closeFraction=1, Binance closePosition):
its quantity is the instrument's minimum standing in. A fired one is never stored as filled with it: the gateway
reads the child order's size first, or hands it on still open (fired, size pending) for the child to complete."""

# Fields the exchange owns on an order; everything else is ours.
ORDER_EXCHANGE_FIELDS = (
    "exchange_order_id",
    "status",
    "filled_qty",
    "avg_fill_price",
    "fee",
    "fee_currency",
    "price",
    "trigger_price",
    "callback_rate",
    "quantity",
    "updated_at",
)
# Changes of these call for an order event; the other exchange fields (fees, times) update silently.
ORDER_EVENT_FIELDS = ("status", "filled_qty", "price", "trigger_price", "quantity")
POSITION_EXCHANGE_FIELDS = ("size", "entry_price", "leverage", "margin_mode", "liquidation_price")
POSITION_EVENT_FIELDS = ("size", "entry_price", "leverage", "margin_mode", "status")

_ORDER_RANK = {
    OrderStatus.PENDING: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.FILLED: 3,
    OrderStatus.CANCELLED: 3,
    OrderStatus.REJECTED: 3,
    OrderStatus.EXPIRED: 3,
}
MS = timedelta(milliseconds=1)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def order_progress(o: Order) -> float:
    """Orders only move forward: status rank, then the filled fraction."""
    return _ORDER_RANK[o.status] + float(o.filled_qty / o.quantity) * 0.999


def order_version(o: Order) -> tuple[float, int]:
    return order_progress(o), ms(o.updated_at)


def is_provisional(o: Order) -> bool:
    return bool(o.metadata.get(PROVISIONAL))


@dataclass(frozen=True, slots=True)
class Intent:
    """What a command recorded before sending an order (keyed by client order id)."""

    client_order_id: str
    order_type: str | None = None
    grid_level: int | None = None
    metadata: dict[str, Any] | None = None


# -- orders ------------------------------------------------------------------------------------------------
def adopt_order(incoming: Order, intent: Intent | None) -> Order:
    """First sight of an order: ours if a command recorded its intent, else external."""
    if intent is None:
        return incoming.model_copy(update={"external": True})
    update: dict[str, Any] = {"external": False}
    if intent.grid_level is not None:
        update["grid_level"] = intent.grid_level
    if intent.metadata:
        update["metadata"] = {**intent.metadata, **incoming.metadata}
    return incoming.model_copy(update=update)


def merge_order_report(known: Order, incoming: Order) -> Order | None:
    """The known order with the exchange's report folded in; None when the report is older (stale). A
    provisional record has no exchange version: any report supersedes it."""
    provisional = is_provisional(known)
    if not provisional and order_version(incoming) < order_version(known):
        return None
    if incoming.filled_qty < known.filled_qty and not incoming.status.is_terminal:
        return None  # a later report never shrinks what has filled (a stale REST view cannot undo a fill)
    update = {f: getattr(incoming, f) for f in ORDER_EXCHANGE_FIELDS}
    update["fee"] = max(incoming.fee, known.fee)  # a view without fees (REST, a reply) must not erase them
    update["fee_currency"] = incoming.fee_currency or known.fee_currency
    update["exchange_order_id"] = incoming.exchange_order_id or known.exchange_order_id
    if incoming.client_order_id and not known.client_order_id:
        update["client_order_id"] = incoming.client_order_id
    if provisional:  # the exchange's own report: its view replaces what the reply let us assume
        update["created_at"] = incoming.created_at
        update["metadata"] = {k: v for k, v in known.metadata.items() if k != PROVISIONAL}
        update["metadata"].update({k: v for k, v in incoming.metadata.items() if k not in update["metadata"]})
    else:
        update["metadata"] = {**known.metadata, **_venue_meta(incoming)}
        if SIZE_UNKNOWN not in incoming.metadata:  # a report that knows the size ends the stand-in
            update["metadata"].pop(SIZE_UNKNOWN, None)
    return known.model_copy(update=update)


def _venue_meta(o: Order) -> dict[str, Any]:
    """What the exchange tells in metadata (venue state, algo links): refreshed on every report."""
    return {k: v for k, v in o.metadata.items() if k in _VENUE_META}


_VENUE_META = frozenset({"venue_state", "venue_type", "algo", "algo_type", "algo_id", "child_order_id",
                         "triggered_leg", "triggered_at", "cancel_source", "close_position", "fail_code",
                         "fail_reason", "stop_price", "activation_price", SIZE_UNKNOWN})  # fmt: skip


def order_event(previous: Order | None, new: Order) -> str | None:
    """The event a change calls for: first sight -> order.created (or its terminal type); then one event per
    change of status, fill or an amended price/trigger/quantity; None for fee-only or cosmetic changes. After
    a provisional record (from a command reply), only a new status is news."""
    if previous is None:
        return "order.created" if new.status.is_active else order_event_type(new)
    if is_provisional(previous):
        return None if previous.status is new.status else order_event_type(new)
    if any(getattr(previous, f) != getattr(new, f) for f in ORDER_EVENT_FIELDS):
        return order_event_type(new)
    return None


def same_order(a: Order, b: Order) -> bool:
    """Nothing to write: equal by value in every field we store."""
    return a == b


def lost_order(known: Order, at: datetime) -> Order:
    """An order the exchange no longer knows at all (two snapshots and a lookup): cancelled, marked lost. Its
    version is the known one's plus a millisecond (never our clock), so any real report still wins."""
    return known.model_copy(
        update={
            "status": OrderStatus.CANCELLED,
            "updated_at": max(known.updated_at + MS, at),
            "metadata": {**known.metadata, "lost": True},
        }
    )


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    """What a close-all algo needs of its child order: how it ended (kept small: a gateway remembers the
    last few hundred orders that ended, for an algo reported after its child)."""

    status: OrderStatus
    filled_qty: Decimal
    avg_fill_price: Decimal | None

    @classmethod
    def of(cls, order: Order) -> ChildOutcome:
        return cls(order.status, order.filled_qty, order.avg_fill_price)


def close_all_size(parent: Order, child: Order | ChildOutcome) -> Order | None:
    """A close-all algo carries no size: once its child order is done, the algo filled what the child did (not
    the instrument's minimum its report implies). Only a child that is done counts: a partial report would
    shrink a filled algo, and the next one grow it again. A fired algo still waiting for its size (open,
    SIZE_UNKNOWN, naming its child) is completed by its child, or cancelled with nothing filled when the child
    ended without a fill (a reduce-only close with nothing left to close). None: nothing to change."""
    if not parent.metadata.get("close_position") or not child.status.is_terminal:
        return None
    pending = (
        (parent.status.is_active or needs_size(parent))
        and bool(parent.metadata.get(SIZE_UNKNOWN))
        and parent.metadata.get("child_order_id") is not None
    )
    if child.filled_qty <= 0:
        if not pending:
            return None
        return parent.model_copy(
            update={
                "status": OrderStatus.CANCELLED,
                "filled_qty": Decimal(0),
                "avg_fill_price": None,
                "metadata": {**_size_known(parent.metadata), "child_unfilled": True},
            }
        )
    if parent.status is not OrderStatus.FILLED and not pending:
        return None
    if not pending and parent.filled_qty == child.filled_qty and SIZE_UNKNOWN not in parent.metadata:
        return None
    return parent.model_copy(
        update={
            "status": OrderStatus.FILLED,
            "quantity": child.filled_qty,
            "filled_qty": child.filled_qty,
            "avg_fill_price": child.avg_fill_price,
            "metadata": _size_known(parent.metadata),
        }
    )


def _size_known(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k != SIZE_UNKNOWN}


def size_pending(algo: Order) -> Order:
    """A fired close-all algo whose size could not be read: handed on still open (its venue state says it
    fired), claiming no fill, SIZE_UNKNOWN kept; its child's report completes it (:func:`close_all_size`)."""
    return algo.model_copy(
        update={"status": OrderStatus.OPEN, "filled_qty": Decimal(0), "avg_fill_price": None}
    )


def needs_size(order: Order) -> bool:
    """A fired close-all algo reported as filled with the minimum standing in for its size."""
    return (
        order.status is OrderStatus.FILLED
        and bool(order.metadata.get(SIZE_UNKNOWN))
        and bool(order.metadata.get("close_position"))
    )


# -- positions ---------------------------------------------------------------------------------------------
def position_version(p: Position) -> int:
    return ms(p.updated_at)


def merge_position_report(known: Position | None, incoming: Position) -> tuple[Position, str | None] | None:
    """The position after an exchange report, and the event it calls for (None: a silent change). Returns
    None when the report changes nothing or is older than what is known."""
    if known is not None and position_version(incoming) < position_version(known):
        return None
    if incoming.size == 0:
        if known is None or not known.is_open:
            return None
        return close_position(known, incoming.updated_at, incoming.current_price), "position.closed"
    if known is None or not known.is_open:
        opened = incoming.model_copy(update={"status": PositionStatus.OPEN, "closed_at": None})
        if known is not None:  # the same slot reopened: a new position
            opened = opened.model_copy(update={"created_at": incoming.updated_at})
        return opened, "position.opened"
    update: dict[str, Any] = {f: getattr(incoming, f) for f in POSITION_EXCHANGE_FIELDS}
    update["updated_at"] = incoming.updated_at
    if incoming.current_price is not None:
        update["current_price"] = incoming.current_price
    update["pnl"] = known.pnl.model_copy(
        update={
            "unrealized": incoming.pnl.unrealized
            if incoming.current_price is not None
            else known.pnl.unrealized,
            "realized": incoming.pnl.realized if incoming.pnl.realized != 0 else known.pnl.realized,
            "fees": max(incoming.pnl.fees, known.pnl.fees),
        }
    )
    merged = known.model_copy(update=update)
    if merged == known:
        return None
    changed = any(getattr(known, f) != getattr(merged, f) for f in POSITION_EVENT_FIELDS)
    changed = changed or known.pnl.realized != merged.pnl.realized
    return merged, "position.updated" if changed else None


def close_position(known: Position, at: datetime, exit_price: Decimal | None = None) -> Position:
    """The position closed at exchange time `at` (the report's, or a snapshot's; never later than needed)."""
    return known.model_copy(
        update={
            "size": Decimal(0),
            "status": PositionStatus.CLOSED,
            "exit_price": exit_price or known.current_price,
            "closed_at": at,
            "updated_at": at,
            "pnl": known.pnl.model_copy(update={"unrealized": Decimal(0)}),
        }
    )


def gone_close_time(known: Position, exchange_time: datetime | None) -> datetime:
    """Version of a synthetic close: just after the last exchange version, or the snapshot's exchange time
    if later; never our clock."""
    after = known.updated_at + MS
    return max(after, exchange_time) if exchange_time is not None else after


def flipped_side(incoming: Position, stored_open: Iterable[Position], hedged: bool) -> Position | None:
    """In one-way mode, the stored open position of the other side that `incoming` replaces."""
    if hedged or incoming.size == 0:
        return None
    other = PositionSide.SHORT if incoming.side is PositionSide.LONG else PositionSide.LONG
    for p in stored_open:
        if p.symbol == incoming.symbol and p.side is other and p.is_open:
            return p
    return None


def marked(position: Position, price: Decimal) -> Position:
    """The position valued at a new mark price. Not a version: size, entry, status and time stay."""
    upnl = unrealized_pnl(position.side, position.size, position.entry_price, price)
    return position.model_copy(
        update={"current_price": price, "pnl": position.pnl.model_copy(update={"unrealized": upnl})}
    )


def annotated(position: Position, fields: dict[str, Any], metadata: dict[str, Any] | None) -> Position:
    """Our own fields on a position (SL/TP prices, grid level, metadata): never an exchange field."""
    allowed = {k: v for k, v in fields.items() if k in ("stop_loss_price", "take_profit_price", "grid_level")}
    if metadata:
        allowed["metadata"] = {**position.metadata, **metadata}
    return position.model_copy(update=allowed)
