"""Real-time tracking (SPEC section 4) on the real Redis (each test over ccxt + the OKX wire front, and over
the paper gateway: see conftest)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from position_order_service.domain import Order, OrderStatus
from position_order_service.services.account.messages import StreamOrders

from .harness import SYMBOL, Harness, eventually


async def test_order_by_another_client_appears_in_redis_and_on_channel_in_order(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    pubsub = h.store.redis.pubsub()
    await pubsub.subscribe(h.store.channels.orders("u1", "okx"))
    await pubsub.get_message(timeout=1)
    # another client (the bot itself, or the exchange UI) places a limit order, then the price fills it
    h.engine.place_order(key, SYMBOL, "buy", "10", ord_type="limit", px="59000")
    oid = h.engine.open_orders(key, SYMBOL)[0].order_id
    await eventually(
        lambda: h.store.orders.get("u1", "okx", oid).__await__().__next__ if False else _has(h, oid)
    )
    h.price("58900")
    await eventually(lambda: _status(h, oid, "filled"))
    got = []
    for _ in range(40):
        msg = await pubsub.get_message(timeout=0.1)
        if msg and msg["type"] in ("message", b"message"):
            got.append(orjson.loads(msg["data"]))
        if got and got[-1]["event_type"] == "order.filled":
            break
    await pubsub.aclose()
    assert [e["event_type"] for e in got] == ["order.created", "order.filled"]
    assert got[0]["seq"] < got[1]["seq"]
    order = await h.store.orders.get("u1", "okx", oid)
    assert order is not None and order.external and order.quantity == Decimal("0.1")  # 10 contracts x 0.01
    await eventually(lambda: _position_size(h, "u1", "long", Decimal("0.1")))


async def _has(h: Harness, oid: str) -> bool:
    return await h.store.orders.get("u1", "okx", oid) is not None


async def _status(h: Harness, oid: str, status: str) -> bool:
    o = await h.store.orders.get("u1", "okx", oid)
    return o is not None and o.status.value == status


async def _position_size(h: Harness, user: str, side: str, size: Decimal) -> bool:
    p = await h.store.positions.get(user, "okx", SYMBOL, side)
    return p is not None and p.size == size and p.is_open


async def test_fills_during_disconnect_are_recovered_by_the_snapshot(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    actor = await h.track("u1")
    h.engine.place_order(key, SYMBOL, "buy", "5", ord_type="limit", px="59000")
    oid = h.engine.open_orders(key, SYMBOL)[0].order_id
    await eventually(lambda: _has(h, oid))
    await h.disconnect("u1")
    h.engine.set_price(SYMBOL, "58000")  # fills while the streams are down; their pushes are lost
    await eventually(lambda: _status(h, oid, "filled"), within=10)
    await eventually(lambda: _position_size(h, "u1", "long", Decimal("0.05")))
    assert actor.health.reconnects >= 1
    types = [e["event_type"] for e in await h.events("u1")]
    assert types.count("order.filled") == 1 and types.count("position.opened") == 1


async def test_a_fill_whose_push_was_lost_is_recovered_by_the_next_snapshot(h: Harness) -> None:
    """Pushes lost while the socket stays up (ws_drop): the snapshot restores the position, and the fill it
    made must reach the events too, exactly once (the REST fills of the account since the last snapshot)."""
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    h.engine.faults.update({"ws_drop": {"rate": 1.0, "channels": ["orders", "positions", "account"]}})
    h.engine.place_order(key, SYMBOL, "buy", "5")  # filled at once; every push of it is lost
    trade_ids = {f.trade_id for f in h.engine.fills(key)}
    assert len(trade_ids) == 1
    await asyncio.sleep(0.2)
    h.engine.faults.clear()
    await h.disconnect("u1")  # a reconnect: its snapshot finds the position the pushes never told of
    await eventually(lambda: _position_size(h, "u1", "long", Decimal("0.05")), within=10)
    await eventually(lambda: _fill_events(h, "u1", trade_ids), within=5)
    await h.disconnect("u1")  # another snapshot over the same window: nothing twice
    await eventually(lambda: _reconciled_again(h, "u1"), within=10)
    fills = [e for e in await h.events("u1") if e["event_type"] == "fill.created"]
    assert [f["trade_id"] for f in fills] == list(trade_ids)
    assert fills[0]["size"] == "0.05" and fills[0]["side"] == "buy"


async def _fill_events(h: Harness, user: str, trade_ids: set[str]) -> bool:
    return {e["trade_id"] for e in await h.events(user) if e["event_type"] == "fill.created"} == trade_ids


async def _reconciled_again(h: Harness, user: str) -> bool:
    actor = h.accounts.get(user, "okx")
    return actor is not None and actor.book.snapshots >= 3 and actor.health.state == "healthy"


async def test_restart_rebuilds_state_from_the_exchange(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    h.engine.place_order(key, SYMBOL, "buy", "3")  # a position opened before the service ever ran
    h.engine.place_order(key, SYMBOL, "sell", "1", ord_type="limit", px="61000")
    await h.track("u1")
    positions = await h.store.positions.list("u1", "okx")
    assert [(p.side.value, p.size, p.external) for p in positions] == [("long", Decimal("0.03"), False)]
    opens = await h.store.orders.list_open("u1", "okx")
    assert len(opens) == 1 and opens[0].external
    # the service "restarts": a new tracker over the same Redis rebuilds the same state without new events
    before = len(await h.events("u1"))
    await h.accounts.stop("u1", "okx")
    await h.track("u1")
    assert len(await h.events("u1")) == before


async def test_duplicate_and_out_of_order_updates_change_nothing(h: Harness) -> None:
    key = h.account("u1")
    h.price("60000")
    await h.track("u1")
    h.engine.place_order(key, SYMBOL, "buy", "2", ord_type="limit", px="59000")
    oid = h.engine.open_orders(key, SYMBOL)[0].order_id
    h.price("58000")
    await eventually(lambda: _status(h, oid, "filled"))
    filled = await h.store.orders.get("u1", "okx", oid)
    assert filled is not None
    before = await h.events("u1")
    await h.accounts.record_reports("u1", "okx", orders=[filled, filled])
    stale = filled.model_copy(
        update={"status": OrderStatus.OPEN, "filled_qty": Decimal(0), "avg_fill_price": None}
    )
    await h.accounts.record_reports("u1", "okx", orders=[stale])
    assert await h.events("u1") == before
    assert (await h.store.orders.get("u1", "okx", oid)).status.value == "filled"  # type: ignore[union-attr]


async def test_hedge_mode_long_and_short_at_once(h: Harness) -> None:
    key = h.account("u1", position_mode="long_short")
    h.price("60000")
    await h.track("u1")
    h.engine.place_order(key, SYMBOL, "buy", "2", pos_side="long")
    h.engine.place_order(key, SYMBOL, "sell", "1", pos_side="short")
    await eventually(lambda: _position_size(h, "u1", "long", Decimal("0.02")))
    await eventually(lambda: _position_size(h, "u1", "short", Decimal("0.01")))
    h.engine.place_order(key, SYMBOL, "buy", "1", pos_side="short", reduce_only=True)
    await eventually(lambda: _closed(h, "short"))
    types = [
        (e["event_type"], e.get("side"))
        for e in await h.events("u1")
        if e["event_type"].startswith("position")
    ]
    assert ("position.opened", "long") in types and ("position.closed", "short") in types
    assert await _position_size(h, "u1", "long", Decimal("0.02"))


async def _closed(h: Harness, side: str) -> bool:
    p = await h.store.positions.get("u1", "okx", SYMBOL, side)
    return p is not None and not p.is_open


async def test_deactivated_user_stream_closes_and_bad_credentials_are_reported(h: Harness) -> None:
    h.account("u1")
    h.price("60000")
    await h.active.activate("u1", ["okx"])
    assert h.accounts.get("u1", "okx") is not None
    # a user without credentials: unhealthy with a reason; the first user keeps working
    await h.active.activate("nokeys", ["okx"])
    health = {x["user_id"]: x for x in h.accounts.health()}
    assert health["nokeys"]["healthy"] is False and "no credentials" in health["nokeys"]["last_error"]
    await h.active.deactivate("u1")
    assert h.accounts.get("u1", "okx") is None
    # a deactivation sticks even though bot status says enabled
    await h.store.redis.set(h.store.keys.bot_status("u1"), "enabled")
    await h.active.rescan_users()
    assert h.accounts.get("u1", "okx") is None
    await h.active.activate("u1", ["okx"])
    assert h.accounts.get("u1", "okx") is not None


async def test_bot_status_enabled_users_are_found_by_the_scan(h: Harness) -> None:
    h.account("bot7")
    h.price("60000")
    await h.store.redis.set(h.store.keys.bot_status("bot7"), "enabled")
    await h.store.redis.sadd(h.store.keys.bot_exchanges("bot7"), "okx")
    await h.active.rescan_users()
    assert h.accounts.get("bot7", "okx") is not None
    await asyncio.sleep(0)


async def test_fills_of_two_symbols_with_the_same_trade_id_are_both_recorded(h: Harness) -> None:
    """OKX numbers trades per instrument: BTC's trade 123 and ETH's trade 123 are two fills. Fills were
    deduplicated by trade id alone, so the second one was dropped (issue 11 item 6)."""
    key = h.account("u1")
    h.price("60000")
    h.price("3000", "ETH-USDT-SWAP")
    await h.track("u1")
    h.engine.place_order(key, SYMBOL, "buy", "1")

    async def fills() -> list[dict[str, object]]:
        return [e for e in await h.events("u1") if e["event_type"] == "fill.created"]

    await eventually(lambda: _count(fills, 1))
    trade_id = (await fills())[0]["trade_id"]
    h.engine._next_trade = int(str(trade_id))  # the simulator numbers trades per venue; OKX per instrument
    h.engine.place_order(key, "ETH-USDT-SWAP", "buy", "1")
    await eventually(lambda: _count(fills, 2))
    assert sorted((f["symbol"], f["trade_id"]) for f in await fills()) == [
        ("BTC-USDT-SWAP", trade_id),
        ("ETH-USDT-SWAP", trade_id),
    ]


async def _count(fetch: object, n: int) -> bool:
    return len(await fetch()) == n  # type: ignore[operator]


async def test_stream_batches_queued_behind_a_write_are_applied_in_one_turn_in_order(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: while the actor waits for a write, the stream batches that queue are folded, each with its
    arrival, into one plan and written in one group commit; the events keep the exchange's order."""
    h.account("u1")
    h.price("60000")
    actor = await h.track("u1")
    await h.settle()
    t0 = datetime.now(UTC)

    def report(oid: str, status: OrderStatus, filled: str, ms: int) -> Order:
        return Order(
            exchange_order_id=oid, user_id="u1", exchange="okx", symbol=SYMBOL, side="buy", order_type="limit",
            quantity=Decimal("2"), price=Decimal("59000"), filled_qty=Decimal(filled),
            avg_fill_price=Decimal("59000") if filled != "0" else None, status=status,
            created_at=t0, updated_at=t0 + timedelta(milliseconds=ms),
        )  # fmt: skip

    pipelines: list[int] = []
    run = h.store.writer._run_pipeline

    async def counted(batch: list[tuple[list[Any], Any]]) -> list[Any]:
        pipelines.append(sum(len(items) for items, _ in batch))
        return await run(batch)

    monkeypatch.setattr(h.store.writer, "_run_pipeline", counted)
    messages = [
        [report("x1", OrderStatus.OPEN, "0", 1)],
        [report("x1", OrderStatus.PARTIALLY_FILLED, "1", 2)],
        [report("x2", OrderStatus.OPEN, "0", 3)],
        [report("x1", OrderStatus.FILLED, "2", 4)],
        [report("x2", OrderStatus.CANCELLED, "0", 5)],
    ]
    for orders in messages:  # queued at once, as a busy socket delivers them
        actor.inbox.post(StreamOrders(orders))
    await eventually(lambda: _status(h, "x2", "cancelled"))
    events = [(e["order_id"], e["event_type"]) for e in await h.events("u1") if e["order_id"] in ("x1", "x2")]
    assert events == [
        ("x1", "order.created"),
        ("x1", "order.partially_filled"),
        ("x2", "order.created"),
        ("x1", "order.filled"),
        ("x2", "order.cancelled"),
    ]
    assert len(pipelines) <= 3, (
        pipelines
    )  # the stored records and intents, then the writes (one per batch: 10)
