"""A trailing stop's extreme that could not be written while Redis was away is written once it is back (the
engine's book keeps trailing meanwhile). On a redis-server of the test's own, which the test stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from position_order_service.domain.trailing import StopState, TrailingStop
from position_order_service.store import Store
from position_order_service.store.connection import make_redis

from ..chaos.redis_proc import RedisProc
from .harness import SYMBOL, eventually, make_harness


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisProc]:
    server = RedisProc(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_an_extreme_whose_write_failed_is_written_when_redis_is_back(own_redis: RedisProc) -> None:
    redis: Redis = make_redis(own_redis.url, socket_timeout=1.0, socket_connect_timeout=1.0)
    h = await make_harness(Store.create(redis, prefix="t:"), via="paper")
    try:
        key = h.account("u1")
        h.price("60000")
        h.engine.place_order(key, SYMBOL, "buy", "10")
        await h.track("u1")
        stop = await h.trailing.create(
            TrailingStop.model_validate(
                {
                    "user_id": "u1",
                    "exchange": "okx",
                    "symbol": SYMBOL,
                    "side": "long",
                    "callback_rate": "0.01",
                }
            )
        )
        assert stop.state is StopState.ACTIVE and stop.extreme_price == Decimal("60000")
        own_redis.stop()
        h.price("60500")  # the book trails to 60500; the flushes (every 50 ms) fail while Redis is down
        await asyncio.sleep(0.5)
        assert h.trailing.books_extreme(stop) == Decimal("60500")
        own_redis.start()

        async def written() -> bool:
            s = await h.store.trailing_stops.get("u1", "okx", SYMBOL, "long")
            return s is not None and s.extreme_price == Decimal("60500")

        await eventually(written, within=5)  # the background flush (or this one) writes it
    finally:
        await h.close()
        await redis.aclose()
