"""The simulator's HTTP+WebSocket server: control API plus the venue's wire front, on one port."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from aiohttp import web

from .context import CTX_KEY, SimContext
from .control import control_errors, start_feed
from .control import routes as control_routes
from .engine import SimEngine, wall_clock_ms
from .http_faults import ORDER_PATHS, faults_middleware

log = logging.getLogger(__name__)

# The documented demo account (`sim --demo`, and `make run`).
DEMO_API_KEY = "demo-api-key"
DEMO_SECRET = "demo-secret"
DEMO_PASSPHRASE = "demo-passphrase"
DEMO_START_PRICES = {
    "okx": {"BTC-USDT-SWAP": Decimal("60000"), "ETH-USDT-SWAP": Decimal("3000")},
    "binance": {"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000")},
}


def build_sim_app(
    venue: str, engine: SimEngine | None = None, seed: int = 0, limits: bool = True
) -> web.Application:
    """The simulator of ``venue`` as an aiohttp app; ``limits`` False turns the connection limits off."""
    if venue not in ORDER_PATHS:
        raise ValueError(f"unknown venue {venue!r}: use okx or binance")
    engine = engine or SimEngine(venue, seed=seed, clock=wall_clock_ms)  # type: ignore[arg-type]
    ctx = SimContext(engine=engine, venue=venue)
    ctx.limits.settings.enabled = limits
    app = web.Application(middlewares=[control_errors, faults_middleware])
    app[CTX_KEY] = ctx
    app.add_routes(control_routes)
    if venue == "okx":
        from .okx_wire import install
    else:
        from .binance_wire import install
    install(app, ctx)

    async def on_shutdown(_: web.Application) -> None:
        # before aiohttp waits for open handlers: an open WebSocket or a held reply would make it wait
        ctx.stopping.set()
        await ctx.stop_feeds()
        await ctx.drop_all_sockets()

    app.on_shutdown.append(on_shutdown)
    return app


# The demo account's opening trade, so a newcomer sees a position move: 0.05 BTC long (in venue units).
DEMO_OPENING_SIZE = {"okx": ("BTC-USDT-SWAP", "5"), "binance": ("BTCUSDT", "0.05")}


def setup_demo(ctx: SimContext, interval_ms: int = 500) -> None:
    """The documented demo account with 100,000 USDT and a 0.05 BTC long, and moving prices on BTC and ETH."""
    ctx.engine.create_account(
        DEMO_API_KEY,
        DEMO_SECRET,
        DEMO_PASSPHRASE if ctx.venue == "okx" else None,
        balances={"USDT": "100000"},
    )
    for i, (symbol, price) in enumerate(DEMO_START_PRICES[ctx.venue].items()):
        ctx.engine.set_price(symbol, price)
        start_feed(ctx, symbol, "random_walk", interval_ms=interval_ms, start=price, seed=i + 1)
    symbol, size = DEMO_OPENING_SIZE[ctx.venue]
    ctx.engine.place_order(DEMO_API_KEY, symbol, "buy", size)


@dataclass
class SimServer:
    """A simulator served on 127.0.0.1 from inside a running event loop (tests, `make run`)."""

    venue: str
    port: int = 0
    host: str = "127.0.0.1"
    seed: int = 0
    demo: bool = False
    engine: SimEngine | None = None  # serve this engine (tests share it with an in-process gateway)
    limits: bool = True  # the venue's connection limits (tests opening many sockets at once turn them off)
    _runner: web.AppRunner | None = None
    app: web.Application | None = None

    @property
    def ctx(self) -> SimContext:
        assert self.app is not None
        return self.app[CTX_KEY]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> SimServer:
        self.app = build_sim_app(self.venue, engine=self.engine, seed=self.seed, limits=self.limits)
        if self.demo:
            setup_demo(self.ctx)
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def run_sim(venue: str, host: str, port: int, demo: bool, seed: int = 0, limits: bool = True) -> None:
    """Serve a simulator in the foreground (the `sim` command; ``limits`` False = `--no-limits`)."""
    app = build_sim_app(venue, seed=seed, limits=limits)
    if demo:

        async def demo_on_start(app: web.Application) -> None:
            setup_demo(app[CTX_KEY])

        app.on_startup.append(demo_on_start)
    state = "on" if limits else "off (--no-limits)"
    print(
        f"{venue} simulator on http://{host}:{port} (control API under /sim/; connection limits {state})",
        flush=True,
    )
    if demo:
        key = f"api_key={DEMO_API_KEY} secret={DEMO_SECRET}"
        if venue == "okx":
            key += f" passphrase={DEMO_PASSPHRASE}"
        print(f"demo account: {key}; holds a 0.05 BTC long; prices move every 500 ms", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
