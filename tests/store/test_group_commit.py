"""Group commit (issue 15 item 3): the writes and reads that many accounts submit while a pipeline is in
flight share the next round trip (each script call still one account's keys, atomic on its own), and the
APPLY script keeps its answers: applied, unchanged, stale, the closed list capped."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from position_order_service.domain.enums import OrderStatus
from position_order_service.domain.reconcile import marked
from position_order_service.store import Store
from position_order_service.store.writer import EventWriter

from .test_repositories import T0, order, pos, stream_events


def count_pipelines(writer: EventWriter, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the pipelines the writer sends (items per round trip)."""
    sizes: list[int] = []
    run = writer._run_pipeline

    async def counted(batch: list[tuple[list[Any], Any]]) -> list[Any]:
        sizes.append(sum(len(items) for items, _ in batch))
        await asyncio.sleep(0.01)  # a slow round trip: later submissions queue behind it
        return await run(batch)

    monkeypatch.setattr(writer, "_run_pipeline", counted)
    return sizes


async def test_accounts_submitting_in_different_loop_turns_share_round_trips(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = count_pipelines(store.writer, monkeypatch)
    n = 200

    async def account(i: int) -> int:
        for _ in range(i % 50):  # each account's turn comes in another loop turn
            await asyncio.sleep(0)
        o = order(user_id=f"u{i}", exchange_order_id=f"o{i}")
        (r,) = await store.writer.apply_many([store.orders.write_for(o)])
        return r.code

    codes = await asyncio.gather(*(account(i) for i in range(n)))
    assert codes == [1] * n
    assert sum(sizes) == n
    # one pipeline per loop turn would be ~50 here; behind an in-flight one they gather
    assert len(sizes) <= 8, sizes  # one in flight, then what queued behind it (one per turn: 50)
    for i in (0, 77, 199):
        stored = await store.orders.get(f"u{i}", "okx", f"o{i}")
        assert stored is not None and stored.order_id == f"o{i}"


async def test_reads_go_in_the_same_round_trip_as_writes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = order(exchange_order_id="o1", client_order_id="c1")
    await store.orders.upsert(first)
    sizes = count_pipelines(store.writer, monkeypatch)
    second = order(exchange_order_id="o2", client_order_id="c2")
    read, (written,) = await asyncio.gather(
        store.orders.known_and_intents("u1", "okx", ["o1", "o9"], ["c1"]),
        store.writer.apply_many([store.orders.write_for(second)]),
    )
    known, _intents = read
    assert [o.order_id for o in known] == ["o1"]
    assert written.applied
    assert sizes == [4]  # two order hashes, one intent, one write: one round trip


async def test_apply_answers_unchanged_and_stale_and_caps_the_closed_list(any_store: Store) -> None:
    w, orders = any_store.writer, any_store.orders
    live = order(exchange_order_id="o1", updated_at=T0.replace(second=2))
    assert (await w.apply(orders.write_for(live))).code == 1
    same = live.model_copy(update={"updated_at": T0.replace(second=3)})  # only its time differs
    assert (await w.apply(orders.write_for(same))).code == 0
    older = live.model_copy(update={"price": Decimal("1"), "updated_at": T0.replace(second=1)})
    assert (await w.apply(orders.write_for(older))).code == -1
    stored = await orders.get("u1", "okx", "o1")
    assert stored is not None and stored.price == live.price
    finished = [
        order(exchange_order_id=f"f{i}", status="filled", filled_qty="1", updated_at=T0) for i in range(1003)
    ]
    results = await w.apply_many([orders.write_for(o) for o in finished])
    assert all(r.applied for r in results)
    assert await any_store.redis.llen(any_store.keys.closed_orders("u1", "okx")) == 1000
    newest = await orders.list_closed("u1", "okx", limit=1)
    assert [o.order_id for o in newest] == ["f1002"]


async def test_an_update_sends_only_what_changed_and_the_record_is_whole(any_store: Store) -> None:
    w, orders = any_store.writer, any_store.orders
    first = order(exchange_order_id="o1", trigger_price=None, fee_currency="USDT")
    assert (await w.apply(orders.write_for(first))).applied
    fill = first.model_copy(
        update={"status": OrderStatus.PARTIALLY_FILLED, "filled_qty": Decimal("0.5"), "avg_fill_price": Decimal("45000"),
                "fee_currency": None, "updated_at": T0.replace(second=1)}
    )  # fmt: skip
    write = orders.write_for(fill)
    delta = w._apply_call(write, write.digest(), w._written[write.key])
    assert len(delta.args) < len(w._apply_call(write).args) - 30  # a few fields, not all of them
    assert "sadd" not in delta.args and "persist" not in delta.args  # its first write made both
    assert (await w.apply(write)).applied
    assert await orders.get("u1", "okx", "o1") == fill  # fee_currency gone, the rest as written


async def test_a_delta_over_a_record_another_writer_changed_is_sent_whole(any_store: Store) -> None:
    other = Store.create(  # another process, same records
        any_store.redis, prefix=any_store.keys.prefix, cluster_tags=any_store.keys.cluster_tags
    )
    v1 = order(exchange_order_id="o1")
    assert (await any_store.orders.upsert(v1)).applied
    v2 = v1.model_copy(
        update={"fee_currency": "USDT", "price": Decimal("46000"), "updated_at": T0.replace(second=1)}
    )
    assert (await other.orders.upsert(v2)).applied
    v3 = v1.model_copy(update={"price": Decimal("47000"), "updated_at": T0.replace(second=2)})
    r = await any_store.orders.upsert(v3)  # a delta over v1 would keep v2's fee_currency
    assert r.code == 1
    assert await any_store.orders.get("u1", "okx", "o1") == v3
    events = [e["event_type"] for e in await stream_events(any_store)]
    assert events == ["order.created", "order.updated", "order.updated"]  # the refused delta emitted nothing


async def test_a_position_delta_always_carries_the_fields_a_mark_writes(any_store: Store) -> None:
    p = pos(current_price="45000")
    await any_store.positions.upsert(p)
    (seq,) = await any_store.writer.submit([any_store.positions.mark_call(marked(p, Decimal("46000")))])
    assert int(seq) > 0
    again = p.model_copy(
        update={"size": Decimal("0.2"), "current_price": None, "updated_at": T0.replace(second=1)}
    )
    assert (await any_store.positions.upsert(again)).applied
    stored = await any_store.positions.get("u1", "okx", "BTC-USDT-SWAP", "long")
    assert stored is not None and stored.current_price is None and stored.size == Decimal("0.2")


async def test_index_ops_skipped_by_a_delta_are_the_ones_already_made(any_store: Store) -> None:
    index = any_store.keys.position_index("u1", "okx")
    p = pos()
    at = [T0.replace(second=i) for i in range(4)]
    steps = [
        p,
        p.model_copy(update={"size": Decimal("0.3"), "updated_at": at[1]}),  # still open: no SADD sent
        p.model_copy(update={"size": Decimal("0"), "updated_at": at[2]}),  # open status, no size: out
        p.model_copy(update={"size": Decimal("0.2"), "updated_at": at[3]}),  # back in the index
    ]
    members = []
    for step in steps:
        assert (await any_store.positions.upsert(step)).applied
        members.append(await any_store.redis.smembers(index))
    assert [len(m) for m in members] == [1, 1, 0, 1]


async def test_callers_of_a_cancelled_group_commit_get_an_error_and_the_next_calls_are_sent(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    count_pipelines(store.writer, monkeypatch)  # each round trip takes 10 ms: calls queue behind it
    first = asyncio.ensure_future(
        store.writer.apply_many([store.orders.write_for(order(exchange_order_id="o1"))])
    )
    await asyncio.sleep(0.002)  # its round trip is in flight
    queued = asyncio.ensure_future(
        store.writer.apply_many([store.orders.write_for(order(exchange_order_id="o2"))])
    )
    await asyncio.sleep(0)
    flusher = store.writer._flusher
    assert flusher is not None
    flusher.cancel()
    for caller in (first, queued):
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(caller, 1)  # not left waiting for a round trip nobody sends
    (again,) = await store.writer.apply_many([store.orders.write_for(order(exchange_order_id="o3"))])
    assert again.applied


async def test_a_group_commit_cancelled_before_its_first_step_fails_its_caller_and_the_next_calls_are_sent(
    store: Store,
) -> None:
    caller = asyncio.ensure_future(
        store.writer.apply_many([store.orders.write_for(order(exchange_order_id="o1"))])
    )
    await asyncio.sleep(0)  # the caller has queued its call and started the flusher, which has not run yet
    flusher = store.writer._flusher
    assert flusher is not None
    flusher.cancel()  # its coroutine never starts: its own clean-up never runs
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(caller, 1)
    (again,) = await asyncio.wait_for(
        store.writer.apply_many([store.orders.write_for(order(exchange_order_id="o2"))]), 1
    )
    assert again.applied
