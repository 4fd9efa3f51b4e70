"""Group commit (issue 15 item 3): the writes and reads that many accounts submit while a pipeline is in
flight share the next round trip (each script call still one account's keys, atomic on its own), and the
APPLY script keeps its answers: applied, unchanged, stale, the closed list capped."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from position_order_service.store import Store
from position_order_service.store.writer import EventWriter

from .test_repositories import T0, order


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
    assert len(sizes) <= 8, sizes  # two in flight, then what queued behind them (one per turn: 50)
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
