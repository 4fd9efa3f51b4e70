"""Binance USD-M pushes parsed by us (``pushes="ours"``): which ccxt.pro watch subscribes each stream, and what
each event becomes.

The user stream (one socket per listen key, opened by ccxt's ``watch_orders``) carries:
- ORDER_TRADE_UPDATE: ``o`` is an Order; with execution type TRADE it is also a FillReport (its commission
  is added to the order's fee, once per trade id);
- ALGO_UPDATE: ``o`` is an algo Order (the event's ``T`` stands in when ``o`` has none, as ccxt does);
- ACCOUNT_UPDATE: each ``a.P`` entry is a Position, timed by the event time ``E``.
Market streams carry 24hrMiniTicker / 24hrTicker and markPriceUpdate events: PriceTicks.
Each payload goes through the same parser as a REST answer (:mod:`.parse`); the equivalence tests check the
routing against ccxt's own on recorded and generated frames.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ...domain.models import Position
from ..ccxt_venue import FeedKind, feed_key
from ..common import dec, ms_to_dt
from ..push_streams import PushHandler, Watch

if TYPE_CHECKING:
    from ...domain.market import MarketInfo
    from .gateway import BinanceGateway


def routes(gw: BinanceGateway) -> dict[str, PushHandler]:
    ticker = functools.partial(_tick, gw, "ticker")
    return {
        "ORDER_TRADE_UPDATE": functools.partial(_order_trade_update, gw),
        "ALGO_UPDATE": functools.partial(_algo_update, gw),
        "ACCOUNT_UPDATE": functools.partial(_account_update, gw),
        "24hrMiniTicker": ticker,
        "24hrTicker": ticker,
        "markPriceUpdate": functools.partial(_tick, gw, "mark"),
    }


def subscriptions(gw: BinanceGateway, kind: FeedKind, market: MarketInfo | None) -> list[tuple[str, Watch]]:
    client = gw.client
    if kind in ("orders", "fills", "positions"):  # one user stream carries all three
        return [("user", client.watch_orders)]
    assert market is not None
    watch = client.watch_ticker if kind == "ticker" else client.watch_mark_price
    return [(feed_key(kind, market.symbol), functools.partial(watch, market.unified))]


def _order_trade_update(gw: BinanceGateway, message: dict[str, Any]) -> None:
    o = message.get("o")
    if type(o) is not dict:
        return
    market = gw.market_of(o.get("s"))
    if market is None:
        return
    if gw.wants("fills") and o.get("x") == "TRADE":
        fill = gw.fill_of(o, market)
        if fill is not None:
            gw.emit("fills", [fill])
    if gw.wants("orders"):
        order = gw.order_in(o, market)
        if order is not None:
            gw.emit("orders", [order])
    else:
        gw.note_commission(o)  # the order's fee must still add up when orders are watched later


def _algo_update(gw: BinanceGateway, message: dict[str, Any]) -> None:
    o = message.get("o")
    if type(o) is not dict or not gw.wants("orders"):
        return
    market = gw.market_of(o.get("s"))
    if market is None:
        return
    if "T" not in o:  # the algo payload carries no time of its own: the event's
        o["T"] = message.get("T")
    order = gw.order_in(o, market)
    if order is not None:
        gw.emit("orders", [order])


def _reported_side(entry: dict[str, Any]) -> str | None:
    """The side an ACCOUNT_UPDATE entry states, as ccxt reads it: LONG/SHORT in hedge mode, the sign of ``pa``
    in one-way mode (BOTH), none for a flat one-way position."""
    ps = entry.get("ps")
    side = ps.lower() if isinstance(ps, str) else None
    if side in ("long", "short"):
        return side
    if side != "both":
        return None
    amount = dec(entry.get("pa"))
    if not amount:
        return None
    return "long" if amount > 0 else "short"


def _account_update(gw: BinanceGateway, message: dict[str, Any]) -> None:
    if not gw.wants("positions"):
        return
    account = message.get("a")
    entries = account.get("P") if type(account) is dict else None
    if not entries:
        return
    event_time = ms_to_dt(message.get("E"))
    out: list[Position] = []
    for entry in entries:
        market = gw.market_of(entry.get("s"))
        if market is not None:
            out.extend(gw.positions_of(entry, market, _reported_side(entry), None, event_time))
    gw.emit("positions", out)


def _tick(gw: BinanceGateway, kind: FeedKind, message: dict[str, Any]) -> None:
    market = gw.market_of(message.get("s"))
    if market is None:
        return
    key = feed_key(kind, market.symbol)
    if gw.wants(key):
        tick = gw.tick_of(kind, message, market)
        if tick is not None:
            gw.emit(key, [tick])
