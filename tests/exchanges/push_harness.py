"""Two gateways of one simulator account, one parsing pushes itself (``pushes="ours"``) and one through ccxt
(``pushes="ccxt"``), fed the same frame, and what each delivered on every stream.

Both gateways connect, log in and subscribe to the simulator's wire front for real. A frame under test is then
handed to the socket's ccxt.pro client exactly where ccxt's receive loop hands every text frame
(``Client.handle_text_or_binary_message``: orjson decode, then the exchange's ``handle_message``), on the socket
that carries the frame's channel, for both gateways. To know when everything a frame produced has come out of
the streams, marker frames follow it on the same sockets (a SOL order with a trade, a SOL position, a SOL algo);
a stream's output for the frame is what it delivered before its marker. Tickers and mark prices are conflated
streams: a frame's tick is the next one each gateway delivers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from position_order_service.domain.enums import Exchange
from position_order_service.domain.market import FillReport, PriceTick
from position_order_service.domain.models import Order, Position
from position_order_service.exchanges.base import Credentials
from position_order_service.exchanges.ccxt_base import CcxtGateway
from position_order_service.exchanges.factory import gateway_class
from position_order_service.exchanges.markets import MarketRegistry
from position_order_service.sim.server import SimServer

STREAMS = ("orders", "fills", "positions")
MARKER_SYMBOL = {Exchange.OKX: "SOL-USDT-SWAP", Exchange.BINANCE: "SOLUSDT"}
TICK_SYMBOLS = {Exchange.OKX: ("BTC-USDT-SWAP", "ETH-USDT-SWAP"), Exchange.BINANCE: ("BTCUSDT", "ETHUSDT")}
WAIT_S = 10.0
_numbers = itertools.count(1)


class Collector:
    """Keeps calling one watch method and keeps what it returns."""

    def __init__(self, watch: Callable[[], Awaitable[Any]], single: bool = False) -> None:
        self.items: list[Any] = []
        self.read = 0
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(watch, single))

    async def _run(self, watch: Callable[[], Awaitable[Any]], single: bool) -> None:
        try:
            while True:
                got = await watch()
                self.items.extend([got] if single else got)
                self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    async def wait(self, predicate: Callable[[list[Any]], bool], timeout: float) -> bool:
        async def until() -> None:
            while not predicate(self.items[self.read :]):
                if self.error is not None:
                    raise self.error
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True

    def take_until(self, is_marker: Callable[[Any], bool], count: int = 1) -> list[Any]:
        """The unread items before the ``count``-th marker (every marker, also an older one that ccxt delivered
        late, is left out); everything up to it is read."""
        out: list[Any] = []
        seen = 0
        for i in range(self.read, len(self.items)):
            item = self.items[i]
            if is_marker(item):
                seen += 1
                if seen == count:
                    self.read = i + 1
                    return out
            elif not _any_marker(item):
                out.append(item)
        raise AssertionError("the marker has not arrived")

    def take(self) -> list[Any]:
        out, self.read = self.items[self.read :], len(self.items)
        return out

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# ---------------------------------------------------------------- markers


def _ms() -> int:
    return 1_795_000_000_000 + next(_numbers)


def _okx_markers(n: int) -> dict[str, dict[str, Any]]:
    inst, ts = MARKER_SYMBOL[Exchange.OKX], str(_ms())
    order = {
        "instType": "SWAP", "instId": inst, "ordId": f"9{n:09d}", "clOrdId": f"mk{n}", "tag": "", "px": "",
        "sz": "1", "ordType": "market", "side": "buy", "posSide": "long", "tdMode": "cross", "accFillSz": "1",
        "fillPx": "100", "tradeId": f"9{n:09d}", "fillSz": "1", "fillTime": ts, "avgPx": "100", "state": "filled",
        "lever": "10", "fee": "-0.05", "feeCcy": "USDT", "fillFee": "-0.05", "fillFeeCcy": "USDT", "execType": "T",
        "reduceOnly": "false", "cTime": ts, "uTime": ts, "algoId": "", "algoClOrdId": "",
    }  # fmt: skip
    position = {
        "instType": "SWAP", "instId": inst, "posSide": "long", "pos": "1", "avgPx": "100", "markPx": "100",
        "upl": "0", "lever": "10", "mgnMode": "cross", "liqPx": "", "fee": "0", "pnl": "0", "posId": f"mk{n}",
        "cTime": ts, "uTime": ts,
    }  # fmt: skip
    algo = {
        "instType": "SWAP", "instId": inst, "algoId": f"mk{n}", "algoClOrdId": "", "ordType": "conditional",
        "side": "sell", "posSide": "long", "sz": "1", "state": "live", "slTriggerPx": "90", "slOrdPx": "-1",
        "tpTriggerPx": "", "tpOrdPx": "", "reduceOnly": "true", "cTime": ts, "uTime": ts,
    }  # fmt: skip
    return {
        "orders": {"arg": {"channel": "orders", "instType": "ANY", "uid": "1"}, "data": [order]},
        "positions": {"arg": {"channel": "positions", "instType": "ANY", "uid": "1"}, "data": [position]},
        "orders-algo": {"arg": {"channel": "orders-algo", "instType": "ANY", "uid": "1"}, "data": [algo]},
    }


def _binance_markers(n: int) -> dict[str, dict[str, Any]]:
    sym, ts = MARKER_SYMBOL[Exchange.BINANCE], _ms()
    order = {
        "s": sym, "c": f"mk{n}", "S": "BUY", "o": "MARKET", "f": "GTC", "q": "1", "p": "0", "ap": "100", "sp": "0",
        "x": "TRADE", "X": "FILLED", "i": 9_000_000_000 + n, "l": "1", "z": "1", "L": "100", "N": "USDT",
        "n": "0.04", "T": ts, "t": 9_000_000_000 + n, "b": "0", "a": "0", "m": False, "R": False,
        "wt": "CONTRACT_PRICE", "ot": "MARKET", "ps": "LONG", "cp": False, "rp": "0",
    }  # fmt: skip
    position = {
        "s": sym,
        "pa": "1",
        "ep": str(100 + n),
        "cr": "0",
        "up": "0",
        "mt": "cross",
        "iw": "0",
        "ps": "LONG",
    }
    return {
        "orders": {"e": "ORDER_TRADE_UPDATE", "E": ts, "T": ts, "o": order},
        "positions": {"e": "ACCOUNT_UPDATE", "E": ts, "T": ts, "a": {"m": "ORDER", "B": [], "P": [position]}},
    }


def _any_marker(item: Any) -> bool:
    return getattr(item, "symbol", None) in MARKER_SYMBOL.values()


def _is_marker(exchange: Exchange, stream: str, n: int) -> Callable[[Any], bool]:
    okx = exchange is Exchange.OKX
    if stream == "orders":
        ids = {f"9{n:09d}", f"mk{n}"} if okx else {str(9_000_000_000 + n)}
        return lambda o: o.exchange_order_id in ids
    if stream == "fills":
        trade = f"9{n:09d}" if okx else str(9_000_000_000 + n)
        return lambda f: f.trade_id == trade
    if okx:
        return lambda p: p.metadata.get("venue_position_id") == f"mk{n}"
    return lambda p: p.symbol == MARKER_SYMBOL[exchange] and p.entry_price == Decimal(100 + n)


# ---------------------------------------------------------------- the pair


def route_of(exchange: Exchange, frame: dict[str, Any]) -> str:
    if exchange is Exchange.OKX:
        return str(frame["arg"]["channel"])
    return str(frame["e"])


@dataclass
class Pair:
    exchange: Exchange
    server: SimServer
    gateways: dict[str, CcxtGateway]
    collectors: dict[tuple[str, str], Collector] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(
        default_factory=list
    )  # streams the last marker did not come out of

    def _socket(self, gw: CcxtGateway, route: str, symbol: str | None = None) -> Any:
        clients = dict(gw.client.clients or {})
        if self.exchange is Exchange.OKX:
            part = {"orders": "/private", "positions": "/private", "orders-algo": "/business"}.get(
                route, "/public"
            )
            found = [ws for url, ws in clients.items() if url.endswith(part)]
        elif route in ("ORDER_TRADE_UPDATE", "ALGO_UPDATE", "ACCOUNT_UPDATE"):
            found = [ws for url, ws in clients.items() if "listenKey=" in url]
        else:
            stream = "markPrice@" if route == "markPriceUpdate" else "miniTicker@"  # one socket per stream
            if symbol is not None:
                stream += gw.market(symbol).unified
            found = [ws for ws in clients.values() if any(stream in str(k) for k in ws.subscriptions)]
        return found[0] if found else None

    async def sockets_ready(self, routes: list[str]) -> None:
        async def ready() -> None:
            while not all(self._socket(gw, r) is not None for gw in self.gateways.values() for r in routes):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(ready(), WAIT_S)

    def inject(self, frame: dict[str, Any]) -> None:
        text = orjson.dumps(frame).decode()
        route = route_of(self.exchange, frame)
        symbol = frame.get("s") if self.exchange is Exchange.BINANCE else None
        for gw in self.gateways.values():
            ws = self._socket(gw, route, symbol)
            assert ws is not None, f"no socket of {gw} carries {route}"
            ws.handle_text_or_binary_message(text)  # what ccxt's receive loop does with a text frame

    def _markers(self, n: int) -> dict[str, dict[str, Any]]:
        return _okx_markers(n) if self.exchange is Exchange.OKX else _binance_markers(n)

    async def _mark(self, timeout: float) -> tuple[int, bool]:
        n = next(_numbers)
        for frame in self._markers(n).values():
            self.inject(frame)
        markers = 2 if self.exchange is Exchange.OKX else 1  # OKX: an order marker and an algo marker
        missing = []
        for (mode, stream), c in self.collectors.items():
            if stream not in STREAMS:
                continue
            count = markers if stream == "orders" else 1
            pred = _is_marker(self.exchange, stream, n)
            if not await c.wait(lambda xs, p=pred, k=count: sum(map(p, xs)) >= k, timeout):  # type: ignore[misc]
                missing.append((mode, stream))
        self.missing = missing
        return n, not missing

    async def sync(self) -> None:
        """Until a marker comes out of every stream of both gateways (their subscriptions are live)."""
        await self.sockets_ready([route_of(self.exchange, f) for f in self._markers(0).values()])
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            _, ok = await self._mark(0.3)
            if ok:
                break
            assert asyncio.get_running_loop().time() < deadline, "the streams did not come up"
        for c in self.collectors.values():
            c.take()  # whatever came before the last marker belongs to no frame

    def _probe(self, kind: str, symbol: str) -> dict[str, Any]:
        ts = _ms()
        if self.exchange is Exchange.OKX:
            channel = "mark-price" if kind == "mark" else "tickers"
            entry = {"instId": symbol, "markPx": "1", "ts": str(ts)} if kind == "mark" else {
                "instId": symbol, "last": "1", "bidPx": "1", "askPx": "1", "ts": str(ts)}  # fmt: skip
            return {"arg": {"channel": channel, "instId": symbol}, "data": [entry]}
        if kind == "mark":
            return {
                "e": "markPriceUpdate",
                "E": ts,
                "s": symbol,
                "p": "1",
                "i": "1",
                "P": "1",
                "r": "0",
                "T": ts,
            }
        return {
            "e": "24hrMiniTicker",
            "E": ts,
            "s": symbol,
            "c": "1",
            "o": "1",
            "h": "1",
            "l": "1",
            "v": "0",
            "q": "0",
        }

    async def sync_ticks(self) -> None:
        """Until a probe tick comes out of every ticker and mark price stream of both gateways."""
        routes = (
            ["tickers", "mark-price"]
            if self.exchange is Exchange.OKX
            else ["24hrMiniTicker", "markPriceUpdate"]
        )
        await self.sockets_ready(routes)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        for sym in TICK_SYMBOLS[self.exchange]:
            for kind in ("ticker", "mark"):
                streams = [self.collectors[(mode, f"{kind}:{sym}")] for mode in self.gateways]
                while True:
                    self.inject(self._probe(kind, sym))
                    if all([await c.wait(bool, 0.3) for c in streams]):
                        break
                    assert asyncio.get_running_loop().time() < deadline, "the tickers did not come up"
                for c in streams:
                    c.take()

    async def outputs(self, frame: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
        """What each gateway's orders, fills and positions streams delivered for ``frame``."""
        self.inject(frame)
        # ccxt resolves a watch once and drops what arrives before the next watch call: let its streams call
        # again (a few turns of the loop, no waiting on time) so the markers are not held back in its caches
        for _ in range(10):
            await asyncio.sleep(0)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            n, ok = await self._mark(0.5)
            if ok:
                break
            assert asyncio.get_running_loop().time() < deadline, (
                f"no marker from {self.missing} after {frame!r}"
            )
        markers = 2 if self.exchange is Exchange.OKX else 1
        out: dict[str, dict[str, list[Any]]] = {mode: {} for mode in self.gateways}
        for (mode, stream), c in self.collectors.items():
            if stream not in STREAMS:
                continue
            count = markers if stream == "orders" else 1
            out[mode][stream] = c.take_until(_is_marker(self.exchange, stream, n), count)
        return out

    async def tick_outputs(self, frame: dict[str, Any]) -> dict[str, list[PriceTick]]:
        """The tick each gateway's ticker (or mark price) stream delivered for ``frame``."""
        kind = "mark" if route_of(self.exchange, frame) in ("mark-price", "markPriceUpdate") else "ticker"
        symbol = _frame_symbol(self.exchange, frame)
        self.inject(frame)
        out: dict[str, list[PriceTick]] = {}
        for mode in self.gateways:
            c = self.collectors[(mode, f"{kind}:{symbol}")]
            assert await c.wait(bool, WAIT_S), f"{mode}: no {kind} tick after {frame!r}"
            out[mode] = c.take()
        return out


