"""Account leases and fencing tokens on the real Redis: a worker whose lease is gone writes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from position_order_service import metrics
from position_order_service.domain import Position
from position_order_service.domain.enums import Exchange, PositionSide
from position_order_service.domain.trailing import TrailingStop
from position_order_service.store import Store
from position_order_service.store.leases import LeaseRepository, StaleWrite

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def refused_count() -> float:
    return metrics.stale_writes_refused.labels(exchange="okx")._value.get()


def position(size: str = "0.1") -> Position:
    return Position.model_validate(
        {
            "id": "p1",
            "user_id": "u1",
            "exchange": "okx",
            "symbol": "BTC-USDT-SWAP",
            "side": "long",
            "size": size,
            "entry_price": "45000",
            "updated_at": T0,
            "created_at": T0,
        }
    )


async def test_a_lease_is_exclusive_and_each_new_holder_gets_a_larger_token(store: Store) -> None:
    leases = LeaseRepository(store.redis, store.keys)
    (a,) = await leases.acquire("w1", [("u1", "okx")], 5000)
    assert await leases.acquire("w2", [("u1", "okx")], 5000) == []
    (again,) = await leases.acquire("w1", [("u1", "okx")], 5000)  # its own: renewed, same token
    assert again.token == a.token
    assert await leases.holder("u1", "okx") == "w1"
    await leases.release([a])
    (b,) = await leases.acquire("w2", [("u1", "okx")], 5000)
    assert b.token > a.token
    assert await leases.renew([a], 5000) == [a]  # w1's is lost
    assert await leases.renew([b], 5000) == []


async def test_an_expired_lease_is_taken_by_another_worker(store: Store) -> None:
    leases = LeaseRepository(store.redis, store.keys)
    (a,) = await leases.acquire("w1", [("u1", "okx")], 100)
    await asyncio.sleep(0.2)
    (b,) = await leases.acquire("w2", [("u1", "okx")], 5000)
    assert b.token > a.token and await leases.holder("u1", "okx") == "w2"


async def test_forgetting_the_holders_frees_every_lease_and_keeps_tokens_growing(store: Store) -> None:
    leases = LeaseRepository(store.redis, store.keys)
    (a,) = await leases.acquire("dead", [("u1", "okx")], 60_000)
    named = await leases.acquire_named(store.keys.lease("history-writer"), store.keys.lease("history-writer:fence"),
                                       "dead", 60_000)  # fmt: skip
    assert named is not None
    await leases.heartbeat("dead", 60_000)
    assert await leases.forget_holders() == 3  # two leases and the live-worker registry
    assert await leases.holder("u1", "okx") is None
    assert await leases.heartbeat("w2", 60_000) == ["w2"]
    (b,) = await leases.acquire("w2", [("u1", "okx")], 60_000)
    assert b.token > a.token  # the fence counter survived: the dead holder's late writes stay refused
    assert await leases.renew([a], 60_000) == [a]


async def test_writes_with_a_stale_token_are_refused_and_counted(store: Store) -> None:
    leases = LeaseRepository(store.redis, store.keys)
    (a,) = await leases.acquire("w1", [("u1", "okx")], 100)
    store.writer.fences.set(a.fence())
    w = store.positions.write_for(position(), event="position.opened")
    w.fence = a.fence()
    assert (await store.writer.apply(w)).applied  # the holder writes
    await asyncio.sleep(0.2)  # w1 paused past its lease; w2 takes the account
    (b,) = await leases.acquire("w2", [("u1", "okx")], 5000)
    before = refused_count()
    stale = store.positions.write_for(position("0.2"), event="position.updated")
    stale.fence = a.fence()
    with pytest.raises(StaleWrite):
        await store.writer.apply(stale)
    marked = position().model_copy(
        update={"current_price": Decimal("46000"), "unrealized_pnl": Decimal("100")}
    )
    mark = store.positions.mark_call(marked).fenced(a.fence())
    with pytest.raises(StaleWrite):
        await store.writer.submit([mark])
    assert refused_count() == before + 2
    stored = await store.positions.get("u1", "okx", "BTC-USDT-SWAP", "long")
    assert stored is not None and stored.size == Decimal("0.1")
    events = await store.redis.xrange(store.keys.event_stream("u1"))
    assert len(events) == 1  # only the holder's event
    fresh = store.positions.write_for(position("0.3"), event="position.updated")
    fresh.fence = b.fence()
    assert (await store.writer.apply(fresh)).applied  # the new holder writes


async def test_state_machine_transitions_and_intents_follow_the_fence(store: Store) -> None:
    leases = LeaseRepository(store.redis, store.keys)
    (a,) = await leases.acquire("w1", [("u1", "okx")], 5000)
    store.writer.fences.set(a.fence())
    stop = TrailingStop.model_validate(
        {
            "id": "s1",
            "user_id": "u1",
            "exchange": Exchange.OKX,
            "symbol": "BTC-USDT-SWAP",
            "side": PositionSide.LONG,
            "callback_rate": "0.01",
            "created_at": T0,
            "updated_at": T0,
        }
    )
    assert await store.trailing_stops.save(stop, None, "trailing_stop.created")
    await leases.release([a])
    await leases.acquire("w2", [("u1", "okx")], 5000)
    before = refused_count()
    with pytest.raises(StaleWrite):
        await store.trailing_stops.save(
            stop.model_copy(update={"version": stop.version + 1}), stop.version, None
        )
    from position_order_service.domain.reconcile import Intent

    with pytest.raises(StaleWrite):
        await store.intents.create("u1", "okx", Intent(client_order_id="c1"))
    assert refused_count() == before + 2
    assert await store.redis.exists(store.keys.client_order("u1", "okx", "c1")) == 0


async def test_the_fill_mark_only_moves_forward_and_only_for_the_holder(store: Store) -> None:
    leases = LeaseRepository(store.redis, store.keys)
    marks = store.fill_marks
    (a,) = await leases.acquire("w1", [("u1", "okx")], 100)
    assert await marks.get("u1", "okx") is None
    assert await store.writer.submit([marks.advance_call("u1", "okx", 2_000, a.fence())]) == [1]
    assert await store.writer.submit([marks.advance_call("u1", "okx", 1_000, a.fence())]) == [0]
    assert await marks.get("u1", "okx") == 2_000  # an older fill applied later never moves it back
    await asyncio.sleep(0.2)
    (b,) = await leases.acquire("w2", [("u1", "okx")], 5000)
    with pytest.raises(StaleWrite):  # the worker that lost the account
        await store.writer.submit([marks.advance_call("u1", "okx", 3_000, a.fence())])
    assert await marks.get("u1", "okx") == 2_000
    assert await store.writer.submit([marks.advance_call("u1", "okx", 3_000, b.fence())]) == [1]
    assert await marks.get("u1", "okx") == 3_000


async def test_unfenced_writes_are_unchanged(store: Store) -> None:
    """An api replica or a bot holds no lease: its writes carry no token and are not checked."""
    assert (await store.writer.apply(store.positions.write_for(position(), event="position.opened"))).applied
    from position_order_service.domain.reconcile import Intent

    assert await store.intents.create("u1", "okx", Intent(client_order_id="c1"))


async def test_lease_scripts_are_reloaded_after_redis_lost_them(store: Store) -> None:
    """SCRIPT FLUSH (or a Redis restart) between two ticks: renewals still work (a worker that failed here
    lost every account at its next tick)."""
    leases = LeaseRepository(store.redis, store.keys)
    held = await leases.acquire("w1", [("u1", "okx"), ("u2", "okx")], 5000)
    await store.redis.script_flush()
    assert await leases.renew(held, 5000) == []
    await store.redis.script_flush()
    await leases.release(held)
    assert await leases.holder("u1", "okx") is None
