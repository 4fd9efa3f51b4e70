"""A private stream's pump with our own push parsing: batches go from the push handler to the account's inbox
without waking the pump's task (issue 15), one message per loop turn, and never after a drop that came after
them nor before one that came first. Over the shared streams code (CcxtStreams, Feed, Subscription) with a
stand-in for the ccxt watch call (the socket), through the metrics wrapper the service puts on every gateway."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from position_order_service.domain.enums import Exchange
from position_order_service.domain.market import MarketInfo
from position_order_service.exchanges.ccxt_streams import CcxtStreams
from position_order_service.exchanges.ccxt_venue import FeedKind
from position_order_service.exchanges.push_streams import Watch
from position_order_service.services.account.feeds import AccountHealth, RestWorker, pump
from position_order_service.services.account.messages import Inbox, Message, StreamGap, StreamOrders
from position_order_service.services.gateway_pool import instrumented

from ..pending_watch import PendingWatch


class _Streams(CcxtStreams):
    exchange = Exchange.OKX

    def __init__(self, socket: PendingWatch) -> None:
        super().__init__("u1", "ours", ())
        self.socket = socket

    async def _ready(self) -> Any:
        return None

    def push_subscriptions(self, kind: FeedKind, market: MarketInfo | None) -> list[tuple[str, Watch]]:
        return [("orders", self.socket)]


def _wrap(batch: list[Any]) -> Message:
    return StreamOrders(batch)


async def _until(predicate: Any) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), 5)


async def test_pushes_reach_the_inbox_without_the_pump_task_and_before_the_drop() -> None:
    socket = PendingWatch()
    gw = _Streams(socket)
    inbox = Inbox()
    health = AccountHealth()
    posted_in: list[asyncio.Task[Any] | None] = []

    def wrap(batch: list[Any]) -> Message:
        posted_in.append(asyncio.current_task())
        return _wrap(batch)

    rest = RestWorker(instrumented(gw), inbox)
    task = asyncio.create_task(
        pump(
            "orders",
            instrumented(gw).watch_orders,
            wrap,
            inbox,
            health,
            rest,
            "okx",
            functools.partial(instrumented(gw).divert, "watch_orders"),
        )
    )
    await _until(lambda: socket.calls == 1)
    gw.emit("orders", ["o1"])  # two pushes handled in one loop turn: one message
    gw.emit("orders", ["o2"])
    socket.drop("dropped")  # the drop comes after them
    await _until(lambda: len(inbox) == 2)
    first, second = inbox.take_stream_run(), None
    assert [m.orders for _, m in first] == [["o1", "o2"]]
    assert posted_in == [None]  # posted from the push's own turn, not by the pump's task waking up
    _, second = await inbox.get()
    assert isinstance(second, StreamGap) and "dropped" in second.reason
    await _until(lambda: socket.calls == 2)  # resubscribed after the backoff
    gw.emit("orders", ["o3"])
    _, third = await asyncio.wait_for(inbox.get(), 5)
    assert isinstance(third, StreamOrders) and third.orders == ["o3"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    gw.emit("orders", ["o4"])  # the pump is gone: its inbox hears nothing more
    await asyncio.sleep(0.01)
    assert len(inbox) == 0
    await gw._close_streams()
