"""The price hub's silent-feed watchdog and the gateway pool's memory bound (issue 11 item 6), over the
paper gateway (the simulator engine in process) and the real Redis."""

from __future__ import annotations

import asyncio

from position_order_service import metrics
from position_order_service.store import Store

from .harness import SYMBOL, eventually, make_harness


def silent_total(exchange: str) -> float:
    return metrics.price_feed_silent.labels(exchange=exchange)._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_a_feed_silent_past_its_limit_is_counted_and_reconnected_and_one_that_speaks_is_not(
    store: Store,
) -> None:
    h = await make_harness(store, price_feed_silent_s=0.4)
    try:
        first = await h.gateways.public("okx")
        h.prices.hold("okx", SYMBOL, "t")
        await asyncio.sleep(0.05)  # (the paper feed delivers from its subscription on)
        h.price("60000")
        await eventually(lambda: _heard(h))
        before = silent_total("okx")
        for _ in range(8):  # prices keep moving: the feed is heard, nothing is counted
            h.price("60001")
            await asyncio.sleep(0.05)
            h.price("60000")
            await asyncio.sleep(0.05)
        assert silent_total("okx") == before
        await eventually(lambda: _counted(before), within=3)  # now nothing moves: silent
        assert await h.gateways.public("okx") is not first  # a new public connection

        async def speaks_again() -> bool:
            h.price("60100")
            return await _heard(h, "60100")

        await eventually(speaks_again)  # and it delivers again
    finally:
        await h.close()


async def _heard(h: object, price: str = "60000") -> bool:
    tick = h.prices.last("okx", SYMBOL)  # type: ignore[attr-defined]
    return tick is not None and str(tick.last) == price


async def _counted(before: float) -> bool:
    return silent_total("okx") > before


async def test_gateways_of_untracked_users_are_closed_once_idle(store: Store) -> None:
    h = await make_harness(store)
    try:
        h.account("u1")
        h.account("u2")
        await h.gateways.for_user("u1", "okx")  # a command for an untracked user
        await h.gateways.for_user("u2", "okx")
        assert await h.gateways.evict_idle({("u2", "okx")}, idle_s=0.0) == 1  # u2 is tracked: kept
        assert h.gateways.peek("u1", "okx") is None and h.gateways.peek("u2", "okx") is not None
        await h.gateways.for_user("u1", "okx")
        assert await h.gateways.evict_idle(set(), idle_s=60.0) == 0  # used just now: kept
    finally:
        await h.close()
