"""The writes an account actor makes (issue 11, 16), on the real Redis and on the embedded server: marks that
change no version, provisional records any report supersedes, finished-order entries that follow later
corrections, explicit event types, and fills deduplicated by (symbol, trade id) with a guard that forgets."""

from __future__ import annotations

import time
from decimal import Decimal

from position_order_service.domain.reconcile import marked
from position_order_service.store import Store

from .test_repositories import T0, order, pos, stream_events


async def test_a_mark_writes_price_and_pnl_only_and_never_a_version(any_store: Store) -> None:
    p = pos(current_price="45000")
    await any_store.positions.upsert(p)
    (seq,) = await any_store.writer.submit([any_store.positions.mark_call(marked(p, Decimal("46000")))])
    assert int(seq) > 0
    stored = await any_store.positions.get("u1", "okx", "BTC-USDT-SWAP", "long")
    assert (
        stored is not None
        and stored.current_price == Decimal("46000")
        and stored.pnl.unrealized == Decimal("100")
    )
    assert stored.updated_at == T0  # the version is the exchange's, untouched
    event = (await stream_events(any_store))[-1]
    assert event["event_type"] == "position.updated" and event["metadata"] == {"cause": "mark"}
    # the exchange's own later report (same content otherwise) still applies: the digest ignores marks
    newer = p.model_copy(update={"size": Decimal("0.2"), "updated_at": T0.replace(second=1)})
    write = any_store.positions.write_for(newer, event="position.updated")
    assert (await any_store.writer.apply(write)).applied
    # a mark computed for the old size is refused: it would pair a price with the wrong size
    (stale,) = await any_store.writer.submit([any_store.positions.mark_call(marked(p, Decimal("47000")))])
    assert int(stale) == 0


async def test_a_provisional_order_is_superseded_by_any_report_and_listed_once_when_finished(
    any_store: Store,
) -> None:
    reply = order(status="filled", filled_qty="1", updated_at=T0.replace(hour=5))  # our clock, later
    r = await any_store.writer.apply(any_store.orders.write_for(reply, event="order.filled", versioned=False))
    assert r.applied
    assert await any_store.orders.list_closed("u1", "okx") == []  # not listed while provisional
    report = reply.model_copy(update={"updated_at": T0, "fee": Decimal("0.5"), "fee_currency": "USDT"})
    r = await any_store.writer.apply(any_store.orders.write_for(report, event=None))
    assert r.applied  # an exchange report supersedes it, whatever its time
    closed = await any_store.orders.list_closed("u1", "okx")
    assert [(o.fee, o.fee_currency) for o in closed] == [(Decimal("0.5"), "USDT")]
    corrected = report.model_copy(update={"fee": Decimal("0.6"), "updated_at": T0.replace(second=1)})
    await any_store.writer.apply(any_store.orders.write_for(corrected, event=None))
    closed = await any_store.orders.list_closed("u1", "okx")
    assert [o.fee for o in closed] == [Decimal("0.6")]  # the entry follows the correction, still one
    assert [e["event_type"] for e in await stream_events(any_store)] == ["order.filled"]


async def test_a_finished_order_s_entry_follows_a_correction_written_by_another_process(
    any_store: Store,
) -> None:
    """The correction comes from a writer that never wrote the order (a restart, a failover): the list entry
    it replaces is found without that writer's memory of it, behind later entries, and stays the only one."""
    done = order(exchange_order_id="7", status="filled", filled_qty="1", fee="0.5")
    assert (await any_store.orders.upsert(done)).applied
    later = [order(exchange_order_id=str(100 + i), status="cancelled") for i in range(120)]
    await any_store.writer.apply_many([any_store.orders.write_for(o) for o in later])
    other = Store.create(
        any_store.redis, prefix=any_store.keys.prefix, cluster_tags=any_store.keys.cluster_tags
    )
    corrected = done.model_copy(update={"fee": Decimal("0.6"), "updated_at": T0.replace(second=1)})
    assert (await other.orders.upsert(corrected)).applied
    again = corrected.model_copy(update={"fee": Decimal("0.7"), "updated_at": T0.replace(second=2)})
    assert (await other.orders.upsert(again)).applied  # this writer's own entry, replaced in turn
    closed = await any_store.orders.list_closed("u1", "okx", limit=1000)
    assert len(closed) == 121
    assert [o.fee for o in closed if o.order_id == "7"] == [Decimal("0.7")]
    assert closed[-1].order_id == "7"  # where it was listed


async def test_a_finished_order_s_entry_follows_a_correction_after_a_report_that_changed_nothing(
    any_store: Store,
) -> None:
    done = order(exchange_order_id="8", status="filled", filled_qty="1", fee="0.5")
    assert (await any_store.orders.upsert(done)).applied
    same = done.model_copy(
        update={"updated_at": T0.replace(second=1)}
    )  # the entry would differ; the record not
    assert (await any_store.orders.upsert(same)).code == 0
    corrected = done.model_copy(update={"fee": Decimal("0.6"), "updated_at": T0.replace(second=2)})
    assert (await any_store.orders.upsert(corrected)).applied
    closed = await any_store.orders.list_closed("u1", "okx")
    assert [(o.order_id, o.fee) for o in closed] == [("8", Decimal("0.6"))]


async def test_fills_are_deduplicated_by_symbol_and_trade_id_and_the_guard_forgets(any_store: Store) -> None:
    w, guard = any_store.writer, any_store.keys.seen_fills("u1", "okx")
    await any_store.redis.sadd(guard, "123")  # an older service's guard (a set of trade ids)
    calls = [
        w.emit_once_call("u1", "", "fill.created", {"trade_id": "123", "symbol": s}, guard, f"{s}:123")
        for s in ("BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USDT-SWAP")
    ]
    seqs = [int(s) for s in await w.submit(calls)]
    assert seqs[0] > 0 and seqs[1] > 0 and seqs[2] == 0
    old = w.emit_once_call(
        "u1", "", "fill.created", {"trade_id": "1"}, guard, "BTC-USDT-SWAP:1", guard_ttl_s=1
    )
    old.args[-1] = int(time.time() * 1000) - 5_000  # seen five seconds ago, with a one-second memory
    await w.submit([old])
    await w.submit(
        [w.emit_once_call("u1", "", "fill.created", {"trade_id": "2"}, guard, "X:2", guard_ttl_s=1)]
    )
    assert await any_store.redis.zscore(guard, "BTC-USDT-SWAP:1") is None  # forgotten: memory is bounded
