"""Order round trip through the Binance wire front with the real ccxt.pro.binanceusdm client.

Run: ``.venv/bin/python bench/bench_sim_roundtrip_binance.py [--orders N] [--warmup W] [--in-process]``

One round trip = ``create_order(market)`` sent by ccxt (signed REST) -> wire front -> engine (fill) ->
ORDER_TRADE_UPDATE FILLED pushed on the user data stream -> seen by a task looping on ``watch_orders``.
Measured from just before ``create_order`` to the moment the watcher sees the order ``closed``; the REST
reply time alone is printed too. Orders are sequential (next one after the previous FILLED was seen),
alternating buy/sell on BTCUSDT. The simulator runs in a subprocess (``sim`` server) unless
``--in-process``. Target: p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aiohttp
import ccxt

from position_order_service.exchanges.ccxt_factory import make_client

SYMBOL = "BTC/USDT:USDT"
KEY = "bench-key"
SECRET = "bench-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(port: int) -> subprocess.Popen[bytes]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = f"from position_order_service.sim.server import run_sim; run_sim('binance', '127.0.0.1', {port}, False)"
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)


async def _wait_ready(url: str, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/fapi/v1/ping") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("simulator did not start")
            await asyncio.sleep(0.1)


async def _setup(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"api_key": KEY, "secret": SECRET, "balances": {"USDT": "100000000"}}
        async with session.post(url + "/sim/accounts", json=body) as resp:
            assert resp.status == 201, await resp.text()
        async with session.post(url + "/sim/prices", json={"symbol": "BTCUSDT", "price": "60000"}) as resp:
            assert resp.status == 200, await resp.text()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _run(url: str, orders: int, warmup: int) -> tuple[list[float], list[float]]:
    client = make_client("binance", url, KEY, SECRET)
    client.exceptions["exact"] = {**ccxt.binanceusdm().exceptions["exact"], **client.exceptions["exact"]}
    seen: dict[str, float] = {}
    arrived = asyncio.Event()

    async def watcher() -> None:
        while True:
            for o in await client.watch_orders(SYMBOL):
                if o["status"] == "closed" and o["id"] not in seen:
                    seen[o["id"]] = time.perf_counter()
                    arrived.set()

    try:
        await client.load_markets()
        task = asyncio.create_task(watcher())
        for _ in range(50):  # until the user stream is connected: an order's FILLED push comes back
            probe = await client.create_order(SYMBOL, "market", "buy", 0.01)
            await asyncio.sleep(0.2)
            if probe["id"] in seen:
                break
        else:
            raise TimeoutError("the user data stream never delivered a fill")
        round_trips: list[float] = []
        rest: list[float] = []
        gc.collect()
        for i in range(warmup + orders):
            side = "sell" if i % 2 == 0 else "buy"
            arrived.clear()
            t0 = time.perf_counter()
            order = await client.create_order(SYMBOL, "market", side, 0.01)
            t1 = time.perf_counter()
            while order["id"] not in seen:
                await asyncio.wait_for(arrived.wait(), 10)
                arrived.clear()
            if i >= warmup:
                rest.append((t1 - t0) * 1000)
                round_trips.append((seen[order["id"]] - t0) * 1000)
        task.cancel()
        return round_trips, rest
    finally:
        await client.close()


async def _main(args: argparse.Namespace) -> None:
    proc = None
    server = None
    if args.in_process:
        from position_order_service.sim.server import SimServer

        server = await SimServer("binance", port=0).start()
        url = server.url
    else:
        port = _free_port()
        proc = _spawn(port)
        url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(url)
        await _setup(url)
        round_trips, rest = await _run(url, args.orders, args.warmup)
    finally:
        if server is not None:
            await server.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    where = "in process" if args.in_process else "server in a subprocess"
    print(f"binance wire round trip, ccxt {ccxt.__version__}, Python {platform.python_version()}, {where}")
    print(f"N={len(round_trips)} sequential market orders after {args.warmup} warm-up")
    print(
        "create_order -> ORDER_TRADE_UPDATE FILLED via watch_orders: "
        f"p50 {statistics.median(round_trips):.2f} ms  p99 {_pct(round_trips, 99):.2f} ms  "
        f"max {max(round_trips):.2f} ms  (target p99 < 10 ms)"
    )
    print(
        f"create_order REST reply alone:                            p50 {statistics.median(rest):.2f} ms  "
        f"p99 {_pct(rest, 99):.2f} ms  max {max(rest):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--in-process", action="store_true", help="serve the simulator in the client's loop")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
