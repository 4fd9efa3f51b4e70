"""Record the push frames the simulator's wire fronts send, as fixtures for the push-parsing equivalence tests.

Run from the repository root: ``.venv/bin/python -m tests.exchanges.capture_pushes`` (rewrites
``tests/exchanges/fixtures/{okx,binance}_pushes.jsonl``).

For each venue: an in-process SimServer, a one-way and a hedge-mode account, and their gateways (our parsing)
watching orders, fills, positions, tickers and mark prices. A scenario trades through every kind of update
(market and limit orders, partial fills, cancels, stop-loss / take-profit / trailing / trigger algos firing,
hedge-mode long and short, positions opened and closed) and every frame the gateways' push taps receive is
written, one JSON object per line: ``{"venue", "account", "route", "frame"}`` (route: the OKX channel or the
Binance event type). Frames are recorded before any handler sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from position_order_service.domain.enums import Exchange, OrderSide, OrderType, PositionSide
from position_order_service.domain.market import OrderRequest
from position_order_service.exchanges.base import Credentials
from position_order_service.exchanges.ccxt_base import CcxtGateway
from position_order_service.exchanges.factory import gateway_class
from position_order_service.exchanges.markets import MarketRegistry
from position_order_service.sim.server import SimServer

FIXTURES = Path(__file__).parent / "fixtures"
SYMBOLS = {Exchange.OKX: ("BTC-USDT-SWAP", "ETH-USDT-SWAP"), Exchange.BINANCE: ("BTCUSDT", "ETHUSDT")}


def fixture_path(exchange: Exchange) -> Path:
    return FIXTURES / f"{exchange.value}_pushes.jsonl"


def load_fixtures(exchange: Exchange) -> list[dict[str, Any]]:
    """The recorded lines of a venue: ``{"venue", "account", "route", "frame"}``."""
    lines = fixture_path(exchange).read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


class _Recorder:
    def __init__(self, venue: Exchange) -> None:
        self.venue = venue
        self.lines: list[bytes] = []

    def tap(self, gw: CcxtGateway, account: str) -> None:
        handlers = gw.client.push_handlers
        for route, handler in list(handlers.items()):
            handlers[route] = self._wrap(account, route, handler)

    def _wrap(self, account: str, route: str, handler: Callable[[dict[str, Any]], None]) -> Any:
        def record(message: dict[str, Any]) -> None:
            line = {"venue": self.venue.value, "account": account, "route": route, "frame": message}
            self.lines.append(orjson.dumps(line))  # before the handler (which may add to the frame)
            handler(message)

        return record


async def _drain(watch: Callable[[], Awaitable[Any]]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await watch()


_client_ids = itertools.count(1)


def _req(symbol: str, side: OrderSide, kind: OrderType, qty: str, **kw: Any) -> OrderRequest:
    return OrderRequest(symbol, side, kind, Decimal(qty), f"cap{next(_client_ids)}", **kw)


BUY, SELL = OrderSide.BUY, OrderSide.SELL


async def _settle(s: float = 0.4) -> None:
    await asyncio.sleep(s)  # a recording script, not a test: let the pushes arrive


async def capture(exchange: Exchange) -> list[bytes]:
    srv = await SimServer(exchange.value, limits=False).start()  # two accounts connect at once
    eng = srv.ctx.engine
    btc, eth = SYMBOLS[exchange]
    rec = _Recorder(exchange)
    registry = MarketRegistry()
    gateways: list[CcxtGateway] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for name, mode in (("net", "net"), ("hedge", "long_short")):
            eng.create_account(
                f"cap-{name}", "s3cret", "pass", balances={"USDT": "1000000"}, position_mode=mode
            )
            gw = gateway_class(exchange)(
                name, Credentials(f"cap-{name}", "s3cret", "pass"), srv.url, registry
            )
            await gw.load_markets()
            rec.tap(gw, name)
            gateways.append(gw)
            watches: list[Callable[[], Awaitable[Any]]] = [
                gw.watch_orders,
                gw.watch_fills,
                gw.watch_positions,
            ]
            for sym in (btc, eth):
                watches += [lambda s=sym, g=gw: g.watch_ticker(s), lambda s=sym, g=gw: g.watch_mark_price(s)]
            tasks += [asyncio.ensure_future(_drain(w)) for w in watches]
        net, hedge = gateways
        eng.set_price(btc, Decimal("60000"))
        eng.set_price(eth, Decimal("3000"))
        await _settle(1.5)

        # one-way account: market, limit filled by a move, partial fills, cancel
        await net.create_order(_req(btc, BUY, OrderType.MARKET, "0.1"))
        limit = await net.create_order(_req(btc, BUY, OrderType.LIMIT, "0.1", price=Decimal("59000")))
        await _settle()
        eng.set_price(btc, Decimal("58900"), mark=Decimal("58950"))
        await _settle()
        eng.set_max_fill_per_step(btc, "0.05" if exchange is Exchange.BINANCE else "5")
        partial = await net.create_order(_req(btc, SELL, OrderType.LIMIT, "0.15", price=Decimal("59500")))
        eng.set_price(btc, Decimal("59600"))
        await _settle()
        eng.set_price(btc, Decimal("59700"))
        await _settle()
        eng.set_max_fill_per_step(btc, None)
        await net.cancel_order(btc, partial.exchange_order_id or "")  # the rest of a partly filled order
        resting = await net.create_order(_req(btc, SELL, OrderType.LIMIT, "0.05", price=Decimal("70000")))
        await net.cancel_order(btc, resting.exchange_order_id or "")
        del limit
        # algos on the long: a stop loss fires; then a take profit and a trailing stop both fire
        await net.create_order(
            _req(btc, SELL, OrderType.STOP_LOSS, "0.05", trigger_price=Decimal("59000"), reduce_only=True)
        )
        await _settle()
        eng.set_price(btc, Decimal("58900"))
        await _settle()
        await net.create_order(_req(btc, BUY, OrderType.MARKET, "0.1"))
        await net.create_order(
            _req(btc, SELL, OrderType.TAKE_PROFIT, "0.05", trigger_price=Decimal("61000"), reduce_only=True)
        )
        trail = _req(btc, SELL, OrderType.TRAILING_STOP, "0.05", callback_rate=Decimal("0.02"),
                     activation_price=Decimal("60000"), reduce_only=True)  # fmt: skip
        await net.create_order(trail)
        await _settle()
        for px in ("60000", "61100", "62000", "60500"):
            eng.set_price(btc, Decimal(px))
            await _settle(0.3)
        await net.create_order(_req(eth, BUY, OrderType.TRIGGER, "1", trigger_price=Decimal("3100")))
        await _settle()
        eng.set_price(eth, Decimal("3150"), mark=Decimal("3149"))
        await _settle()
        await net.set_leverage(eth, 5)
        # close everything: flat one-way positions
        for p in await net.fetch_positions():
            side = SELL if p.side is PositionSide.LONG else BUY
            await net.create_order(_req(p.symbol, side, OrderType.MARKET, str(p.size), reduce_only=True))
        await _settle()
        for o in await net.fetch_open_orders():
            await net.cancel_order(o.symbol, o.exchange_order_id or "")
        await _settle()

        # hedge account: long and short at once, close the long
        eng.set_price(btc, Decimal("60000"))
        await hedge.create_order(_req(btc, BUY, OrderType.MARKET, "0.1", position_side=PositionSide.LONG))
        await hedge.create_order(_req(btc, SELL, OrderType.MARKET, "0.2", position_side=PositionSide.SHORT))
        await hedge.create_order(
            _req(
                btc,
                BUY,
                OrderType.STOP_LOSS,
                "0.2",
                trigger_price=Decimal("61000"),
                position_side=PositionSide.SHORT,
            )
        )
        await _settle()
        eng.set_price(btc, Decimal("60500"), mark=Decimal("60480"))
        await _settle()
        await hedge.create_order(
            _req(btc, SELL, OrderType.MARKET, "0.1", reduce_only=True, position_side=PositionSide.LONG)
        )
        await _settle(1.0)
        return rec.lines
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for gw in gateways:
            await gw.close()
        await srv.stop()


async def main() -> None:
    FIXTURES.mkdir(exist_ok=True)
    for exchange in (Exchange.OKX, Exchange.BINANCE):
        lines = await capture(exchange)
        fixture_path(exchange).write_bytes(b"\n".join(lines) + b"\n")
        routes: dict[str, int] = {}
        for line in lines:
            r = orjson.loads(line)["route"]
            routes[r] = routes.get(r, 0) + 1
        print(f"{exchange.value}: {len(lines)} frames -> {fixture_path(exchange)} {routes}")


if __name__ == "__main__":
    asyncio.run(main())
