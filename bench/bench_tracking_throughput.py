"""Tracking throughput (issue 4): exchange order messages in -> Redis state + PUBLISH + XADD, on one core.

Run: ``.venv/bin/python bench/bench_tracking_throughput.py [--quick] [--users 1,100,1000] [--runs 3]
[--updates 30000] [--pushes ours|ccxt] [--profile] [--redis own|shared]``

Redis: ``--redis own`` (the default when ``redis-server`` is on the PATH) starts a private redis-server on a free
loopback port (no persistence) for the run, so INFO commandstats counts this benchmark's commands only; ``shared``
uses ``BENCH_REDIS_URL`` (default 127.0.0.1:6379, where other clients' commands are counted too).

The path measured, in one process and one event loop, per user (each user has its own OkxGateway and its own
ccxt.pro okx client, markets shared through the MarketRegistry as the app does):

1. OKX ``orders`` channel push messages (JSON text exactly as the simulator's OKX wire front sends them: the
   front's own ``order_dict(push=True)`` formatter, fed by a SimEngine that places limit orders and fills them
   in two steps: live -> partially_filled -> filled, 3 updates per order, 2 of them carrying a fill) are handed to
   the ccxt ws client's ``handle_text_or_binary_message`` (orjson decode -> the client's handle_message).
   ``--pushes ours`` (default, the gateway's hot path): the push tap hands the frame to the gateway's own
   parser, which queues domain Orders on the gateway's orders feed. ``--pushes ccxt``: ccxt's handle_orders ->
   handle_my_trades + parse_orders + ArrayCacheBySymbolById, read back the way ``watch_orders`` returns them
   (``getLimit`` + ``filter_by_symbol_since_limit``, newUpdates), then the gateway's mapping of ccxt's ``info``.
2. ``after_orders`` (returns the batch: a fired close-all algo sized; OKX: plus the algo behind a child order).
3. ``AccountActor (its turn)`` (stored-record/intent lookup for unseen orders, merge, ``writer.apply_many``:
   one pipelined EVALSHA per update doing HSET + index ops + PUBLISH + XADD) on the real Redis.

Delivery: one reader coroutine plays the socket (parses each message synchronously, as ccxt's reader does, and
yields to the loop after each message); one consumer task per user plays the tracker's stream loop and applies
whatever its stream queued since its last apply (so batches form the way they do in the service). The reader
pauses when more than ``--backlog`` messages are queued (socket flow control). Each order carries a client
order id whose intent record exists (as for orders placed through the service). A ``redis-cli PSUBSCRIBE`` on
the run's order channels receives the publications (a real subscriber, in another process).

Figures: updates/s (wall, one process) and updates per CPU-second of this process; the split of this
process' CPU between parsing (the socket reader's handling of a frame: ours, or ccxt's), the gateway mapping
(ccxt path only) and the rest (tracker + store + redis-py + asyncio);
Redis' time per update and per APPLY call (INFO commandstats deltas; a shared server: an upper bound), next to
the yardstick script's. Target: >= 5,000 updates/s per core (updates per CPU-second of this process).
Medians of ``--runs`` runs.

APPLY beside the yardstick (issue 15 item 3: <= 20 us of Redis time per event): the store's writes of orders
going through their life cycle (new, partially filled, filled; 100 users, as the actors write them: group
commit, delta updates) and the yardstick script, in alternating pipelines of 50 calls, each side's
``cmdstat_evalsha`` usec per call from INFO commandstats deltas.
``--profile`` adds a cProfile pass (1 user) grouped by package and the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from own_redis import start_own_redis  # noqa: E402

from position_order_service.bus import Bus  # noqa: E402
from position_order_service.exchanges.base import Credentials  # noqa: E402
from position_order_service.exchanges.ccxt_base import PushParsing  # noqa: E402
from position_order_service.exchanges.markets import MarketRegistry  # noqa: E402
from position_order_service.exchanges.okx.gateway import OkxGateway  # noqa: E402
from position_order_service.exchanges.push_streams import Feed  # noqa: E402
from position_order_service.services.account import AccountActor, AccountOptions  # noqa: E402
from position_order_service.services.account.messages import StreamOrders  # noqa: E402
from position_order_service.sim.engine import OrderEvent, SimEngine, wall_clock_ms  # noqa: E402
from position_order_service.sim.okx.fmt import order_dict  # noqa: E402
from position_order_service.sim.server import SimServer  # noqa: E402
from position_order_service.store import Store  # noqa: E402
from position_order_service.store.connection import make_redis  # noqa: E402
from position_order_service.store.intents import INTENT_TTL_S  # noqa: E402
from position_order_service.supervisor import Supervisor  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
INST = "BTC-USDT-SWAP"
TARGET = 5000.0
TARGET_APPLY_US = 20.0


def fmt_list(values: Any, spec: str = ",.0f") -> str:
    return ", ".join(format(v, spec) for v in values)


# ----------------------------------------------------------------------------------------- messages
def make_messages(users: list[str], orders_per_user: int, rounds: int) -> list[list[tuple[int, str, str]]]:
    """Per round: [(user index, client order id, message text)] in the order the exchange emits them."""
    eng = SimEngine("okx", seed=7, clock=wall_clock_ms)
    acc_to_user: dict[str, int] = {}
    uid_of: dict[int, str] = {}
    for i, _ in enumerate(users):
        acc = eng.create_account(f"k{i}", "s", "p", balances={"USDT": "1000000000"})
        acc_to_user[acc.account_id] = i
        uid_of[i] = acc.account_id
    eng.set_price(INST, "60000")
    eng.set_max_fill_per_step(INST, "1")  # fills in two steps: partially_filled, then filled
    out: list[tuple[int, str, str]] = []

    def on_event(ev: Any) -> None:
        if isinstance(ev, OrderEvent):
            u = acc_to_user[ev.account_id]
            arg = {"channel": "orders", "instType": "SWAP", "uid": uid_of[u]}
            data = [order_dict(ev.order, ev.fill, push=True)]
            out.append((u, ev.order.client_order_id or "", orjson.dumps({"arg": arg, "data": data}).decode()))

    eng.subscribe(on_event)
    per_round: list[list[tuple[int, str, str]]] = []
    n = 0
    for _ in range(rounds):
        out.clear()
        for j in range(orders_per_user):
            side, px, cross = ("buy", "59990", "59980") if j % 2 == 0 else ("sell", "60010", "60020")
            for i in range(len(users)):
                n += 1
                eng.place_order(f"k{i}", INST, side, "2", ord_type="limit", px=px, client_order_id=f"bn{n}")
            eng.set_price(INST, cross)  # first fill step (partially_filled)
            eng.set_price(INST, cross)  # second (filled)
            eng.set_price(INST, "60000")
        per_round.append(list(out))
    return per_round


# ----------------------------------------------------------------------------------------- the user
class BenchUser:
    def __init__(self, user_id: str, gateway: OkxGateway, actor: AccountActor) -> None:
        self.user_id = user_id
        self.gateway = gateway
        self.actor = actor
        self.arrivals = 0
        self.client = gateway.client  # the ccxt.pro okx client (markets attached by reference)
        self.ws = self.client.client(f"ws://bench/{user_id}/ws/v5/private")  # not connected: fed by hand
        self.pending: list[Any] = []
        self.wake = asyncio.Event()
        # ours: the gateway's orders feed, without the subscription (nothing connects: the bench plays the socket)
        self.feed: Feed[Any] | None = None
        if gateway.pushes == "ours":
            self.feed = gateway._feeds["orders"] = Feed([])


class Meter:
    def __init__(self) -> None:
        self.ccxt_s = 0.0
        self.map_s = 0.0
        self.applied = 0
        self.batches: list[int] = []


async def consumer(u: BenchUser, meter: Meter, stop: asyncio.Event, expected: dict[str, int]) -> None:
    """The account's stream pump and actor turn: everything queued since the last call, mapped, applied (the
    actor's turn runs in this task: one consumer per account, as one actor per account)."""
    while True:
        if not u.pending:
            if stop.is_set():
                return
            u.wake.clear()
            await u.wake.wait()
            continue
        batches, u.pending = u.pending, []
        t0 = time.perf_counter()
        if u.feed is not None:
            orders = await u.feed.next() if batches else []  # parsed already, by the reader
        else:
            orders = [o for b in batches for o in u.gateway._orders_from_ccxt(b)]
        meter.map_s += time.perf_counter() - t0
        orders = await u.gateway.after_orders(orders)  # the batch, sized, plus what it implies
        meter.batches.append(len(orders))
        u.arrivals += 1
        await u.actor._handle(u.arrivals, StreamOrders(orders))
        meter.applied += len(orders)
        expected[u.user_id] -= len(batches)


