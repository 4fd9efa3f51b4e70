"""History routes: orders, fills and positions of a user on an exchange (paged), and PnL per UTC day.

GET /api/v1/history/{user_id}/{exchange}/orders | fills | positions
    ?start=&end= (ISO-8601; naive = UTC; [start, end)) &symbol= &limit=1..1000 (100) &cursor=
    -> {"items": [...], "next_cursor": str | null}     newest first; pass next_cursor to get the next page
GET /api/v1/history/{user_id}/pnl?period=day[&exchange=&symbol=&start=&end=]
    -> {"items": [{"date": "2026-11-21", "realized_pnl": "..", "fees": "..", "net": ".."}]}

The database comes from `request.app.state.ctx.history` (a `HistoryDB`). Decimals are JSON strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict

from ..domain.enums import Exchange, OrderStatus, PositionStatus
from ..history import queries
from ..history.db import HistoryDB
from .deps import AuthorizedUser

router = APIRouter(prefix="/api/v1/history", tags=["history"])


def get_history(request: Request) -> HistoryDB:
    """The history database of the running app (`app.state.ctx.history`); 503 when there is none."""
    ctx = getattr(request.app.state, "ctx", None)
    history = getattr(ctx, "history", None)
    if history is None:
        raise HTTPException(status_code=503, detail="the history database is not configured")
    if not isinstance(history, HistoryDB):
        raise HTTPException(status_code=503, detail="the history database is not available")
    return history


History = Annotated[HistoryDB, Depends(get_history)]
UserId = AuthorizedUser  # the path's user id, checked against the caller's token
ExchangeParam = Annotated[Exchange, Path(description="okx | binance | bybit | bitget | upbit")]
Start = Annotated[datetime | None, Query(description="ISO-8601, inclusive (naive = UTC)")]
End = Annotated[datetime | None, Query(description="ISO-8601, exclusive (naive = UTC)")]
Symbol = Annotated[
    str | None,
    Query(
        min_length=1, max_length=64, description="native id (BTC-USDT-SWAP) or ccxt unified (BTC/USDT:USDT)"
    ),
]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]
Cursor = Annotated[
    str | None, Query(min_length=1, max_length=512, description="next_cursor of the previous page")
]


# -- response shapes (documentation: the routes return pre-serialised JSON) ------------------------------


class OrderItem(BaseModel):
    id: int
    user_id: str
    exchange: str
    order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    order_type: str
    quantity: str
    price: str | None
    trigger_price: str | None
    filled_qty: str
    avg_fill_price: str | None
    status: str
    reduce_only: bool
    position_side: str | None
    grid_level: int | None
    last_event_type: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class FillItem(BaseModel):
    id: int
    user_id: str
    exchange: str
    trade_id: str
    order_id: str | None
    client_order_id: str | None
    symbol: str
    side: str
    price: str
    size: str
    fee: str
    fee_currency: str | None
    liquidity: str | None
    position_side: str | None
    ts: datetime


class PositionItem(BaseModel):
    id: int
    user_id: str
    exchange: str
    position_id: str
    lifetime: int
    symbol: str
    side: str
    status: str
    size: str
    max_size: str
    entry_price: str
    exit_price: str | None
    current_price: str | None
    leverage: int
    grid_level: int | None
    realized_pnl: str
    unrealized_pnl: str
    fees: str
    funding: str
    last_event_type: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None


_T = "2026-11-21T09:30:00+00:00"
_ORDER_ITEM: dict[str, Any] = {
    "id": 17, "user_id": "user123", "exchange": "okx", "order_id": "2215487316451", "client_order_id": "bot1entry42",
    "symbol": "BTC-USDT-SWAP", "side": "buy", "order_type": "limit", "quantity": "0.1", "price": "59000",
    "trigger_price": None, "filled_qty": "0.1", "avg_fill_price": "59000", "status": "filled", "reduce_only": False,
    "position_side": None, "grid_level": None, "last_event_type": "order.filled", "created_at": _T,
    "updated_at": _T, "closed_at": _T,
}  # fmt: skip
_FILL_ITEM: dict[str, Any] = {
    "id": 5, "user_id": "user123", "exchange": "okx", "trade_id": "88412", "order_id": "2215487316451",
    "client_order_id": "bot1entry42", "symbol": "BTC-USDT-SWAP", "side": "buy", "price": "59000", "size": "0.1",
    "fee": "2.95", "fee_currency": "USDT", "liquidity": "maker", "position_side": None, "ts": _T,
}  # fmt: skip
_POSITION_ITEM: dict[str, Any] = {
    "id": 3, "user_id": "user123", "exchange": "okx", "position_id": "okx:user123:BTC-USDT-SWAP:long",
    "lifetime": 0, "symbol": "BTC-USDT-SWAP", "side": "long", "status": "closed", "size": "0", "max_size": "0.1",
    "entry_price": "59000", "exit_price": "61000", "current_price": "61000", "leverage": 10, "grid_level": None,
    "realized_pnl": "200", "unrealized_pnl": "0", "fees": "5.9", "funding": "0", "last_event_type": "position.closed",
    "opened_at": _T, "updated_at": _T, "closed_at": _T,
}  # fmt: skip
_CURSOR = "eyJ0cyI6IjIwMjYtMTEtMjFUMDk6MzA6MDArMDA6MDAiLCJpZCI6MTd9"


class OrderPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_ORDER_ITEM], "next_cursor": _CURSOR}]}
    )
    items: list[OrderItem]
    next_cursor: str | None


class FillPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_FILL_ITEM], "next_cursor": None}]})
    items: list[FillItem]
    next_cursor: str | None


class PositionPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_POSITION_ITEM], "next_cursor": None}]}
    )
    items: list[PositionItem]
    next_cursor: str | None


class DailyPnLItem(BaseModel):
    date: str
    realized_pnl: str
    fees: str
    net: str


class PnLReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"items": [{"date": "2026-11-21", "realized_pnl": "200", "fees": "5.9", "net": "194.1"}]}
            ]
        }
    )
    items: list[DailyPnLItem]


# -- helpers ------------------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _json(payload: dict[str, Any]) -> Response:
    return Response(content=orjson.dumps(payload, default=_default), media_type="application/json")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    s, e = _utc(start), _utc(end)
    if s is not None and e is not None and e <= s:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "end"), "msg": "end must be after start", "input": end}]
        )
    return s, e


def native_symbol(exchange: Exchange, symbol: str | None) -> str | None:
    """The exchange's instrument id for a ccxt unified symbol (BTC/USDT:USDT); native ids pass through."""
    if symbol is None or "/" not in symbol:
        return symbol
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    if not base or not quote:
        return symbol
    if exchange is Exchange.OKX:
        return f"{base}-{quote}-SWAP" if settle else f"{base}-{quote}"
    if exchange in (Exchange.BINANCE, Exchange.BYBIT, Exchange.BITGET):
        return f"{base}{quote}"
    return symbol


