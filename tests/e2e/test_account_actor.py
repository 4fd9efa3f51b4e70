"""Issue 11's five money-losing defects, each black-box: the simulator and the service as processes, the
real ccxt client, the real Redis (a private redis-server where the test stops it)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from .conftest import ServiceFactory
from .support import PrivateRedis, Sim, eventually, holds, place, venue_client

BTC = "BTC-USDT-SWAP"


async def test_tracking_goes_on_after_a_native_stop_s_position_is_closed_elsewhere(
    okx: Sim, make_service: ServiceFactory
) -> None:
    """Defect 1: closing, by other means, a position that a native trailing stop protects deadlocked the
    account (a listener ran under the tracker's lock and waited for the same lock): nothing the user did on
    the exchange afterwards reached the API."""
    creds = await okx.account("k1")
    await okx.price(BTC, "60000")
    svc = await make_service(okx=okx).start()
    await svc.onboard("u1", "okx", creds)
    r = await svc.api.post("/api/v1/positions/open", json={"user_id": "u1", "exchange": "okx", "symbol": BTC,
                           "side": "long", "size": "0.01"})  # fmt: skip
    assert r.status_code == 201, r.text
    r = await svc.api.post("/api/v1/trailing-stops", json={"user_id": "u1", "exchange": "okx", "symbol": BTC,
                           "side": "long", "callback_rate": 0.05, "mode": "native"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert len(await okx.open_algos("k1")) == 1

    other = await venue_client(okx, creds)
    try:
        await place(other, BTC, "sell", "0.01", reduce_only=True)  # the user closes it on the exchange
        await eventually(lambda: _no_position(svc), what="the position to be closed in the API")
        limit_id = await place(other, BTC, "buy", "0.01", "limit", price="50000")
        await eventually(
            lambda: _has_open_order(svc, limit_id), within=6, what="the new order to reach the API"
        )
    finally:
        await other.close()
    # the native stop protected nothing any more: it is cancelled, on the exchange too
    await eventually(lambda: _stop_state(svc, "cancelled"), what="the stop to be cancelled")
    assert await okx.open_algos("k1") == []


async def test_marks_never_hold_back_the_exchange_s_own_later_update(
    okx: Sim, make_service: ServiceFactory
) -> None:
    """Defect 2: a mark stamped the position with our clock as its version, so the exchange's own later
    update (an add) looked older and was dropped; the API stayed a fill behind. The exchange's clock runs
    300 ms behind ours here, and the price moves every 100 ms."""
    await okx.require_faults("clock_offset_ms")
    creds = await okx.account("k1")
    await okx.price(BTC, "60000")
    await okx.faults(clock_offset_ms=-300)
    svc = await make_service(okx=okx, POSITION_MARK_INTERVAL_S="0.1").start()
    await svc.onboard("u1", "okx", creds)
    await okx.feed(BTC, kind="random_walk", interval_ms=100, start="60000", volatility="0.0005", seed=3)
    for adds in range(1, 5):
        r = await svc.api.post("/api/v1/orders", json={"user_id": "u1", "exchange": "okx", "symbol": BTC,
                               "side": "buy", "order_type": "market", "quantity": "0.01"})  # fmt: skip
        assert r.status_code == 201, r.text
        want = Decimal("0.01") * adds
        await eventually(lambda w=want: _size_is(svc, w), within=5, what=f"the API to show {want} BTC")  # type: ignore[misc]
    await okx.feed(BTC, kind="stop")


async def _size_is(svc: object, size: Decimal) -> bool:
    p = await svc.position("u1", "okx", BTC, "long")  # type: ignore[attr-defined]
    return p is not None and Decimal(p["size"]) == size


async def test_a_position_opened_while_a_snapshot_is_in_flight_stays_open(
    okx: Sim, make_service: ServiceFactory
) -> None:
    """Defect 3: a REST snapshot taken before a position opened (and answered after the stream had shown
    it) closed the position for good: one miss was enough, and the synthetic close carried our clock."""
    await okx.require_faults("hold_responses")
    creds = await okx.account("k1")
    await okx.price(BTC, "60000")
    svc = await make_service(okx=okx, RECONCILE_SILENT_S="1").start()  # a snapshot every quiet second
    await svc.onboard("u1", "okx", creds)
    other = await venue_client(okx, creds)
    try:
        order_id = await place(other, BTC, "buy", "0.01", "limit", price="59000")
    finally:
        await other.close()
    await eventually(lambda: _has_open_order(svc, order_id), what="the limit order in the API")
    await okx.faults(hold_responses=[{"path": "/api/v5/account/positions", "ms": 2500, "count": 1}])
    await eventually(lambda: _hold_taken(okx), what="a snapshot to be in flight")
    await okx.price(BTC, "58900")  # fills the order: the position opens while the snapshot is out
    await eventually(lambda: _size_is(svc, Decimal("0.01")), what="the position in the API")
    await holds(lambda: _size_is(svc, Decimal("0.01")), 4.0, "the position in the API")
    assert await okx.position_qty("k1", BTC) == 1  # 1 contract = 0.01 BTC: the exchange agrees
    assert "position.closed" not in [e["event_type"] for e in await svc.events("u1")]


async def _hold_taken(sim: Sim) -> bool:
    holds_left = (await sim.current_faults()).get("hold_responses") or []
    return not any(int(h.get("count", 0)) > 0 for h in holds_left)


async def test_a_stop_that_fires_while_redis_is_down_fires_once_redis_is_back(
    okx: Sim, make_service: ServiceFactory, tmp_path: Path
) -> None:
    """Defect 4: the trailing book dropped a triggered stop before its transition was written; Redis down at
    that moment killed the task silently and the stop never fired again."""
    redis = PrivateRedis(port=_free(), dir=tmp_path)
    redis.start()
    try:
        creds = await okx.account("k1")
        await okx.price(BTC, "60000")
        svc = await make_service(okx=okx, redis_url=redis.url).start()
        await svc.onboard("u1", "okx", creds)
        r = await svc.api.post("/api/v1/positions/open", json={"user_id": "u1", "exchange": "okx",
                               "symbol": BTC, "side": "long", "size": "0.01"})  # fmt: skip
        assert r.status_code == 201, r.text
        r = await svc.api.post("/api/v1/trailing-stops", json={"user_id": "u1", "exchange": "okx",
                               "symbol": BTC, "side": "long", "callback_rate": 0.01})  # fmt: skip
        assert r.status_code == 201 and r.json()["state"] == "active", r.text
        await redis.shutdown()
        await okx.price(BTC, "59000")  # below 60000 x 0.99: the stop fires while Redis is away
        await asyncio.sleep(2.0)  # the outage lasts two seconds
        redis.start()
        await eventually(lambda: _flat_on_exchange(okx), within=15, what="the long to be closed")
        await eventually(lambda: _stop_state(svc, "executed"), within=10, what="the stop to be executed")
        sells = [o for o in (await okx.account_state("k1"))["order_history"] if o["side"] == "sell"]
        assert len(sells) == 1
    finally:
        redis.kill()


def _free() -> int:
    from position_order_service.store.embedded import free_port

    return free_port()


async def _flat_on_exchange(sim: Sim) -> bool:
    return await sim.position_qty("k1", BTC) == 0


async def test_a_rule_whose_cancel_is_cut_by_the_network_still_cancels_the_other_leg(
    okx: Sim, make_service: ServiceFactory
) -> None:
    """Defect 5: one transient error on the cancel marked the rule failed for good and left the other leg
    open. A cancel that fails for a transient reason is retried until the order is gone."""
    await okx.require_faults("http_errors")
    creds = await okx.account("k1")
    await okx.price(BTC, "60000")
    svc = await make_service(okx=okx).start()
    await svc.onboard("u1", "okx", creds)
    ids = []
    for side, price in (("buy", "59000"), ("sell", "61000")):
        r = await svc.api.post("/api/v1/orders", json={"user_id": "u1", "exchange": "okx", "symbol": BTC,
                               "side": side, "order_type": "limit", "quantity": "0.01", "price": price})  # fmt: skip
        assert r.status_code == 201, r.text
        ids.append(r.json()["exchange_order_id"])
    r = await svc.api.post("/api/v1/conditional-rules", json={"user_id": "u1", "exchange": "okx",
                           "trigger_order_id": ids[0], "cancel_order_ids": [ids[1]], "condition": "filled"})  # fmt: skip
    assert r.status_code == 201, r.text
    await okx.faults(http_errors=[{"path": "/api/v5/trade/cancel-order", "status": 503, "count": 1}])
    await okx.price(BTC, "58900")  # fills the first leg
    await eventually(lambda: _rule_state(svc, "executed"), within=15, what="the rule to execute")
    assert (await okx.account_state("k1"))["open_orders"] == []  # the other leg is gone


async def _rule_state(svc: object, state: str) -> str | bool:
    r = await svc.api.get("/api/v1/conditional-rules/u1")  # type: ignore[attr-defined]
    rules = r.json()["rules"]
    return bool(rules) and rules[0]["state"] == state and state


async def _no_position(svc: object) -> bool:
    return await svc.positions("u1", "okx") == []  # type: ignore[attr-defined,no-any-return]


async def _has_open_order(svc: object, order_id: str) -> bool:
    return any(o["exchange_order_id"] == order_id for o in await svc.open_orders("u1", "okx"))  # type: ignore[attr-defined]


async def _stop_state(svc: object, state: str) -> bool:
    r = await svc.api.get("/api/v1/trailing-stops/u1")  # type: ignore[attr-defined]
    stops = r.json()["trailing_stops"]
    return bool(stops) and stops[0]["state"] == state