async def run_round(
    bench_users: list[BenchUser], messages: list[tuple[int, str, str]], backlog: int
) -> dict[str, float]:
    meter = Meter()
    stop = asyncio.Event()
    expected = {u.user_id: 0 for u in bench_users}
    for ui, _, _ in messages:
        expected[bench_users[ui].user_id] += 1
    tasks = [asyncio.create_task(consumer(u, meter, stop, expected)) for u in bench_users]
    queued = 0
    gc.collect()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for ui, _, text in messages:
        u = bench_users[ui]
        c0 = time.perf_counter()
        u.ws.handle_text_or_binary_message(text)  # decode + the tap (ours) or handle_orders (ccxt)
        batch: Any = True
        if u.feed is None:
            stored = u.client.orders
            limit = stored.getLimit(None, None)  # what watch_orders returns (newUpdates)
            batch = u.client.filter_by_symbol_since_limit(stored, None, None, limit, True)
        meter.ccxt_s += time.perf_counter() - c0
        u.pending.append(batch)
        u.wake.set()
        await asyncio.sleep(0)
        queued += 1
        if queued >= backlog:
            while sum(len(x.pending) for x in bench_users) > backlog // 2:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            queued = 0
    stop.set()
    for u in bench_users:
        u.wake.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    assert all(v == 0 for v in expected.values()), "not every message was applied"
    return {
        "updates": meter.applied,
        "messages": len(messages),
        "wall": wall,
        "cpu": cpu,
        "ccxt": meter.ccxt_s,
        "map": meter.map_s,
        "batch_p50": statistics.median(meter.batches) if meter.batches else 0,
        "batch_mean": statistics.fmean(meter.batches) if meter.batches else 0,
    }


