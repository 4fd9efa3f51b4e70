"""Issue 16: command replies stored as exchange reports; positions closed while the service was down. Both
venues, as a user runs them: simulator and service processes, real ccxt, real Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

from .conftest import ServiceFactory
from .support import Service, Sim, eventually, holds, place, venue_client


async def _order(
    svc: Service, exchange: str, symbol: str, side: str, qty: str, **extra: Any
) -> dict[str, Any]:
    r = await svc.api.post("/api/v1/orders", json={"user_id": "u1", "exchange": exchange, "symbol": symbol,
                           "side": side, "order_type": "market", "quantity": qty, **extra})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _order_events(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((e["order_id"], e["event_type"]) for e in events if e["event_type"].startswith("order."))


async def test_each_binance_fill_of_a_service_order_is_one_order_filled_event(
    binance: Sim, make_service: ServiceFactory
) -> None:
    """The reply to a create-order request was stored as if it were the exchange's report: each Binance
    market order emitted order.filled two or three times (fee 0 from the reply, then the stream's copy)."""
    creds = await binance.account("k1")
    await binance.price("BTCUSDT", "60000")
    svc = await make_service(binance=binance).start()
    await svc.onboard("u1", "binance", creds)
    ids = [(await _order(svc, "binance", "BTCUSDT", "buy", "0.002"))["exchange_order_id"] for _ in range(3)]

    async def all_filled() -> bool:
        counts = _order_events(await svc.events("u1"))
        return all(counts[(i, "order.filled")] >= 1 for i in ids)

    await eventually(all_filled, what="the three fills")
    await holds(all_filled, 1.0, "the fills")  # late copies of the reply would land in this second
    counts = _order_events(await svc.events("u1"))
    assert {i: counts[(i, "order.filled")] for i in ids} == dict.fromkeys(ids, 1), counts
    closed = (await svc.api.get("/api/v1/orders/u1/binance/closed")).json()["orders"]
    assert {o["fee_currency"] for o in closed if o["exchange_order_id"] in ids} == {"USDT"}


async def test_a_resting_order_is_one_event_however_the_reply_spells_its_price(
    okx: Sim, make_service: ServiceFactory
) -> None:
    """A price spelled 59475.0 in the request and 59475 by the exchange was a content change: each spelling
    re-emitted the order's event. Numbers compare by value; one exchange change, one event."""
    creds = await okx.account("k1")
    await okx.price("BTC-USDT-SWAP", "60000")
    svc = await make_service(okx=okx).start()
    await svc.onboard("u1", "okx", creds)
    r = await svc.api.post("/api/v1/orders", json={"user_id": "u1", "exchange": "okx",
                           "symbol": "BTC-USDT-SWAP", "side": "buy", "order_type": "limit", "quantity": 0.01,
                           "price": 59475.0})  # fmt: skip
    assert r.status_code == 201, r.text
    oid = r.json()["exchange_order_id"]

    async def created() -> bool:
        return _order_events(await svc.events("u1"))[(oid, "order.created")] == 1

    await eventually(created, what="order.created")
    await okx.price("BTC-USDT-SWAP", "59400")  # fills it
    await eventually(lambda: _has_event(svc, oid, "order.filled"), what="order.filled")
    await holds(lambda: _has_event(svc, oid, "order.filled"), 0.5, "order.filled")
    events = [
        e for e in await svc.events("u1") if e.get("order_id") == oid and e["event_type"] != "fill.created"
    ]
    assert [e["event_type"] for e in events] == ["order.created", "order.filled"], [
        (e["event_type"], e["price"], e["status"]) for e in events
    ]
    assert {e["price"] for e in events} == {"59475"}


async def _has_event(svc: Service, order_id: str, event_type: str) -> bool:
    return _order_events(await svc.events("u1"))[(order_id, event_type)] >= 1


async def test_a_capped_hedge_close_shows_the_exchange_s_size_not_the_requested_one(
    okx: Sim, make_service: ServiceFactory
) -> None:
    """On OKX a reduce-only hedge close larger than the position is capped by the exchange; the API showed
    the requested size (from our reply) until a snapshot put the exchange's back."""
    await okx.require_faults("ws_reorder")
    creds = await okx.account("k1", mode="long_short")
    await okx.price("BTC-USDT-SWAP", "60000")
    svc = await make_service(okx=okx).start()
    await svc.onboard("u1", "okx", creds)
    await _order(svc, "okx", "BTC-USDT-SWAP", "buy", "0.2", position_side="long")
    # the exchange's report of the close comes after the reply (as it may): held back up to a second
    await okx.faults(ws_reorder={"rate": 1.0, "channels": ["orders"], "window": 3})
    close = await _order(svc, "okx", "BTC-USDT-SWAP", "sell", "0.3", position_side="long", reduce_only=True)
    oid = close["exchange_order_id"]

    async def final() -> dict[str, Any] | None:
        for o in (await svc.api.get("/api/v1/orders/u1/okx/closed")).json()["orders"]:
            if o["exchange_order_id"] == oid:
                return o  # type: ignore[no-any-return]
        return None

    order = await eventually(final, within=3, what="the close order to finish, at the exchange's size")
    exchange_view = next(o for o in (await okx.account_state("k1"))["order_history"] if o["order_id"] == oid)
    capped = Decimal(exchange_view["sz"]) * Decimal("0.01")
    assert capped == Decimal("0.2") and Decimal(order["quantity"]) == capped, (order, exchange_view)
    events = [
        e for e in await svc.events("u1") if e.get("order_id") == oid and e["event_type"] != "fill.created"
    ]
    # a reply only confirms: anything shown from the request is marked provisional; the exchange's report rules
    exchange_events = [e for e in events if not e["metadata"].get("provisional")]
    assert [(e["event_type"], Decimal(e["quantity"])) for e in exchange_events] == [
        ("order.filled", capped)
    ], events


async def _restart_with_a_position_closed_while_down(
    sim: Sim, make_service: ServiceFactory, exchange: str, survivor: tuple[str, str, str],
    closed: tuple[str, str, str], busy: tuple[str, str, str],
) -> None:  # fmt: skip
    """Two positions; the service is killed; one is closed on the exchange while it is down; it restarts
    with a slow REST snapshot while the account is busy on a third symbol (`busy`: symbol, price, lot),
    so stream updates reach it before the snapshot does."""
    creds = await sim.account("k1")
    busy_symbol, busy_price, lot = busy
    prices = {"BTC": "60000", "ETH": "3000"}
    for symbol in (survivor[0], closed[0]):
        await sim.price(symbol, prices[symbol[:3]])
    await sim.price(busy_symbol, busy_price)
    svc = await make_service(**{exchange: sim}).start()
    await svc.onboard("u1", exchange, creds)
    other = await venue_client(sim, creds)
    try:
        for symbol, side, qty in (survivor, closed):
            await place(other, symbol, "buy" if side == "long" else "sell", qty)
        before = {}
        for symbol, side, qty in (survivor, closed):
            p = await eventually(
                lambda s=symbol, d=side: svc.position("u1", exchange, s, d), what="positions"
            )  # type: ignore[misc]
            before[symbol] = p
            assert Decimal(p["size"]) == Decimal(qty)
        svc.kill9()
        symbol, side, qty = closed
        await place(other, symbol, "sell" if side == "long" else "buy", qty, reduce_only=True)
        steps = [Decimal(busy_price) - i for i in range(1, 9)]
        for px in steps:  # resting buys the restarted service will see fill, one every half second
            await place(other, busy_symbol, "buy", lot, "limit", price=str(px))
    finally:
        await other.close()
    seen = len(await svc.events("u1"))
    await sim.faults(delay_ms=1000)  # a slow REST snapshot: the streams speak first
    await svc.start()
    for px in steps:
        await sim.price(busy_symbol, str(px))
        await asyncio.sleep(0.5)
    await svc.wait_reconciled("u1", exchange, within=20)
    await sim.faults(delay_ms=0)
    gone = closed[0]
    await eventually(
        lambda: _not_listed(svc, exchange, gone), within=8, what=f"{gone} to be closed in the API"
    )
    kept = await svc.position("u1", exchange, survivor[0], survivor[1])
    assert kept is not None and kept["id"] == before[survivor[0]]["id"]  # the same position, the same id
    after = [
        (e["event_type"], e["symbol"])
        for e in (await svc.events("u1"))[seen:]
        if e["event_type"].startswith("position.") and e["symbol"] != busy_symbol
    ]
    assert after == [("position.closed", gone)], after


async def _not_listed(svc: Service, exchange: str, symbol: str) -> bool:
    return symbol not in [p["symbol"] for p in await svc.positions("u1", exchange)]


async def test_okx_positions_closed_while_the_service_was_down_are_closed_after_restart(
    okx: Sim, make_service: ServiceFactory
) -> None:
    """The positions stream answers a subscription with a snapshot; that first update reached an empty
    tracker, which then never loaded the stored positions: a position closed during the downtime stayed
    open in the API, and the survivor got a new id and a spurious position.updated."""
    await _restart_with_a_position_closed_while_down(
        okx,
        make_service,
        "okx",
        ("BTC-USDT-SWAP", "long", "0.01"),
        ("ETH-USDT-SWAP", "long", "0.1"),
        ("SOL-USDT-SWAP", "150", "1"),
    )


async def test_binance_positions_closed_while_the_service_was_down_are_closed_after_restart(
    binance: Sim, make_service: ServiceFactory
) -> None:
    await _restart_with_a_position_closed_while_down(
        binance,
        make_service,
        "binance",
        ("ETHUSDT", "long", "0.1"),
        ("BTCUSDT", "short", "0.002"),
        ("SOLUSDT", "150", "1"),
    )


async def test_a_binance_one_way_flip_stays_flipped_while_other_positions_move(
    binance: Sim, make_service: ServiceFactory
) -> None:
    """One-way flips on Binance: a long closed, then a short opened on the same symbol. The positions stream
    keeps every slot's latest state and the service re-reads it on each push: the old flat long (a stream row
    without a time of its own) must never close the new short."""
    creds = await binance.account("k1")
    for symbol, price in (("BTCUSDT", "60000"), ("ETHUSDT", "3000")):
        await binance.price(symbol, price)
    svc = await make_service(binance=binance).start()
    await svc.onboard("u1", "binance", creds)
    other = await venue_client(binance, creds)
    try:
        await place(other, "BTCUSDT", "buy", "0.002")
        await eventually(lambda: svc.position("u1", "binance", "BTCUSDT", "long"), what="the long")
        await place(other, "BTCUSDT", "sell", "0.002", reduce_only=True)
        await eventually(lambda: _not_listed(svc, "binance", "BTCUSDT"), what="the long closed")
        await place(other, "BTCUSDT", "sell", "0.003")
        await eventually(lambda: svc.position("u1", "binance", "BTCUSDT", "short"), what="the short")
        for _ in range(2):  # more pushes: each one re-reads every slot's latest state
            await place(other, "ETHUSDT", "buy", "0.05")
        await eventually(lambda: svc.position("u1", "binance", "ETHUSDT", "long"), what="the ETH long")
        short = await svc.position("u1", "binance", "BTCUSDT", "short")
        assert short is not None and Decimal(short["size"]) == Decimal("0.003")
        await place(other, "BTCUSDT", "buy", "0.003", reduce_only=True)  # the short closed too
        await eventually(lambda: _not_listed(svc, "binance", "BTCUSDT"), what="the short closed")
        for _ in range(2):
            await place(other, "ETHUSDT", "buy", "0.05")
    finally:
        await other.close()
    await eventually(lambda: _eth_size(svc, Decimal("0.2")), what="the ETH adds")
    assert await _not_listed(svc, "binance", "BTCUSDT")  # no stale short comes back
    assert await binance.position_qty("k1", "BTCUSDT", "net") == 0


async def _eth_size(svc: Service, size: Decimal) -> bool:
    p = await svc.position("u1", "binance", "ETHUSDT", "long")
    return p is not None and Decimal(p["size"]) == size
