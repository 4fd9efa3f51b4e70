"""OKX v5 wire front of the exchange simulator: the real ccxt.pro.okx client trades against it on loopback.

Modules, one job each: ``auth`` (signatures), ``codes`` (OKX error codes), ``params`` (request fields),
``fmt`` (engine objects -> OKX dicts), ``market`` (ticker statistics), ``trade`` (order operations),
``queries`` (reads), ``settings`` (leverage, position mode), ``rest`` (HTTP routes), ``ws`` (WebSocket hub).
"""

from __future__ import annotations

from aiohttp import web

from ..context import SimContext
from .market import MarketStats
from .rest import add_routes
from .trade import Trader
from .ws import BUSINESS, PRIVATE, PUBLIC, Hub

__all__ = ["HUB_KEY", "install"]

HUB_KEY: web.AppKey[Hub] = web.AppKey("okx_hub", Hub)


def install(app: web.Application, ctx: SimContext) -> None:
    """Add the OKX REST routes (/api/v5/...) and WebSocket endpoints (/ws/v5/{public,private,business}) to
    ``app`` and subscribe the WebSocket hub to the engine's events."""
    stats = MarketStats()
    trader = Trader(ctx.engine)
    hub = Hub(ctx, trader, stats)
    app[HUB_KEY] = hub
    add_routes(app, trader, stats)
    for kind in (PUBLIC, PRIVATE, BUSINESS):

        async def ws_handler(request: web.Request, kind: str = kind) -> web.StreamResponse:
            return await hub.serve(request, kind)

        app.router.add_get(f"/ws/v5/{kind}", ws_handler)
    unsubscribe = ctx.engine.subscribe(hub.on_event)

    async def on_shutdown(_: web.Application) -> None:
        # aiohttp waits for running handlers (open WebSockets) after on_shutdown and before on_cleanup:
        # close them here or the server's shutdown hangs while a client stays connected.
        await hub.close_sockets()

    async def on_cleanup(_: web.Application) -> None:
        unsubscribe()
        await hub.close()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
