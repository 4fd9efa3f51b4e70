"""Memory per tracked user (issue 4), markets shared among the users' ccxt clients.

Run: ``.venv/bin/python bench/bench_memory_per_user.py [--quick] [-n 200] [--runs 2] [--tracemalloc]``

The OKX simulator runs in a subprocess (so its per-connection state is not counted); the service is
``create_app(Settings(sim="off", okx_base_url=<the simulator>, redis_url=..., key_prefix=bench:<uuid>:))`` run
through its lifespan, with the SQL history writer on (SQLite in a temp dir). Users are onboarded as an operator
does: an account on the simulator (control API), credentials stored (encrypted) and the user activated; each
gets an account actor with its ccxt.pro.okx client (markets attached by reference from the shared MarketRegistry), its
private and business WebSockets (orders, orders-algo, positions, my_trades), its reconciliation, and then holds
a small position and one resting limit order placed through the OrderManager (so the actor holds state and a
price stream is in use).

One warm-up user is onboarded first (the market table loads then, once for everybody); the figure is
(RSS with 1 + N users - RSS with 1 user) / N, after a full gc and a settle period. Also printed: the Python
heap share of it (tracemalloc, ``--tracemalloc``: slower, adds a breakdown by package of where it is allocated),
and per-user counts of sockets, asyncio tasks and gc-tracked objects. Each run is a fresh process. Targets: < 1 MB per user (issue 4), <= 400 KB (issue 15).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from position_order_service.app import create_app  # noqa: E402
from position_order_service.config import Settings  # noqa: E402
from position_order_service.domain.enums import OrderSide, OrderType  # noqa: E402
from position_order_service.exchanges.base import Credentials  # noqa: E402
from position_order_service.services.orders import OrderCommand  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
INST = "BTC-USDT-SWAP"
TARGET_MB = 1.0  # issue 4
TARGET_15_KB = 400.0  # issue 15: stays <= 400 KB per tracked account


def install_what_if() -> None:
    """What-if (no source change: the factory the gateway imports at call time is wrapped here): ccxt's
    WebSockets without permessage-deflate (ccxt asks for it by default: a zlib compressor + decompressor per
    socket) and one SSLContext shared by every client (ccxt builds one per client, loading the CA bundle)."""
    import ssl

    import certifi

    import position_order_service.exchanges.ccxt_factory as factory

    original = factory.make_client
    shared = ssl.create_default_context(cafile=certifi.where())

    def make_client(*args: Any, **kwargs: Any) -> Any:
        client = original(*args, **kwargs)
        client.options["ws"] = {**(client.options.get("ws") or {}), "compress": 0}
        client.ssl_context = shared
        return client

    factory.make_client = make_client  # type: ignore[assignment]


def fmt_list(values: Any, spec: str = ",.0f") -> str:
    return ", ".join(format(v, spec) for v in values)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_sim() -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = (
        "from position_order_service.sim.server import run_sim; "
        f"run_sim('okx', '127.0.0.1', {port}, False, limits=False)"  # many sockets at once: no venue limits
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/sim/state") as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError("simulator did not start")
            await asyncio.sleep(0.1)
        async with http.post(url + "/sim/prices", json={"symbol": INST, "price": "60000"}) as r:
            assert r.status == 200, await r.text()
    return proc, url


async def sim_accounts(url: str, users: list[str]) -> None:
    async with aiohttp.ClientSession() as http:
        for u in users:
            body = {"api_key": f"key-{u}", "secret": f"secret-{u}", "passphrase": f"pass-{u}",
                    "balances": {"USDT": "1000000"}}  # fmt: skip
            async with http.post(url + "/sim/accounts", json=body) as r:
                assert r.status == 201, await r.text()


async def onboard(ctx: Any, users: list[str]) -> None:
    for u in users:
        await ctx.credentials.put(u, "okx", Credentials(f"key-{u}", f"secret-{u}", f"pass-{u}"))
        await ctx.active_users.activate(u, ["okx"])
    for u in users:
        assert ctx.accounts.get(u, "okx") is not None, (
            f"{u} not tracked: {ctx.accounts.failures.get((u, 'okx'))}"
        )
        assert await ctx.accounts.wait_reconciled(u, "okx", 30), f"{u} account not reconciled"


async def give_state(ctx: Any, users: list[str]) -> None:
    """A small position and one resting limit order per user, through the service's OrderManager."""
    for u in users:
        for side, otype, price in (
            (OrderSide.BUY, OrderType.MARKET, None),
            (OrderSide.BUY, OrderType.LIMIT, "50000"),
        ):
            await ctx.order_manager.place(OrderCommand(
                user_id=u, exchange="okx", symbol=INST, side=side, order_type=otype, quantity=Decimal("0.01"),
                price=None if price is None else Decimal(price),
            ))  # fmt: skip


