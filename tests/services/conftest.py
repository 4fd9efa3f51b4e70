from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from position_order_service.store import Store

from .harness import Harness, make_harness


@pytest.fixture(params=["ccxt", "paper"])
async def h(request: pytest.FixtureRequest, store: Store) -> AsyncIterator[Harness]:
    """Each service test twice: over the real ccxt client and the OKX wire front, and over the paper gateway."""
    harness = await make_harness(store, via=request.param)
    yield harness
    await harness.close()
