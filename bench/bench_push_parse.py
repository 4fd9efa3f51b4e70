"""Per-message cost of turning a venue push into domain objects: ccxt.pro's path vs ours, per message kind.

Run: ``.venv/bin/python bench/bench_push_parse.py [--n 2000] [--repeat 5]``

The frames are the simulator fronts' own, recorded in ``tests/exchanges/fixtures/*_pushes.jsonl`` (one
representative frame per kind: an order update, an order fill, an algo update, a position, a ticker, a mark
price). Each is handed as JSON text to a gateway's ccxt.pro ws client exactly where ccxt's receive loop hands
a text frame (``handle_text_or_binary_message``: orjson decode, then the client's ``handle_message``); no socket.

- ccxt: the gateway with ``pushes="ccxt"``: ccxt.pro's handler (decode, parse, caches) plus the gateway's
  mapping of the ``info`` of ccxt's results to domain objects (Order, FillReport, Position, PriceTick): what a
  stream cost per push before our own parsing.
- ours: the gateway with ``pushes="ours"`` (the default): decode, the push tap, our parser straight into the
  domain objects, queued on the stream's feed.
Then (OKX, ``--inbox-rounds``): one push all the way to the account actor's inbox (socket frame -> tap -> parse ->
feed -> the account's stream pumps -> ``Inbox.post``, one frame per loop turn, a task draining the inbox),
through the metrics wrapper the service puts on a gateway: the pumps diverted (the batch is posted from the push
handler, issue 15) against the same pumps made unable to divert (each push wakes the pump's task, the way it
was before). The two run interleaved in one process (rounds of 500 pushes, A then B), so a busy box moves both
alike; printed: the median and best round, CPU microseconds per push (loop turns without a push subtracted).

Prints the best of ``--repeat`` runs in CPU microseconds per message (this process' CPU time, not wall time: the
figure holds on a machine shared with other work), the split of ccxt's figure (handler, mapping)
and ours / ccxt; ``decode`` is orjson.loads of the same text alone (in both figures).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.exchanges.capture_pushes import load_fixtures  # noqa: E402

from position_order_service.domain.enums import Exchange  # noqa: E402
from position_order_service.exchanges.ccxt_base import CcxtGateway  # noqa: E402
from position_order_service.exchanges.factory import gateway_class  # noqa: E402
from position_order_service.exchanges.markets import MarketRegistry  # noqa: E402
from position_order_service.exchanges.push_streams import Feed  # noqa: E402
from position_order_service.services.account.feeds import AccountHealth, RestWorker, pump  # noqa: E402
from position_order_service.services.account.messages import Inbox  # noqa: E402
from position_order_service.services.gateway_pool import instrumented  # noqa: E402
from position_order_service.sim.server import SimServer  # noqa: E402

# (label, route, predicate on the frame) -> the first recorded frame that matches
KINDS: dict[Exchange, list[tuple[str, str, Callable[[dict[str, Any]], bool]]]] = {
    Exchange.OKX: [
        ("order update", "orders", lambda f: len(f["data"]) == 1 and not f["data"][0]["tradeId"]),
        ("order fill", "orders", lambda f: len(f["data"]) == 1 and bool(f["data"][0]["tradeId"])),
        ("algo order", "orders-algo", lambda f: True),
        ("position", "positions", lambda f: len(f["data"]) == 1 and f["data"][0]["pos"] != "0"),
        ("ticker", "tickers", lambda f: True),
        ("mark price", "mark-price", lambda f: True),
    ],
    Exchange.BINANCE: [
        ("order update", "ORDER_TRADE_UPDATE", lambda f: f["o"]["x"] != "TRADE"),
        ("order fill", "ORDER_TRADE_UPDATE", lambda f: f["o"]["x"] == "TRADE"),
        ("algo order", "ALGO_UPDATE", lambda f: True),
        ("position", "ACCOUNT_UPDATE", lambda f: bool(f["a"]["P"])),
        ("ticker", "24hrMiniTicker", lambda f: True),
        ("mark price", "markPriceUpdate", lambda f: True),
    ],
}


def _frame(exchange: Exchange, route: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for line in load_fixtures(exchange):
        if line["route"] == route and pred(line["frame"]):
            frame: dict[str, Any] = line["frame"]
            return frame
    raise LookupError(f"no recorded {exchange.value} {route} frame")


def _symbol(exchange: Exchange, frame: dict[str, Any]) -> str:
    if exchange is Exchange.OKX:
        return str(frame["arg"].get("instId") or frame["data"][0]["instId"])
    return str(frame.get("s") or (frame.get("o") or {}).get("s") or frame["a"]["P"][0]["s"])


def _best(repeat: int, n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


class _CcxtPath:
    """ccxt's handler, then the gateway's mapping of what ccxt cached for this frame."""

    def __init__(self, gw: CcxtGateway, ws: Any, route: str, symbol: str) -> None:
        self.gw, self.ws, self.route, self.symbol = gw, ws, route, symbol
        self.client = gw.client

    def results(self) -> list[tuple[str, list[Any]]]:
        """ccxt's structures for the last frame, per stream (as its watch calls would return them)."""
        c, market = self.client, self.gw.market(self.symbol)
        if self.route in ("tickers", "mark-price", "24hrMiniTicker", "markPriceUpdate"):
            return [("mark" if "ark" in self.route else "ticker", [c.tickers[market.unified]])]
        if self.route in ("positions", "ACCOUNT_UPDATE"):
            cache = c.positions if isinstance(c.positions, list) else next(iter(c.positions.values()))
            return [("positions", [[cache[-1]]])]
        out: list[tuple[str, list[Any]]] = []
        if self.route == "orders-algo":
            return [("orders", [[c.triggerOrders[-1]]])]
        out.append(("orders", [[c.orders[-1]]]))
        if c.myTrades and c.myTrades[-1]["info"].get("tradeId", c.myTrades[-1]["info"].get("t")):
            out.append(("fills", [[c.myTrades[-1]]]))
        return out

    def handler(self, text: str) -> None:
        self.ws.handle_text_or_binary_message(text)

    def mapping(self, results: list[tuple[str, list[Any]]]) -> None:
        market = self.gw.market(self.symbol)
        for kind, batches in results:
            self.gw._from_ccxt(kind, batches, market)  # type: ignore[arg-type]


