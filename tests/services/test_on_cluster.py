"""Service flows on a real 3-master Redis Cluster (tests/redis_backends.py), as the service wires itself there:
its connection factory finds the cluster, build_graph switches the keys to their hash tags. The gateways are
the real ccxt client against the OKX simulator over loopback. Each flow is the single-Redis test of the same
name (test_tracking, test_trailing_rules), run again here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from position_order_service.store.connection import connect_redis, is_cluster_client

from ..redis_backends import delete_prefixed
from . import test_tracking as tracking
from . import test_trailing_rules as trailing_rules
from .harness import Harness, make_harness


@pytest.fixture
async def h(redis_cluster_url: str) -> AsyncIterator[Harness]:
    redis, on_cluster = await connect_redis(redis_cluster_url)
    assert on_cluster and is_cluster_client(redis)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    from position_order_service.store import Store

    # the harness reads the prefix and dual-write flag from this store; build_graph makes its own, tagged
    harness = await make_harness(Store.create(redis, prefix=prefix), via="ccxt")
    assert harness.store.keys.cluster_tags
    yield harness
    await harness.close()
    await delete_prefixed(redis, prefix)
    await redis.aclose()


async def test_a_fill_reaches_state_event_stream_and_channel_on_the_cluster(h: Harness) -> None:
    await tracking.test_order_by_another_client_appears_in_redis_and_on_channel_in_order(h)
    events = await h.events("u1")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert h.store.keys.event_stream("u1").endswith("events:{u1}")
    assert await h.store.redis.exists(h.store.keys.event_stream("u1"))


async def test_a_trailing_stop_triggers_and_closes_once_on_the_cluster(h: Harness) -> None:
    await trailing_rules.test_long_stop_activates_trails_triggers_and_closes_the_position(h)


async def test_an_oco_rule_fires_on_the_cluster(h: Harness) -> None:
    await trailing_rules.test_oco_in_one_call_and_price_reached(h)


async def test_the_service_finds_the_cluster_by_itself(redis_cluster_url: str) -> None:
    """REDIS_URL pointing at one master, REDIS_CLUSTER left at auto: build_service connects the cluster client
    and switches the keys to their hash tags; REDIS_CLUSTER=false on a cluster would not."""
    from redis.asyncio import RedisCluster

    from position_order_service.bootstrap import build_service
    from position_order_service.config import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_cluster_url,
        key_prefix=f"test:{uuid.uuid4().hex[:12]}:",
        sim="off",
        history=False,
    )
    services = await build_service(settings)
    try:
        assert isinstance(services.store.redis, RedisCluster)
        assert services.store.keys.cluster_tags
        await services.store.users.activate("alice", ["okx"])
        assert "alice" in await services.store.users.active_user_ids()
    finally:
        await delete_prefixed(services.store.redis, settings.key_prefix)
        await services.stop()
