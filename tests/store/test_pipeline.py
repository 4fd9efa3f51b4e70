"""The group commit's own round trip (store/pipeline.py): replies in order with error replies as values (read
from the parser, or through redis-py's public read), a connection the server dropped fails one round trip
(nothing known) and is replaced for the next, and a burst of concurrent round trips does not keep the pool's
connections from the rest of the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from position_order_service.store.connection import make_redis
from position_order_service.store.pipeline import MAX_IDLE, RawPipeline


@pytest.fixture
async def client(real_redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    redis = make_redis(real_redis_url)
    yield redis
    keys = [k async for k in redis.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.mark.parametrize("read_from_parser", [True, False], ids=["parser", "public-read"])
async def test_replies_come_in_order_with_error_replies_as_values(
    client: Redis, key_prefix: str, read_from_parser: bool
) -> None:
    h = f"{key_prefix}h"
    await client.hset(h, mapping={"a": "1", "b": "2"})
    raw = RawPipeline(client, read_from_parser=read_from_parser)
    out = await raw.execute(
        [
            ("HGETALL", h),
            ("EVALSHA", "0" * 40, 0),
            ("EVALSHA", await client.script_load("return {1, 'x'}"), 0),
            ("HGETALL", f"{key_prefix}none"),
        ]
    )
    assert out[0] == {b"a": b"1", b"b": b"2"}
    assert isinstance(out[1], NoScriptError)
    assert out[2] == [1, b"x"]
    assert out[3] == {}


@pytest.mark.parametrize("read_from_parser", [True, False], ids=["parser", "public-read"])
async def test_a_dropped_connection_fails_one_round_trip_and_is_replaced(
    client: Redis, read_from_parser: bool
) -> None:
    raw = RawPipeline(client, read_from_parser=read_from_parser)
    (conn_id,) = await raw.execute([("CLIENT", "ID")])
    await client.client_kill_filter(_id=conn_id)
    with pytest.raises(RedisConnectionError):
        await raw.execute([("PING",)])
    assert await raw.execute([("PING",)]) == [b"PONG"]


async def test_concurrent_round_trips_use_their_own_connections(client: Redis) -> None:
    raw = RawPipeline(client)
    ids = await asyncio.gather(*(raw.execute([("CLIENT", "ID"), ("PING",)]) for _ in range(3)))
    assert len({r[0] for r in ids}) == 3
    (again,) = await raw.execute([("CLIENT", "ID")])
    assert again in {r[0] for r in ids}  # kept between uses


async def test_a_burst_of_round_trips_gives_its_connections_back_to_the_pool(real_redis_url: str) -> None:
    # the app's client has a bounded pool: connections kept idle by the group commit are missing for every
    # other Redis call of the process (reads, scripts, leases)
    redis = make_redis(real_redis_url, max_connections=6)
    try:
        raw = RawPipeline(redis)
        await asyncio.gather(*(raw.execute([("PING",)]) for _ in range(6)))
        assert raw.idle == MAX_IDLE
        others = await asyncio.wait_for(asyncio.gather(*(redis.ping() for _ in range(6 - MAX_IDLE))), 5)
        assert all(others)
    finally:
        await redis.aclose()