def _frame_symbol(exchange: Exchange, frame: dict[str, Any]) -> str:
    if exchange is Exchange.OKX:
        return str(frame["arg"].get("instId") or frame["data"][0]["instId"])
    return str(frame["s"])


@asynccontextmanager
async def pair_of_gateways(exchange: Exchange) -> AsyncIterator[Pair]:
    server = await SimServer(exchange.value, limits=False).start()  # two gateways connect at once
    server.ctx.engine.create_account("eq-key", "eq-secret", "eq-pass", balances={"USDT": "100000"})
    registry = MarketRegistry()
    creds = Credentials("eq-key", "eq-secret", "eq-pass")
    gateways = {
        mode: gateway_class(exchange)("eq-user", creds, server.url, registry, pushes=mode)
        for mode in ("ours", "ccxt")
    }
    pair = Pair(exchange, server, gateways)  # type: ignore[arg-type]
    try:
        for gw in gateways.values():
            await gw.load_markets()
        for mode, gw in gateways.items():
            pair.collectors[(mode, "orders")] = Collector(gw.watch_orders)
            pair.collectors[(mode, "fills")] = Collector(gw.watch_fills)
            pair.collectors[(mode, "positions")] = Collector(gw.watch_positions)
        await pair.sync()
        for mode, gw in gateways.items():
            for sym in TICK_SYMBOLS[exchange]:
                pair.collectors[(mode, f"ticker:{sym}")] = Collector(
                    lambda g=gw, s=sym: g.watch_ticker(s), True
                )
                pair.collectors[(mode, f"mark:{sym}")] = Collector(
                    lambda g=gw, s=sym: g.watch_mark_price(s), True
                )
        await pair.sync_ticks()
        yield pair
    finally:
        for c in pair.collectors.values():
            await c.stop()
        for gw in gateways.values():
            await gw.close()
        await server.stop()


