"""An account's fill mark (issue 14): the exchange's time up to which its fills were read and emitted, where its
next owner (a worker taking it over, a restart) reads fills back from. Over ccxt + the OKX front and the paper
gateway (conftest)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from position_order_service.domain.enums import OrderSide
from position_order_service.domain.market import FillReport
from position_order_service.exchanges.base import ExchangeUnavailable
from position_order_service.services.account.feeds import RestWorker
from position_order_service.services.account.messages import Inbox, Snapshot

from .harness import SYMBOL, Harness, eventually


async def _mark(h: Harness) -> int | None:
    return await h.store.fill_marks.get("u1", "okx")


async def _fills_emitted(h: Harness) -> int:
    return sum(1 for e in await h.events("u1") if e["event_type"] == "fill.created")


async def test_the_first_snapshot_of_an_account_never_marked_seeds_its_mark(h: Harness) -> None:
    # without a mark, a fill made while the account moves to its next owner would never be read back
    h.account("u1")
    h.price("60000")
    before_ms = int(time.time() * 1000)
    await h.track("u1")
    await eventually(lambda: _has_mark(h))
    mark = await _mark(h)  # the next owner reads from `mark - 10 s`: from this first snapshot on
    assert mark is not None and before_ms + 10_000 <= mark <= int(time.time() * 1000) + 10_000


async def _has_mark(h: Harness) -> bool:
    return await _mark(h) is not None


async def test_a_stream_fill_leaves_the_mark_and_the_next_snapshot_moves_it(h: Harness) -> None:
    # a stream's fill says nothing of an earlier fill whose push was lost: only a snapshot's complete window
    # may move the mark past it
    key = h.account("u1")
    h.price("60000")
    marked = int(time.time() * 1000) - 60_000  # an earlier owner applied a fill a minute ago
    await h.store.redis.set(h.store.keys.fill_mark("u1", "okx"), marked)
    actor = await h.track("u1")
    h.engine.place_order(key, SYMBOL, "buy", "1")
    await eventually(lambda: _one_fill(h))
    await asyncio.sleep(0.2)
    assert await _mark(h) == marked
    fill_ms = int(time.time() * 1000)
    actor.rest.request()
    await eventually(lambda: _mark_past(h, fill_ms - 2_000))
    assert await _fills_emitted(h) == 1  # read back by the snapshot: emitted once all the same


async def _one_fill(h: Harness) -> bool:
    return await _fills_emitted(h) == 1


async def _mark_past(h: Harness, ms: int) -> bool:
    mark = await _mark(h)
    return mark is not None and mark >= ms


class FirstReadyFails:
    """The account's real gateway, whose first `streams_ready` fails as a 503 of the markets would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = False

    async def streams_ready(self, within_s: float) -> bool:
        if not self.failed:
            self.failed = True
            raise ExchangeUnavailable("GET /markets: 503")
        return bool(await self.inner.streams_ready(within_s))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_first_snapshot_that_failed_half_way_still_reads_fills_back_from_the_mark(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    mark_ms = int(time.time() * 1000) - 60_000
    h.engine.place_order(key, SYMBOL, "buy", "1")  # while nobody tracks the account: after its mark
    gateway = FirstReadyFails(await h.gateways.for_user("u1", "okx"))
    inbox = Inbox()

    async def fill_mark() -> int | None:
        return mark_ms

    worker = RestWorker(gateway, inbox, fill_mark=fill_mark)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: _snapshot_posted(inbox), within=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    (snap,) = [m for _, m in inbox._queue if isinstance(m, Snapshot)]
    assert gateway.failed and len(snap.fills) == 1


async def _snapshot_posted(inbox: Inbox) -> bool:
    return any(isinstance(m, Snapshot) for _, m in inbox._queue)


async def test_a_fill_without_the_exchange_s_time_is_emitted_but_never_moves_the_mark(h: Harness) -> None:
    # the mark is where the next owner reads fills back from: our clock (an hour ahead here) in it would make
    # the next owner skip every fill the exchange made in that hour
    h.account("u1")
    h.price("60000")
    marked = int(time.time() * 1000) - 60_000
    await h.store.redis.set(h.store.keys.fill_mark("u1", "okx"), marked)
    actor = await h.track("u1")
    fill = FillReport(
        exchange="okx",
        symbol=SYMBOL,
        trade_id="no-time-1",
        order_id="o-no-time",
        client_order_id=None,
        side=OrderSide.BUY,
        price=Decimal("60000"),
        size=Decimal("1"),
        fee=Decimal("0"),
        fee_currency="USDT",
        liquidity="taker",
        position_side=None,
        timestamp=datetime.now(UTC) + timedelta(hours=1),
        exchange_time=False,
    )
    actor.inbox.post(Snapshot([], [], False, actor.inbox.arrivals, fills=[fill]))
    await eventually(lambda: _one_fill(h))
    await asyncio.sleep(0.2)
    assert await _mark(h) == marked
