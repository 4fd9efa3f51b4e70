"""Read side of the history: pages of orders, fills and positions (newest first, keyset pagination) and
realized PnL and fees per UTC day.

Pages are ordered by (time, id) descending; the cursor is an opaque token naming the last row of a page,
so a page never repeats or skips rows that were already there, whatever is written meanwhile.
Values are Python values (Decimal, aware UTC datetime); the API turns them into JSON.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from sqlalchemy import Column, Date, Select, Table, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import tables as t

MAX_LIMIT = 1000


class BadCursor(ValueError):
    """A cursor that this endpoint did not issue (or that was altered)."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DailyPnL:
    date: date
    realized_pnl: Decimal
    fees: Decimal

    @property
    def net(self) -> Decimal:
        return self.realized_pnl - self.fees


# -- cursors -------------------------------------------------------------------------------------------


def encode_cursor(kind: str, ts: datetime, row_id: int) -> str:
    raw = orjson.dumps({"k": kind, "t": ts.astimezone(UTC).isoformat(), "i": row_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("k") != kind:
            raise BadCursor(f"not a cursor of {kind}")
        ts = datetime.fromisoformat(str(data["t"]))
        row_id = data["i"]
        if ts.tzinfo is None or not isinstance(row_id, int) or isinstance(row_id, bool):
            raise BadCursor("malformed cursor")
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, BadCursor):
            raise
        raise BadCursor("malformed cursor") from None
    return ts.astimezone(UTC), row_id


# -- pages ----------------------------------------------------------------------------------------------


_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")


def _window(stmt: _S, time_col: Column[Any], start: datetime | None, end: datetime | None) -> _S:
    if start is not None:
        stmt = stmt.where(time_col >= start)
    if end is not None:
        stmt = stmt.where(time_col < end)
    return stmt


async def _page(
    session: AsyncSession,
    kind: str,
    table: Table,
    time_col: str,
    filters: list[Any],
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}")
    tc: Column[Any] = table.c[time_col]
    stmt = _window(select(table).where(*filters), tc, start, end)
    if cursor is not None:
        c_ts, c_id = decode_cursor(kind, cursor)
        stmt = stmt.where(or_(tc < c_ts, and_(tc == c_ts, table.c.id < c_id)))
    stmt = stmt.order_by(tc.desc(), table.c.id.desc()).limit(limit + 1)
    rows = [{str(k): v for k, v in r.items()} for r in (await session.execute(stmt)).mappings()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(kind, last[time_col], last["id"])
    for r in rows:
        r.pop("src_version", None)
    return Page(rows, next_cursor)


async def list_orders(
    session: AsyncSession,
    user_id: str,
    exchange: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    symbol: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Orders created in [start, end), newest first."""
    c = t.orders.c
    filters: list[Any] = [c.user_id == user_id, c.exchange == exchange]
    if symbol is not None:
        filters.append(c.symbol == symbol)
    if status is not None:
        filters.append(c.status == status)
    return await _page(session, "orders", t.orders, "created_at", filters, start, end, limit, cursor)


async def list_fills(
    session: AsyncSession,
    user_id: str,
    exchange: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    symbol: str | None = None,
    order_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Fills executed in [start, end), newest first."""
    c = t.fills.c
    filters: list[Any] = [c.user_id == user_id, c.exchange == exchange]
    if symbol is not None:
        filters.append(c.symbol == symbol)
    if order_id is not None:
        filters.append(c.order_id == order_id)
    return await _page(session, "fills", t.fills, "ts", filters, start, end, limit, cursor)


async def list_positions(
    session: AsyncSession,
    user_id: str,
    exchange: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    symbol: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Position lifetimes opened in [start, end), newest first."""
    c = t.positions.c
    filters: list[Any] = [c.user_id == user_id, c.exchange == exchange]
    if symbol is not None:
        filters.append(c.symbol == symbol)
    if status is not None:
        filters.append(c.status == status)
    return await _page(session, "positions", t.positions, "opened_at", filters, start, end, limit, cursor)


# -- PnL per day ------------------------------------------------------------------------------------------


async def _daily_sums(
    session: AsyncSession,
    table: Table,
    amount_col: str,
    user_id: str,
    exchange: str | None,
    symbol: str | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[date, Decimal]:
    c = table.c
    filters: list[Any] = [c.user_id == user_id]
    if exchange is not None:
        filters.append(c.exchange == exchange)
    if symbol is not None:
        filters.append(c.symbol == symbol)
    sums: dict[date, Decimal] = defaultdict(Decimal)
    if session.get_bind().dialect.name == "postgresql":
        day = cast(func.timezone("UTC", c.ts), Date).label("day")
        stmt = _window(select(day, func.sum(c[amount_col])).where(*filters), c.ts, start, end).group_by(day)
        for d, total in await session.execute(stmt):
            sums[d] += Decimal(total)
    else:
        # SQLite keeps decimals as text (exact); sum them here rather than as floats in SQL
        stmt = _window(select(c.ts, c[amount_col]).where(*filters), c.ts, start, end)
        for ts, amount in await session.execute(stmt):
            sums[ts.astimezone(UTC).date()] += amount
    return sums


async def pnl_by_day(
    session: AsyncSession,
    user_id: str,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[DailyPnL]:
    """Realized PnL (as it was realized, partial closes included) and fill fees per UTC day, oldest first."""
    realized = await _daily_sums(session, t.realized_pnl, "amount", user_id, exchange, symbol, start, end)
    fees = await _daily_sums(session, t.fills, "fee", user_id, exchange, symbol, start, end)
    days = sorted(set(realized) | set(fees))
    return [DailyPnL(d, realized.get(d, Decimal(0)), fees.get(d, Decimal(0))) for d in days]
