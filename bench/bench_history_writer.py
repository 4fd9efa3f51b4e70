"""Throughput of the history writer: Redis event streams -> SQL, batched, one transaction per batch.

Run: ``.venv/bin/python bench/bench_history_writer.py [--db sqlite|postgres|both] [--events N] [--users U]``

Pre-fills U users' event streams (a unique key prefix on the Redis at --redis, removed afterwards) with N
events shaped exactly like the store's (ids "{seq}-1", one `data` field): per order an order.created, an
order.filled and a fill.created. Then a fresh database (a temporary SQLite file; on PostgreSQL a unique
schema, dropped afterwards) is migrated and the writer drains every stream; events/s = N / drain time.
The yardstick printed alongside: the same entries only read from Redis and parsed (no database).

Targets (task brief): >= 5,000 events/s on PostgreSQL, >= 2,000 events/s on SQLite.

``--trickle R`` (default 400 events/s, about 100 fills/s; 0 = off) then measures the writer's CPU per event at
an ordinary rate: one user's stream is fed R events/s for ``--trickle-s`` seconds while `HistoryWriter.run()`
consumes it, as in the service (``--linger-ms``, the HISTORY_LINGER_MS default); the producer's own CPU,
measured the same way without a writer, is subtracted. Printed beside the drain's CPU per event (full
batches), the floor the trickle should come close to. CPU = this process' (the driver's thread included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import orjson
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from position_order_service.history import HistoryDB, HistoryWriter
from position_order_service.history import tables as t
from position_order_service.history.mapping import Batch
from position_order_service.store import Keys

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 11, 21, tzinfo=UTC)


def _events(user_id: str, n: int) -> list[dict[str, Any]]:
    """n events of one user: order.created, order.filled, fill.created, ... (seq from 1)."""
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < n:
        oid = f"{user_id}-o{i}"
        price = Decimal("45000") + Decimal(i % 50) / Decimal(10)
        qty = Decimal("0.01") * (1 + i % 5)
        ts = T0 + timedelta(seconds=i)
        base = {
            "user_id": user_id,
            "exchange": "okx",
            "metadata": {},
            "order_id": oid,
            "client_order_id": f"c{oid}",
            "symbol": "BTC-USDT-SWAP" if i % 2 else "ETH-USDT-SWAP",
            "side": "buy" if i % 2 else "sell",
            "order_type": "limit",
            "quantity": str(qty),
            "price": str(price),
            "trigger_price": None,
            "reduce_only": False,
            "position_side": None,
            "grid_level": None,
        }
        out.append(
            {
                "event_type": "order.created",
                "event_id": uuid.uuid4().hex,
                "timestamp": ts.isoformat(),
                **base,
                "filled_qty": "0",
                "avg_fill_price": None,
                "status": "open",
            }
        )
        out.append(
            {
                "event_type": "order.filled",
                "event_id": uuid.uuid4().hex,
                "timestamp": (ts + timedelta(milliseconds=500)).isoformat(),
                **base,
                "filled_qty": str(qty),
                "avg_fill_price": str(price),
                "status": "filled",
            }
        )
        out.append(
            {
                "event_type": "fill.created",
                "event_id": uuid.uuid4().hex,
                "timestamp": (ts + timedelta(milliseconds=500)).isoformat(),
                "user_id": user_id,
                "exchange": "okx",
                "metadata": {},
                "trade_id": f"t{oid}",
                "order_id": oid,
                "client_order_id": f"c{oid}",
                "symbol": base["symbol"],
                "side": base["side"],
                "price": str(price),
                "size": str(qty),
                "fee": str((price * qty * Decimal("0.0002")).quantize(Decimal("0.00000001"))),
                "fee_currency": "USDT",
                "liquidity": "maker",
                "position_side": None,
            }
        )
        i += 1
    return out[:n]


async def prefill(redis: Redis, keys: Keys, users: list[str], per_user: int) -> int:
    total = 0
    for user in users:
        pipe = redis.pipeline(transaction=False)
        for seq, ev in enumerate(_events(user, per_user), start=1):
            payload = orjson.dumps({"seq": seq, **ev})
            pipe.xadd(keys.event_stream(user), {"data": payload}, id=f"{seq}-1")
        pipe.set(keys.event_seq(user), per_user)
        await pipe.execute()
        total += per_user
    return total


async def cleanup(redis: Redis, prefix: str) -> None:
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        await redis.delete(key)


async def parse_only(redis: Redis, keys: Keys, users: list[str]) -> float:
    """Yardstick: read every stream and build the batches, no database."""
    t0 = time.perf_counter()
    n = 0
    for user in users:
        entries = await redis.xrange(keys.event_stream(user))
        batch = Batch()
        for entry_id, fields in entries:
            batch.add("s", user, 0, int(entry_id.split(b"-")[0]), fields[b"data"])
        n += batch.entries
    return n / (time.perf_counter() - t0)


async def run_one(
    kind: str, redis: Redis, keys: Keys, users: list[str], total: int, batch_size: int
) -> float:
    schema = None
    tmp = None
    if kind == "sqlite":
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.sqlite3"
    else:
        url = POSTGRES_URL
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_async_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await admin.dispose()
    db = await HistoryDB.open(url, schema=schema)
    try:
        writer = HistoryWriter(redis, keys, db, users, batch_size=batch_size)
        t0, cpu0 = time.perf_counter(), time.process_time()
        consumed = await writer.drain()
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        async with db.engine.connect() as conn:
            n_orders = (await conn.execute(select(func.count()).select_from(t.orders))).scalar_one()
            n_fills = (await conn.execute(select(func.count()).select_from(t.fills))).scalar_one()
        assert consumed == total, (consumed, total)
        assert sum((await writer.lag()).values()) == 0
        rate = total / dt
        print(
            f"  {kind}: {total} events in {dt:.2f}s over {writer.stats.batches} batches "
            f"(orders {n_orders}, fills {n_fills}); cpu per event {cpu / total * 1e6:.0f} us"
        )
        return rate
    finally:
        await db.close()
        if schema is not None:
            admin = create_async_engine(POSTGRES_URL)
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()
        if tmp is not None:
            tmp.cleanup()


async def _open(kind: str) -> tuple[HistoryDB, Any]:
    """A fresh, migrated database and what to call to remove it."""
    if kind == "sqlite":
        tmp = tempfile.TemporaryDirectory()
        db = await HistoryDB.open(f"sqlite+aiosqlite:///{tmp.name}/bench.sqlite3")

        async def drop_sqlite() -> None:
            await db.close()
            tmp.cleanup()

        return db, drop_sqlite
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = await HistoryDB.open(POSTGRES_URL, schema=schema)

    async def drop_schema() -> None:
        await db.close()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()

    return db, drop_schema


async def _feed(redis: Redis, keys: Keys, user: str, rate: float, seconds: float) -> int:
    """XADD `rate` events/s to one user's stream for `seconds`, in 10 ms ticks; returns the events added."""
    events = [orjson.dumps({"seq": i, **ev}) for i, ev in enumerate(_events(user, int(rate * seconds)), 1)]
    stream, counter = keys.event_stream(user), keys.event_seq(user)
    t0 = time.perf_counter()
    sent = 0
    while sent < len(events):
        due = min(len(events), int((time.perf_counter() - t0) * rate) + 1)
        if due > sent:
            pipe = redis.pipeline(transaction=False)
            for seq in range(sent + 1, due + 1):
                pipe.xadd(stream, {"data": events[seq - 1]}, id=f"{seq}-1")
            pipe.set(counter, due)
            await pipe.execute()
            sent = due
        await asyncio.sleep(0.01)
    return sent