async def seed_intents(store: Store, users: list[str], messages: list[tuple[int, str, str]]) -> None:
    """Intent records for every client order id (written before the order is sent, as commands do)."""
    seen: set[tuple[int, str]] = set()
    pipe = store.redis.pipeline(transaction=False)
    count = 0
    for ui, cid, _ in messages:
        if not cid or (ui, cid) in seen:
            continue
        seen.add((ui, cid))
        key = store.keys.client_order(users[ui], "okx", cid)
        body = {"client_order_id": cid, "order_type": "limit", "grid_level": "", "metadata": "{}",
                "request": "{}", "state": "sent"}  # fmt: skip
        pipe.hset(key, mapping=body)
        pipe.expire(key, INTENT_TTL_S)
        count += 1
        if count % 2000 == 0:
            await pipe.execute()
    await pipe.execute()


async def redis_cmd_usec(redis: Redis) -> tuple[float, float, float, dict[str, float]]:
    """(evalsha calls, evalsha usec, usec of all commands, usec by command) from INFO commandstats
    (server-wide: other clients of a shared Redis are included, so read the deltas as an upper bound; the
    commands a script runs are counted both in their own entry and in the script's)."""
    info = await redis.info("commandstats")
    calls = usec = total = 0.0
    by_cmd: dict[str, float] = {}
    for name, st in info.items():
        by_cmd[name.removeprefix("cmdstat_")] = float(st["usec"])
        total += float(st["usec"])
        if name == "cmdstat_evalsha":
            calls, usec = float(st["calls"]), float(st["usec"])
    return calls, usec, total, by_cmd