async def _inbox_table(registry: MarketRegistry, base_url: str, rounds: int) -> None:
    """Frame -> inbox per push, diverted vs through the pump's task (see the module docstring)."""
    frames = {label: orjson.dumps(_frame(Exchange.OKX, route, pred)).decode()
              for label, route, pred in KINDS[Exchange.OKX] if route in ("orders", "positions")}  # fmt: skip
    setups: dict[str, tuple[Any, list[int], list[asyncio.Task[None]], CcxtGateway]] = {}
    for mode in ("via task", "diverted"):
        gw = gateway_class(Exchange.OKX)("bench", None, base_url, registry, pushes="ours")
        ws = gw.client.client("ws://bench/inbox")  # not connected: fed by hand

        async def socket() -> None:  # a live socket's watch call: pending
            await asyncio.get_running_loop().create_future()

        gw.push_subscriptions = lambda kind, market: [(kind, socket)]  # type: ignore[method-assign]
        igw = instrumented(gw)
        inbox = Inbox()
        rest, health, got = RestWorker(igw, inbox), AccountHealth(), [0]

        async def drain(inbox: Inbox = inbox, got: list[int] = got) -> None:
            while True:
                await inbox.get()
                got[0] += 1

        tasks = [asyncio.create_task(drain())]
        for name in ("orders", "positions", "fills"):
            watch = getattr(igw, f"watch_{name}")
            if mode == "via task":
                watch = functools.partial(_call, watch)  # hides the gateway: the pump cannot divert
            tasks.append(asyncio.create_task(pump(name, watch, list, inbox, health, rest, "okx")))  # type: ignore[arg-type]
        setups[mode] = (ws, got, tasks, gw)
    await _turns(50)
    print(f"\nOKX push -> account inbox, one push per loop turn; CPU microseconds per push, median (best) of "
          f"{rounds} interleaved rounds of {_ROUND}")  # fmt: skip
    print(f"{'kind':13s} {'via task':>15s} {'diverted':>15s}")
    for label, text in frames.items():
        res: dict[str, list[float]] = {mode: [] for mode in setups}
        for _ in range(rounds):
            for mode, (ws, got, _, _) in setups.items():
                t0 = time.process_time()
                await _turns(_ROUND)
                idle = time.process_time() - t0
                got[0] = 0
                t0 = time.process_time()
                for _ in range(_ROUND):
                    ws.handle_text_or_binary_message(text)
                    await _turns(1)
                spent = time.process_time() - t0
                assert got[0] >= _ROUND, f"{label}: {got[0]} messages for {_ROUND} pushes"
                res[mode].append((spent - idle) / _ROUND * 1e6)
        cells = [f"{statistics.median(v):7.1f} ({min(v):5.1f})" for v in res.values()]
        print(f"{label:13s} {cells[0]:>15s} {cells[1]:>15s}")
    for _, _, tasks, gw in setups.values():
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gw.close()