def _page_response(page: queries.Page) -> Response:
    return _json({"items": page.items, "next_cursor": page.next_cursor})


def _bad_cursor(exc: queries.BadCursor) -> HTTPException:
    return HTTPException(status_code=400, detail=f"invalid cursor: {exc}")


# -- routes --------------------------------------------------------------------------------------------------


@router.get("/{user_id}/{exchange}/orders", response_model=OrderPage, summary="Order history (newest first)")
async def order_history(
    history: History,
    user_id: UserId,
    exchange: ExchangeParam,
    start: Start = None,
    end: End = None,
    symbol: Symbol = None,
    status: Annotated[OrderStatus | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    s, e = _window(start, end)
    async with history.sessionmaker() as session:
        try:
            page = await queries.list_orders(
                session,
                user_id,
                exchange.value,
                start=s,
                end=e,
                symbol=native_symbol(exchange, symbol),
                status=status.value if status is not None else None,
                limit=limit,
                cursor=cursor,
            )
        except queries.BadCursor as exc:
            raise _bad_cursor(exc) from None
    return _page_response(page)


@router.get("/{user_id}/{exchange}/fills", response_model=FillPage, summary="Fills (newest first)")
async def fill_history(
    history: History,
    user_id: UserId,
    exchange: ExchangeParam,
    start: Start = None,
    end: End = None,
    symbol: Symbol = None,
    order_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    s, e = _window(start, end)
    async with history.sessionmaker() as session:
        try:
            page = await queries.list_fills(
                session,
                user_id,
                exchange.value,
                start=s,
                end=e,
                symbol=native_symbol(exchange, symbol),
                order_id=order_id,
                limit=limit,
                cursor=cursor,
            )
        except queries.BadCursor as exc:
            raise _bad_cursor(exc) from None
    return _page_response(page)


@router.get(
    "/{user_id}/{exchange}/positions",
    response_model=PositionPage,
    summary="Position lifetimes (newest first)",
)
async def position_history(
    history: History,
    user_id: UserId,
    exchange: ExchangeParam,
    start: Start = None,
    end: End = None,
    symbol: Symbol = None,
    status: Annotated[PositionStatus | None, Query()] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    s, e = _window(start, end)
    async with history.sessionmaker() as session:
        try:
            page = await queries.list_positions(
                session,
                user_id,
                exchange.value,
                start=s,
                end=e,
                symbol=native_symbol(exchange, symbol),
                status=status.value if status is not None else None,
                limit=limit,
                cursor=cursor,
            )
        except queries.BadCursor as exc:
            raise _bad_cursor(exc) from None
    return _page_response(page)


@router.get("/{user_id}/pnl", response_model=PnLReport, summary="Realized PnL and fees per UTC day")
async def pnl_report(
    history: History,
    user_id: UserId,
    period: Annotated[Literal["day"], Query(description="only 'day' (UTC days)")] = "day",
    exchange: Annotated[Exchange | None, Query()] = None,
    symbol: Symbol = None,
    start: Start = None,
    end: End = None,
) -> Response:
    s, e = _window(start, end)
    if symbol is not None and exchange is not None:
        symbol = native_symbol(exchange, symbol)
    async with history.sessionmaker() as session:
        days = await queries.pnl_by_day(
            session,
            user_id,
            exchange=exchange.value if exchange is not None else None,
            symbol=symbol,
            start=s,
            end=e,
        )
    items = [
        {"date": d.date.isoformat(), "realized_pnl": d.realized_pnl, "fees": d.fees, "net": d.net}
        for d in days
    ]
    return _json({"items": items})
