"""A trigger and its close order's intent are one script and one round trip; a tick's triggers share the round trip
(issue 15 4d). Exactly once still holds: a stale version writes nothing, not even the intent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import orjson
import pytest

from position_order_service.domain.trailing import StopState, TrailingStop
from position_order_service.services import trailing as trailing_mod
from position_order_service.store import Store

from .harness import SYMBOL, Harness, eventually, make_harness

D = Decimal


@pytest.fixture
async def hp(store: Store) -> AsyncIterator[Harness]:
    harness = await make_harness(store, via="paper")
    yield harness
    await harness.close()


def _stop(user: str, rate: str) -> TrailingStop:
    return TrailingStop.model_validate(
        {"user_id": user, "exchange": "okx", "symbol": SYMBOL, "side": "long", "callback_rate": rate}
    )


async def test_the_trigger_script_writes_the_cas_and_the_intent_or_nothing(hp: Harness) -> None:
    h = hp
    h.price("60000")
    stop = await h.trailing.create(_stop("u1", "0.01"))
    assert stop.state is StopState.ACTIVE
    trigger = h.trailing._trigger_of(stop, D("59000"))
    cid = trigger.stop.close_client_order_id
    assert cid and trigger.stop.version == stop.version + 1
    stale = h.trailing._trigger_of(stop.model_copy(update={"version": stop.version - 1}), D("59000"))
    assert await h.store.trailing_stops.trigger_many([stale]) == [False]
    assert await h.store.intents.get_raw("u1", "okx", stale.stop.close_client_order_id or "") == {}
    assert await h.store.trailing_stops.trigger_many([trigger]) == [True]
    stored = await h.store.trailing_stops.get("u1", "okx", SYMBOL, "long")
    assert stored is not None and stored.state is StopState.TRIGGERED and stored.close_client_order_id == cid
    assert stored.model_dump() == trigger.stop.model_dump()  # the fields it writes make the whole record
    raw = await h.store.intents.get_raw("u1", "okx", cid)
    assert raw["state"] == "pending" and raw["order_type"] == "market"
    assert orjson.loads(raw["metadata"]) == {"purpose": "trailing_stop", "trailing_stop_id": stop.id}
    assert orjson.loads(raw["request"]) == {"symbol": SYMBOL, "side": "sell"}
    assert await h.store.trailing_stops.trigger_many([trigger]) == [False]  # the CAS holds: exactly once
    events = [e["event_type"] for e in await h.events("u1")]
    assert events.count("trailing_stop.triggered") == 1


@pytest.mark.parametrize("chunk", [500, 4])
async def test_one_tick_firing_many_stops_sends_each_close_order_once(
    hp: Harness, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trailing_mod, "FIRE_CHUNK", chunk)
    h = hp
    h.price("60000")
    users = [f"b{i}" for i in range(6)]
    keys = {}
    for u in users:
        keys[u] = h.account(u)
        h.engine.place_order(keys[u], SYMBOL, "buy", "10")
        await h.track(u)
    stops = [await h.trailing.create(_stop(u, str(D("0.01") + D(i) / 1000))) for i, u in enumerate(users)]
    calls: list[int] = []
    repo = h.store.trailing_stops
    many = repo.trigger_many

    async def counted(triggers: list) -> list:  # type: ignore[type-arg]
        calls.append(len(triggers))
        return await many(triggers)

    repo.trigger_many = counted  # type: ignore[method-assign]
    h.price("58000")  # every stop fires on this one tick

    async def executed() -> bool:
        got = [await h.store.trailing_stops.get(u, "okx", SYMBOL, "long") for u in users]
        return all(s is not None and s.state is StopState.EXECUTED for s in got)

    await eventually(executed)
    await h.settle(2)
    assert calls == (
        [6] if chunk == 500 else [4, 2]
    )  # the tick's triggers: one pipelined round trip per chunk
    for u, s in zip(users, stops, strict=True):
        sells = [o for o in h.engine.order_history(keys[u], SYMBOL) if o.side.value == "sell"]
        assert len(sells) == 1, u
        stored = await h.store.trailing_stops.get(u, "okx", SYMBOL, "long")
        assert stored is not None and stored.id == s.id
        raw = await h.store.intents.get_raw(u, "okx", stored.close_client_order_id or "")
        assert raw["state"] == "sent" and raw["order_id"] == stored.close_order_id
