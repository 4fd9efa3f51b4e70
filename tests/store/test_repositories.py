"""Atomic state + event writes, on the real Redis and on the embedded server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from position_order_service.domain import Order, Position
from position_order_service.store import CorruptRecord, Store

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def pos(**kw: Any) -> Position:
    base: dict[str, Any] = {
        "id": "p1",
        "user_id": "u1",
        "exchange": "okx",
        "symbol": "BTC-USDT-SWAP",
        "side": "long",
        "size": "0.1",
        "entry_price": "45000",
        "updated_at": T0,
        "created_at": T0,
    }
    base.update(kw)
    return Position.model_validate(base)


def order(**kw: Any) -> Order:
    base: dict[str, Any] = {
        "user_id": "u1",
        "exchange": "okx",
        "symbol": "BTC-USDT-SWAP",
        "exchange_order_id": "1001",
        "side": "buy",
        "order_type": "limit",
        "quantity": "1",
        "price": "45000",
        "status": "open",
        "updated_at": T0,
        "created_at": T0,
    }
    base.update(kw)
    return Order.model_validate(base)


async def stream_events(store: Store, user_id: str = "u1") -> list[dict[str, Any]]:
    entries = await store.redis.xrange(store.keys.event_stream(user_id))
    return [orjson.loads(fields[b"data"]) for _, fields in entries]


async def test_position_upsert_writes_state_index_and_event(any_store: Store) -> None:
    p = pos()
    res = await any_store.positions.upsert(p)
    assert res.applied and res.seq == 1 and res.event_type == "position.opened"
    got = await any_store.positions.get("u1", "okx", "BTC-USDT-SWAP", "long")
    assert got == p
    assert [p.symbol for p in await any_store.positions.list("u1", "okx")] == ["BTC-USDT-SWAP"]
    events = await stream_events(any_store)
    assert len(events) == 1
    e = events[0]
    assert e["event_type"] == "position.opened" and e["seq"] == 1
    assert e["size"] == "0.1" and e["entry_price"] == "45000" and e["side"] == "long"
    assert {"event_id", "timestamp", "user_id", "exchange", "metadata", "position_id"} <= e.keys()


async def test_duplicate_and_stale_updates_change_nothing(any_store: Store) -> None:
    await any_store.positions.upsert(pos())
    assert (await any_store.positions.upsert(pos())).code == 0  # same content again
    newer = pos(size="0.2", updated_at=T0 + timedelta(seconds=2))
    assert (await any_store.positions.upsert(newer)).event_type == "position.updated"
    older = pos(size="0.15", updated_at=T0 + timedelta(seconds=1))
    assert (await any_store.positions.upsert(older)).code == -1
    got = await any_store.positions.get("u1", "okx", "BTC-USDT-SWAP", "long")
    assert got is not None and got.size == Decimal("0.2")
    assert [e["seq"] for e in await stream_events(any_store)] == [1, 2]


async def test_close_then_reopen(any_store: Store) -> None:
    await any_store.positions.upsert(pos())
    closed = pos(
        size="0", status="closed", closed_at=T0 + timedelta(seconds=1), updated_at=T0 + timedelta(seconds=1)
    )
    assert (await any_store.positions.upsert(closed)).event_type == "position.closed"
    assert await any_store.positions.list("u1", "okx") == []
    again = pos(size="0.3", updated_at=T0 + timedelta(seconds=2))
    assert (await any_store.positions.upsert(again)).event_type == "position.opened"


async def test_hedge_mode_long_and_short_at_once(any_store: Store) -> None:
    await any_store.positions.upsert(pos(side="long"))
    await any_store.positions.upsert(pos(side="short", size="0.05"))
    got = await any_store.positions.list("u1", "okx", symbol="BTC-USDT-SWAP")
    assert [(p.side.value, p.size) for p in got] == [("long", Decimal("0.1")), ("short", Decimal("0.05"))]


async def test_order_lifecycle_and_indexes(any_store: Store) -> None:
    o = order()
    assert (await any_store.orders.upsert(o)).event_type == "order.created"
    assert [x.order_id for x in await any_store.orders.list_open("u1", "okx")] == ["1001"]
    part = order(status="partially_filled", filled_qty="0.4", updated_at=T0 + timedelta(seconds=1))
    assert (await any_store.orders.upsert(part)).event_type == "order.partially_filled"
    done = order(
        status="filled", filled_qty="1", avg_fill_price="45000", updated_at=T0 + timedelta(seconds=2)
    )
    assert (await any_store.orders.upsert(done)).event_type == "order.filled"
    assert await any_store.orders.list_open("u1", "okx") == []
    closed = await any_store.orders.list_closed("u1", "okx")
    assert [c.status.value for c in closed] == ["filled"]
    # a late "open" with the same or an older time, or even a newer one, never revives a finished order
    assert (await any_store.orders.upsert(order(updated_at=T0 + timedelta(seconds=3)))).code == -1
    assert (await any_store.orders.upsert(part)).code == -1
    assert len(await any_store.orders.list_closed("u1", "okx")) == 1
    ttl = await any_store.redis.ttl(any_store.keys.order("u1", "okx", "1001"))
    assert ttl > 0


async def test_same_timestamp_ties_broken_by_progress(any_store: Store) -> None:
    await any_store.orders.upsert(order(status="partially_filled", filled_qty="0.5"))
    assert (await any_store.orders.upsert(order(status="partially_filled", filled_qty="0.7"))).applied
    assert (await any_store.orders.upsert(order(status="partially_filled", filled_qty="0.5"))).code == -1


async def test_closed_list_capped_at_1000(any_store: Store) -> None:
    writes = [
        any_store.orders.write_for(order(exchange_order_id=str(i), status="cancelled")) for i in range(1005)
    ]
    await any_store.writer.apply_many(writes)
    assert await any_store.redis.llen(any_store.keys.closed_orders("u1", "okx")) == 1000
    newest = await any_store.orders.list_closed("u1", "okx", limit=1)
    assert newest[0].order_id == "1004"


async def test_event_is_published_with_its_seq(any_store: Store) -> None:
    pubsub = any_store.redis.pubsub()
    channel = any_store.channels.orders("u1", "okx")
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1)  # subscribe ack
    await any_store.orders.upsert(order())
    msg = None
    for _ in range(50):
        msg = await pubsub.get_message(timeout=0.1)
        if (msg and msg["type"] == b"message") or (msg and msg["type"] == "message"):
            break
    assert msg is not None
    payload = orjson.loads(msg["data"])
    assert payload["event_type"] == "order.created" and payload["seq"] == 1 and payload["order_id"] == "1001"
    await pubsub.aclose()


async def test_concurrent_writers_get_gapless_seqs(any_store: Store) -> None:
    async def one(i: int) -> None:
        await any_store.orders.upsert(order(exchange_order_id=str(i)))

    await asyncio.gather(*(one(i) for i in range(50)))
    seqs = [e["seq"] for e in await stream_events(any_store)]
    assert seqs == list(range(1, 51))


async def test_corrupt_stored_hash_raises_naming_key_and_field(any_store: Store) -> None:
    await any_store.positions.upsert(pos())
    key = any_store.keys.position("u1", "okx", "BTC-USDT-SWAP", "long")
    await any_store.redis.hset(key, "entry_price", "not-a-number")
    with pytest.raises(CorruptRecord, match="entry_price") as err:
        await any_store.positions.get("u1", "okx", "BTC-USDT-SWAP", "long")
    assert key in str(err.value)


async def test_dual_write_mirrors_the_legacy_hyperrsi_key_atomically(any_store: Store) -> None:
    store = Store.create(
        any_store.redis,
        prefix=any_store.keys.prefix,
        cluster_tags=any_store.keys.cluster_tags,
        dual_write=True,
    )
    await store.positions.upsert(pos(stop_loss_price="44000", metadata={"is_DCA": True}))
    legacy_key = store.keys.legacy_hyperrsi_position("u1", "BTC-USDT-SWAP", "long")
    new_key = store.keys.position("u1", "okx", "BTC-USDT-SWAP", "long")
    legacy = await store.redis.hgetall(legacy_key)
    new = await store.redis.hgetall(new_key)
    assert legacy[b"size"] == new[b"size"] == b"0.1"
    assert legacy[b"entry_price"] == new[b"entry_price"] == b"45000"
    assert legacy[b"sl_price"] == b"44000" and legacy[b"is_DCA"] == b"true"
    closed = pos(
        size="0", status="closed", closed_at=T0 + timedelta(seconds=1), updated_at=T0 + timedelta(seconds=1)
    )
    await store.positions.upsert(closed)
    assert not await store.redis.exists(legacy_key)


async def test_forward_progress_wins_over_an_older_clock(any_store: Store) -> None:
    """A command's reply stored with our clock must not block the exchange's fill stamped a moment earlier."""
    await any_store.orders.upsert(order(status="open", updated_at=T0 + timedelta(seconds=5)))
    filled = order(
        status="filled", filled_qty="1", avg_fill_price="45000", updated_at=T0 + timedelta(seconds=4)
    )
    assert (await any_store.orders.upsert(filled)).event_type == "order.filled"
    got = await any_store.orders.get("u1", "okx", "1001")
    assert got is not None and got.status.value == "filled"


async def test_writes_survive_a_script_flush(any_store: Store) -> None:
    """After Redis forgets its scripts (a restart), the next writes load them again."""
    await any_store.orders.upsert(order())
    await any_store.redis.script_flush()
    res = await any_store.orders.upsert(order(status="partially_filled", filled_qty="0.5"))
    assert res.event_type == "order.partially_filled"
