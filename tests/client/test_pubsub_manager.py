"""The README's Python client (issue 12 item 10): it receives live events, stops cleanly, and survives a Redis
restart and a slow-consumer disconnect: it reconnects, subscribes again and fills the gap from the user's
stream by seq, with no event delivered twice."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from position_order_service.client import PubSubManager
from position_order_service.domain.events import OrderEvent
from position_order_service.store import Store
from position_order_service.store.embedded import RedisServerProcess, free_port

needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


async def emit(store: Store, n: int, pad: int = 0) -> None:
    """n order events of u1 on okx: written to the stream and published, as the service does."""
    channel = store.channels.orders("u1", "okx")
    for _ in range(n):
        await store.writer.emit("u1", channel, "order.updated", {
            "user_id": "u1", "exchange": "okx", "order_id": "1", "symbol": "BTC-USDT-SWAP", "side": "buy",
            "order_type": "limit", "quantity": "1", "status": "open", "metadata": {"pad": "x" * pad},
        })  # fmt: skip


async def wait_for(check: object, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_live_events_reach_the_callback_and_stop_is_clean(redis_client: Redis, key_prefix: str) -> None:
    store = Store.create(redis_client, prefix=key_prefix)
    got: list[OrderEvent] = []
    manager = PubSubManager(redis_client, prefix=key_prefix)
    await manager.start()
    await manager.subscribe_to_orders("u1", "okx", got.append)
    await emit(store, 3)
    await wait_for(lambda: len(got) == 3)
    assert [e.seq for e in got] == [1, 2, 3] and all(isinstance(e, OrderEvent) for e in got)
    await manager.stop()
    await manager.stop()  # twice is fine


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServerProcess]:
    server = RedisServerProcess(free_port(), data_dir=tmp_path / "redis")
    server.start(shutil.which("redis-server") or "redis-server")
    yield server
    server.stop()


@needs_redis_server
async def test_survives_a_redis_restart_without_loss_or_duplicates(private_redis: RedisServerProcess) -> None:
    redis = Redis.from_url(private_redis.url)
    store = Store.create(redis)
    seqs: list[int] = []
    manager = PubSubManager(redis, reconnect_max_s=0.2)
    await manager.start()
    await manager.subscribe_to_orders("u1", "okx", lambda e: seqs.append(e.seq))
    await emit(store, 3)
    await wait_for(lambda: len(seqs) == 3)
    private_redis.stop()  # the AOF keeps the stream
    private_redis.start(shutil.which("redis-server") or "redis-server")
    writer = Redis.from_url(private_redis.url)  # the service's side, connected again
    store = Store.create(writer)
    await emit(store, 3)  # at once: the client may not be subscribed again yet
    await wait_for(lambda: len(seqs) >= 6)
    await emit(store, 2)
    await wait_for(lambda: len(seqs) >= 8)
    await asyncio.sleep(0.3)  # nothing more arrives
    assert seqs == list(range(1, 9)) and manager.reconnects >= 1
    await manager.stop()
    await redis.aclose()
    await writer.aclose()


@needs_redis_server
async def test_survives_being_dropped_as_a_slow_consumer(private_redis: RedisServerProcess) -> None:
    redis = Redis.from_url(private_redis.url)
    await redis.config_set("client-output-buffer-limit", "pubsub 65536 0 0")
    store = Store.create(redis)
    release = asyncio.Event()
    seqs: list[int] = []

    async def slow(e: OrderEvent) -> None:
        await release.wait()  # the first callback blocks while Redis piles up the rest
        seqs.append(e.seq or 0)

    manager = PubSubManager(redis, reconnect_max_s=0.2)
    await manager.start()
    await manager.subscribe_to_orders("u1", "okx", slow)
    total = 3000  # ~6 MB: more than the socket buffers and the 64 KiB limit
    await emit(store, total, pad=2000)
    clients = await redis.client_list(_type="pubsub")
    assert clients == [] or all(int(c.get("omem", 0)) < 65536 for c in clients)  # it was dropped
    release.set()
    await emit(store, 5)
    await wait_for(lambda: len(seqs) >= total + 5, within=60)
    assert seqs == list(range(1, total + 6)) and manager.reconnects >= 1
    await manager.stop()
    await redis.aclose()
