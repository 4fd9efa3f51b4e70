"""Wires the Binance USD-M front into the simulator's aiohttp app: /fapi REST routes, WebSocket routes,
and the engine subscription of the stream hub."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from ..context import SimContext
from . import rest_account as acc
from . import rest_algo as algo
from . import rest_batch as batch
from . import rest_orders as orders
from . import rest_public as pub
from .auth import AccountKeys
from .front import Front
from .listen_keys import ListenKeys
from .market import MarketStats
from .stream import StreamHub
from .ws_endpoint import PATHS, WsEndpoint

__all__ = ["FRONT_KEY", "install"]

FRONT_KEY: web.AppKey[Front] = web.AppKey("binance_front", Front)


def install(app: web.Application, ctx: SimContext) -> None:
    """Add the Binance routes to ``app`` and start pushing ``ctx.engine``'s events to WebSockets."""
    keys = AccountKeys(ctx.engine)
    stats = MarketStats()
    listen_keys = ListenKeys()
    hub = StreamHub(ctx.engine, keys, stats)
    front = Front(ctx, keys, listen_keys, stats, hub)
    app[FRONT_KEY] = front
    r = app.router
    v1 = "/fapi/v1"

    for path, fn in (
        ("ping", pub.ping),
        ("time", pub.server_time),
        ("exchangeInfo", pub.exchange_information),
        ("ticker/24hr", pub.tickers_24h),
        ("ticker/price", pub.ticker_prices),
        ("ticker/bookTicker", pub.book_tickers),
        ("premiumIndex", pub.premium_index),
    ):
        r.add_get(f"{v1}/{path}", front.public(fn))
    r.add_get("/fapi/v2/ticker/price", front.public(pub.ticker_prices))

    r.add_post(f"{v1}/order", front.signed(orders.place_order))
    r.add_get(f"{v1}/order", front.signed(orders.get_order))
    r.add_put(f"{v1}/order", front.signed(orders.modify_order))
    r.add_delete(f"{v1}/order", front.signed(orders.cancel_order, cancel=True))
    r.add_post(f"{v1}/batchOrders", front.signed(batch.batch_place))
    r.add_delete(f"{v1}/batchOrders", front.signed(batch.batch_cancel))
    r.add_get(f"{v1}/openOrder", front.signed(orders.get_open_order))
    r.add_get(f"{v1}/openOrders", front.signed(orders.open_orders))
    r.add_get(f"{v1}/allOrders", front.signed(orders.all_orders))
    r.add_delete(f"{v1}/allOpenOrders", front.signed(orders.cancel_all))
    r.add_get(f"{v1}/userTrades", front.signed(orders.user_trades))

    r.add_post(f"{v1}/algoOrder", front.signed(algo.place_algo))
    r.add_get(f"{v1}/algoOrder", front.signed(algo.get_algo))
    r.add_delete(f"{v1}/algoOrder", front.signed(algo.cancel_algo, cancel=True))
    r.add_get(f"{v1}/openAlgoOrders", front.signed(algo.open_algo_orders))
    r.add_get(f"{v1}/allAlgoOrders", front.signed(algo.all_algo_orders))
    r.add_delete(f"{v1}/algoOpenOrders", front.signed(algo.cancel_all_algos))

    r.add_get(f"{v1}/leverageBracket", front.signed(acc.leverage_brackets))
    r.add_get("/fapi/v2/leverageBracket", front.signed(acc.leverage_brackets))
    r.add_get("/fapi/v2/positionRisk", front.signed(acc.position_risk_v2))
    r.add_get("/fapi/v3/positionRisk", front.signed(acc.position_risk_v3))
    for version, v2 in (("v2", True), ("v3", False)):
        r.add_get(f"/fapi/{version}/account", front.signed(partial(acc.account, v2=v2)))
        r.add_get(f"/fapi/{version}/balance", front.signed(acc.balance))
    r.add_post(f"{v1}/leverage", front.signed(acc.change_leverage))
    r.add_get(f"{v1}/positionSide/dual", front.signed(acc.get_position_mode))
    r.add_post(f"{v1}/positionSide/dual", front.signed(acc.change_position_mode))
    r.add_post(f"{v1}/marginType", front.signed(acc.change_margin_type))
    r.add_get(f"{v1}/symbolConfig", front.signed(acc.symbol_config))
    r.add_get(f"{v1}/commissionRate", front.signed(acc.commission_rate))
    r.add_get(f"{v1}/multiAssetsMargin", front.signed(acc.multi_assets_margin))

    r.add_post(f"{v1}/listenKey", front.keyed(acc.open_listen_key))
    r.add_put(f"{v1}/listenKey", front.keyed(acc.keepalive_listen_key))
    r.add_delete(f"{v1}/listenKey", front.keyed(acc.close_listen_key))

    ws = WsEndpoint(ctx, hub, listen_keys)
    for path in PATHS:
        r.add_get(path, ws.handle)

    async def on_cleanup(_: web.Application) -> None:
        await hub.close()

    app.on_cleanup.append(on_cleanup)
