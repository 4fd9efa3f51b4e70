"""Fill -> Pub/Sub latency on loopback (issue 4), through the real service wiring and the real ccxt client.

Run: ``.venv/bin/python bench/bench_fill_to_pubsub.py [--quick] [-n 300] [--rate 100] [--runs 3] [--no-history]``

The service is ``create_app(Settings(sim="on", sim_port=0, redis_url=..., key_prefix=bench:<uuid>:))`` run through
its lifespan: the in-process OKX simulator (wire front over HTTP+WS on 127.0.0.1), a user onboarded as an operator
would (account on the simulator, credentials stored encrypted, activated), tracked through the OkxGateway
(ccxt.pro.okx over the WebSocket, pushes parsed by the gateway), the account actors writing Redis with the APPLY script (state + PUBLISH + XADD),
the price hub, the trailing-stop and rule engines, and the SQL history writer (SQLite in a temp dir; off with
``--no-history``). The demo price feeds are stopped so nothing else moves.

A separate process subscribes to ``{prefix}orders:{user}:okx`` (redis-py, hiredis) and timestamps every message
with CLOCK_MONOTONIC as it is received; the benchmark timestamps with the same clock right before it makes the fill
happen on the engine. One sample = trigger -> receipt of the message that shows the order ``filled``:
  market: ``engine.place_order(market)`` (fills at once; live + filled pushed together);
  price:  a resting limit order (placed earlier, its ``order.created`` received) filled by ``engine.set_price``.
Sequential (the next fill after the previous message arrived) and paced at ``--rates`` fills/s (market; the
service process' CPU per fill is printed too; ``--profile`` adds a cProfile of the last paced phase).
Also printed: the same-run yardstick (PUBLISH from this process -> the same subscriber; PERFORMANCE.md: p50 ~250 us,
p99 ~0.7-1.2 ms) and, for the sequential market samples, trigger -> the account actor's OrderChanged on the bus (its write returned).
Targets: p99 < 20 ms (issue 4); p99 <= 5 ms at 1,000 fills/s paced (issue 15). Medians over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import logging
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from pauses import LoopPauses  # noqa: E402

from position_order_service.app import create_app  # noqa: E402
from position_order_service.config import Settings  # noqa: E402
from position_order_service.domain.messages import OrderChanged  # noqa: E402
from position_order_service.exchanges.base import Credentials  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
INST = "BTC-USDT-SWAP"
USER = "benchfill"
TARGET_P99_MS = 20.0  # issue 4
TARGET_15_RATE = 1000.0  # issue 15: p99 <= 5 ms at 1,000 fills/s paced
TARGET_15_P99_MS = 5.0
SIZE = Decimal("1")

SUBSCRIBER = r"""
import sys, time, orjson, redis
r = redis.Redis.from_url(sys.argv[1])
p = r.pubsub(ignore_subscribe_messages=True)
p.subscribe(sys.argv[2])
p.get_message(timeout=1.0)
sys.stdout.write("ready\n"); sys.stdout.flush()
for m in p.listen():
    t = time.monotonic()
    d = orjson.loads(m["data"])
    sys.stdout.write("%.7f\t%s\t%s\t%s\n" % (t, d.get("client_order_id"), d.get("status"), d.get("event_type")))
    sys.stdout.flush()
"""


class YoungPauses:
    """The longest young (generation 0 and 1) collection while a run measures: what higher thresholds cost."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        elif info.get("generation", 2) < 2:
            self.longest = max(self.longest, time.perf_counter() - self._t)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Receipts:
    """Reads the subscriber's lines; resolves waiters by (client order id, status)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: dict[tuple[str, str], float] = {}
        self.waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return
            parts = line.decode().rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            key = (parts[1], parts[2])
            t = float(parts[0])
            if key not in self.seen:
                self.seen[key] = t
                fut = self.waiters.pop(key, None)
                if fut is not None and not fut.done():
                    fut.set_result(t)

    async def wait(self, cid: str, status: str, within: float = 5.0) -> float:
        key = (cid, status)
        if key in self.seen:
            return self.seen[key]
        fut = self.waiters.setdefault(key, asyncio.get_running_loop().create_future())
        async with asyncio.timeout(within):
            return await fut


async def cleanup(redis: Redis, prefix: str) -> int:
    n = 0
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        n += await redis.unlink(key)
    return n


class InProcessExchange:
    """The simulator inside the service's process (`Settings(sim="on")`): its engine called directly."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def account(self, key: str) -> None:
        self.engine.create_account(key, "bench-secret", "bench-pass", balances={"USDT": "1000000000"})

    async def price(self, price: str) -> float:
        t0 = time.monotonic()
        self.engine.set_price(INST, price)
        return t0

    async def order(self, key: str, cid: str, side: str, px: str | None = None) -> float:
        extra = {"ord_type": "limit", "px": px} if px else {}
        t0 = time.monotonic()
        self.engine.place_order(key, INST, side, SIZE, client_order_id=cid, **extra)
        return t0

    async def pace(self, key: str, rate: float, n: int, prefix: str) -> tuple[list[tuple[str, float]], float]:
        sent: list[tuple[str, float]] = []
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            cid = f"{prefix}x{i}"
            sent.append((cid, await self.order(key, cid, "buy" if i % 2 == 0 else "sell")))
        return sent, n / (time.monotonic() - start)


