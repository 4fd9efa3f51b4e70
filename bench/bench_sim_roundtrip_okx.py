"""Order round trip through the OKX simulator with the real ccxt.pro.okx client, on loopback.

Run: ``.venv/bin/python bench/bench_sim_roundtrip_okx.py [-n 500] [--warmup 50] [--inproc]``

One sample = from calling ``create_order`` (market, 1 contract BTC-USDT-SWAP, sides alternating) until the
``watch_orders`` push that shows that order filled has been parsed by ccxt: ccxt signs the REST request ->
wire front verifies and calls the engine -> the engine fills -> the WebSocket hub pushes -> ccxt parses it.
Samples are sequential (the next order starts after the push of the previous one arrived).

The simulator runs in a subprocess by default (``run_sim``), so the client's CPU is measured in isolation;
``--inproc`` serves it from the benchmark's own event loop instead. Target: p99 < 10 ms.
Also printed: the REST reply time alone (create_order returning) for the same samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from position_order_service.exchanges.ccxt_factory import make_client  # noqa: E402

KEY, SECRET, PASSPHRASE = "bench-key", "bench-secret", "bench-pass"
SYMBOL, INST = "BTC/USDT:USDT", "BTC-USDT-SWAP"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_up(http: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process | None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc is not None and proc.returncode is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url + "/sim/state") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError("simulator did not start")


async def _setup(http: aiohttp.ClientSession, url: str) -> None:
    account = {"api_key": KEY, "secret": SECRET, "passphrase": PASSPHRASE, "balances": {"USDT": "1000000000"}}
    async with http.post(url + "/sim/accounts", json=account) as resp:
        assert resp.status == 201, await resp.text()
    async with http.post(url + "/sim/prices", json={"symbol": INST, "price": "60000"}) as resp:
        assert resp.status == 200, await resp.text()


class FillWatcher:
    """Loops on watch_orders and timestamps the first push that shows each order filled."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.filled_at: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            orders = await self.client.watch_orders(SYMBOL)
            now = time.perf_counter()
            for o in orders:
                oid = o["id"]
                if o["status"] == "closed" and oid not in self.filled_at:
                    self.filled_at[oid] = now
                    fut = self.waiters.pop(oid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(now)

    async def wait(self, oid: str) -> float:
        if oid in self.filled_at:
            return self.filled_at[oid]
        fut = self.waiters[oid] = asyncio.get_running_loop().create_future()
        async with asyncio.timeout(5):
            return await fut


async def _run(url: str, n: int, warmup: int) -> tuple[list[float], list[float], float]:
    client = make_client("okx", url, KEY, SECRET, PASSPHRASE)
    try:
        await client.load_markets()
        watcher = FillWatcher(client)
        await asyncio.sleep(0.3)  # let the subscription settle (the first watch logs in and subscribes)
        roundtrip: list[float] = []
        rest: list[float] = []
        started = 0.0
        for i in range(warmup + n):
            if i == warmup:
                started = time.perf_counter()
            t0 = time.perf_counter()
            order = await client.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 1)
            t_rest = time.perf_counter()
            t_push = await watcher.wait(order["id"])
            if i >= warmup:
                rest.append((t_rest - t0) * 1000)
                roundtrip.append((max(t_push, t_rest) - t0) * 1000)
        elapsed = time.perf_counter() - started
        watcher.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher.task
        return roundtrip, rest, elapsed
    finally:
        await client.close()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _report(name: str, values: list[float]) -> None:
    print(
        f"{name:<34} p50 {statistics.median(values):6.2f} ms   p99 {_pct(values, 99):6.2f} ms   "
        f"max {max(values):6.2f} ms"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=500, help="samples (after warm-up)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--inproc", action="store_true", help="serve the simulator from this process")
    args = ap.parse_args()

    proc: asyncio.subprocess.Process | None = None
    server: Any = None
    if args.inproc:
        from position_order_service.sim.server import SimServer

        server = await SimServer("okx").start()
        url = server.url
    else:
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        code = f"from position_order_service.sim.server import run_sim; run_sim('okx', '127.0.0.1', {port}, False)"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, env=env, stdout=asyncio.subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await _wait_up(http, url, proc)
            await _setup(http, url)
        roundtrip, rest, elapsed = await _run(url, args.n, args.warmup)
    finally:
        if proc is not None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
        if server is not None:
            await server.stop()

    where = "in-process server" if args.inproc else "server in a subprocess"
    print(f"OKX order round trip via ccxt.pro.okx, {where}; python {platform.python_version()}, "
          f"{os.cpu_count()} cpus; n={args.n} after {args.warmup} warm-up")  # fmt: skip
    _report("create_order -> filled WS push", roundtrip)
    _report("create_order REST reply only", rest)
    print(f"rate: {args.n / elapsed:,.0f} round trips/s (sequential)")
    p99 = _pct(roundtrip, 99)
    print(f"target p99 < 10 ms: {'met' if p99 < 10 else 'NOT met'} ({p99:.2f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
