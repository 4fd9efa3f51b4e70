"""The plumbing of our push parsing, without sockets: feeds deliver what the tap parsed and report a
subscription's failure once, after the items that came before it; the venue clients' taps route frames to the
handlers (and leave everything else, and every frame when no handler is set, to ccxt); a handler that raises
does not escape into ccxt's receive loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from position_order_service.exchanges.binance.client import make_client as binance_client
from position_order_service.exchanges.okx.client import make_client as okx_client
from position_order_service.exchanges.push_streams import Feed, Subscription

from ..pending_watch import PendingWatch


async def _until(predicate: Any) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0)

    await asyncio.wait_for(wait(), 2)


async def test_a_feed_delivers_items_then_one_drop_then_rearms() -> None:
    a, b = PendingWatch(), PendingWatch()
    sa, sb = Subscription("a", a), Subscription("b", b)
    feed: Feed[int] = Feed([sa, sb], grace_s=0.5)
    pending = asyncio.create_task(feed.next())  # arms both subscriptions
    await _until(lambda: a.calls == 1 and b.calls == 1)
    feed.put([1, 2])
    assert await pending == [1, 2]
    feed.put([3])
    a.drop("a dropped")
    await _until(lambda: sa.task is None)  # ccxt rejected the watch: the subscription has failed
    feed.put([4])  # arrived after the drop, on the other socket
    assert await feed.next() == [3]  # what came before the drop first
    nxt = asyncio.create_task(feed.next())
    await asyncio.sleep(0.05)
    b.drop("b dropped")  # the other socket goes within the grace period: one report
    with pytest.raises(ccxt.NetworkError, match="a dropped"):
        await nxt
    assert await feed.next() == [4]
    await _until(lambda: a.calls == 2 and b.calls == 2)  # re-armed by the call after the report
    await sa.close()
    await sb.close()


async def test_a_drop_while_nobody_waits_is_reported_on_the_next_call() -> None:
    w = PendingWatch()
    sub = Subscription("s", w)
    feed: Feed[int] = Feed([sub])
    first = asyncio.create_task(feed.next())
    await _until(lambda: w.calls == 1)
    feed.put([1])
    assert await first == [1]
    w.drop("gone")  # nobody is inside next(): the subscription stays armed all the same
    await _until(lambda: sub.task is None)
    with pytest.raises(ccxt.NetworkError, match="gone"):
        await asyncio.wait_for(feed.next(), 2)
    await sub.close()


async def test_two_feeds_on_one_subscription_each_hear_of_the_drop_once() -> None:
    w = PendingWatch()
    sub = Subscription("orders", w)
    orders: Feed[str] = Feed([sub])
    fills: Feed[str] = Feed([sub])
    pending = asyncio.create_task(orders.next())
    await _until(lambda: w.calls == 1)
    w.drop("dropped")
    with pytest.raises(ccxt.NetworkError):
        await pending
    nxt = asyncio.create_task(orders.next())  # re-arms the shared subscription
    await _until(lambda: w.calls == 2)
    with pytest.raises(ccxt.NetworkError):
        await fills.next()  # fills heard of the same drop, once
    fills_next = asyncio.create_task(fills.next())
    await asyncio.sleep(0.01)
    assert w.calls == 2  # already running: not started twice
    orders.put(["o"])
    fills.put(["f"])
    assert await nxt == ["o"] and await fills_next == ["f"]
    await sub.close()


async def test_a_conflated_feed_keeps_the_newest() -> None:
    feed: Feed[int] = Feed([], conflate=True)
    feed.put([1, 2])
    feed.put([3])
    assert await feed.next() == [3]


@pytest.mark.parametrize(
    ("make", "ccxt_class", "key", "routed", "left_to_ccxt"),
    [
        (
            okx_client,
            ccxtpro.okx,
            "orders",
            {"arg": {"channel": "orders", "instType": "ANY"}, "data": [{"ordId": "1"}]},
            {"event": "subscribe", "arg": {"channel": "orders", "instType": "ANY"}},
        ),
        (
            binance_client,
            ccxtpro.binanceusdm,
            "ORDER_TRADE_UPDATE",
            {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {"s": "BTCUSDT"}},
            {"result": None, "id": 1},
        ),
    ],
    ids=["okx", "binance"],
)
async def test_the_tap_routes_tapped_frames_and_leaves_the_rest_to_ccxt(
    make: Any,
    ccxt_class: Any,
    key: str,
    routed: dict[str, Any],
    left_to_ccxt: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    to_ccxt: list[Any] = []
    monkeypatch.setattr(ccxt_class, "handle_message", lambda self, ws, message: to_ccxt.append(message))
    client = make("")
    try:
        seen: list[Any] = []
        client.handle_message(None, routed)  # no handler: plain ccxt
        client.push_handlers[key] = seen.append
        client.handle_message(None, routed)
        client.handle_message(None, left_to_ccxt)

        def broken(message: Any) -> None:
            raise ValueError("cannot parse")

        client.push_handlers[key] = broken
        with caplog.at_level(logging.ERROR):
            client.handle_message(None, routed)  # logged and skipped, never raised into ccxt's loop
        assert seen == [routed]
        assert to_ccxt == [routed, left_to_ccxt]
        assert "could not be handled" in caplog.text
    finally:
        await client.close()


async def test_a_sink_takes_items_only_while_the_consumer_waits_with_nothing_ahead_of_them() -> None:
    w = PendingWatch()
    sub = Subscription("s", w)
    feed: Feed[int] = Feed([sub])
    sunk: list[list[int]] = []
    feed.set_sink(lambda items: sunk.append(items) is None)
    feed.put([1])  # nobody waits yet: queued
    assert await feed.next() == [1]
    feed.put([2])  # the consumer has not come back for more: queued behind what it was handed
    pending = asyncio.create_task(feed.next())
    assert await pending == [2]
    pending = asyncio.create_task(feed.next())
    await _until(lambda: w.calls == 1)
    await asyncio.sleep(0)
    feed.put([3])  # parked with nothing queued: the sink takes it, the consumer is not woken
    assert sunk == [[3]]
    w.drop("gone")
    await _until(lambda: sub.task is None)
    feed.put([4])  # after the drop: behind it, never through the sink
    with pytest.raises(ccxt.NetworkError, match="gone"):
        await pending
    assert sunk == [[3]]
    assert await feed.next() == [4]
    await sub.close()


async def test_a_batch_the_sink_declines_is_queued_and_the_next_waits_behind_it() -> None:
    w = PendingWatch()
    sub = Subscription("s", w)
    feed: Feed[int] = Feed([sub])
    sunk: list[list[int]] = []
    feed.set_sink(lambda items: items != [1] and sunk.append(items) is None)
    pending = asyncio.create_task(feed.next())
    await _until(lambda: w.calls == 1)
    feed.put([1])  # declined (it needs an awaited step first)
    feed.put([2])  # would be taken, but [1] is ahead of it
    assert await pending == [1, 2]
    assert sunk == []
    pending = asyncio.create_task(feed.next())
    await asyncio.sleep(0)
    feed.put([3])
    assert sunk == [[3]]
    pending.cancel()
    await sub.close()