class SubprocessExchange:
    """The simulator in a process of its own (bench/sim_driver.py), so that the service's process and the
    exchange do not share a core; fills are made, and timestamped, inside that process."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc, self.url = proc, url

    @classmethod
    async def start(cls) -> SubprocessExchange:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "sim_driver.py"), "okx",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24,  # a pace reply's lines
        )  # fmt: skip
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        return cls(proc, orjson.loads(first)["url"])

    async def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        await self.proc.stdin.drain()
        reply: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.proc.stdout.readline(), 120))
        if "error" in reply:
            raise RuntimeError(f"sim_driver {cmd['op']}: {reply['error']}")
        return reply

    async def account(self, key: str) -> None:
        await self.call(
            op="account", key=key, secret="bench-secret", passphrase="bench-pass", usdt="1000000000"
        )

    async def price(self, price: str) -> float:
        return float((await self.call(op="price", symbol=INST, price=price))["t0"])

    async def order(self, key: str, cid: str, side: str, px: str | None = None) -> float:
        extra = {"type": "limit", "px": px} if px else {}
        reply = await self.call(op="order", key=key, symbol=INST, side=side, size=str(SIZE), cid=cid, **extra)
        return float(reply["t0"])

    async def pace(self, key: str, rate: float, n: int, prefix: str) -> tuple[list[tuple[str, float]], float]:
        reply = await self.call(
            op="pace", key=key, symbol=INST, size=str(SIZE), rate=rate, n=n, prefix=prefix
        )
        return [(cid, t0) for cid, t0 in reply["sent"]], float(reply["rate"])

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5)


async def run_once(args: argparse.Namespace, run_no: int) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    tmp = tempfile.TemporaryDirectory(prefix="bench-fill-")
    remote = await SubprocessExchange.start() if args.sim_process else None
    where: dict[str, Any] = (
        {"sim": "off", "okx_base_url": remote.url} if remote else {"sim": "on", "sim_port": 0}
    )
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=REDIS_URL,
        key_prefix=prefix,
        history=not args.no_history,
        database_url=f"sqlite+aiosqlite:///{tmp.name}/history.sqlite3",
        credentials_key="bench-credentials-key-0123456789",
        log_level="WARNING",
        **where,
    )
    app = create_app(settings)
    redis = Redis.from_url(REDIS_URL)
    out: dict[str, Any] = {}
    sub: asyncio.subprocess.Process | None = None
    try:
        async with app.router.lifespan_context(app):
            ctx = app.state.ctx
            exchange: InProcessExchange | SubprocessExchange
            if remote is None:
                assert ctx.simulator is not None
                await (
                    ctx.simulator.ctx.stop_feeds()
                )  # the demo's random walks: nothing moves unless we move it
                exchange = InProcessExchange(ctx.simulator.ctx.engine)
            else:
                exchange = remote
            key = f"key-{USER}"
            await exchange.account(key)
            await exchange.price("60000")
            await ctx.credentials.put(USER, "okx", Credentials(key, "bench-secret", "bench-pass"))
            await ctx.active_users.activate(USER, ["okx"])
            assert await ctx.accounts.wait_reconciled(USER, "okx", 15), "account not reconciled"

            applied: dict[str, float] = {}

            def on_order(event: Any) -> None:
                order = event.order
                if order.status.value == "filled" and order.client_order_id:
                    applied.setdefault(order.client_order_id, time.monotonic())

            ctx.bus.subscribe("bench", on_order, OrderChanged)
            channel = ctx.store.channels.orders(USER, "okx")
            sub = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SUBSCRIBER, REDIS_URL, channel,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert sub.stdout is not None
            assert (await asyncio.wait_for(sub.stdout.readline(), 10)).strip() == b"ready"
            receipts = Receipts(sub)
            pauses = LoopPauses()
            pauses.start()
            gc_before = [g["collections"] for g in gc.get_stats()]
            young = YoungPauses()
            gc.callbacks.append(young)

            # yardstick: PUBLISH from this process to the same subscriber process
            yard: list[float] = []
            for i in range(args.n):
                cid = f"yard{run_no}x{i}"
                payload = orjson.dumps({"client_order_id": cid, "status": "yard", "event_type": "yard"})
                t0 = time.monotonic()
                await redis.publish(channel, payload)
                yard.append((await receipts.wait(cid, "yard")) - t0)
            out["yard"] = yard

            n_warm = 20

            # sequential market orders
            market: list[float] = []
            to_applied: list[float] = []
            for i in range(n_warm + args.n):
                cid = f"m{run_no}x{i}"
                t0 = await exchange.order(key, cid, "buy" if i % 2 == 0 else "sell")
                t1 = await receipts.wait(cid, "filled")
                if i >= n_warm:
                    market.append(t1 - t0)
                    if cid in applied:
                        to_applied.append(applied[cid] - t0)
            out["market"], out["applied"] = market, to_applied

            # sequential fills by price moves: a resting limit order, then set_price through it
            price_fills: list[float] = []
            for i in range(n_warm + args.n):
                cid = f"p{run_no}x{i}"
                buy = i % 2 == 0
                await exchange.order(key, cid, "buy" if buy else "sell", px="59990" if buy else "60010")
                await receipts.wait(cid, "open")
                t0 = await exchange.price("59980" if buy else "60020")
                t1 = await receipts.wait(cid, "filled")
                await exchange.price("60000")
                if i >= n_warm:
                    price_fills.append(t1 - t0)
            out["price"] = price_fills

            # paced market orders at each --rates fills/s
            for rate in args.rates:
                prof = (
                    cProfile.Profile() if (args.profile and run_no == 0 and rate == args.rates[-1]) else None
                )
                await asyncio.sleep(0.3)
                cpu0 = time.process_time()
                if prof is not None:
                    prof.enable()
                pending, achieved = await exchange.pace(key, rate, args.paced_n, f"r{rate:g}x{run_no}")
                paced = [(await receipts.wait(cid, "filled", within=60)) - t0 for cid, t0 in pending]
                await asyncio.sleep(0.2)
                if prof is not None:
                    prof.disable()
                    print_profile(prof, f"paced {rate:g}/s, {args.paced_n} fills")
                out[f"paced{rate:g}"], out[f"rate{rate:g}"] = paced, achieved
                out[f"cpu{rate:g}"] = (time.process_time() - cpu0) / args.paced_n
            ctx.bus.unsubscribe("bench")
            pauses.stop()
            out["gc2"], out["lags"] = pauses.gc2, pauses.lags
            out["objects"] = len(gc.get_objects())
            out["frozen"] = gc.get_freeze_count()
            gc.callbacks.remove(young)
            out["young"] = young.longest
            out["collections"] = [
                g["collections"] - n for g, n in zip(gc.get_stats(), gc_before, strict=True)
            ]
            receipts.task.cancel()
    finally:
        if sub is not None and sub.returncode is None:
            sub.terminate()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sub.wait(), 5)
        if remote is not None:
            await remote.close()
        out["deleted"] = await cleanup(redis, prefix)
        await redis.aclose()
        tmp.cleanup()
    return out


def print_profile(prof: cProfile.Profile, what: str) -> None:
    st = pstats.Stats(prof)
    groups: dict[str, float] = defaultdict(float)
    total = 0.0
    rows = []
    for (path, lineno, fn), (_cc, _nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        if "poll" in fn and "select" in fn:
            continue  # the loop waiting for sockets: idle, not work
        total += tt
        p = path.replace("\\", "/")
        for needle, group in (("/ccxt/", "ccxt"), ("position_order_service/sim", "simulator (in process)"),
                          ("position_order_service", "position_order_service"), ("/redis/", "redis-py"),
                          ("/aiohttp/", "aiohttp"), ("/sqlalchemy/", "sqlalchemy"), ("/pydantic", "pydantic"),
                          ("asyncio", "asyncio"), ("aiosqlite", "aiosqlite")):  # fmt: skip
            if needle in p:
                g = group
                break
        else:
            g = "builtins (C)" if p.startswith("~") else "other"
        groups[g] += tt
        rows.append((tt, ct, f"{p.split('site-packages/')[-1].split('src/')[-1]}:{lineno}:{fn}"))
    print(f"  cProfile ({what}; profiler overhead included): self time by package")
    for g, t in sorted(groups.items(), key=lambda kv: -kv[1])[:10]:
        print(f"    {g:<30} {100 * t / total:5.1f}%")
    print("  by own time (top 15):")
    for tt, _ct, name in sorted(rows, key=lambda r: -r[0])[:15]:
        print(f"    own {100 * tt / total:5.1f}%  {name}")
    print("  by cumulative time (project and ccxt entry points):")
    shown = 0
    for _tt, ct, name in sorted(rows, key=lambda r: -r[1]):
        if "position_order_service" in name or "ccxt/pro/okx" in name:
            print(f"    cum {100 * ct / total:5.1f}%  {name}")
            shown += 1
            if shown >= 22:
                break


def line(name: str, per_run: list[list[float]]) -> float:
    p50 = statistics.median(statistics.median(v) for v in per_run) * 1000
    p99 = statistics.median(pct(v, 99) for v in per_run) * 1000
    mx = statistics.median(max(v) for v in per_run) * 1000
    runs = ", ".join(f"{pct(v, 99) * 1000:.2f}" for v in per_run)
    print(f"{name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.2f} ms  (p99 per run: {runs})")
    return p99


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int, default=300, help="sequential samples per kind per run")
    ap.add_argument(
        "--rates",
        default="50,100,1000",
        help="paced market fills per second (comma-separated; 1000: issue 15)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the last paced phase of the first run")
    ap.add_argument("--paced-n", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--sim-process",
        action="store_true",
        help="run the simulator in a process of its own (bench/sim_driver.py), not in the service's",
    )
    ap.add_argument(
        "--no-history", action="store_true", help="run the service without the SQL history writer"
    )
    args = ap.parse_args()
    args.rates = [float(x) for x in args.rates.split(",")]
    if args.quick:
        args.n, args.paced_n, args.runs = 100, 200, 1
    logging.basicConfig(level=logging.WARNING)
    results = []
    for r in range(args.runs):
        results.append(await run_once(args, r))
    sim = (
        "the simulator in its own process"
        if args.sim_process
        else "create_app(sim=on): the simulator in process"
    )
    print(f"fill -> Pub/Sub on loopback: {sim} + OKX wire front + ccxt.pro.okx + account actor + Redis; "
          f"python {platform.python_version()}, {os.cpu_count()} cpus; history {'off' if args.no_history else 'on'}; "
          f"n={args.n} sequential per kind, {args.paced_n} paced; medians of {args.runs} runs")  # fmt: skip
    line("yardstick PUBLISH -> subscriber (same run)", [r["yard"] for r in results])
    p99 = line("fill (market order) -> pubsub, sequential", [r["market"] for r in results])
    line("  of which fill -> account actor write returned", [r["applied"] for r in results if r["applied"]])
    p99_price = line(
        "fill (set_price through a resting limit) -> pubsub, sequential", [r["price"] for r in results]
    )
    verdicts = [("sequential market", p99), ("sequential price move", p99_price)]
    for want in args.rates:
        rate = statistics.median(r[f"rate{want:g}"] for r in results)
        cpu_ms = statistics.median(r[f"cpu{want:g}"] for r in results) * 1000
        v = line(
            f"fill (market) -> pubsub, paced at {rate:.0f} fills/s", [r[f"paced{want:g}"] for r in results]
        )
        what = "ws, ccxt, actor, history" if args.sim_process else "sim, ws, ccxt, actor, history"
        print(f"  service process cpu per fill at {rate:.0f}/s: {cpu_ms:.2f} ms (everything: {what}; "
              f"{cpu_ms * rate / 10:.0f}% of one core over the phase and its drain)")  # fmt: skip
        verdicts.append((f"paced {rate:.0f}/s", v))
    gc2 = [x for r in results for x in r["gc2"]]
    lags = [x for r in results for x in r["lags"]]
    print(f"event loop stalls (1 ms sleeper, all phases): p99 {pct(lags, 99) * 1000:.2f} ms, max {max(lags) * 1000:.1f} ms; "
          f"full GC (gen 2) collections: {len(gc2)}, longest {max(gc2, default=0) * 1000:.0f} ms "
          f"({statistics.median(r['objects'] for r in results):,.0f} gc-tracked objects in the process, "
          f"{statistics.median(r['frozen'] for r in results):,.0f} frozen; thresholds {gc.get_threshold()}; "
          f"collections per generation {[sum(c) for c in zip(*(r['collections'] for r in results), strict=True)]}, "
          f"longest young one {max(r['young'] for r in results) * 1000:.1f} ms)")  # fmt: skip
    print(f"(cleaned up {sum(r['deleted'] for r in results)} keys)")
    for name, v in verdicts:
        print(
            f"target p99 < {TARGET_P99_MS:.0f} ms ({name}): {'met' if v < TARGET_P99_MS else 'NOT met'} ({v:.2f} ms)"
        )
    for want in args.rates:
        if want == TARGET_15_RATE:
            v = statistics.median(pct(r[f"paced{want:g}"], 99) for r in results) * 1000
            rate = statistics.median(r[f"rate{want:g}"] for r in results)
            met = v <= TARGET_15_P99_MS and rate >= 0.95 * want
            print(f"target p99 <= {TARGET_15_P99_MS:.0f} ms at {want:,.0f} fills/s paced (issue 15): "
                  f"{'met' if met else 'NOT met'} ({v:.2f} ms at {rate:,.0f}/s achieved)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
