"""The store's multi-key steps on a single Redis and on a real 3-master Redis Cluster (tests/redis_backends.py).

Every script touches one user's keys only (one slot with the cluster's hash tags); the global sets (active
users, live stop and rule indexes) are written in commands of their own; pipelines and group commits that span
users are split per node by the cluster client. The account writes (APPLY, events, seqs, retention) run on the
cluster through the `any_store` suites of this package; these cover the rest.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import orjson
from redis.crc import key_slot

from position_order_service.domain.enums import Exchange, PositionSide
from position_order_service.domain.reconcile import Intent
from position_order_service.domain.rules import Condition, ConditionalRule, RuleState
from position_order_service.domain.trailing import StopState, TrailingStop
from position_order_service.store import Store

from .test_account_writes import order as make_order

USERS = [f"user-{i}" for i in range(24)]


async def events_of(store: Store, user_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(f[b"data"]) for _, f in await store.redis.xrange(store.keys.event_stream(user_id))]


def stop(user_id: str, **kw: Any) -> TrailingStop:
    base: dict[str, Any] = {
        "user_id": user_id,
        "exchange": Exchange.OKX,
        "symbol": "BTC-USDT-SWAP",
        "side": PositionSide.LONG,
        "callback_rate": Decimal("0.01"),
        "state": StopState.ACTIVE,
        "extreme_price": Decimal("60000"),
        "version": 1,
    }
    return TrailingStop.model_validate({**base, **kw})


async def test_stop_transitions_are_compare_and_set_and_keep_the_global_index(backend_store: Store) -> None:
    s = backend_store
    a = stop("u1")
    assert await s.trailing_stops.save(a, None, "trailing_stop.created")
    assert not await s.trailing_stops.save(a, None, "trailing_stop.created")  # exists already: refused
    assert [x.id for x in await s.trailing_stops.list_live()] == [a.id]
    # a second writer holding an old version is refused; the right one moves it to a final state
    done = a.model_copy(update={"state": StopState.EXECUTED, "version": 2})
    assert not await s.trailing_stops.save(done, 5, "trailing_stop.executed")
    assert await s.trailing_stops.save(done, 1, "trailing_stop.executed")
    assert await s.trailing_stops.list_live() == []
    assert await s.redis.smembers(s.keys.trailing_stop_index()) == set()
    assert [x.state for x in await s.trailing_stops.list_user("u1")] == [StopState.EXECUTED]
    assert [(e["seq"], e["event_type"]) for e in await events_of(s, "u1")] == [
        (1, "trailing_stop.created"),
        (2, "trailing_stop.executed"),
    ]


async def test_a_leftover_in_the_global_index_is_pruned_and_a_live_stop_never_dropped(
    backend_store: Store,
) -> None:
    """A worker that died between the index's SADD and its transition leaves a member with no live record:
    readers skip and prune it; a live stop under the same key is added back if a prune raced with it."""
    s = backend_store
    ghost = s.keys.trailing_stop("u2", "okx", "ETH-USDT-SWAP", "short")
    await s.redis.sadd(s.keys.trailing_stop_index(), ghost)
    live = stop("u2")
    assert await s.trailing_stops.save(live, None, "trailing_stop.created")
    assert [x.id for x in await s.trailing_stops.list_live()] == [live.id]
    assert {m.decode() for m in await s.redis.smembers(s.keys.trailing_stop_index())} == {
        s.trailing_stops.key_of(live)
    }
    await s.trailing_stops._index.discard(s.trailing_stops.key_of(live))  # a prune racing with a live stop
    assert [x.id for x in await s.trailing_stops.list_live()] == [live.id]


async def test_extremes_of_many_users_move_in_one_pipeline(backend_store: Store) -> None:
    s = backend_store
    stops = [stop(u) for u in USERS]
    for x in stops:
        assert await s.trailing_stops.save(x, None, "trailing_stop.created")
    moved = [x.model_copy(update={"extreme_price": Decimal("61000")}) for x in stops]
    assert await s.trailing_stops.raise_extremes(moved) == len(USERS)
    assert await s.trailing_stops.raise_extremes(moved) == 0  # not higher: nothing written
    for u in USERS:
        got = await s.trailing_stops.get(u, "okx", "BTC-USDT-SWAP", "long")
        assert got is not None and got.extreme_price == Decimal("61000")
        assert [e["seq"] for e in await events_of(s, u)] == [1, 2]


async def test_rule_transitions_keep_the_live_index(backend_store: Store) -> None:
    s = backend_store
    rule = ConditionalRule(
        user_id="u3",
        exchange=Exchange.OKX,
        trigger_order_id="o1",
        cancel_order_ids=["o2"],
        condition=Condition.FILLED,
    )
    assert await s.rules.save(rule, None, "conditional_rule.created")
    assert [r.id for r in await s.rules.list_live()] == [rule.id]
    fired = rule.model_copy(update={"state": RuleState.EXECUTED, "version": 1})
    assert not await s.rules.save(fired, 3, "conditional_rule.executed")
    assert await s.rules.save(fired, 0, "conditional_rule.executed")
    assert await s.rules.list_live() == []
    assert [r.state for r in await s.rules.list_user("u3")] == [RuleState.EXECUTED]
    assert [e["seq"] for e in await events_of(s, "u3")] == [1, 2]


async def test_intents_are_created_once_and_read_back_in_a_pipeline(backend_store: Store) -> None:
    s = backend_store
    assert await s.intents.create("u4", "okx", Intent("c1", order_type="market"))
    assert not await s.intents.create("u4", "okx", Intent("c1", order_type="limit"))  # a duplicate
    assert await s.intents.create("u4", "okx", Intent("c2", grid_level=3))
    got = await s.intents.get_many("u4", "okx", ["c1", "c2", "c3"])
    assert sorted(got) == ["c1", "c2"] and got["c1"].order_type == "market" and got["c2"].grid_level == 3


async def test_credentials_compare_and_set_in_a_transaction(backend_store: Store) -> None:
    s = backend_store
    await s.credentials.put("u5", "okx", b"old")
    assert not await s.credentials.replace("u5", "okx", b"other", b"new")
    assert await s.credentials.replace("u5", "okx", b"old", b"new")
    assert await s.credentials.get("u5", "okx") == b"new"


async def test_active_users_from_the_api_and_the_bots_status_keys(backend_store: Store) -> None:
    s = backend_store
    await s.users.activate("u6", ["okx", "binance"])
    await s.users.activate("u7", ["okx"])
    await s.redis.set(s.keys.bot_status("u8"), "enabled")  # the bot's own key, on whatever node
    assert {"u6", "u7", "u8"} <= await s.users.active_user_ids()
    assert await s.users.exchanges_of("u6") == {"okx", "binance"}
    assert await s.users.deactivate("u7")
    assert not await s.users.deactivate("u7")
    active = await s.users.active_user_ids()
    assert "u7" not in active and {"u6", "u8"} <= active
    await s.users.activate("u7", ["okx"])
    assert "u7" in await s.users.active_user_ids()


async def test_a_group_commit_across_users_keeps_each_users_seqs_gapless(backend_store: Store) -> None:
    s = backend_store

    async def one(u: str, i: int) -> None:
        await s.orders.upsert(make_order(user_id=u, exchange_order_id=str(i)))

    await asyncio.gather(*(one(u, i) for u in USERS for i in range(5)))
    for u in USERS:
        assert [e["seq"] for e in await events_of(s, u)] == [1, 2, 3, 4, 5]
        assert len(await s.orders.list_open(u, "okx")) == 5
    if s.keys.cluster_tags:  # the users really are spread over the masters
        nodes = {s.redis.get_node_from_key(s.keys.event_stream(u)).name for u in USERS}  # type: ignore[attr-defined]
        assert len(nodes) == 3
        assert len({key_slot(s.keys.event_stream(u).encode()) for u in USERS}) == len(USERS)


async def test_a_price_is_stored_and_published_in_one_step(backend_store: Store) -> None:
    s = backend_store
    pubsub = s.redis.pubsub()
    channel = s.channels.prices("okx", "BTC-USDT-SWAP")
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1)
    await s.prices.publish("okx", "BTC-USDT-SWAP", {"price": "60000"}, '{"price":"60000"}')
    msg = None
    for _ in range(50):
        msg = await pubsub.get_message(timeout=0.1)
        if msg and msg["type"] in ("message", b"message"):
            break
    await pubsub.aclose()
    assert msg is not None and orjson.loads(msg["data"]) == {"price": "60000"}
    assert await s.redis.hget(s.keys.last_price("okx", "BTC-USDT-SWAP"), "price") == b"60000"


async def test_the_feed_reads_many_users_streams_at_once(backend_store: Store) -> None:
    """The live feed follows several users' streams with one call (on a cluster: one XREAD per slot)."""
    s = backend_store
    users = USERS[:6]
    cursors = {s.events.stream_key(u): "0-0" for u in users}
    assert await s.events.read(cursors, block_ms=50) == []
    for i, u in enumerate(users):
        await s.orders.upsert(make_order(user_id=u, exchange_order_id=str(i)))
    got = await s.events.read(cursors, block_ms=50)
    assert sorted((key, e["seq"], e["user_id"]) for key, _, e in got) == sorted(
        (s.events.stream_key(u), 1, u) for u in users
    )