# ---------------------------------------------------------------- comparing


def _key(item: Any) -> tuple[Any, ...]:
    if isinstance(
        item, Order
    ):  # ccxt's row of an OKX order placed by an algo is the algo's (its id = algoId)
        row = item.metadata.get("algo_id") or item.exchange_order_id or item.client_order_id
        return ("order", bool(item.metadata.get("algo")), item.symbol, row)
    if isinstance(item, Position):
        return ("position", item.symbol, item.side.value)
    if isinstance(item, FillReport):  # trade ids are per instrument
        return ("fill", item.symbol, item.trade_id)
    return ("tick", item.symbol)


def _fields(item: Any) -> dict[str, Any]:
    if isinstance(item, (Order, Position)):
        return item.model_dump(exclude={"id"})  # a random id per object, ours
    return asdict(item)


def by_entity(items: list[Any]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Objects grouped by what they describe (an order, a position side, a trade), in arrival order within a
    group: ccxt sorts an OKX batch by creation time, ours keeps the wire order, and the order across entities
    carries no meaning. ccxt also keeps one row per order id (and per trade id) in its caches, so several
    updates of one order in one frame come out of it as the last one only (and OKX orders placed by one algo
    share the algo's row: ccxt's id is algoId when there is one); ours delivers each."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for item in items:
        out.setdefault(_key(item), []).append(_fields(item))
    return out
