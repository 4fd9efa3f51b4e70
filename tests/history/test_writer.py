"""HistoryWriter against the real store (Redis) on SQLite and PostgreSQL: exactly-once rows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from position_order_service.history import HistoryDB, HistoryWriter
from position_order_service.history import tables as t
from position_order_service.history import writer as writer_module
from position_order_service.history.mapping import Batch, version_of
from position_order_service.store import Store

from .support import T0, count, emit_fill, evolve, fetch, order, order_payload, payload, position

pytestmark = pytest.mark.redis


async def _offset(db: HistoryDB, store: Store, user_id: str = "u1") -> tuple[int, int]:
    rows = await fetch(db, t.stream_offsets, t.stream_offsets.c.stream == store.keys.event_stream(user_id))
    return (rows[0]["epoch"], rows[0]["last_seq"]) if rows else (0, 0)


async def test_store_events_become_rows_exactly_once(store: Store, history_db: HistoryDB) -> None:
    o = order()
    await store.orders.upsert(o)
    o = evolve(o, status="partially_filled", filled_qty="0.4", avg_fill_price="45000")
    await store.orders.upsert(o)
    await emit_fill(store, trade_id="t1", size="0.4", fee="0.36")
    o = evolve(o, status="filled", filled_qty="1", avg_fill_price="45010")
    await store.orders.upsert(o)
    await emit_fill(store, trade_id="t2", size="0.6", fee="0.54", price="45016.666666666666666667")
    await store.positions.upsert(position(size="1", entry_price="45010"))
    other = order(exchange_order_id="2002", user_id="u2", side="sell", order_type="market", price=None)
    await store.orders.upsert(other)

    writer = HistoryWriter(store.redis, store.keys, history_db, ["u1", "u2"])
    assert await writer.lag() == {"u1": 6, "u2": 1}
    assert await writer.drain() == 7
    assert await writer.lag() == {"u1": 0, "u2": 0}
    assert await writer.drain() == 0  # nothing new: nothing written again

    [row] = await fetch(db := history_db, t.orders, t.orders.c.user_id == "u1")
    assert (row["order_id"], row["status"], row["last_event_type"]) == ("1001", "filled", "order.filled")
    assert (row["filled_qty"], row["avg_fill_price"], row["quantity"]) == (
        Decimal(1),
        Decimal(45010),
        Decimal(1),
    )
    assert row["created_at"] < row["updated_at"] == row["closed_at"]
    assert row["created_at"].tzinfo is not None
    fills = await fetch(db, t.fills, order_by=t.fills.c.trade_id)
    assert [(f["trade_id"], f["size"], f["fee"]) for f in fills] == [
        ("t1", Decimal("0.4"), Decimal("0.36")),
        ("t2", Decimal("0.6"), Decimal("0.54")),
    ]
    assert fills[1]["price"] == Decimal("45016.666666666666666667")  # exact, 18 decimals
    [pos] = await fetch(db, t.positions)
    assert (pos["position_id"], pos["status"], pos["size"], pos["entry_price"]) == ("p1", "open", 1, 45010)
    [u2] = await fetch(db, t.orders, t.orders.c.user_id == "u2")
    assert (u2["order_id"], u2["side"], u2["price"]) == ("2002", "sell", None)
    assert await _offset(db, store, "u1") == (0, 6)
    assert await _offset(db, store, "u2") == (0, 1)

    # a second writer (a restart) resumes from the stored offsets: nothing is read twice
    again = HistoryWriter(store.redis, store.keys, history_db, ["u1", "u2"])
    assert await again.drain() == 0


async def test_replay_and_older_events_never_overwrite(store: Store, history_db: HistoryDB) -> None:
    o = order()
    await store.orders.upsert(o)
    await store.orders.upsert(o := evolve(o, status="filled", filled_qty="1", avg_fill_price="45000"))
    await emit_fill(store, trade_id="t1")
    await store.positions.upsert(p := position())
    await store.positions.upsert(
        position(
            size="0",
            status="closed",
            current_price="45100",
            updated_at=p.updated_at + timedelta(seconds=5),
            closed_at=p.updated_at + timedelta(seconds=5),
            pnl={"realized": "100"},
        )
    )
    writer = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    assert await writer.drain() == 5
    before = {
        tbl.name: await fetch(history_db, tbl) for tbl in (t.orders, t.fills, t.positions, t.realized_pnl)
    }

    # lose the offset (at-least-once): the whole stream is applied again, oldest event first
    async with history_db.engine.begin() as conn:
        await conn.execute(update(t.stream_offsets).values(last_seq=0))
    replay = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    assert await replay.drain() == 5
    after = {
        tbl.name: await fetch(history_db, tbl) for tbl in (t.orders, t.fills, t.positions, t.realized_pnl)
    }
    assert after == before
    assert after["orders"][0]["status"] == "filled"
    assert after["positions"][0]["status"] == "closed"
    assert [r["amount"] for r in after["realized_pnl"]] == [Decimal(100)]

    # an older event applied after a newer one (any source): the stored row keeps the newer state
    stale = Batch()
    stale.add("x", "u1", 0, 1, orjson.dumps(order_payload(T0, "1001", status="open", symbol="BTC-USDT-SWAP")))
    async with history_db.engine.begin() as conn:
        await writer_module.apply_batch(conn, stale)
    [row] = await fetch(history_db, t.orders)
    assert (row["status"], row["src_version"]) == ("filled", before["orders"][0]["src_version"])


async def test_newer_version_wins_inside_and_across_batches(history_db: HistoryDB) -> None:
    b = Batch()
    b.add("s", "u1", 0, 7, order_payload(T0 + timedelta(seconds=7), "A", status="filled"))
    b.add("s", "u1", 0, 3, order_payload(T0 + timedelta(seconds=3), "A", status="open"))  # out of order
    async with history_db.engine.begin() as conn:
        await writer_module.apply_batch(conn, b)
    b2 = Batch()
    b2.add("s", "u1", 0, 9, order_payload(T0 + timedelta(seconds=9), "A", status="cancelled"))
    b2.add("s", "u1", 0, 8, order_payload(T0 + timedelta(seconds=1), "B", status="open"))
    async with history_db.engine.begin() as conn:
        await writer_module.apply_batch(conn, b2)
    rows = {r["order_id"]: r for r in await fetch(history_db, t.orders)}
    assert rows["A"]["status"] == "cancelled" and rows["A"]["src_version"] == 9
    assert rows["A"]["closed_at"] == T0 + timedelta(seconds=7)  # the first close is kept
    assert rows["B"]["status"] == "open"
    # a newer epoch (Redis restarted) beats any seq of the old one
    b3 = Batch()
    b3.add("s", "u1", 1, 1, order_payload(T0 + timedelta(seconds=20), "A", status="open", price="99"))
    async with history_db.engine.begin() as conn:
        await writer_module.apply_batch(conn, b3)
    [a] = await fetch(history_db, t.orders, t.orders.c.order_id == "A")
    assert (a["price"], a["src_version"]) == (Decimal(99), version_of(1, 1))


async def _produce(store: Store, n: int, start: int = 0, pause_every: int = 4) -> None:
    for i in range(start, start + n):
        oid = f"o{i}"
        o = order(
            exchange_order_id=oid, created_at=T0 + timedelta(seconds=i), updated_at=T0 + timedelta(seconds=i)
        )
        await store.orders.upsert(o)
        await store.orders.upsert(evolve(o, status="filled", filled_qty="1", avg_fill_price="45000"))
        await emit_fill(store, trade_id=f"t{i}", order_id=oid)
        if i % pause_every == 0:
            await asyncio.sleep(0.01)


async def _until(pred: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not await pred():
            await asyncio.sleep(0.02)


async def test_stopped_and_killed_writer_catches_up_without_duplicates(
    store: Store, history_db: HistoryDB
) -> None:
    n = 240
    producer = asyncio.create_task(_produce(store, n))
    w1 = HistoryWriter(store.redis, store.keys, history_db, ["u1"], batch_size=40, block_ms=50)
    run1 = asyncio.create_task(w1.run())
    await _until(lambda: _ready(history_db, 20))
    w1.stop()  # graceful stop while events keep flowing
    await asyncio.wait_for(run1, 5)
    stopped_at = await count(history_db, t.orders)
    assert stopped_at < n and not producer.done()  # stopped while events keep flowing

    w2 = HistoryWriter(store.redis, store.keys, history_db, ["u1"], batch_size=40, block_ms=50)
    run2 = asyncio.create_task(w2.run())
    await _until(lambda: _ready(history_db, stopped_at + 20))
    run2.cancel()  # a crash: the task dies wherever it is, maybe inside a transaction
    with contextlib.suppress(asyncio.CancelledError):
        await run2

    await producer
    w3 = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    await w3.drain()
    assert await w3.lag() == {"u1": 0}
    assert await count(history_db, t.orders) == n
    assert await count(history_db, t.orders, t.orders.c.status == "filled") == n
    assert await count(history_db, t.fills) == n
    async with history_db.sessionmaker() as s:
        distinct = (await s.execute(select(func.count(func.distinct(t.fills.c.trade_id))))).scalar_one()
    assert distinct == n
    assert await _offset(history_db, store) == (0, 3 * n)


async def _ready(db: HistoryDB, n: int) -> bool:
    return await count(db, t.orders) >= n


async def test_database_outage_rolls_back_and_retries(
    store: Store, history_db: HistoryDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _produce(store, 30)
    real = writer_module.apply_batch
    failures = {"left": 3}

    async def flaky(conn: Any, batch: Batch) -> None:
        await real(conn, batch)  # rows written inside the transaction ...
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionError("database went away")  # ... then lost with it

    monkeypatch.setattr(writer_module, "apply_batch", flaky)
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"], batch_size=20, block_ms=20)
    w.retry_max_s = 0.05
    task = asyncio.create_task(w.run())
    await _until(lambda: _lag_zero(w))
    w.stop()
    await asyncio.wait_for(task, 5)
    assert w.stats.errors == 3 and w.stats.last_error is not None and "went away" in w.stats.last_error
    assert await count(history_db, t.orders) == 30
    assert await count(history_db, t.fills) == 30
    assert await _offset(history_db, store) == (0, 90)


async def _lag_zero(w: HistoryWriter) -> bool:
    return sum((await w.lag()).values()) == 0 and w.stats.entries > 0


async def test_redis_that_lost_its_data_starts_a_new_epoch(store: Store, history_db: HistoryDB) -> None:
    o = order()
    await store.orders.upsert(o)
    await store.orders.upsert(o2 := order(exchange_order_id="1002"))
    await emit_fill(store, trade_id="t1")
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    assert await w.drain() == 3

    # Redis restarts empty: seq counters start again at 1
    await store.redis.delete(
        store.keys.event_stream("u1"), store.keys.event_seq("u1"), store.keys.order("u1", "okx", "1001")
    )
    await store.orders.upsert(evolve(o, seconds=60, status="cancelled"))
    await store.orders.upsert(order(exchange_order_id="1003"))
    w2 = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    assert await w2.drain() == 2
    assert w2.stats.resets == 1
    rows = {r["order_id"]: r for r in await fetch(history_db, t.orders)}
    assert rows["1001"]["status"] == "cancelled"  # seq 1 of epoch 1 is newer than seq 1..3 of epoch 0
    assert rows["1002"]["status"] == o2.status.value
    assert set(rows) == {"1001", "1002", "1003"}
    assert await _offset(history_db, store) == (1, 2)

    # same length, other events (flushed and refilled past the old offset): found by the event id
    await store.redis.delete(store.keys.event_stream("u1"), store.keys.event_seq("u1"))
    await store.orders.upsert(order(exchange_order_id="1004"))
    await store.orders.upsert(order(exchange_order_id="1005"))
    await store.orders.upsert(order(exchange_order_id="1006"))
    assert await w2.check_resets() == ["u1"]
    assert await w2.drain() == 3
    assert await count(history_db, t.orders) == 6


async def test_bad_entries_are_dead_lettered_and_gaps_counted(store: Store, history_db: HistoryDB) -> None:
    stream = store.keys.event_stream("u1")
    await store.redis.xadd(stream, {"data": b"{not json"}, id="1-1")
    await store.redis.xadd(
        stream, {"data": orjson.dumps(order_payload(T0, "A") | {"quantity": "abc"})}, id="2-1"
    )
    await store.redis.xadd(
        stream, {"data": orjson.dumps(payload("price.updated", T0, symbol="X", price="1"))}, id="3-1"
    )
    # 4 and 5 were trimmed away before the writer read them
    await store.redis.xadd(stream, {"data": orjson.dumps(order_payload(T0, "B"))}, id="6-1")
    await store.redis.set(store.keys.event_seq("u1"), 6)
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    assert await w.drain() == 4
    assert (w.stats.dead_letters, w.stats.ignored, w.stats.gaps) == (2, 1, 2)
    dead = await fetch(history_db, t.dead_letters, order_by=t.dead_letters.c.seq)
    assert [d["seq"] for d in dead] == [1, 2]
    assert "quantity" in dead[1]["reason"]
    assert [r["order_id"] for r in await fetch(history_db, t.orders)] == ["B"]
    assert await _offset(history_db, store) == (0, 6)


async def test_position_lifetimes_and_realized_pnl_changes(store: Store, history_db: HistoryDB) -> None:
    ts = T0
    await store.positions.upsert(position(size="2", updated_at=ts))
    await store.positions.upsert(
        position(size="1", pnl={"realized": "10.5"}, updated_at=ts + timedelta(hours=1))
    )
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    await w.drain()  # the rest arrives in a later batch: deltas continue from the stored row
    await store.positions.upsert(
        position(
            size="0",
            status="closed",
            pnl={"realized": "25", "fees": "1"},
            current_price="45200",
            updated_at=ts + timedelta(days=1),
            closed_at=ts + timedelta(days=1),
        )
    )
    reopened = ts + timedelta(days=2)
    await store.positions.upsert(
        position(size="3", entry_price="44000", created_at=reopened, updated_at=reopened)
    )
    await w.drain()
    rows = await fetch(history_db, t.positions, order_by=t.positions.c.lifetime)
    assert [(r["lifetime"], r["status"], r["size"], r["max_size"]) for r in rows] == [
        (0, "closed", 0, 2),
        (1, "open", 3, 3),
    ]
    first, second = rows
    # position events carry the position's own times (created_at, closed_at): history records those
    assert first["exit_price"] == Decimal(45200) and first["realized_pnl"] == Decimal(25)
    assert (first["opened_at"], first["closed_at"]) == (ts, ts + timedelta(days=1))
    assert second["opened_at"] == reopened and second["entry_price"] == 44000 and second["closed_at"] is None
    ledger = await fetch(history_db, t.realized_pnl, order_by=t.realized_pnl.c.src_version)
    assert [(r["amount"], r["ts"], r["src_version"]) for r in ledger] == [
        (Decimal("10.5"), ts + timedelta(hours=1), 2),  # when the position changed, by its updated_at
        (Decimal("14.5"), ts + timedelta(days=1), 3),
    ]


async def _stream(store: Store, user_id: str = "u1") -> list[dict[str, Any]]:
    return [orjson.loads(f[b"data"]) for _, f in await store.redis.xrange(store.keys.event_stream(user_id))]


async def test_trailing_stops_and_rules_keep_latest_state_and_transitions(
    store: Store, history_db: HistoryDB
) -> None:
    from position_order_service.domain.events import envelope

    async def stop_event(kind: str, state: str, **kw: Any) -> None:
        fields = (
            envelope("u1", "okx")
            | {
                "symbol": "BTC-USDT-SWAP",
                "side": "long",
                "activation_price": "46000",
                "callback_rate": "0.02",
                "extreme_price": None,
                "stop_price": None,
                "order_id": None,
                "state": state,
            }
            | kw
        )
        await store.writer.emit("u1", "", f"trailing_stop.{kind}", fields)

    async def rule_event(kind: str, state: str, **kw: Any) -> None:
        fields = (
            envelope("u1", "okx")
            | {
                "rule_id": "r1",
                "trigger_order_id": "1001",
                "cancel_order_ids": ["1002", "1003"],
                "condition": "filled",
                "state": state,
            }
            | kw
        )
        await store.writer.emit("u1", "", f"conditional.{kind}", fields)

    await stop_event("created", "pending")
    await stop_event("activated", "active", extreme_price="46100", stop_price="45178")
    await rule_event("created", "armed")
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"])
    await w.drain()
    [first] = await fetch(history_db, t.trailing_stops)
    await stop_event("executed", "done", order_id="9001")
    await rule_event("executed", "done", cancelled_ids=["1002"], already_closed_ids=["1003"])
    await w.drain()
    [stop] = await fetch(history_db, t.trailing_stops)
    assert (stop["state"], stop["order_id"], stop["stop_price"]) == ("done", "9001", None)
    assert stop["created_at"] == first["created_at"] and stop["finished_at"] is not None
    [rule] = await fetch(history_db, t.conditional_rules)
    assert rule["cancelled_ids"] == ["1002"] and rule["already_closed_ids"] == ["1003"]
    assert rule["cancel_order_ids"] == ["1002", "1003"] and rule["finished_at"] is not None

    await stop_event("created", "pending", callback_rate="0.05")  # a new stop on the same symbol and side
    await w.drain()
    [again] = await fetch(history_db, t.trailing_stops)
    assert again["finished_at"] is None and again["created_at"] > stop["created_at"]
    assert again["callback_rate"] == Decimal("0.05")
    kinds = [
        (r["kind"], r["event_type"])
        for r in await fetch(history_db, t.transitions, order_by=t.transitions.c.src_version)
    ]
    assert kinds == [
        ("trailing_stop", "trailing_stop.created"),
        ("trailing_stop", "trailing_stop.activated"),
        ("conditional", "conditional.created"),
        ("trailing_stop", "trailing_stop.executed"),
        ("conditional", "conditional.executed"),
        ("trailing_stop", "trailing_stop.created"),
    ]


async def test_users_are_added_later_or_discovered(store: Store, history_db: HistoryDB) -> None:
    await store.orders.upsert(order(user_id="late"))
    await store.orders.upsert(order(user_id="active"))
    w = HistoryWriter(store.redis, store.keys, history_db, max_streams_per_read=1)  # one XREAD per stream
    assert await w.run_once() == 0
    w.add_user("late")
    assert await w.drain() == 1
    await store.redis.sadd(store.keys.active_users(), "active")
    w.track_active_users = True
    assert await w.drain() == 1
    assert set(w.user_ids) == {"late", "active"}
    assert await count(history_db, t.orders) == 2


def test_version_layout() -> None:
    assert version_of(0, 5) == 5
    assert version_of(1, 1) > version_of(0, 2**40 - 1)
    with pytest.raises(ValueError):
        version_of(0, 2**40)


async def test_stop_ids_fill_times_and_json_numbers(history_db: HistoryDB) -> None:
    b = Batch()
    stop = {
        "symbol": "BTC-USDT-SWAP",
        "side": "long",
        "callback_rate": "0.02",
        "state": "active",
        "mode": "emulated",
        "size": "0.5",
    }
    b.add("s", "u1", 0, 1, payload("trailing_stop.created", T0, trailing_stop_id="s1", **stop))
    b.add(
        "s",
        "u1",
        0,
        2,
        payload("trailing_stop.cancelled", T0, trailing_stop_id="s1", **stop | {"state": "cancelled"}),
    )
    b.add("s", "u1", 0, 3, payload("trailing_stop.created", T0, trailing_stop_id="s2", **stop))
    filled_at = T0 - timedelta(seconds=3)
    fill = payload(
        "fill.created",
        T0,
        trade_id="7",
        symbol="BTC-USDT-SWAP",
        side="sell",
        price=45000.1,
        size=0.1,
        fee="0.01",
    )
    b.add("s", "u1", 0, 4, fill | {"filled_at": filled_at.isoformat()})
    async with history_db.engine.begin() as conn:
        await writer_module.apply_batch(conn, b)
    stops = {r["stop_id"]: r for r in await fetch(history_db, t.trailing_stops)}
    assert set(stops) == {"s1", "s2"}  # same symbol and side, two stops
    assert stops["s1"]["state"] == "cancelled" and stops["s1"]["size"] == Decimal("0.5")
    assert stops["s1"]["finished_at"] == T0 and stops["s2"]["finished_at"] is None
    [f] = await fetch(history_db, t.fills)
    assert f["ts"] == filled_at  # the exchange's fill time, not the event's
    assert (f["price"], f["size"]) == (Decimal("45000.1"), Decimal("0.1"))  # JSON numbers via their repr


# -- linger: entries trickling in share a transaction ---------------------------------------------------


async def _fills_written(db: HistoryDB, n: int) -> bool:
    return await count(db, t.fills) >= n


async def test_entries_arriving_within_the_linger_share_one_transaction(
    store: Store, history_db: HistoryDB
) -> None:
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"], block_ms=1000, linger_s=0.6)
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0.2)  # the writer now blocks on its streams
    loop = asyncio.get_running_loop()
    first = loop.time()
    for i in range(5):
        await emit_fill(store, trade_id=f"t{i}", order_id=f"o{i}")
        await asyncio.sleep(0.05)
    await _until(lambda: _fills_written(history_db, 5))
    waited = loop.time() - first
    w.stop()
    await asyncio.wait_for(task, 10)
    assert (w.stats.batches, w.stats.entries) == (1, 5)
    assert 0.6 <= waited < 0.6 + 2.0  # the first entry waited the linger out, not much longer
    assert await _offset(history_db, store) == (0, 5)


async def test_full_reads_do_not_linger(store: Store, history_db: HistoryDB) -> None:
    for i in range(40):
        await emit_fill(store, trade_id=f"t{i}", order_id=f"o{i}")
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"], batch_size=20, block_ms=50, linger_s=60)
    task = asyncio.create_task(w.run())
    await _until(lambda: _fills_written(history_db, 40), timeout=10)
    w.stop()
    await asyncio.wait_for(task, 5)
    assert (w.stats.batches, w.stats.entries) == (2, 40)


async def test_a_busy_account_among_many_is_not_held_back_by_the_linger(
    store: Store, history_db: HistoryDB
) -> None:
    for i in range(10):
        await emit_fill(store, trade_id=f"t{i}", order_id=f"o{i}")
    users = ["u1", *(f"idle{i}" for i in range(39))]  # 40 streams: a read asks each for 1 entry of 20
    w = HistoryWriter(store.redis, store.keys, history_db, users, batch_size=20, block_ms=50, linger_s=60)
    task = asyncio.create_task(w.run())
    await _until(lambda: _fills_written(history_db, 10), timeout=10)  # one linger each: 10 minutes
    w.stop()
    await asyncio.wait_for(task, 5)


async def test_stop_cuts_the_linger_short_and_writes_what_was_read(
    store: Store, history_db: HistoryDB
) -> None:
    w = HistoryWriter(store.redis, store.keys, history_db, ["u1"], block_ms=5000, linger_s=60)
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0.2)
    await emit_fill(store, trade_id="t0", order_id="o0")
    await asyncio.sleep(0.3)  # the read returned one entry: the writer lingers
    assert await count(history_db, t.fills) == 0
    w.stop()
    await asyncio.wait_for(task, 5)
    assert await count(history_db, t.fills) == 1
    assert await _offset(history_db, store) == (0, 1)
    assert await w.lag() == {"u1": 0}