async def cleanup(redis: Redis, prefix: str) -> int:
    n = 0
    batch: list[Any] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            n += await redis.unlink(*batch)
            batch = []
    if batch:
        n += await redis.unlink(*batch)
    return n


# ----------------------------------------------------------------------------------------- yardstick
YARDSTICK_LUA = """
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10000, '*', 'data', ARGV[3])
return 1
"""


async def yardstick(redis: Redis, prefix: str, n: int) -> float:
    """PERFORMANCE.md's Python-side yardstick: one Lua script per event (HSET 12 fields + SADD + PUBLISH +
    XADD MAXLEN ~10000), redis-py asyncio, pipelined 50 per round trip (reference machine: ~14k events/s)."""
    sha = await redis.script_load(YARDSTICK_LUA)
    fields: list[str] = []
    for i in range(12):
        fields += [f"field{i}", f"{60000 + i}.12345678"]
    payload = orjson.dumps(dict(zip(fields[::2], fields[1::2], strict=True))).decode()
    keys = [f"{prefix}yard:h", f"{prefix}yard:s", f"{prefix}yard:x"]
    t0 = time.perf_counter()
    for start in range(0, n, 50):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(n, start + 50)):
            pipe.evalsha(sha, 3, *keys, f"m{i % 100}", f"{prefix}yard:ch", payload, *fields)
        await pipe.execute()
    return n / (time.perf_counter() - t0)


async def micro_costs(gw: OkxGateway, store: Store, text: str) -> dict[str, float]:
    """Per-update costs of the main pieces, in isolation (us)."""
    import hiredis
    from redis.asyncio.connection import Connection

    from position_order_service.domain.reconcile import merge_order_report

    ccxt_gw = OkxGateway(gw.user_id, None, gw._base_url, gw._registry, pushes="ccxt")
    client = ccxt_gw.client
    ws = client.client("ws://bench/micro/ws/v5/private")
    ws.handle_text_or_binary_message(text)
    items = client.filter_by_symbol_since_limit(client.orders, None, None, 1, True)
    order = ccxt_gw._orders_from_ccxt(items)[0]
    ours_gw = OkxGateway(gw.user_id, None, gw._base_url, gw._registry, pushes="ours")
    feed: Feed[Any] = Feed([])
    ours_gw._feeds["orders"] = feed
    ours_ws = ours_gw.client.client("ws://bench/micro-ours/ws/v5/private")

    def ours() -> None:
        ours_ws.handle_text_or_binary_message(text)
        feed._queue.clear()

    write = store.orders.write_for(order)
    call = store.writer._apply_call(write)
    keys, args = call.keys, call.args
    cmd = ("EVALSHA", store.writer._apply.sha, len(keys), *keys, *args)
    conn = Connection()
    n = 2000
    out: dict[str, float] = {"args": float(len(cmd))}
    for name, fn in (
        ("ccxt handle_message (this push)", lambda: ws.handle_text_or_binary_message(text)),
        ("gateway mapping of ccxt's result", lambda: ccxt_gw._orders_from_ccxt(items)),
        ("ours: decode + tap + parse (this push)", ours),
        ("merge_order (known order)", lambda: merge_order_report(order, order)),
        ("OrderRepository.write_for", lambda: store.orders.write_for(order)),
        ("EventWriter._apply_call", lambda: store.writer._apply_call(write)),
        ("redis-py pack_command (python)", lambda: conn.pack_command(*cmd)),
        ("hiredis.pack_command (C, same args)", lambda: hiredis.pack_command(cmd)),
    ):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out[name] = 1e6 * (time.perf_counter() - t0) / n
    await asyncio.gather(ccxt_gw.close(), ours_gw.close())
    return out


