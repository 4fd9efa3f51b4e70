"""Cost of turning one exchange push into domain objects, next to ccxt's own handling of it.

Run: ``.venv/bin/python bench/bench_ccxt_parse.py [--n N] [--repeat R]``

Per message (no socket; the WS handler is fed the decoded JSON, as in PERFORMANCE.md's ccxt yardstick):
- ccxt: ccxt.pro's handler alone (OKX ``orders`` fill push / Binance ORDER_TRADE_UPDATE fill); this is the
  yardstick, measured in the same run.
- ours: the gateway's raw-payload parsers alone (Order + FillReport from ``info``, exact Decimals).
- ccxt+ours: both, i.e. what a gateway stream costs per fill push.
Prints the best of R runs, in microseconds per message, and ours / ccxt.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import ccxt.pro as ccxtpro
from position_order_service.exchanges.ccxt import binance as bn
from position_order_service.exchanges.ccxt import okx

from position_order_service.domain.market import MarketInfo

OKX_INSTRUMENT = {
    "instId": "BTC-USDT-SWAP", "instType": "SWAP", "uly": "BTC-USDT", "instFamily": "BTC-USDT",
    "settleCcy": "USDT", "ctVal": "0.01", "ctValCcy": "BTC", "ctType": "linear", "lotSz": "0.01",
    "minSz": "0.01", "tickSz": "0.1", "lever": "100", "state": "live", "maxLmtSz": "100000000",
    "maxMktSz": "5000", "listTime": "1606468572000", "expTime": "", "baseCcy": "", "quoteCcy": "",
}  # fmt: skip
OKX_FILL_PUSH = {
    "arg": {"channel": "orders", "instType": "ANY", "uid": "1"},
    "data": [{
        "instType": "SWAP", "instId": "BTC-USDT-SWAP", "ordId": "643374807901998100", "clOrdId": "c1", "tag": "",
        "px": "", "sz": "10", "pnl": "0", "ordType": "market", "side": "buy", "posSide": "net", "tdMode": "cross",
        "accFillSz": "10", "fillPx": "60000.1", "tradeId": "143439020", "fillSz": "10",
        "fillTime": "1795306438744", "avgPx": "60000.1", "state": "filled", "lever": "10", "feeCcy": "USDT",
        "fee": "-3.000005", "fillFee": "-3.000005", "fillFeeCcy": "USDT", "execType": "T", "reduceOnly": "false",
        "cTime": "1795306438744", "uTime": "1795306438744", "algoId": "", "algoClOrdId": "",
    }],
}  # fmt: skip
BN_FILL_PUSH = {
    "e": "ORDER_TRADE_UPDATE", "E": 1795306431097, "T": 1795306431097,
    "o": {"s": "BTCUSDT", "c": "c1", "S": "BUY", "o": "MARKET", "f": "GTC", "q": "0.1", "p": "0",
          "ap": "60000.1", "sp": "0", "x": "TRADE", "X": "FILLED", "i": 4646334300, "l": "0.1", "z": "0.1",
          "L": "60000.1", "T": 1795306431097, "t": 206792150, "b": "0", "a": "0", "m": False, "R": False,
          "wt": "CONTRACT_PRICE", "ot": "MARKET", "ps": "BOTH", "cp": False, "rp": "0", "N": "USDT",
          "n": "2.400004"},
}  # fmt: skip
OKX_BTC = MarketInfo(
    "BTC-USDT-SWAP", "BTC/USDT:USDT", "BTC", "USDT", "USDT", Decimal("0.1"), Decimal("0.0001"),
    Decimal("0.0001"), Decimal("0.01"),
)  # fmt: skip
BN_BTC = MarketInfo(
    "BTCUSDT", "BTC/USDT:USDT", "BTC", "USDT", "USDT", Decimal("0.1"), Decimal("0.001"), Decimal("0.001")
)


def _okx_client() -> tuple[Any, Any]:
    ex = ccxtpro.okx({"newUpdates": True})
    ex.set_markets(ex.parse_markets([OKX_INSTRUMENT]))
    return ex, ex.client("ws://bench/ws/v5/private")


def _binance_client() -> tuple[Any, Any]:
    ex = ccxtpro.binanceusdm({"newUpdates": True})
    market = {
        "symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
        "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2,
        "quantityPrecision": 3, "onboardDate": 1569398400000, "deliveryDate": 4133404800000,
        "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.10", "minPrice": "0.1", "maxPrice": "1000000"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "1000"}],
        "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC"],
    }  # fmt: skip
    ex.set_markets([ex.parse_market(market)])
    return ex, ex.client("ws://bench/ws")


def _time(n: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _best(repeat: int, n: int, fn: Callable[[], object]) -> float:
    return min(_time(n, fn) for _ in range(repeat))


async def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    ex, client = _okx_client()
    raw = OKX_FILL_PUSH["data"][0]  # type: ignore[index]

    def okx_ccxt() -> None:
        ex.handle_message(client, copy.deepcopy(OKX_FILL_PUSH))

    def okx_ours() -> None:
        okx.parse_order(raw, OKX_BTC, "u")
        okx.parse_fill(raw, OKX_BTC)

    def okx_both() -> None:
        okx_ccxt()
        okx_ours()

    bex, bclient = _binance_client()
    braw = BN_FILL_PUSH["o"]

    def bn_ccxt() -> None:
        bex.handle_message(bclient, copy.deepcopy(BN_FILL_PUSH))

    def bn_ours() -> None:
        bn.parse_order(braw, BN_BTC, "u")  # type: ignore[arg-type]
        bn.parse_fill(braw, BN_BTC)  # type: ignore[arg-type]

    def bn_both() -> None:
        bn_ccxt()
        bn_ours()

    copy_cost = _best(args.repeat, args.n, lambda: copy.deepcopy(OKX_FILL_PUSH))
    print(f"python {sys.version.split()[0]}, n={args.n}, best of {args.repeat} (us per message)")
    print(f"(deepcopy of the push, included in the ccxt figures: {copy_cost:.1f} us)")
    for venue, fns in (("okx fill push", (okx_ccxt, okx_ours, okx_both)),
                       ("binance fill push", (bn_ccxt, bn_ours, bn_both))):  # fmt: skip
        c, o, b = (_best(args.repeat, args.n, f) for f in fns)
        print(f"{venue:18s} ccxt {c:7.1f}   ours {o:6.1f}   ccxt+ours {b:7.1f}   ours/ccxt {o / c:4.2f}")
    await ex.close()
    await bex.close()


if __name__ == "__main__":
    asyncio.run(run())
