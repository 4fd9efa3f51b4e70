"""Builders and small queries shared by the history tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, select

from position_order_service.domain import Order, Position
from position_order_service.domain.events import envelope
from position_order_service.history import HistoryDB
from position_order_service.store import Store

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def order(**kw: Any) -> Order:
    base: dict[str, Any] = {
        "user_id": "u1",
        "exchange": "okx",
        "symbol": "BTC-USDT-SWAP",
        "exchange_order_id": "1001",
        "side": "buy",
        "order_type": "limit",
        "quantity": "1",
        "price": "45000",
        "status": "open",
        "created_at": T0,
        "updated_at": T0,
    }
    base.update(kw)
    return Order.model_validate(base)


def evolve(o: Order, seconds: float = 1, **kw: Any) -> Order:
    """The same order, later, with some fields changed (validated)."""
    data = o.model_dump(exclude=set(Order.model_computed_fields))
    data["updated_at"] = o.updated_at + timedelta(seconds=seconds)
    data.update(kw)
    return Order.model_validate(data)


def position(**kw: Any) -> Position:
    base: dict[str, Any] = {
        "id": "p1",
        "user_id": "u1",
        "exchange": "okx",
        "symbol": "BTC-USDT-SWAP",
        "side": "long",
        "size": "1",
        "entry_price": "45000",
        "created_at": T0,
        "updated_at": T0,
    }
    base.update(kw)
    return Position.model_validate(base)


def fill_fields(
    user_id: str = "u1",
    exchange: str = "okx",
    trade_id: str | None = None,
    order_id: str = "1001",
    symbol: str = "BTC-USDT-SWAP",
    side: str = "buy",
    price: str = "45000",
    size: str = "1",
    fee: str = "0.9",
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    fields = envelope(user_id, exchange)
    fields.update(
        {
            "trade_id": trade_id or uuid.uuid4().hex[:10],
            "order_id": order_id,
            "client_order_id": None,
            "symbol": symbol,
            "side": side,
            "price": price,
            "size": size,
            "fee": fee,
            "fee_currency": "USDT",
            "liquidity": "maker",
            "position_side": None,
        }
    )
    if timestamp is not None:
        fields["timestamp"] = timestamp.isoformat()
    return fields


async def emit_fill(store: Store, **kw: Any) -> int:
    fields = fill_fields(**kw)
    return await store.writer.emit(fields["user_id"], "", "fill.created", fields)


def payload(
    event_type: str, ts: datetime, user_id: str = "u1", exchange: str = "okx", **fields: Any
) -> dict[str, Any]:
    """A stream payload as the store writes it (for tests that build batches directly)."""
    return {
        "event_type": event_type,
        "event_id": uuid.uuid4().hex,
        "timestamp": ts.isoformat(),
        "user_id": user_id,
        "exchange": exchange,
        "metadata": {},
        **fields,
    }


def order_payload(
    ts: datetime, order_id: str, status: str = "open", symbol: str = "BTC-USDT-SWAP", **kw: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "client_order_id": f"c-{order_id}",
        "symbol": symbol,
        "side": "buy",
        "order_type": "limit",
        "quantity": "2",
        "price": "100.5",
        "trigger_price": None,
        "filled_qty": "2" if status == "filled" else "0",
        "avg_fill_price": "100.5" if status == "filled" else None,
        "status": status,
        "reduce_only": False,
        "position_side": None,
        "grid_level": None,
    }
    fields.update(kw)
    etype = {"open": "order.created", "filled": "order.filled", "cancelled": "order.cancelled"}.get(
        status, "order.updated"
    )
    return payload(etype, ts, **fields)


async def count(db: HistoryDB, table: Table, *where: Any) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def fetch(db: HistoryDB, table: Table, *where: Any, order_by: Any = None) -> list[dict[str, Any]]:
    stmt = select(table).where(*where)
    stmt = stmt.order_by(order_by if order_by is not None else table.c[next(iter(table.c.keys()))])
    async with db.sessionmaker() as s:
        return [dict(r) for r in (await s.execute(stmt)).mappings()]


def D(x: str) -> Decimal:
    return Decimal(x)
