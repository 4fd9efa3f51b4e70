"""Read API (seed's list): positions and orders as the service knows them in real time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from ..domain.enums import Exchange
from ..domain.symbols import InvalidSymbol, native_symbol
from .deps import AuthorizedUser, Ctx
from .schemas import ErrorBody, OrdersResponse, PositionsResponse

router = APIRouter(prefix="/api/v1", tags=["positions and orders"])
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}
SymbolQuery = Annotated[
    str | None,
    Query(max_length=64, description="native id (BTC-USDT-SWAP, BTCUSDT) or ccxt symbol (BTC/USDT:USDT)"),
]


def listing_bytes(user_id: str, exchange: Exchange, name: str, items: Sequence[BaseModel]) -> bytes:
    """The listing as bytes: each model serialises itself (pydantic-core), no intermediate dicts."""
    head = orjson.dumps({"user_id": user_id, "exchange": exchange.value, "count": len(items)})
    return b"".join(
        (
            head[:-1],
            b',"',
            name.encode(),
            b'":[',
            b",".join(i.model_dump_json().encode() for i in items),
            b"]}",
        )
    )


def _listing(user_id: str, exchange: Exchange, name: str, items: Sequence[BaseModel]) -> Response:
    return Response(content=listing_bytes(user_id, exchange, name, items), media_type="application/json")


def _symbol(exchange: Exchange, symbol: str | None) -> str | None:
    if symbol is None:
        return None
    try:
        return native_symbol(exchange.value, symbol)
    except InvalidSymbol as exc:
        raise HTTPException(422, [{"loc": ["query", "symbol"], "msg": str(exc)}]) from None


@router.get(
    "/positions/{user_id}/{exchange}",
    summary="Open positions of a user",
    response_model=None,
    responses={200: {"model": PositionsResponse}, **ERRORS},
)
async def get_positions(
    request: Request, user_id: AuthorizedUser, exchange: Exchange, symbol: SymbolQuery = None
) -> Response:
    positions = await request.app.state.ctx.store.positions.list(
        user_id, exchange.value, _symbol(exchange, symbol)
    )
    return _listing(user_id, exchange, "positions", positions)


@router.get(
    "/orders/{user_id}/{exchange}/open",
    summary="Open orders of a user (regular and algo)",
    response_model=None,
    responses={200: {"model": OrdersResponse}, **ERRORS},
)
async def get_open_orders(
    ctx: Ctx, user_id: AuthorizedUser, exchange: Exchange, symbol: SymbolQuery = None
) -> Response:
    orders = await ctx.store.orders.list_open(user_id, exchange.value, _symbol(exchange, symbol))
    return _listing(user_id, exchange, "orders", orders)


@router.get(
    "/orders/{user_id}/{exchange}/closed",
    summary="Finished orders of a user, newest first (up to 1000 kept)",
    response_model=None,
    responses={200: {"model": OrdersResponse}, **ERRORS},
)
async def get_closed_orders(
    ctx: Ctx, user_id: AuthorizedUser, exchange: Exchange, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    orders = await ctx.store.orders.list_closed(user_id, exchange.value, limit)
    return _listing(user_id, exchange, "orders", orders)