def counts(ctx: Any) -> dict[str, float]:
    gc.collect()
    ws = 0
    for (_u, _e), t in ctx.accounts.actors.items():
        client = getattr(t.gateway, "_client", None)
        ws += len(getattr(client, "clients", None) or {})
    return {
        "rss": rss_mb(),
        "fds": fds(),
        "tasks": len(asyncio.all_tasks()),
        "objects": len(gc.get_objects()),
        "ws": ws,
    }


def by_package(snapshot: tracemalloc.Snapshot, base: tracemalloc.Snapshot) -> list[tuple[str, float]]:
    groups: dict[str, float] = defaultdict(float)
    for stat in snapshot.compare_to(base, "filename"):
        name = stat.traceback[0].filename.replace("\\", "/")
        if "site-packages/" in name:
            pkg = name.split("site-packages/")[1].split("/")[0]
        elif "position_order_service" in name:
            pkg = "position_order_service/" + name.split("position_order_service/")[1].split("/")[0]
        elif "/lib/python3" in name:
            pkg = "stdlib: " + name.rsplit("/", 1)[-1]
        else:
            pkg = name.rsplit("/", 1)[-1]
        groups[pkg] += stat.size_diff
    return sorted(groups.items(), key=lambda kv: -kv[1])


async def run_once(n: int, settle_s: float, use_tracemalloc: bool) -> dict[str, Any]:
    proc, url = await start_sim()
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    tmp = tempfile.TemporaryDirectory(prefix="bench-mem-")
    users = [f"mem{i}" for i in range(n + 1)]
    out: dict[str, Any] = {}
    redis = Redis.from_url(REDIS_URL)
    try:
        await sim_accounts(url, users)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            redis_url=REDIS_URL,
            key_prefix=prefix,
            sim="off",
            okx_base_url=url,
            database_url=f"sqlite+aiosqlite:///{tmp.name}/history.sqlite3",
            credentials_key="bench-credentials-key-0123456789",
            log_level="WARNING",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            ctx = app.state.ctx
            await onboard(ctx, users[:1])
            await give_state(ctx, users[:1])
            await asyncio.sleep(settle_s)
            before = counts(ctx)
            if use_tracemalloc:
                tracemalloc.start(1)
                snap0 = tracemalloc.take_snapshot()
            t0 = time.perf_counter()
            await onboard(ctx, users[1:])
            out["onboard_s"] = time.perf_counter() - t0
            await give_state(ctx, users[1:])
            await asyncio.sleep(settle_s)
            after = counts(ctx)
            if use_tracemalloc:
                snap1 = tracemalloc.take_snapshot()
                out["py_heap_mb"] = sum(s.size_diff for s in snap1.compare_to(snap0, "filename")) / 1e6
                out["packages"] = by_package(snap1, snap0)
                tracemalloc.stop()
            healthy = sum(1 for t in ctx.accounts.actors.values() if t.health.state == "healthy")
            out.update({k: (after[k] - before[k]) / n for k in after})
            out["rss_total"] = after["rss"]
            out["healthy"] = healthy
            out["loaded"] = ctx.markets.get("okx", url) is not None
            # Shutdown closes the gateways one by one and each ccxt close() sleeps its timeout_on_exit
            # (250 ms): N users = N x 0.25 s. Closed here concurrently first, so the benchmark does not wait.
            t0 = time.perf_counter()
            await asyncio.gather(*(gw.close() for gw in list(ctx.gateways._users.values())))
            out["close_s"] = time.perf_counter() - t0
    finally:
        proc.terminate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)
        deleted = 0
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            deleted += await redis.unlink(key)
        out["deleted"] = deleted
        await redis.aclose()
        tmp.cleanup()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int, default=200, help="users tracked (after one warm-up user)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to let streams and snapshots settle")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    ap.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--what-if",
        action="store_true",
        help="measure with ws compression off and one shared SSLContext (see install_what_if)",
    )
    args = ap.parse_args()
    if args.quick:
        args.n, args.runs, args.settle = 50, 1, 2.0
    logging.basicConfig(level=logging.WARNING)
    if args.what_if:
        install_what_if()
    if args.one_run:  # a child: one measurement in a fresh process (RSS never shrinks back within one)
        out = await run_once(args.n, args.settle, args.tracemalloc)
        print("RESULT " + json.dumps(out))
        return
    results = []
    for _ in range(args.runs):
        cmd = [sys.executable, __file__, "--one-run", "-n", str(args.n), "--settle", str(args.settle)]
        cmd += ["--tracemalloc"] if args.tracemalloc else []
        cmd += ["--what-if"] if args.what_if else []
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await proc.communicate()
        line = next((x for x in stdout.decode().splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"measurement failed: {stderr.decode()[-3000:]}")
        results.append(json.loads(line[7:]))
    med = {
        k: statistics.median(r[k] for r in results)
        for k in ("rss", "fds", "tasks", "objects", "ws", "onboard_s")
    }
    print(f"memory per tracked user: service with sim off (simulator in a subprocess), history on; "
          f"python {platform.python_version()}, {os.cpu_count()} cpus; N={args.n} after 1 warm-up user; "
          f"medians of {args.runs} runs{'; WHAT-IF: ws compression off, one shared SSLContext' if args.what_if else ''}")  # fmt: skip
    print(f"rss per user: {med['rss'] * 1000:.0f} KB  (runs: {fmt_list((r['rss'] * 1000 for r in results), '.0f')} KB;"
          f" process rss {statistics.median(r['rss_total'] for r in results):.0f} MB; healthy accounts "
          f"{min(r['healthy'] for r in results)}/{args.n + 1})")  # fmt: skip
    if args.tracemalloc:
        heap = statistics.median(r["py_heap_mb"] for r in results) / args.n * 1000
        print(f"python heap per user (tracemalloc): {heap:.0f} KB; by package (run 1, per user):")
        for pkg, size in results[0]["packages"][:12]:
            print(f"    {pkg:<44} {size / args.n / 1000:7.1f} KB")
    print(f"per user: {med['ws']:.1f} ccxt ws clients, {med['fds']:.1f} file descriptors, {med['tasks']:.1f} asyncio "
          f"tasks, {med['objects']:,.0f} gc-tracked objects; onboarding took {med['onboard_s'] / args.n * 1000:.0f} ms/user")  # fmt: skip
    print(
        f"closing the {args.n + 1} gateways concurrently took {statistics.median(r['close_s'] for r in results):.2f} s "
        f"(the app's shutdown closes them one by one: each ccxt close() sleeps 250 ms -> ~{(args.n + 1) * 0.25:.0f} s)"
    )
    print(f"(cleaned up {sum(r['deleted'] for r in results)} keys)")
    v = med["rss"]
    print(
        f"target < {TARGET_MB:.0f} MB per user: {'met' if v < TARGET_MB else 'NOT met'} ({v * 1000:.0f} KB)"
    )
    kb = v * 1000
    print(f"target <= {TARGET_15_KB:.0f} KB per user (issue 15): {'met' if kb <= TARGET_15_KB else 'NOT met'} "
          f"({kb:.0f} KB)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