async def trickle(
    kind: str, redis: Redis, prefix: str, rate: float, seconds: float, linger_s: float
) -> float:
    """The writer's CPU per event (us) while one stream grows at `rate` events/s."""
    cpu0 = time.process_time()
    await _feed(redis, Keys(prefix=f"{prefix}{kind}:feed-only:"), "alone", rate, seconds)
    feed_cpu = time.process_time() - cpu0

    keys = Keys(prefix=f"{prefix}{kind}:trickle:")
    db, drop = await _open(kind)
    try:
        writer = HistoryWriter(redis, keys, db, ["trickler"], linger_s=linger_s)
        task = asyncio.create_task(writer.run())
        await asyncio.sleep(0.2)  # offsets loaded; the writer blocks on the stream
        cpu0 = time.process_time()
        n = await _feed(redis, keys, "trickler", rate, seconds)
        for _ in range(6000):  # the writer catches up within a linger and a pass; give up after 60 s
            if writer.stats.entries >= n:
                break
            await asyncio.sleep(0.01)
        cpu = time.process_time() - cpu0 - feed_cpu
        writer.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 5)
        per = cpu / n * 1e6
        print(
            f"  {kind}: trickle of {rate:.0f} events/s for {seconds:.0f}s, linger {linger_s * 1000:.0f} ms: "
            f"{writer.stats.batches} batches ({n / max(1, writer.stats.batches):.0f} events each); "
            f"writer cpu per event {per:.0f} us (the feed's own {feed_cpu / n * 1e6:.0f} us subtracted)"
        )
        return per
    finally:
        await drop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument(
        "--trickle", type=float, default=400.0, help="events/s of the ordinary-rate phase; 0 = skip"
    )
    ap.add_argument("--trickle-s", type=float, default=10.0)
    ap.add_argument("--linger-ms", type=float, default=200.0)
    args = ap.parse_args()

    redis = Redis.from_url(args.redis)
    prefix = f"bench:history:{uuid.uuid4().hex[:8]}:"
    keys = Keys(prefix=prefix)
    users = [f"user{i:04d}" for i in range(args.users)]
    per_user = max(1, args.events // args.users)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: dict[str, float] = {}
    try:
        total = await prefill(redis, keys, users, per_user)
        print(
            f"history_writer: {total} events ({per_user} per user, {len(users)} users), batch {args.batch_size}"
        )
        print(f"history_writer parse-only yardstick events/s: {await parse_only(redis, keys, users):.0f}")
        for kind in kinds:
            results[kind] = await run_one(kind, redis, keys, users, total, args.batch_size)
        if args.trickle > 0:
            for kind in kinds:
                await trickle(kind, redis, prefix, args.trickle, args.trickle_s, args.linger_ms / 1000)
    finally:
        await cleanup(redis, prefix)
        await redis.aclose()
    targets = {"sqlite": 2000, "postgres": 5000}
    for kind, rate in results.items():
        ok = "OK" if rate >= targets[kind] else "BELOW TARGET"
        print(f"history_writer {kind} events/s: {rate:.0f}  (target >= {targets[kind]}: {ok})")


if __name__ == "__main__":
    asyncio.run(main())