# ----------------------------------------------------------------------------------------- APPLY vs yardstick
async def evalsha_stats(redis: Redis) -> tuple[float, float]:
    st = (await redis.info("commandstats")).get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return float(st["calls"]), float(st["usec"])


async def apply_vs_yardstick(
    redis: Redis, prefix: str, users: int = 100, orders: int = 10
) -> tuple[float, float, list[float]]:
    """(APPLY usec per event, yardstick usec per call, APPLY usec per event of each step: new, partially
    filled, filled): alternating pipelines of 50 calls on the same server."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from position_order_service.domain.enums import OrderStatus
    from position_order_service.domain.models import Order

    store = Store.create(redis, prefix=f"{prefix}apply{uuid.uuid4().hex[:6]}:")
    t0 = datetime.now(UTC)
    steps = ((OrderStatus.OPEN, "0"), (OrderStatus.PARTIALLY_FILLED, "1"), (OrderStatus.FILLED, "2"))
    writes = [
        store.orders.write_for(Order(
            exchange_order_id=f"o{j}", client_order_id=f"c{j}", user_id=f"u{u}", exchange="okx",
            symbol="BTC/USDT:USDT", side="buy", order_type="limit", quantity=Decimal("2"), price=Decimal("59990"),
            filled_qty=Decimal(filled), avg_fill_price=Decimal("59990") if filled != "0" else None, status=status,
            created_at=t0, updated_at=t0 + timedelta(milliseconds=10 * j + k),
        ))
        for j in range(orders) for k, (status, filled) in enumerate(steps) for u in range(users)
    ]  # fmt: skip
    sha = await redis.script_load(YARDSTICK_LUA)
    fields: list[str] = []
    for i in range(12):
        fields += [f"field{i}", f"{60000 + i}.12345678"]
    payload = "x" * 700
    ykeys = [f"{prefix}yard:h", f"{prefix}yard:s", f"{prefix}yard:x"]
    apply_calls = apply_us = yard_calls = yard_us = 0.0
    by_step = [[0.0, 0.0] for _ in steps]  # calls, usec
    assert users % 50 == 0, "a pipeline of 50 holds writes of one step"
    for i in range(0, len(writes), 50):
        a = await evalsha_stats(redis)
        pipe = redis.pipeline(transaction=False)
        for j in range(50):
            pipe.evalsha(sha, 3, *ykeys, f"m{j}", f"{prefix}yard:ch", payload, *fields)
        await pipe.execute()
        b = await evalsha_stats(redis)
        results = await store.writer.apply_many(writes[i : i + 50])
        c = await evalsha_stats(redis)
        assert all(r.applied for r in results)
        yard_calls += b[0] - a[0]
        yard_us += b[1] - a[1]
        apply_calls += c[0] - b[0]
        apply_us += c[1] - b[1]
        step = by_step[(i // users) % len(steps)]  # writes go by order, then step, then user
        step[0] += c[0] - b[0]
        step[1] += c[1] - b[1]
    return (
        apply_us / max(1.0, apply_calls),
        yard_us / max(1.0, yard_calls),
        [us / max(1.0, n) for n, us in by_step],
    )


# ----------------------------------------------------------------------------------------- one config
async def bench_config(
    n_users: int, total_updates: int, runs: int, backlog: int, registry: MarketRegistry, base_url: str,
    redis: Redis, prefix: str, pushes: PushParsing, profile: bool = False,
) -> list[dict[str, float]]:  # fmt: skip
    store = Store.create(redis, prefix=prefix)
    trips = [0, 0]  # the group commit's round trips and the commands they carried
    pipelined = store.writer.pipelined

    async def counted(commands: list[tuple[Any, ...]]) -> list[Any]:
        trips[0] += 1
        trips[1] += len(commands)
        return await pipelined(commands)

    store.writer.pipelined = counted  # type: ignore[method-assign]
    supervisor = Supervisor("bench")
    bus = Bus(supervisor)
    users = [f"u{n_users}x{i}" for i in range(n_users)]
    orders_per_user = max(1, total_updates // (3 * n_users))
    t_setup = time.perf_counter()
    rounds = make_messages(users, orders_per_user, runs + 1 + int(profile))  # round 0: warm-up
    rounds[0] = rounds[0][: max(3 * n_users, len(rounds[0]) // 3)]
    bench_users = []
    for uid in users:
        gw = OkxGateway(uid, Credentials("k", "s", "p"), base_url=base_url, registry=registry, pushes=pushes)
        actor = AccountActor(
            uid, "okx", gw, store, bus, supervisor.scope(uid), AccountOptions(), lambda *_: None
        )
        bench_users.append(BenchUser(uid, gw, actor))
    for msgs in rounds:
        await seed_intents(store, users, msgs)
    setup_s = time.perf_counter() - t_setup
    if n_users == 1:
        fill_push = next(t for _, _, t in rounds[0] if '"state":"filled"' in t)
        micro = await micro_costs(bench_users[0].gateway, store, fill_push)
        print(
            f"  per-update costs in isolation (a fill push; EVALSHA with {micro.pop('args'):.0f} arguments):"
        )
        for name, us in micro.items():
            print(f"    {name:<38} {us:7.1f} us")
    results = []
    for r, msgs in enumerate(rounds):
        rc0 = await redis_cmd_usec(redis)
        trips[:] = [0, 0]
        prof = cProfile.Profile() if (profile and r == len(rounds) - 1) else None
        if prof is not None:
            prof.enable()
        res = await run_round(bench_users, msgs, backlog)
        if prof is not None:
            prof.disable()
            print_profile(prof, res)
            continue
        rc1 = await redis_cmd_usec(redis)
        res["trips"], res["trip_commands"] = trips
        res["evalsha_us"] = (rc1[1] - rc0[1]) / max(1.0, rc1[0] - rc0[0])
        res["redis_us"] = rc1[2] - rc0[2]
        for cmd, us in rc1[3].items():
            res[f"cmd:{cmd}"] = us - rc0[3].get(cmd, 0.0)
        pool = redis.connection_pool
        res["conns"] = len(pool._available_connections) + len(pool._in_use_connections)  # type: ignore[attr-defined]
        if r > 0:
            results.append(res)
    # concurrently: each ccxt close() sleeps timeout_on_exit (250 ms)
    await asyncio.gather(*(u.gateway.close() for u in bench_users))
    print(f"  ({n_users} users: {orders_per_user} orders/user/run, {len(rounds[-1])} messages/run, "
          f"setup {setup_s:.1f} s)")  # fmt: skip
    return results


def print_profile(prof: cProfile.Profile, res: dict[str, float]) -> None:
    st = pstats.Stats(prof)
    groups: dict[str, float] = defaultdict(float)
    total = 0.0
    rows = []
    for (path, line, fn), (_cc, _nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        total += tt
        p = path.replace("\\", "/")
        if "/ccxt/" in p:
            g = "ccxt"
        elif "position_order_service" in p:
            g = "position_order_service"
        elif "/redis/" in p:
            g = "redis-py"
        elif "/pydantic" in p:
            g = "pydantic"
        elif "asyncio" in p or "selectors" in p:
            g = "asyncio"
        elif p.startswith("~") or "{" in fn:
            g = "builtins (C, called from the above)"
        else:
            g = "other: " + p.rsplit("/", 1)[-1]
        groups[g] += tt
        rows.append((tt, ct, f"{p.split('site-packages/')[-1].split('src/')[-1]}:{line}:{fn}"))
    print(f"  cProfile (1 round, {res['updates']:.0f} updates, profiler overhead included): "
          f"self time by package")  # fmt: skip
    for g, t in sorted(groups.items(), key=lambda kv: -kv[1])[:10]:
        print(f"    {g:<40} {100 * t / total:5.1f}%")
    print("  top functions by self time:")
    for tt, ct, name in sorted(rows, reverse=True)[:18]:
        print(f"    {100 * tt / total:5.1f}%  cum {100 * ct / total:5.1f}%  {name}")
    cum = sorted(rows, key=lambda r: -r[1])
    print("  our entry points by cumulative time:")
    shown = 0
    for _tt, ct, name in cum:
        if "position_order_service" in name or "ccxt/pro/okx" in name or "ws/client.py" in name:
            print(f"    cum {100 * ct / total:5.1f}%  {name}")
            shown += 1
            if shown >= 14:
                break


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer updates and runs")
    ap.add_argument("--users", default="1,100,1000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--updates", type=int, default=4500, help="updates per run")
    ap.add_argument("--backlog", type=int, default=2000, help="max messages queued before the reader pauses")
    ap.add_argument("--pushes", choices=("ours", "ccxt"), default="ours", help="who parses the pushes")
    ap.add_argument("--profile", action="store_true", help="cProfile one extra round of the first config")
    ap.add_argument(
        "--redis", choices=("own", "shared"), default="own" if shutil.which("redis-server") else "shared",
        help="own: a private redis-server for the run (clean commandstats); shared: BENCH_REDIS_URL",
    )  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.runs, args.updates = 1, 3000

    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    own: subprocess.Popen[bytes] | None = None
    redis_url = REDIS_URL
    if args.redis == "own":
        own, redis_url = start_own_redis()
    redis = make_redis(redis_url)
    await redis.ping()
    sim = await SimServer("okx").start()  # only to load the markets the way the gateways do
    registry = MarketRegistry()
    await registry.load("okx", sim.url)
    sub = subprocess.Popen(  # noqa: ASYNC220 (a long-lived helper, started once)
        ["redis-cli", "-u", redis_url, "psubscribe", f"{prefix}orders:*"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    path = "our parser" if args.pushes == "ours" else "ccxt.pro's parser -> gateway mapping"
    print(f"tracking throughput: OKX orders push -> {path} -> AccountActor (its turn) "
          f"-> Redis; python {platform.python_version()}, {os.cpu_count()} cpus, {args.runs} runs, "
          f"~{args.updates} updates/run; redis: {'a private redis-server' if own else redis_url}")  # fmt: skip
    summary: list[tuple[int, float, float]] = []
    apply_runs: list[tuple[float, float, list[float]]] = []
    try:
        y0 = await redis_cmd_usec(redis)
        yard = statistics.median(
            [await yardstick(redis, prefix, 5000 if args.quick else 10000) for _ in range(3)]
        )
        y1 = await redis_cmd_usec(redis)
        yard_lua_us = (y1[1] - y0[1]) / max(1.0, y1[0] - y0[0])
        print(f"yardstick (Lua HSET12+SADD+PUBLISH+XADD, pipelined 50/round trip, same run): {yard:,.0f} events/s "
              f"(reference machine ~14,000); its script costs Redis {yard_lua_us:.1f} us/call here "
              f"(reference ~10-11)")  # fmt: skip
        apply_runs.append(await apply_vs_yardstick(redis, prefix))
        for i, n in enumerate(int(x) for x in args.users.split(",")):
            res = await bench_config(
                n, args.updates, args.runs, args.backlog, registry, sim.url, redis, prefix, args.pushes,
                profile=args.profile and i == 0,
            )  # fmt: skip
            med = {k: statistics.median(r[k] for r in res) for k in res[0]}
            rate = statistics.median(r["updates"] / r["wall"] for r in res)
            per_cpu = statistics.median(r["updates"] / r["cpu"] for r in res)
            ccxt_share = statistics.median(r["ccxt"] / r["cpu"] for r in res)
            map_share = statistics.median(r["map"] / r["cpu"] for r in res)
            cpu_share = statistics.median(r["cpu"] / r["wall"] for r in res)
            ccxt_us = statistics.median(1e6 * r["ccxt"] / r["messages"] for r in res)
            rest_us = statistics.median(1e6 * (r["cpu"] - r["ccxt"] - r["map"]) / r["updates"] for r in res)
            map_us = statistics.median(1e6 * r["map"] / r["updates"] for r in res)
            redis_us = statistics.median(r["redis_us"] / r["updates"] for r in res)
            evalsha_us = statistics.median(r["evalsha_us"] for r in res)
            summary.append((n, rate, per_cpu))
            print(f"throughput {n} users: {rate:,.0f} updates/s  (runs: "
                  f"{fmt_list(r['updates'] / r['wall'] for r in res)}; process busy {100 * cpu_share:.0f}%"
                  f" of wall; batch p50 {med['batch_p50']:.0f}, mean {med['batch_mean']:.1f} updates; group commit: "
                  f"{med['trips'] / med['updates']:.2f} round trips per update, "
                  f"{med['trip_commands'] / max(1.0, med['trips']):.1f} commands per round trip)")  # fmt: skip
            print(f"throughput per cpu-second {n} users: {per_cpu:,.0f} updates/s")
            print(f"cpu share {n} users: parsing ({args.pushes}) {100 * ccxt_share:.0f}% ({ccxt_us:.0f} us/message), "
                  f"gateway mapping {100 * map_share:.0f}% ({map_us:.0f} us/update), tracker+store+redis-py+loop "
                  f"{100 * (1 - ccxt_share - map_share):.0f}% ({rest_us:.0f} us/update)")  # fmt: skip
            print(f"redis time {n} users: {redis_us:.1f} us/update in commands, APPLY script {evalsha_us:.1f} us/call "
                  f"(INFO commandstats; the yardstick's script: {yard_lua_us:.1f} us/call); client connections opened: "
                  f"{max(r['conns'] for r in res):.0f}")  # fmt: skip
            by_cmd = sorted(
                (
                    (k[4:], statistics.median(r.get(k, 0.0) / r["updates"] for r in res))
                    for k in res[0]
                    if k[:4] == "cmd:"
                ),
                key=lambda kv: -kv[1],
            )
            print(f"  redis us/update by command (a script's commands count in it too): "
                  f"{', '.join(f'{k} {v:.1f}' for k, v in by_cmd[:9] if k != 'info')}")  # fmt: skip
            print(f"ratio to yardstick {n} users: {rate / yard:.2f}")
        apply_runs.append(await apply_vs_yardstick(redis, prefix))
        for i, (a_us, y_us, steps_us) in enumerate(apply_runs):
            print(f"APPLY beside the yardstick ({'before' if i == 0 else 'after'} the tracking runs; orders new -> "
                  f"partially filled -> filled, 100 users, alternating pipelines of 50): APPLY {a_us:.1f} us/event, "
                  f"yardstick script {y_us:.1f} us/call (ratio {a_us / y_us:.2f}; APPLY by step: new {steps_us[0]:.1f}, "
                  f"partially filled {steps_us[1]:.1f}, filled {steps_us[2]:.1f} us)")  # fmt: skip
    finally:
        sub.terminate()
        with contextlib.suppress(Exception):
            sub.wait(5)
        await sim.stop()
        deleted = await cleanup(redis, prefix)
        await redis.aclose()
        if own is not None:
            own.terminate()
            with contextlib.suppress(Exception):
                own.wait(5)
        print(f"(cleaned up {deleted} keys under {prefix})")
    for n, rate, per_cpu in summary:
        print(f"target >= {TARGET:,.0f} updates/s per core, {n} users: {'met' if per_cpu >= TARGET else 'NOT met'} "
              f"({per_cpu:,.0f} per cpu-second; wall {rate:,.0f}/s)")  # fmt: skip
    if apply_runs:
        worst = max(a for a, _, _ in apply_runs)
        print(f"target APPLY <= {TARGET_APPLY_US:.0f} us of Redis time per event: "
              f"{'met' if worst <= TARGET_APPLY_US else 'NOT met'} ({', '.join(f'{a:.1f}' for a, _, _ in apply_runs)} us; "
              f"yardstick {', '.join(f'{y:.1f}' for _, y, _ in apply_runs)} us)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
