"""OKX pushes parsed by us (``pushes="ours"``): which ccxt.pro watch subscribes each channel, and what each
channel's frames become.

A frame ``{"arg": {"channel": .., "instId": ..}, "data": [..]}`` arrives already decoded (ccxt's receive loop
decodes with orjson) and is turned into domain objects here without going through ccxt's parser:
- ``orders``: every entry is an Order; an entry with a ``tradeId`` is also a FillReport (that is what
  ccxt's watch_my_trades is built from);
- ``orders-algo`` (on /business): Orders;
- ``positions``: Positions (a flat one-way position closes the side the gateway last saw open, or both);
- ``tickers`` and ``mark-price`` (public): PriceTicks of the subscribed instrument.
Each entry goes through the same parser as a REST answer (:mod:`.parse`), so both paths agree by construction
on the fields; the equivalence tests check the routing against ccxt's own on recorded and generated frames.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ...domain.market import FillReport
from ...domain.models import Order, Position
from ..ccxt_venue import FeedKind, feed_key
from ..common import dec
from ..push_streams import PushHandler, Watch

if TYPE_CHECKING:
    from ...domain.market import MarketInfo
    from .gateway import OkxGateway


def routes(gw: OkxGateway) -> dict[str, PushHandler]:
    return {
        "orders": functools.partial(_orders, gw, True),
        "orders-algo": functools.partial(_orders, gw, False),
        "positions": functools.partial(_positions, gw),
        "tickers": functools.partial(_ticks, gw, "ticker"),
        "mark-price": functools.partial(_ticks, gw, "mark"),
    }


def subscriptions(gw: OkxGateway, kind: FeedKind, market: MarketInfo | None) -> list[tuple[str, Watch]]:
    client = gw.client
    orders: tuple[str, Watch] = ("orders", client.watch_orders)
    if kind == "orders":
        algos = functools.partial(client.watch_orders, None, None, None, {"trigger": True})
        return [orders, ("orders-algo", algos)]
    if kind == "fills":
        return [orders]
    if kind == "positions":
        return [("positions", client.watch_positions)]
    assert market is not None
    watch = client.watch_ticker if kind == "ticker" else client.watch_mark_price
    return [(feed_key(kind, market.symbol), functools.partial(watch, market.unified))]


def _orders(gw: OkxGateway, with_fills: bool, message: dict[str, Any]) -> None:
    want_orders = gw.wants("orders")
    want_fills = with_fills and gw.wants("fills")
    if not (want_orders or want_fills):
        return
    orders: list[Order] = []
    fills: list[FillReport] = []
    for raw in message["data"]:
        market = gw.market_of(raw.get("instId"))
        if market is None:
            continue
        if want_fills and raw.get("tradeId"):
            fill = gw.fill_of(raw, market)
            if fill is not None:
                fills.append(fill)
        if want_orders:
            order = gw.order_in(raw, market)
            if order is not None:
                orders.append(order)
    gw.emit("orders", orders)
    gw.emit("fills", fills)


def _reported_side(raw: dict[str, Any]) -> str | None:
    """The side a position entry states: posSide in hedge mode, the sign of ``pos`` in net mode; None for a
    flat net position (the gateway closes the side it last saw open, or both)."""
    pos_side = raw.get("posSide")
    if pos_side != "net":
        return pos_side if pos_side in ("long", "short") else None
    pos = dec(raw.get("pos"))
    if not pos:
        return None
    return "long" if pos > 0 else "short"


def _positions(gw: OkxGateway, message: dict[str, Any]) -> None:
    if not gw.wants("positions"):
        return
    out: list[Position] = []
    for raw in message["data"]:
        market = gw.market_of(raw.get("instId"))
        if market is None:
            continue
        out.extend(gw.positions_of(raw, market, _reported_side(raw)))
    gw.emit("positions", out)


def _ticks(gw: OkxGateway, kind: FeedKind, message: dict[str, Any]) -> None:
    arg = message.get("arg") or {}
    data = message["data"]
    market = gw.market_of(arg.get("instId") or (data[0].get("instId") if data else None))
    if market is None:
        return
    key = feed_key(kind, market.symbol)
    if not gw.wants(key) or not data:
        return
    tick = gw.tick_of(kind, data[-1], market)
    if tick is not None:
        gw.emit(key, [tick])