_ROUND = 500


async def _call(watch: Callable[[], Any]) -> Any:
    return await watch()


async def _turns(n: int) -> None:
    for _ in range(n * 4):  # a push's batch reaches the inbox within a few turns either way
        await asyncio.sleep(0)


async def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--inbox-rounds", type=int, default=10, help="0: skip the push -> inbox table")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, n={args.n}, best of {args.repeat}; CPU microseconds per message")
    print(f"{'venue':8s} {'kind':13s} {'decode':>7s} {'ccxt':>8s} {'(handler':>9s} {'+ mapping)':>10s} "
          f"{'ours':>7s} {'ours/ccxt':>9s}")  # fmt: skip
    inbox_table: tuple[MarketRegistry, str] | None = None
    for exchange in (Exchange.OKX, Exchange.BINANCE):
        srv = await SimServer(exchange.value).start()  # only to load the markets the way the gateways do
        registry = MarketRegistry()
        await registry.load(exchange, srv.url)
        await srv.stop()
        cls = gateway_class(exchange)
        ours_gw = cls("bench", None, srv.url, registry, pushes="ours")
        ccxt_gw = cls("bench", None, srv.url, registry, pushes="ccxt")
        ours_ws = ours_gw.client.client("ws://bench/ours")  # not connected: fed by hand
        ccxt_ws = ccxt_gw.client.client("ws://bench/ccxt")
        if exchange is Exchange.BINANCE:  # what ccxt's watch_orders sets up on the user stream's client
            account_type = ccxt_gw.client.resolve_auth_type("watchOrders", None, {})[0]
            ccxt_ws.subscriptions[account_type] = True
            ccxt_gw.client.set_balance_cache(ccxt_ws, account_type)
        for label, route, pred in KINDS[exchange]:
            frame = _frame(exchange, route, pred)
            text = orjson.dumps(frame).decode()
            symbol = _symbol(exchange, frame)
            feeds: list[Feed[Any]] = []
            for key in ("orders", "fills", "positions", f"ticker:{symbol}", f"mark:{symbol}"):
                feed: Feed[Any] = Feed([])
                ours_gw._feeds[key] = feed
                feeds.append(feed)

            def ours(text: str = text, feeds: list[Feed[Any]] = feeds, ws: Any = ours_ws) -> None:
                ws.handle_text_or_binary_message(text)
                for f in feeds:
                    f._queue.clear()

            path = _CcxtPath(ccxt_gw, ccxt_ws, route, symbol)
            path.handler(text)
            results = path.results()
            ours_ws.handle_text_or_binary_message(text)
            produced = sum(len(f._queue) for f in feeds)
            assert produced > 0, f"{label}: ours produced nothing"
            for _ in range(200):  # warm up
                path.handler(text)
                ours()
            decode = _best(args.repeat, args.n, lambda text=text: orjson.loads(text))
            handler = _best(args.repeat, args.n, lambda text=text, p=path: p.handler(text))
            mapping = _best(args.repeat, args.n, lambda p=path, r=results: p.mapping(r))
            mine = _best(args.repeat, args.n, ours)
            total = handler + mapping
            print(f"{exchange.value:8s} {label:13s} {decode:7.1f} {total:8.1f} {handler:9.1f} {mapping:10.1f} "
                  f"{mine:7.1f} {mine / total:9.2f}")  # fmt: skip
        await ours_gw.close()
        await ccxt_gw.close()
        if exchange is Exchange.OKX and args.inbox_rounds > 0:
            inbox_table = (registry, srv.url)
    if inbox_table is not None:
        await _inbox_table(*inbox_table, args.inbox_rounds)


if __name__ == "__main__":
    asyncio.run(run())
