from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from position_order_service.store import Store

from .harness import Harness, make_harness


@pytest.fixture
async def h(store: Store) -> AsyncIterator[Harness]:
    harness = await make_harness(store)
    yield harness
    await harness.close()
