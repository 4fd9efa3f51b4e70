"""Scripts survive a Redis that lost its script cache (a restart, SCRIPT FLUSH): every pipelined EVALSHA is
reloaded and retried. On a private redis-server: flushing the shared one's scripts would disturb other tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from position_order_service.domain.trailing import StopState, TrailingStop
from position_order_service.store import Store
from position_order_service.store.embedded import RedisServerProcess, free_port


@pytest.fixture
async def private_store() -> AsyncIterator[Store]:
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = RedisServerProcess(free_port())
    server.start(binary)
    redis = Redis.from_url(server.url)
    yield Store.create(redis, prefix="t:")
    await redis.aclose()
    server.stop()


async def test_raised_extremes_are_written_after_the_script_cache_is_lost(private_store: Store) -> None:
    repo = private_store.trailing_stops
    stop = TrailingStop.model_validate(
        {"user_id": "u1", "exchange": "okx", "symbol": "BTC-USDT-SWAP", "side": "long", "callback_rate": "0.01",
         "state": StopState.ACTIVE, "extreme_price": "60000", "version": 1}
    )  # fmt: skip
    assert await repo.save(stop, None, "trailing_stop.created")
    moved = stop.model_copy(update={"extreme_price": Decimal("60100")})
    assert await repo.raise_extremes([moved]) == 1
    await private_store.redis.script_flush()  # what a Redis restart does to the cache
    moved = stop.model_copy(update={"extreme_price": Decimal("60200")})
    assert await repo.raise_extremes([moved]) == 1
    stored = await repo.get("u1", "okx", "BTC-USDT-SWAP", "long")
    assert stored is not None and stored.extreme_price == Decimal("60200")
