"""Fixtures: the services harness over the paper gateway, with DUAL_SCHEMA_WRITE on, and the adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from position_order_service.config import Settings
from position_order_service.integrations.context import CommandServices
from position_order_service.integrations.grid import GRIDAdapter
from position_order_service.integrations.hyperrsi import HYPERRSIAdapter
from position_order_service.store import Store
from tests.services.harness import Harness, make_harness


def services_of(h: Harness, **settings: object) -> CommandServices:
    return CommandServices(
        store=h.store,
        orders=h.orders,
        positions=h.positions,
        accounts=h.accounts,
        bus=h.bus,
        settings=Settings(dual_schema_write=True, **settings),  # type: ignore[arg-type]
    )


@pytest.fixture
async def h(redis_client: Redis, key_prefix: str) -> AsyncIterator[Harness]:
    harness = await make_harness(Store.create(redis_client, prefix=key_prefix, dual_write=True))
    yield harness
    await harness.close()


@pytest.fixture
async def hyperrsi(h: Harness) -> AsyncIterator[HYPERRSIAdapter]:
    adapter = HYPERRSIAdapter(h.store.redis, services_of(h))
    yield adapter
    await adapter.close()


@pytest.fixture
async def grid(h: Harness) -> AsyncIterator[GRIDAdapter]:
    adapter = GRIDAdapter(h.store.redis, services_of(h))
    yield adapter
    await adapter.close()
